// journal/codec — the binary encoding of one journal record (key and value).
//
// The byte layout is part of slotd's durable format and is documented in
// journal/README.md; change it only by bumping the format version. No RocksDB here:
// the codec is plain bytes so tools and tests can use it without a database.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "engine/engine.hpp"

namespace slotd {

// Who caused a record. Stored as one byte; values beyond `patient` are rejected on decode.
enum class Actor : std::uint8_t { system = 0, admin = 1, patient = 2 };

struct JournalRecord {
  std::uint64_t seq = 0;         // global, gap-free, starts at 1
  TimeMs at_ms = 0;              // when the sequencer decided it
  std::uint64_t request_id = 0;  // which request caused it (0 = system, e.g. expiry)
  Actor actor = Actor::system;
  Event event;
};

// Status of every fallible journal call. Errors carry a message for logs and operators.
struct JournalStatus {
  bool ok = true;
  std::string message;

  static JournalStatus error(std::string m) { return JournalStatus{false, std::move(m)}; }
  explicit operator bool() const { return ok; }
};

// The value format version written now, byte 0 of every value. Format 1 is still read.
inline constexpr std::uint8_t kJournalFormatVersion = 2;

// Event names (as in C++ and JSON), indexed by the Event alternative (= the type byte).
inline constexpr std::array<std::string_view, 16> kEventNames = {
    "ClinicAdded",    "DoctorAdded", "SlotCreated",  "SlotHeld",
    "BookingConfirmed", "BookingExpired", "BookingCancelled", "SlotClosed",
    "IdempotencyKeysForgotten", "ClinicUpdated", "WebhookRegistered", "WebhookDeleted",
    "BookingRescheduled", "WaitlistJoined", "WaitlistLeft", "WaitlistOffered"};

inline std::string_view event_name(const Event& event) { return kEventNames[event.index()]; }

// The entities a record names, for the per-booking and per-slot history index.
enum class EntityKind : char { booking = 'b', slot = 's' };
struct EntityRef {
  EntityKind kind = EntityKind::booking;
  Id id = 0;
};
// At most three: a booking event names its booking and (format 2) its slot, a move its
// booking and both slots. A slot_id of 0 (format 1) is left out; the caller resolves it
// from the booking's SlotHeld.
inline constexpr std::size_t kMaxEntitiesPerEvent = 3;
using EntityRefs = std::array<EntityRef, kMaxEntitiesPerEvent>;
std::size_t entities_of(const Event& event, EntityRefs& out);
// The index key: kind (1 byte), id and seq (8 bytes big-endian each).
inline constexpr std::size_t kEntityKeyBytes = 17;
void put_entity_key(char (&key)[kEntityKeyBytes], EntityKind kind, Id id, std::uint64_t seq);
std::string encode_entity_key(EntityKind kind, Id id, std::uint64_t seq);
// The seq of an index key; false if `key` is not kEntityKeyBytes long.
[[nodiscard]] bool decode_entity_key_seq(std::string_view key, std::uint64_t& seq);

// 8-byte big-endian seq, so RocksDB's bytewise key order is numeric order.
std::string encode_key(std::uint64_t seq);

// Reads a key written by encode_key. False if `key` is not exactly 8 bytes.
[[nodiscard]] bool decode_key(std::string_view key, std::uint64_t& seq);

// Appends the value bytes of `record` to `out` (the seq lives in the key, not here).
void encode_record(const JournalRecord& record, std::string& out);

// Parses a whole value. Strict: truncation, trailing bytes, an unknown version or event
// type, an out-of-range enum or a non-canonical varint are errors naming `seq`.
// `out.seq` is set to `seq`. On error `out` holds unspecified (but valid) contents.
[[nodiscard]] JournalStatus decode_record(std::uint64_t seq, std::string_view bytes,
                                          JournalRecord& out);

}  // namespace slotd
