// snapshots/snapshot_file — the bytes of one snapshot file (documented in snapshots/README.md).
//
// A 48-byte header (magic, format version, seq, state hash, time floor, engine byte
// count), the engine state (engine/state_codec.hpp), and an 8-byte XXH3-64 checksum of
// everything before it. No file IO here: the writer streams into a StateSink, the reader
// checks a whole file held in memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/engine.hpp"
#include "engine/state_codec.hpp"

namespace slotd {

// Status of every fallible snapshot call; errors carry a message for logs and operators.
struct SnapshotStatus {
  bool ok = true;
  std::string message;
  static SnapshotStatus error(std::string m) { return SnapshotStatus{false, std::move(m)}; }
  explicit operator bool() const { return ok; }
};

inline constexpr char kSnapshotMagic[8] = {'S', 'L', 'O', 'T', 'D', 'S', 'N', 'P'};
// 2: bookings carry their reschedule count, and the waitlist follows the webhooks.
// 3: the same bytes as 2, but the header's state hash is Engine::state_hash() with slots and
// bookings hashed in four lanes (a faster hash, different values). Files of older versions
// are skipped (the journal replays instead).
inline constexpr std::uint32_t kSnapshotFormatVersion = 3;
inline constexpr std::size_t kSnapshotHeaderBytes = 48;
inline constexpr std::size_t kSnapshotTrailerBytes = 8;

struct SnapshotHeader {
  std::uint32_t version = kSnapshotFormatVersion;
  std::uint64_t seq = 0;         // the state is the journal applied up to this seq
  std::uint64_t state_hash = 0;  // Engine::state_hash() of that state
  TimeMs time_floor_ms = 0;      // the latest journal record time at or before seq
  std::uint64_t engine_bytes = 0;
};

// Writes the whole file image of `engine` (at `seq`) to `sink`: header, engine bytes,
// checksum. Computes the state hash first (O(state)). False if the sink refused a write.
// With a `scratch` reserved for `engine`, it allocates nothing (a forked child).
[[nodiscard]] bool write_snapshot(const Engine& engine, std::uint64_t seq, TimeMs time_floor_ms,
                                  StateSink& sink, EncodeScratch* scratch = nullptr);

// Reads the header of a file image (at least kSnapshotHeaderBytes); checks magic and version.
[[nodiscard]] SnapshotStatus parse_snapshot_header(std::string_view bytes, SnapshotHeader& out);

// Checks a whole file image (size, checksum), restores `engine` (a fresh Engine with the
// wanted config) from it and checks its seq, state hash and invariants. Never trusts a
// file that fails any of these: the error says which.
[[nodiscard]] SnapshotStatus read_snapshot(std::string_view bytes, Engine& engine,
                                           SnapshotHeader& header);

}  // namespace slotd
