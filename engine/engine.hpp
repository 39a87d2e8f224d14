// engine/ — the pure booking state machine of slotd.
//
// Owns: clinics, doctors, slots, bookings; the commands that may change them (decide)
// and the events that do (apply). May include only the C++ standard library: no IO,
// no threads, no clock, no RocksDB, no Boost (tests/engine_purity_test enforces it).
// Time enters only as the `now_ms` argument of decide; replay calls apply alone.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace slotd {

using Id = std::uint64_t;       // 1-based, dense, assigned by decide; 0 means "none"
using TimeMs = std::int64_t;    // milliseconds since the Unix epoch, UTC
using Token = std::array<std::uint8_t, 16>;  // a booking's secret capability

enum class SlotStatus : std::uint8_t { available = 0, held = 1, booked = 2, closed = 3 };
enum class BookingStatus : std::uint8_t { pending = 0, confirmed = 1, failed = 2, cancelled = 3 };

std::string_view to_string(SlotStatus s);
std::string_view to_string(BookingStatus s);

// Every way a command can be refused. A rejection changes nothing.
enum class Rejection : std::uint8_t {
  none = 0,
  clinic_not_found,
  doctor_not_found,
  slot_not_found,
  booking_not_found,
  slot_unavailable,    // the slot is not AVAILABLE (held, booked or closed)
  slot_overlap,        // a new slot overlaps a live slot of the same doctor
  booking_expired,     // PENDING but its expires_at has passed
  booking_failed,      // the hold already expired (FAILED)
  booking_cancelled,   // the booking was cancelled
  booking_confirmed,   // cancelling/closing is refused because the booking is final
  slot_booked,         // closing a slot that a CONFIRMED or PENDING booking holds
  invalid_name,        // empty or too long name / specialty / patient name
  invalid_time_range,  // end <= start, or outside the representable range
  too_many_slots,      // more than max_slots_per_request in one CreateSlots
  empty_request,       // CreateSlots with no slot
  too_many_holds,      // the client already has max_holds_per_client PENDING holds
  idempotency_key_reused,  // the Idempotency-Key was used for a different request
  // Not a refusal: the same Idempotency-Key and request were already done. Nothing
  // changes; the caller answers as it did the first time (see remembered()).
  duplicate_request,
};

std::string_view to_string(Rejection r);

struct EngineConfig {
  TimeMs hold_ttl_ms = 120'000;
  std::uint32_t max_slots_per_request = 10'000;
  std::uint32_t max_holds_per_client = 0;  // 0 = no cap
  std::uint32_t max_name_bytes = 200;
  std::uint32_t max_expiries_per_command = 10'000;
};

// ---- State ----------------------------------------------------------------

struct Clinic {
  Id id = 0;
  std::string name;
};

struct Doctor {
  Id id = 0;
  Id clinic_id = 0;
  std::string name;
  std::string specialty;
};

struct Slot {
  Id id = 0;
  Id doctor_id = 0;
  TimeMs start_ms = 0;
  TimeMs end_ms = 0;
  SlotStatus status = SlotStatus::available;
  Id booking_id = 0;  // the PENDING/CONFIRMED booking holding it, else 0
};

struct Booking {
  Id id = 0;
  Id slot_id = 0;
  std::string patient_name;
  std::string client_key;  // who asked (for the hold cap); may be empty
  Token token{};
  BookingStatus status = BookingStatus::pending;
  TimeMs created_at_ms = 0;
  TimeMs expires_at_ms = 0;
  TimeMs confirmed_at_ms = 0;  // 0 = never
  TimeMs ended_at_ms = 0;      // when it became FAILED or CANCELLED; 0 = not ended
  std::uint64_t held_seq = 0;  // the journal seq of its SlotHeld event
};

// What a carried-out request with an Idempotency-Key did.
struct RememberedRequest {
  std::uint64_t request_hash = 0;
  Id booking_id = 0;
  std::uint64_t seq = 0;  // the journal seq of the event it produced
};

// An Idempotency-Key and a hash of the request it was sent with (empty key = none). The
// engine remembers keys of requests it carried out, so a retry is answered, not redone.
struct IdempotencyKey {
  std::string key;
  std::uint64_t request_hash = 0;
};

// ---- Commands (imperative) --------------------------------------------------

struct AddClinic {
  std::string name;
};
struct AddDoctor {
  Id clinic_id = 1;
  std::string name;
  std::string specialty;
};
struct SlotSpan {
  TimeMs start_ms = 0;
  TimeMs end_ms = 0;
};
struct CreateSlots {
  Id doctor_id = 0;
  std::vector<SlotSpan> spans;
};
struct BookSlot {
  Id slot_id = 0;
  std::string patient_name;
  std::string client_key;
  Token token{};
  IdempotencyKey idempotency;
};
struct ConfirmBooking {
  Id booking_id = 0;
  IdempotencyKey idempotency;
};
struct CancelBooking {
  Id booking_id = 0;
  IdempotencyKey idempotency;
};
struct CloseSlot {
  Id slot_id = 0;
};
struct ExpireDue {};  // expire every PENDING booking whose expires_at <= now

using Command = std::variant<AddClinic, AddDoctor, CreateSlots, BookSlot, ConfirmBooking,
                             CancelBooking, CloseSlot, ExpireDue>;

// ---- Events (past tense). Each carries everything apply needs. -------------

struct ClinicAdded {
  Id clinic_id = 0;
  std::string name;
};
struct DoctorAdded {
  Id doctor_id = 0;
  Id clinic_id = 0;
  std::string name;
  std::string specialty;
};
struct SlotCreated {
  Id slot_id = 0;
  Id doctor_id = 0;
  TimeMs start_ms = 0;
  TimeMs end_ms = 0;
};
// A booking was made: the booking is PENDING and its slot HELD.
struct SlotHeld {
  Id booking_id = 0;
  Id slot_id = 0;
  std::string patient_name;
  std::string client_key;
  Token token{};
  TimeMs created_at_ms = 0;
  TimeMs expires_at_ms = 0;
  IdempotencyKey idempotency;
};
struct BookingConfirmed {
  Id booking_id = 0;
  TimeMs confirmed_at_ms = 0;
  IdempotencyKey idempotency;
};
struct BookingExpired {
  Id booking_id = 0;
  TimeMs expired_at_ms = 0;
};
struct BookingCancelled {
  Id booking_id = 0;
  TimeMs cancelled_at_ms = 0;
  IdempotencyKey idempotency;
};
struct SlotClosed {
  Id slot_id = 0;
};

// The order of alternatives is part of the journal format (journal/README.md): append only.
using Event = std::variant<ClinicAdded, DoctorAdded, SlotCreated, SlotHeld, BookingConfirmed,
                           BookingExpired, BookingCancelled, SlotClosed>;

// The doctor whose slots an event changes (0 if none): used to publish per-doctor views.
// Needs the state to resolve booking → slot → doctor.
class Engine;
Id affected_doctor(const Engine& engine, const Event& event);

// ---- The engine ---------------------------------------------------------------

class Engine {
 public:
  explicit Engine(EngineConfig config = {});

  // Checks `command` against the state at `now_ms`. On success appends its events to
  // `out` and returns Rejection::none; on refusal appends nothing. Never mutates.
  // A success may have zero events (e.g. confirming a CONFIRMED booking again).
  [[nodiscard]] Rejection decide(const Command& command, TimeMs now_ms,
                                 std::vector<Event>& out) const;

  // Applies one event. Cannot fail: events come from decide or from the journal,
  // which only holds events decide produced. Broken preconditions are bugs (assert).
  void apply(const Event& event);

  // decide + apply of each event, for tests and tools.
  [[nodiscard]] Rejection execute(const Command& command, TimeMs now_ms,
                                  std::vector<Event>& out);

  // A 64-bit hash over the whole logical state (ids, fields, statuses, counters):
  // equal hashes after replay prove replay rebuilt the same state.
  [[nodiscard]] std::uint64_t state_hash() const;

  // Empty if every invariant holds, else a description of the first broken one.
  [[nodiscard]] std::string check_invariants() const;

  const EngineConfig& config() const { return config_; }
  // Also rebuilds what depends on the config (the per-client hold counts).
  void set_config(const EngineConfig& config);

  // Lookups; nullptr when the id is unknown.
  const Clinic* clinic(Id id) const;
  const Doctor* doctor(Id id) const;
  const Slot* slot(Id id) const;
  const Booking* booking(Id id) const;

  const std::vector<Clinic>& clinics() const { return clinics_; }
  const std::vector<Doctor>& doctors() const { return doctors_; }
  const std::deque<Slot>& slots() const { return slots_; }
  const std::deque<Booking>& bookings() const { return bookings_; }

  // A doctor's slots ordered by (start, id), including CLOSED ones.
  using SlotIndex = std::set<std::pair<TimeMs, Id>>;
  const SlotIndex& slots_of(Id doctor_id) const;

  // PENDING holds a client key has right now (counted only while a hold cap is configured).
  std::uint32_t holds_of(const std::string& client_key) const;

  std::uint64_t pending_count() const { return pending_count_; }

  // The request carried out under an Idempotency-Key, or nullptr.
  const RememberedRequest* remembered(const std::string& key) const;

  // Events applied so far. The journal is gap-free from 1 and replays every event in
  // order, so this is also the seq of the last applied event.
  std::uint64_t applied_events() const { return applied_events_; }
  // Live counts by status, kept by apply (O(1) for stats and metrics).
  std::uint64_t count(SlotStatus s) const { return slot_counts_[static_cast<std::size_t>(s)]; }
  std::uint64_t count(BookingStatus s) const {
    return booking_counts_[static_cast<std::size_t>(s)];
  }

 private:
  Rejection decide_add_clinic(const AddClinic& c, std::vector<Event>& out) const;
  Rejection decide_add_doctor(const AddDoctor& c, std::vector<Event>& out) const;
  Rejection decide_create_slots(const CreateSlots& c, std::vector<Event>& out) const;
  Rejection decide_book(const BookSlot& c, TimeMs now_ms, std::vector<Event>& out) const;
  Rejection decide_confirm(const ConfirmBooking& c, TimeMs now_ms,
                           std::vector<Event>& out) const;
  Rejection decide_cancel(const CancelBooking& c, TimeMs now_ms, std::vector<Event>& out) const;
  Rejection decide_close(const CloseSlot& c, std::vector<Event>& out) const;
  Rejection decide_expire(TimeMs now_ms, std::vector<Event>& out) const;

  bool overlaps_live_slot(Id doctor_id, TimeMs start_ms, TimeMs end_ms) const;
  Rejection check_idempotency(const IdempotencyKey& idempotency) const;
  void remember(const IdempotencyKey& idempotency, Id booking_id);
  bool valid_name(std::string_view name) const;
  void release_hold(Booking& booking);
  void end_pending(const Booking& booking);
  void count_hold(const std::string& client_key, int delta);
  void trim_expiry_queue();
  void set_status(Slot& slot, SlotStatus status);
  void set_status(Booking& booking, BookingStatus status);

  EngineConfig config_;
  std::vector<Clinic> clinics_;   // index = id - 1
  std::vector<Doctor> doctors_;   // index = id - 1
  // Deques, not vectors: growth never copies millions of records inside one apply.
  std::deque<Slot> slots_;        // index = id - 1
  std::deque<Booking> bookings_;  // index = id - 1
  std::vector<SlotIndex> slots_by_doctor_;  // index = doctor id - 1
  // PENDING bookings in expiry order; entries of bookings no longer PENDING are skipped
  // and trimmed from the front. Derived from the bookings, so not part of the hash.
  std::deque<std::pair<TimeMs, Id>> expiry_queue_;
  std::unordered_map<std::string, std::uint32_t> holds_by_client_;
  std::uint64_t pending_count_ = 0;
  std::array<std::uint64_t, 4> slot_counts_{};     // by SlotStatus
  std::array<std::uint64_t, 4> booking_counts_{};  // by BookingStatus
  std::unordered_map<std::string, RememberedRequest> remembered_;  // by Idempotency-Key
  std::uint64_t applied_events_ = 0;
};

}  // namespace slotd
