// engine/state_codec — the whole engine state as bytes, and back (for snapshots/).
//
// Writes every field state_hash() covers, in the order documented in snapshots/README.md
// (fixed-width little-endian numbers, length-prefixed strings), and restores an Engine from
// such bytes: derived structures (per-doctor slot lists and waiting lists, the expiry
// queue, per-client hold counts, per-status counts, the remembered-key order) are rebuilt,
// never stored, and the
// result must pass broken_invariant(). Standard library only, like the rest of engine/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.hpp"

namespace slotd {

// Where encoded bytes go, in order; write() returns false to stop (e.g. a closed pipe).
class StateSink {
 public:
  virtual ~StateSink() = default;
  [[nodiscard]] virtual bool write(const char* data, std::size_t size) = 0;
};

// The memory encode() needs (a list of the remembered keys, to sort them so that equal
// states give equal bytes), made ahead of time: a snapshot child forked from the threaded
// slotd must not allocate, since another thread may have held an allocator's lock at the
// fork (glibc's malloc copes; the sanitizers' allocators hang, and POSIX allows only
// async-signal-safe calls there).
class EncodeScratch {
 public:
  // Reserves room for `engine`'s keys; encode() with this scratch then allocates nothing.
  void reserve_for(const Engine& engine) { remembered_.reserve(engine.remembered_count()); }

 private:
  friend struct StateCodec;
  std::vector<const void*> remembered_;
};

struct StateCodec {
  // The exact number of bytes encode() writes for this state.
  static std::uint64_t encoded_size(const Engine& engine);

  // Streams the state into `sink` in buffered pieces. Without `scratch` it allocates the
  // list of remembered keys itself. False if the sink refused a write.
  [[nodiscard]] static bool encode(const Engine& engine, StateSink& sink,
                                   EncodeScratch* scratch = nullptr);

  // Replaces the state of `engine` (its config is kept) with the one in `bytes`. On error
  // returns what is wrong, and `engine` holds an unspecified state that must be discarded.
  [[nodiscard]] static std::optional<std::string> decode(std::string_view bytes, Engine& engine);

  // decode() without its last step, the broken_invariant() check: for a caller that runs
  // that check itself (snapshots/ runs it beside the state hash). Same errors otherwise.
  [[nodiscard]] static std::optional<std::string> decode_unchecked(std::string_view bytes, Engine& engine);
};

}  // namespace slotd
