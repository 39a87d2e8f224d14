#include "snapshots/snapshot_file.hpp"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t as a complete type
#include <xxhash.h>

#include <cstring>
#include <future>
#include <memory>

#include <fmt/format.h>

namespace slotd {
namespace {

void put_u32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void put_u64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

// Passes bytes on to the file's sink and folds them into the checksum. The hash state lives
// in the object (XXH_STATIC_LINKING_ONLY), not on the heap: a snapshot child must not allocate.
class ChecksummingSink : public StateSink {
 public:
  explicit ChecksummingSink(StateSink& out) : out_(out) { XXH3_64bits_reset(&state_); }
  bool write(const char* data, std::size_t size) override {
    XXH3_64bits_update(&state_, data, size);
    bytes_ += size;
    return out_.write(data, size);
  }
  std::uint64_t digest() const { return XXH3_64bits_digest(&state_); }
  std::uint64_t bytes() const { return bytes_; }

 private:
  StateSink& out_;
  XXH3_state_t state_;
  std::uint64_t bytes_ = 0;
};

}  // namespace

bool write_snapshot(const Engine& engine, std::uint64_t seq, TimeMs time_floor_ms,
                    StateSink& sink, EncodeScratch* scratch) {
  char header[kSnapshotHeaderBytes] = {};
  std::memcpy(header, kSnapshotMagic, sizeof kSnapshotMagic);
  put_u32(header + 8, kSnapshotFormatVersion);
  put_u32(header + 12, 0);  // reserved
  put_u64(header + 16, seq);
  put_u64(header + 24, engine.state_hash());
  put_u64(header + 32, static_cast<std::uint64_t>(time_floor_ms));
  const std::uint64_t engine_bytes = StateCodec::encoded_size(engine);
  put_u64(header + 40, engine_bytes);

  ChecksummingSink checked(sink);
  if (!checked.write(header, sizeof header)) return false;
  if (!StateCodec::encode(engine, checked, scratch)) return false;
  // encoded_size and encode must agree, or the reader would reject the file.
  if (checked.bytes() != kSnapshotHeaderBytes + engine_bytes) return false;
  char trailer[kSnapshotTrailerBytes];
  put_u64(trailer, checked.digest());
  return sink.write(trailer, sizeof trailer);
}

SnapshotStatus parse_snapshot_header(std::string_view bytes, SnapshotHeader& out) {
  if (bytes.size() < kSnapshotHeaderBytes) {
    return SnapshotStatus::error(
        fmt::format("truncated: {} bytes, shorter than the {}-byte header", bytes.size(),
                    kSnapshotHeaderBytes));
  }
  if (std::memcmp(bytes.data(), kSnapshotMagic, sizeof kSnapshotMagic) != 0) {
    return SnapshotStatus::error("not a slotd snapshot (bad magic)");
  }
  out.version = get_u32(bytes.data() + 8);
  if (out.version != kSnapshotFormatVersion) {
    return SnapshotStatus::error(fmt::format("unknown format version {}", out.version));
  }
  out.seq = get_u64(bytes.data() + 16);
  out.state_hash = get_u64(bytes.data() + 24);
  out.time_floor_ms = static_cast<TimeMs>(get_u64(bytes.data() + 32));
  out.engine_bytes = get_u64(bytes.data() + 40);
  return {};
}

SnapshotStatus read_snapshot(std::string_view bytes, Engine& engine, SnapshotHeader& header) {
  if (SnapshotStatus s = parse_snapshot_header(bytes, header); !s) return s;
  const std::uint64_t want = kSnapshotHeaderBytes + header.engine_bytes + kSnapshotTrailerBytes;
  if (header.engine_bytes > bytes.size() || bytes.size() != want) {
    return SnapshotStatus::error(fmt::format(
        "truncated or padded: the header promises {} bytes, the file has {}", want, bytes.size()));
  }
  const std::size_t body_end = bytes.size() - kSnapshotTrailerBytes;
  const std::uint64_t stored = get_u64(bytes.data() + body_end);
  // The checksum and the decode only read the bytes: side by side (on a second thread if
  // one can be had). The decoder refuses malformed bytes on its own (every count is checked
  // against the bytes left; it is fuzzed on raw state bytes), and a state decoded from
  // bytes whose checksum fails is discarded with the error below, never used.
  auto checksum = std::async(std::launch::async | std::launch::deferred,
                             [bytes, body_end] { return XXH3_64bits(bytes.data(), body_end); });
  const auto decode_error = StateCodec::decode_unchecked(
      bytes.substr(kSnapshotHeaderBytes, header.engine_bytes), engine);
  const std::uint64_t computed = checksum.get();
  if (stored != computed) {
    return SnapshotStatus::error(
        fmt::format("checksum mismatch: stored {:016x}, computed {:016x}", stored, computed));
  }
  if (decode_error) return SnapshotStatus::error(*decode_error);
  // The invariants and the state hash only read the decoded state: check them side by side
  // (on a second thread if one can be had), then report in the documented order.
  auto hashed = std::async(std::launch::async | std::launch::deferred,
                           [&engine] { return engine.state_hash(); });
  const auto broken = engine.broken_invariant();
  const std::uint64_t hash = hashed.get();
  if (broken) return SnapshotStatus::error("engine state: breaks an invariant: " + *broken);
  if (engine.applied_events() != header.seq) {
    return SnapshotStatus::error(fmt::format("the state is at seq {}, the header says {}",
                                             engine.applied_events(), header.seq));
  }
  if (hash != header.state_hash) {
    return SnapshotStatus::error(fmt::format(
        "state hash mismatch: the header says {:016x}, the state hashes to {:016x}",
        header.state_hash, hash));
  }
  return {};
}

}  // namespace slotd
