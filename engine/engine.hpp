// engine/ — the pure booking state machine of slotd.
//
// Owns: clinics, doctors, slots, bookings, waitlist entries, remembered Idempotency-Keys,
// webhook registrations (not their delivery, which is webhooks/'s); the commands that
// may change them (decide) and the events that do (apply). May include only the C++
// standard library: no IO, no threads, no clock, no RocksDB, no Boost (checked by
// tests/engine_purity.cmake on every build). Time enters only as the `now_ms` argument of
// decide; replay calls apply alone. Refusals are `Rejection` values, never exceptions.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "engine/chunked_vector.hpp"
#include "engine/string_arena.hpp"

namespace slotd {

using Id = std::uint64_t;     // 1-based, dense, assigned by decide; 0 means "none"
using TimeMs = std::int64_t;  // milliseconds since the Unix epoch, UTC
using Token = std::array<std::uint8_t, 16>;  // a booking's secret capability
// A webhook endpoint's signing key (HMAC-SHA256 of each delivery). Engine state, so it
// survives restarts; shown once when the endpoint is registered and never again.
using WebhookSecret = std::array<std::uint8_t, 32>;
// A fixed-size digest of who asked (the API derives it from the caller's identity);
// 0 = unknown. Only used to count PENDING holds per client.
using ClientId = std::uint64_t;

// A 128-bit digest of an Idempotency-Key scoped to its caller (the API computes it), so
// the engine stores 16 bytes per key whatever the client sent. All zero = no key.
struct KeyDigest {
  std::uint64_t hi = 0, lo = 0;
  bool empty() const { return hi == 0 && lo == 0; }
  friend bool operator==(const KeyDigest&, const KeyDigest&) = default;
  friend auto operator<=>(const KeyDigest&, const KeyDigest&) = default;
};
struct KeyDigestHash {
  std::size_t operator()(const KeyDigest& k) const { return k.hi ^ (k.lo * 0x9e3779b97f4a7c15ULL); }
};

// Instants the engine accepts for slots: 2000-01-01T00:00:00Z up to 9999-12-31T23:59:59.999Z.
inline constexpr TimeMs kMinInstantMs = 946'684'800'000;
inline constexpr TimeMs kMaxInstantMs = 253'402'300'799'999;

enum class SlotStatus : std::uint8_t { available = 0, held = 1, booked = 2, closed = 3 };
enum class BookingStatus : std::uint8_t { pending = 0, confirmed = 1, failed = 2, cancelled = 3 };
// WAITING until a slot is offered (OFFERED, for good: an entry is served once) or the
// patient leaves the waitlist (CANCELLED).
enum class WaitlistStatus : std::uint8_t { waiting = 0, offered = 1, cancelled = 2 };

std::string_view to_string(SlotStatus s);
std::string_view to_string(BookingStatus s);
std::string_view to_string(WaitlistStatus s);

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
  invalid_name,        // empty or too long name / specialty / patient name / time zone
  invalid_time_range,  // end <= start, or outside [kMinInstantMs, kMaxInstantMs]
  too_many_slots,      // more than max_slots_per_request in one CreateSlots
  empty_request,       // CreateSlots with no slot
  too_many_holds,      // the client already has max_holds_per_client PENDING holds
  idempotency_key_reused,  // the Idempotency-Key was used for a different request
  waitlist_entry_not_found,
  waitlist_entry_served,   // leaving is refused: the entry already got its offer
  // Not a refusal: the same Idempotency-Key and request were already done. Nothing
  // changes; the caller answers as it did the first time (see remembered()).
  duplicate_request,
  webhook_not_found,  // no webhook has this id, or it was deleted
  invalid_webhook,    // empty or too long URL, or no (or an unknown) event type
};

std::string_view to_string(Rejection r);

// The kinds of events a webhook endpoint may subscribe to, as bits of Webhook::events.
// Their names are the API's ("booking.confirmed"); the bit order is journaled: append only.
enum class WebhookEventType : std::uint8_t {
  booking_held = 0,       // SlotHeld: a PENDING booking
  booking_confirmed = 1,  // BookingConfirmed
  booking_failed = 2,     // BookingExpired: the hold ran out
  booking_cancelled = 3,  // BookingCancelled
  slot_created = 4,       // SlotCreated
  slot_closed = 5,        // SlotClosed
  booking_rescheduled = 6,  // BookingRescheduled: a move to another slot
};
inline constexpr std::size_t kWebhookEventTypes = 7;
inline constexpr std::uint32_t kAllWebhookEvents = (1u << kWebhookEventTypes) - 1;
inline constexpr std::uint32_t webhook_event_bit(WebhookEventType t) {
  return 1u << static_cast<unsigned>(t);
}
std::string_view to_string(WebhookEventType t);
// The longest webhook URL the engine stores.
inline constexpr std::size_t kMaxWebhookUrlBytes = 2048;

struct EngineConfig {
  TimeMs hold_ttl_ms = 120'000;
  std::uint32_t max_slots_per_request = 10'000;
  std::uint32_t max_holds_per_client = 0;  // 0 = no cap
  std::uint32_t max_name_bytes = 200;      // names, specialties, patient names, time zones
  std::uint32_t max_expiries_per_command = 10'000;
  // A remembered Idempotency-Key is answered for this long after its request was carried
  // out, then forgotten (by a journaled IdempotencyKeysForgotten event).
  TimeMs idempotency_ttl_ms = 24 * 3'600'000;
};

// ---- State ----------------------------------------------------------------

struct Clinic {
  std::string name;
  std::string time_zone;  // an IANA name; the API validates it, the engine stores it
};

struct Doctor {
  Id clinic_id = 0;
  std::string name;
  std::string specialty;
};

// 32 bytes. The id is the position + 1. doctor_id, start_ms and end_ms never change after
// SlotCreated (other threads may read them; see ChunkedVector).
struct Slot {
  TimeMs start_ms = 0;
  TimeMs end_ms = 0;
  std::uint32_t doctor_id = 0;
  std::uint32_t booking_id = 0;  // the PENDING/CONFIRMED booking holding it, else 0
  SlotStatus status = SlotStatus::available;
};

// The id is the position + 1. Everything but slot_id, status, confirmed_at_ms, ended_at_ms
// and reschedules is fixed by SlotHeld and never changes (a move keeps expires_at_ms).
struct Booking {
  TimeMs created_at_ms = 0;
  TimeMs expires_at_ms = 0;
  TimeMs confirmed_at_ms = 0;  // 0 = never
  TimeMs ended_at_ms = 0;      // when it became FAILED or CANCELLED; 0 = not ended
  std::uint64_t held_seq = 0;  // the journal seq of its SlotHeld event
  ClientId client = 0;         // who asked (for the hold cap)
  Token token{};
  StrRef patient_name;         // in Engine::names()
  std::uint32_t slot_id = 0;       // the slot it holds (or held)
  std::uint32_t held_slot_id = 0;  // the slot it was made on
  BookingStatus status = BookingStatus::pending;
  std::uint32_t reschedules = 0;   // times it moved to another slot (the calendar SEQUENCE)
};
static_assert(sizeof(Slot) == 32);
static_assert(sizeof(Booking) == 88, "the reschedule count fits in the padding");

// A patient waiting for a slot of one doctor that starts in [from_ms, to_ms). The id is the
// position + 1 (so ids are in join order: the oldest entry has the lowest id). Everything
// but booking_id and status is fixed by WaitlistJoined.
struct WaitlistEntry {
  TimeMs from_ms = 0;
  TimeMs to_ms = 0;
  TimeMs created_at_ms = 0;
  ClientId client = 0;
  Token token{};        // the capability to see and leave the entry
  Token offer_token{};  // the token its offer (a booking) will carry
  StrRef patient_name;  // in Engine::names()
  std::uint32_t doctor_id = 0;
  std::uint32_t booking_id = 0;  // the offer, once OFFERED
  WaitlistStatus status = WaitlistStatus::waiting;
};

// What a carried-out request with an Idempotency-Key did.
struct RememberedRequest {
  std::uint64_t request_hash = 0;
  Id booking_id = 0;
  std::uint64_t seq = 0;  // the journal seq of the event it produced
  TimeMs at_ms = 0;       // when it was carried out (the event's time)
};

// A webhook endpoint. The id is the position + 1; a deleted one keeps its place.
// Where its deliveries have got to is not engine state (webhooks/ keeps it).
struct Webhook {
  std::string url;  // http:// or https://, checked by the API before it gets here
  WebhookSecret secret{};
  TimeMs created_at_ms = 0;
  std::uint64_t registered_seq = 0;  // the journal seq of its WebhookRegistered event
  Id clinic_id = 0;                  // only this clinic's events; 0 = every clinic
  std::uint32_t events = 0;          // bits of WebhookEventType
  bool include_patient = false;      // the patient's name goes into booking events
  bool deleted = false;
};

// An Idempotency-Key digest and a hash of the request it came with (empty key = none).
struct IdempotencyKey {
  KeyDigest key;
  std::uint64_t request_hash = 0;
};

// ---- Commands (imperative) --------------------------------------------------

struct AddClinic {
  std::string name;
  std::string time_zone = "UTC";
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
  ClientId client = 0;
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
// Renames a clinic or changes its time zone (an empty field keeps the current value).
struct UpdateClinic {
  Id clinic_id = 0;
  std::string name;
  std::string time_zone;
};
// Expire every PENDING booking whose expires_at <= now, and forget Idempotency-Keys older
// than the TTL. Issued by the sequencer from its own clock.
struct ExpireDue {};
// The secret is made by the caller (the API), like a booking's token.
struct RegisterWebhook {
  std::string url;
  std::uint32_t events = 0;  // bits of WebhookEventType, at least one
  Id clinic_id = 0;          // 0 = every clinic
  bool include_patient = false;
  WebhookSecret secret{};
};
struct DeleteWebhook {
  Id webhook_id = 0;
};
// Moves a PENDING or CONFIRMED booking to another AVAILABLE slot, keeping its status and
// its expires_at; the old slot becomes AVAILABLE in the same event.
struct RescheduleBooking {
  Id booking_id = 0;
  Id slot_id = 0;  // the new slot
  IdempotencyKey idempotency;
};
// Waits for a slot of `doctor_id` starting in [from_ms, to_ms). Both tokens are secrets the
// caller made (the engine makes no randomness): `token` opens the entry, `offer_token`
// becomes the token of the booking the entry is offered.
struct JoinWaitlist {
  Id doctor_id = 0;
  TimeMs from_ms = 0;
  TimeMs to_ms = 0;
  std::string patient_name;
  ClientId client = 0;
  Token token{};
  Token offer_token{};
};
struct LeaveWaitlist {
  Id entry_id = 0;
};

using Command = std::variant<AddClinic, AddDoctor, CreateSlots, BookSlot, ConfirmBooking,
                             CancelBooking, CloseSlot, ExpireDue, UpdateClinic, RegisterWebhook,
                             DeleteWebhook, RescheduleBooking, JoinWaitlist, LeaveWaitlist>;

// ---- Events (past tense). Each carries everything apply needs. -------------

struct ClinicAdded {
  Id clinic_id = 0;
  std::string name;
  std::string time_zone;
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
  ClientId client = 0;
  Token token{};
  TimeMs created_at_ms = 0;
  TimeMs expires_at_ms = 0;
  IdempotencyKey idempotency;
};
// slot_id names the booking's slot at the time, so a reader of the journal needs no state.
// Journal format 1 did not store it: 0 there means "the booking's slot" (apply resolves).
struct BookingConfirmed {
  Id booking_id = 0;
  Id slot_id = 0;
  TimeMs confirmed_at_ms = 0;
  IdempotencyKey idempotency;
};
struct BookingExpired {
  Id booking_id = 0;
  Id slot_id = 0;
  TimeMs expired_at_ms = 0;
};
struct BookingCancelled {
  Id booking_id = 0;
  Id slot_id = 0;
  TimeMs cancelled_at_ms = 0;
  IdempotencyKey idempotency;
};
struct SlotClosed {
  Id slot_id = 0;
};
// Remembered Idempotency-Keys carried out at or before up_to_ms are forgotten.
struct IdempotencyKeysForgotten {
  TimeMs up_to_ms = 0;
};

// The clinic's name and time zone from now on.
struct ClinicUpdated {
  Id clinic_id = 0;
  std::string name;
  std::string time_zone;
};

// A webhook endpoint was registered. Carries its signing secret: the journal is the only
// place the secret is kept, and readers of the journal for audit never show it.
struct WebhookRegistered {
  Id webhook_id = 0;
  std::string url;
  std::uint64_t events = 0;  // bits of WebhookEventType
  Id clinic_id = 0;
  bool include_patient = false;
  WebhookSecret secret{};
  TimeMs created_at_ms = 0;
};
struct WebhookDeleted {
  Id webhook_id = 0;
};

// A booking moved from one slot to another in one step: from_slot_id becomes AVAILABLE and
// to_slot_id HELD (status PENDING) or BOOKED (status CONFIRMED); the status is unchanged.
struct BookingRescheduled {
  Id booking_id = 0;
  Id from_slot_id = 0;
  Id to_slot_id = 0;
  BookingStatus status = BookingStatus::pending;
  TimeMs rescheduled_at_ms = 0;
  IdempotencyKey idempotency;
};
struct WaitlistJoined {
  Id entry_id = 0;
  Id doctor_id = 0;
  TimeMs from_ms = 0;
  TimeMs to_ms = 0;
  std::string patient_name;
  ClientId client = 0;
  Token token{};
  Token offer_token{};
  TimeMs created_at_ms = 0;
};
struct WaitlistLeft {
  Id entry_id = 0;
  TimeMs left_at_ms = 0;
};
// The entry was served: the SlotHeld just before this event made booking_id on slot_id
// for it (with the entry's patient name, client and offer token).
struct WaitlistOffered {
  Id entry_id = 0;
  Id booking_id = 0;
  Id slot_id = 0;
};

// The order of alternatives is part of the journal format (journal/README.md): append only.
using Event = std::variant<ClinicAdded, DoctorAdded, SlotCreated, SlotHeld, BookingConfirmed,
                           BookingExpired, BookingCancelled, SlotClosed, IdempotencyKeysForgotten,
                           ClinicUpdated, WebhookRegistered, WebhookDeleted,
                           BookingRescheduled, WaitlistJoined, WaitlistLeft, WaitlistOffered>;

// ---- The engine ---------------------------------------------------------------

class Engine {
 public:
  // Clinic 1 ("Main Clinic", UTC) exists from the start, so clients that never say
  // "clinic" work; UpdateClinic renames it or moves it to another time zone.
  explicit Engine(EngineConfig config = {});

  // Checks `command` against the state at `now_ms`. On success appends its events to
  // `out` and returns Rejection::none; on refusal appends nothing. Never mutates.
  // A success may have zero events (e.g. confirming a CONFIRMED booking again).
  [[nodiscard]] Rejection decide(const Command& command, TimeMs now_ms,
                                 std::vector<Event>& out) const;

  // Applies one event. Cannot fail: events come from decide or from the journal,
  // which only holds events decide produced. Broken preconditions are bugs (abort).
  void apply(const Event& event);

  // decide + apply of each event, for tests and tools.
  [[nodiscard]] Rejection execute(const Command& command, TimeMs now_ms,
                                  std::vector<Event>& out);

  // A 64-bit hash over the whole logical state (ids, fields, statuses, counters):
  // equal hashes after replay prove replay rebuilt the same state.
  [[nodiscard]] std::uint64_t state_hash() const;

  // The first broken invariant, described; nothing when every invariant holds.
  [[nodiscard]] std::optional<std::string> broken_invariant() const;

  const EngineConfig& config() const { return config_; }
  // Also rebuilds what depends on the config (the per-client hold counts).
  void set_config(const EngineConfig& config);

  // Lookups; nullptr when the id is unknown.
  const Clinic* clinic(Id id) const;
  const Doctor* doctor(Id id) const;
  const Slot* slot(Id id) const;
  const Booking* booking(Id id) const;
  const Webhook* webhook(Id id) const;  // deleted ones too (see Webhook::deleted)
  const WaitlistEntry* waitlist_entry(Id id) const;
  std::string_view patient_name(const Booking& b) const { return names_.view(b.patient_name); }
  std::string_view patient_name(const WaitlistEntry& w) const {
    return names_.view(w.patient_name);
  }

  std::size_t clinic_count() const { return clinics_.size(); }
  std::size_t doctor_count() const { return doctors_.size(); }
  std::size_t slot_count() const { return slots_.size(); }
  std::size_t booking_count() const { return bookings_.size(); }
  const std::vector<Clinic>& clinics() const { return clinics_; }  // index = id - 1
  const std::vector<Doctor>& doctors() const { return doctors_; }  // index = id - 1
  const ChunkedVector<Slot>& slots() const { return slots_; }       // index = id - 1
  const ChunkedVector<Booking>& bookings() const { return bookings_; }  // index = id - 1
  const std::vector<Webhook>& webhooks() const { return webhooks_; }    // index = id - 1
  const ChunkedVector<WaitlistEntry, 10>& waitlist() const { return waitlist_; }  // id - 1
  const StringArena& names() const { return names_; }

  // A doctor's slot ids ordered by (start, id), including CLOSED ones.
  const std::vector<std::uint32_t>& slots_of(Id doctor_id) const;
  // A doctor's WAITING entry ids, oldest first.
  const std::vector<std::uint32_t>& waiting_for(Id doctor_id) const;

  // PENDING holds a client has right now (counted only while a hold cap is configured).
  std::uint32_t holds_of(ClientId client) const;

  std::uint64_t pending_count() const { return pending_count_; }

  // The request carried out under an Idempotency-Key, or nullptr (also once forgotten).
  const RememberedRequest* remembered(const KeyDigest& key) const;
  std::size_t remembered_count() const { return remembered_.size(); }

  // Events applied so far. The journal is gap-free from 1 and replays every event in
  // order, so this is also the seq of the last applied event.
  std::uint64_t applied_events() const { return applied_events_; }
  // Live counts by status, kept by apply (O(1) for stats and metrics).
  std::uint64_t count(SlotStatus s) const { return slot_counts_[static_cast<std::size_t>(s)]; }
  std::uint64_t count(BookingStatus s) const {
    return booking_counts_[static_cast<std::size_t>(s)];
  }

  // Bytes of memory the state holds (containers' allocations, not allocator overhead).
  std::size_t memory_bytes() const;

 private:
  // Writes and restores the whole state for snapshots (engine/state_codec.hpp).
  friend struct StateCodec;

  Rejection decide_add_clinic(const AddClinic& c, std::vector<Event>& out) const;
  Rejection decide_add_doctor(const AddDoctor& c, std::vector<Event>& out) const;
  Rejection decide_create_slots(const CreateSlots& c, TimeMs now_ms,
                                std::vector<Event>& out) const;
  Rejection decide_book(const BookSlot& c, TimeMs now_ms, std::vector<Event>& out) const;
  void apply_held(const SlotHeld& e);
  void apply_confirmed(const BookingConfirmed& e);
  Rejection decide_confirm(const ConfirmBooking& c, TimeMs now_ms,
                           std::vector<Event>& out) const;
  Rejection decide_cancel(const CancelBooking& c, TimeMs now_ms, std::vector<Event>& out) const;
  Rejection decide_close(const CloseSlot& c, std::vector<Event>& out) const;
  Rejection decide_expire(TimeMs now_ms, std::vector<Event>& out) const;
  Rejection decide_update_clinic(const UpdateClinic& c, std::vector<Event>& out) const;
  Rejection decide_reschedule(const RescheduleBooking& c, TimeMs now_ms,
                              std::vector<Event>& out) const;
  Rejection decide_join_waitlist(const JoinWaitlist& c, TimeMs now_ms,
                                 std::vector<Event>& out) const;
  Rejection decide_leave_waitlist(const LeaveWaitlist& c, TimeMs now_ms,
                                  std::vector<Event>& out) const;

  // Offers made so far by the command being decided (decide cannot apply them yet).
  struct Offers {
    Id next_booking_id = 0;
    std::vector<std::uint32_t> served;  // entries served earlier in this command
  };
  Offers offers_from_here() const { return Offers{bookings_.size() + 1, {}}; }
  // A slot of `doctor_id` starting at `start_ms` has just become AVAILABLE: if it starts
  // after now, the oldest WAITING entry whose range holds the start gets it as a hold.
  void offer_freed_slot(Id slot_id, Id doctor_id, TimeMs start_ms, TimeMs now_ms, Offers& offers,
                        std::vector<Event>& out) const;
  void offer_to(Id entry_id, std::string_view patient_name, ClientId client,
                const Token& offer_token, Id slot_id, TimeMs now_ms, Offers& offers,
                std::vector<Event>& out) const;
  void stop_waiting(Id entry_id, const WaitlistEntry& entry);
  std::optional<std::string> broken_waitlist_invariant() const;
  Rejection decide_register_webhook(const RegisterWebhook& c, TimeMs now_ms,
                                    std::vector<Event>& out) const;
  Rejection decide_delete_webhook(const DeleteWebhook& c, std::vector<Event>& out) const;

  bool overlaps_live_slot(Id doctor_id, TimeMs start_ms, TimeMs end_ms) const;
  Rejection check_idempotency(const IdempotencyKey& idempotency, TimeMs now_ms) const;
  void remember(const IdempotencyKey& idempotency, Id booking_id, TimeMs at_ms);
  bool valid_name(std::string_view name) const;
  Booking& booking_of_event(Id booking_id, Id slot_id);
  void release_hold(Id booking_id, Booking& booking);
  void end_pending(const Booking& booking);
  void count_hold(ClientId client, int delta);
  void trim_expiry_queue();
  void set_status(Slot& slot, SlotStatus status);
  void set_status(Booking& booking, BookingStatus status);

  EngineConfig config_;
  std::vector<Clinic> clinics_;
  std::vector<Doctor> doctors_;
  ChunkedVector<Slot> slots_;
  ChunkedVector<Booking> bookings_;
  StringArena names_;
  std::vector<std::vector<std::uint32_t>> slots_by_doctor_;  // index = doctor id - 1
  ChunkedVector<WaitlistEntry, 10> waitlist_;
  // WAITING entry ids per doctor (index = doctor id - 1), ascending: the oldest first.
  // Derived from the entries, so not part of the hash.
  std::vector<std::vector<std::uint32_t>> waiting_by_doctor_;
  // PENDING bookings in expiry order; entries of bookings no longer PENDING are skipped
  // and trimmed from the front. Derived from the bookings, so not part of the hash.
  std::deque<std::pair<TimeMs, std::uint32_t>> expiry_queue_;
  std::unordered_map<ClientId, std::uint32_t> holds_by_client_;
  std::uint64_t pending_count_ = 0;
  std::array<std::uint64_t, 4> slot_counts_{};     // by SlotStatus
  std::array<std::uint64_t, 4> booking_counts_{};  // by BookingStatus
  std::unordered_map<KeyDigest, RememberedRequest, KeyDigestHash> remembered_;
  // Keys in the order they were remembered (by time): forgetting pops from the front.
  // An entry whose key was remembered again later is skipped. Derived, not hashed.
  std::deque<std::pair<TimeMs, KeyDigest>> remembered_order_;
  std::vector<Webhook> webhooks_;
  std::uint64_t applied_events_ = 0;
};

// The doctor whose slots an event changes (0 if none). A move between two doctors' slots
// changes both; this names the new slot's doctor (ReadStore::slot_changes_of gives both).
Id affected_doctor(const Engine& engine, const Event& event);

}  // namespace slotd
