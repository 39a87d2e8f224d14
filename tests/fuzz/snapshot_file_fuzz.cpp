// The snapshot loader (snapshots/snapshot_file, engine/state_codec) on arbitrary bytes, as
// recovery meets them on disk. The first byte says what the rest is:
//   0: a whole snapshot file image → read_snapshot;
//   1: a file image whose trailing XXH3 checksum the target repairs first, so inputs get
//      past the checksum to the header checks, the state decoder and the hash check;
//   2: the engine state bytes alone → StateCodec::decode.
// Refusing is always fine. Whatever is accepted must hold the engine's invariants, be the
// one encoding of its state (re-encoding gives the very bytes), write and read back as a
// snapshot with the same state hash, and keep working: expiring every PENDING hold and
// booking, confirming and cancelling on it leave a state whose invariants hold.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/state_codec.hpp"
#include "snapshots/snapshot_file.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace slotd;

namespace {

class StringSink : public StateSink {
 public:
  bool write(const char* data, std::size_t size) override {
    bytes.append(data, size);
    return true;
  }
  std::string bytes;
};

void check_invariants(const Engine& engine, const char* when) {
  const auto broken = engine.broken_invariant();
  FUZZ_CHECK(!broken, "%s: %s", when, broken ? broken->c_str() : "");
}

// Decides and applies `command`; the state must stay valid whatever the outcome.
Rejection run(Engine& engine, const Command& command, TimeMs now, std::vector<Event>& events) {
  events.clear();
  const Rejection r = engine.decide(command, now, events);
  if (r == Rejection::none) {
    for (const Event& e : events) engine.apply(e);
  } else {
    FUZZ_CHECK(events.empty(), "a refused command produced events");
  }
  check_invariants(engine, "after a command on a restored state");
  return r;
}

// A restored state keeps working like a live one.
void exercise(Engine& engine) {
  std::vector<Event> events;
  // Every PENDING hold expires by the latest expires_at among them.
  TimeMs latest = 0;
  std::size_t pending = 0;
  for (Id id = 1; id <= engine.booking_count(); ++id) {
    const Booking* b = engine.booking(id);
    if (b->status == BookingStatus::pending) {
      ++pending;
      latest = std::max(latest, b->expires_at_ms);
    }
  }
  FUZZ_CHECK(pending == engine.pending_count(), "pending_count %llu, PENDING bookings %zu",
             static_cast<unsigned long long>(engine.pending_count()), pending);
  if (pending > 0 && pending <= engine.config().max_expiries_per_command) {
    (void)run(engine, ExpireDue{}, latest, events);
    FUZZ_CHECK(engine.pending_count() == 0, "%llu holds outlived ExpireDue at their latest expiry",
               static_cast<unsigned long long>(engine.pending_count()));
  }
  // Book the first free slot, confirm, cancel; close the next one.
  const TimeMs now = std::max<TimeMs>(latest, kMinInstantMs);
  for (Id id = 1; id <= engine.slot_count(); ++id) {
    if (engine.slot(id)->status != SlotStatus::available) continue;
    if (run(engine, BookSlot{id, "Fuzz", 0, Token{1}}, now, events) != Rejection::none) break;
    const Id booking = std::get<SlotHeld>(events.at(0)).booking_id;
    (void)run(engine, ConfirmBooking{booking}, now, events);
    (void)run(engine, CancelBooking{booking}, now, events);
    if (id < engine.slot_count()) (void)run(engine, CloseSlot{id + 1}, now, events);
    break;
  }
}

void accepted(const Engine& engine, std::string_view state_bytes) {
  check_invariants(engine, "a restored state");
  StringSink state;
  FUZZ_CHECK(StateCodec::encode(engine, state), "encode refused");
  FUZZ_CHECK(state.bytes.size() == StateCodec::encoded_size(engine), "encoded_size is not encode's size");
  std::size_t differ = 0;
  while (differ < state.bytes.size() && differ < state_bytes.size() && state.bytes[differ] == state_bytes[differ]) ++differ;
  FUZZ_CHECK(state.bytes == state_bytes,
             "an accepted state re-encodes to other bytes (%zu vs %zu), first at state byte %zu (%02x, re-encoded %02x)",
             state_bytes.size(), state.bytes.size(), differ,
             differ < state_bytes.size() ? static_cast<unsigned char>(state_bytes[differ]) : 0u,
             differ < state.bytes.size() ? static_cast<unsigned char>(state.bytes[differ]) : 0u);

  StringSink file;
  FUZZ_CHECK(write_snapshot(engine, engine.applied_events(), 0, file), "write_snapshot refused");
  Engine again(engine.config());
  SnapshotHeader header;
  SnapshotStatus read = read_snapshot(file.bytes, again, header);
  FUZZ_CHECK(read.ok, "a written snapshot does not read back: %s", read.message.c_str());
  FUZZ_CHECK(again.state_hash() == engine.state_hash(), "a snapshot round trip changed the state hash");

  exercise(again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0] % 3;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  Engine engine;
  if (mode == 2) {
    if (StateCodec::decode(bytes, engine)) return 0;
    accepted(engine, bytes);
    return 0;
  }
  if (mode == 1 && bytes.size() >= kSnapshotHeaderBytes + kSnapshotTrailerBytes) {
    const std::size_t body_end = bytes.size() - kSnapshotTrailerBytes;
    const std::uint64_t sum = XXH3_64bits(bytes.data(), body_end);
    for (std::size_t i = 0; i < 8; ++i) bytes[body_end + i] = static_cast<char>(sum >> (8 * i));
  }
  SnapshotHeader header;
  if (!read_snapshot(bytes, engine, header)) return 0;
  FUZZ_CHECK(header.seq == engine.applied_events(), "accepted a snapshot whose seq is not its state's");
  FUZZ_CHECK(header.state_hash == engine.state_hash(), "accepted a snapshot whose hash is not its state's");
  accepted(engine, std::string_view(bytes).substr(kSnapshotHeaderBytes, header.engine_bytes));
  return 0;
}
