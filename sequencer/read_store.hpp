// sequencer/read_store — the durable state that readers see, without a lock the writer
// ever waits for.
//
// The engine runs ahead of the disk (the sequencer decides batch N+1 while batch N is being
// synced), so readers never look at its changing fields. After each durable batch the
// journal stage publishes here: slot and booking statuses that are durable, per-doctor
// slot lists and counters, the clinic/doctor catalog, and stats. Fields that never change
// after creation (a slot's doctor and times; a booking's times, token and patient name)
// are read straight from the engine's chunked stores, whose elements never move: so the
// read side adds a few bytes per slot instead of a second copy of the state.
//
// Threading: publish()/load() run on one thread (the journal stage). Every reader method
// may run on any thread at any time; readers only see ids up to the published counts.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.hpp"
#include "journal/codec.hpp"
#include "sequencer/atomic_shared.hpp"

namespace slotd {

struct ClinicInfo {
  Id id = 0;
  std::string name;
  std::string time_zone;
};

struct DoctorInfo {
  Id id = 0;
  Id clinic_id = 0;
  std::string name;
  std::string specialty;
};

// A webhook endpoint as readers see it (the secret too: the delivery worker signs with it;
// the API shows it only in the answer to the registration).
struct WebhookInfo {
  Id id = 0;
  std::string url;
  WebhookSecret secret{};
  std::uint32_t events = 0;  // bits of WebhookEventType
  Id clinic_id = 0;          // 0 = every clinic
  bool include_patient = false;
  bool deleted = false;
  TimeMs created_at_ms = 0;
  std::uint64_t registered_seq = 0;
};

// Every webhook ever registered, deleted ones included; immutable, replaced as a whole
// when one is registered or deleted (rare).
struct WebhookList {
  std::uint64_t version = 0;  // the seq of the last event that changed it
  std::vector<WebhookInfo> webhooks;  // index = id - 1
  const WebhookInfo* find(Id id) const {
    return id >= 1 && id <= webhooks.size() ? &webhooks[id - 1] : nullptr;
  }
};

// A rendered response body and the version of the view it shows (filled by readers).
struct CachedBody {
  std::uint64_t version = 0;
  std::string body;
};

// Clinics and doctors: immutable, replaced as a whole when one is added or changed (rare).
struct Catalog {
  std::uint64_t version = 0;        // the seq of the last event that changed it
  std::vector<ClinicInfo> clinics;  // index = id - 1
  std::vector<DoctorInfo> doctors;  // index = id - 1
  // Rendered bodies of GET /doctors and GET /clinics, filled by the first reader.
  mutable AtomicShared<const std::string> doctors_json, clinics_json;

  const ClinicInfo* clinic(Id id) const {
    return id >= 1 && id <= clinics.size() ? &clinics[id - 1] : nullptr;
  }
  const DoctorInfo* doctor(Id id) const {
    return id >= 1 && id <= doctors.size() ? &doctors[id - 1] : nullptr;
  }
};

// Counts by status; relaxed atomics (stats may be a batch apart from each other).
struct StatusCounts {
  std::array<std::atomic<std::uint64_t>, 4> slots{};     // by SlotStatus
  std::array<std::atomic<std::uint64_t>, 4> bookings{};  // by BookingStatus
};

// One doctor's durable slots.
class DoctorView {
 public:
  // Bumped by every durable change to one of the doctor's slots (creation or status).
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }
  // The doctor's slot ids ordered by (start, id), closed ones included.
  std::shared_ptr<const std::vector<std::uint32_t>> slot_ids() const { return slot_ids_.load(); }
  const StatusCounts& counts() const { return counts_; }
  // The rendered GET /slots/:doctorId body for some version (readers fill it).
  std::shared_ptr<const CachedBody> cached() const { return cached_.load(); }
  void cache(std::shared_ptr<const CachedBody> body) const;

 private:
  friend class ReadStore;
  std::atomic<std::uint64_t> version_{0};
  AtomicShared<const std::vector<std::uint32_t>> slot_ids_;
  mutable AtomicShared<const CachedBody> cached_;
  StatusCounts counts_;
};

// A slot as a reader sees it: fixed fields and its durable status.
struct SlotView {
  Id id = 0;
  Id doctor_id = 0;
  TimeMs start_ms = 0;
  TimeMs end_ms = 0;
  SlotStatus status = SlotStatus::available;
};

// A booking as a reader sees it. patient_name points into the engine's arena, which
// lives as long as the engine.
struct BookingView {
  Id id = 0;
  Id slot_id = 0;
  Id held_slot_id = 0;
  BookingStatus status = BookingStatus::pending;
  TimeMs created_at_ms = 0;
  TimeMs expires_at_ms = 0;
  TimeMs confirmed_at_ms = 0;
  TimeMs ended_at_ms = 0;
  std::uint64_t held_seq = 0;
  std::uint32_t reschedules = 0;
  Token token{};
  std::string_view patient_name;
};

// A waitlist entry as a reader sees it; patient_name points into the engine's arena.
struct WaitlistView {
  Id id = 0;
  Id doctor_id = 0;
  TimeMs from_ms = 0;
  TimeMs to_ms = 0;
  TimeMs created_at_ms = 0;
  WaitlistStatus status = WaitlistStatus::waiting;
  Id booking_id = 0;  // the offer, once OFFERED
  Token token{};
  Token offer_token{};
  std::string_view patient_name;
};

// What one durable event did to one slot, for the live feed (events that change no slot
// have none; a reschedule changes two, with one seq). Statuses are those right after the
// event.
struct SlotChange {
  std::uint64_t seq = 0;
  std::uint8_t event_type = 0;  // the Event alternative (kEventNames)
  Id slot_id = 0;
  Id doctor_id = 0;
  Id clinic_id = 0;
  SlotStatus slot_status = SlotStatus::available;
  Id booking_id = 0;  // 0 for slot-only events
  BookingStatus booking_status = BookingStatus::pending;
  Id booking_slot_id = 0;  // the booking's slot after the event (a move: its new slot)
};

// The slot changes of one journal record: none, one, or two (a move, old slot first).
struct SlotChanges {
  std::array<SlotChange, 2> items{};
  std::size_t count = 0;
  const SlotChange* begin() const { return items.data(); }
  const SlotChange* end() const { return items.data() + count; }
  bool empty() const { return count == 0; }
};

// Bookings per minute (by the event's time) over the last 60 minutes.
struct MinuteCounts {
  TimeMs minute_ms = 0;  // start of the minute
  std::uint64_t held = 0, confirmed = 0, failed = 0, cancelled = 0;
};

class ReadStore {
 public:
  // Reads fixed fields from the engine's stores for as long as both live.
  explicit ReadStore(const Engine& engine);
  ReadStore(const ReadStore&) = delete;
  ReadStore& operator=(const ReadStore&) = delete;

  // ---- the publishing side (one thread) ----
  // At start-up, before any reader: everything the engine holds is durable.
  void load(const Engine& engine, std::uint64_t seq);
  // After a batch is durable: applies its records and appends the slot changes they made
  // (for the feed) to `changes`. Readers see the whole batch from the next as_of_seq().
  void publish(std::span<const JournalRecord> records, std::vector<SlotChange>& changes);

  // ---- readers (any thread) ----
  std::uint64_t as_of_seq() const { return as_of_seq_.load(std::memory_order_acquire); }
  std::shared_ptr<const Catalog> catalog() const { return catalog_.load(); }
  std::shared_ptr<const WebhookList> webhooks() const { return webhooks_.load(); }
  std::uint64_t slot_count() const { return slot_count_.load(std::memory_order_acquire); }
  std::uint64_t booking_count() const { return booking_count_.load(std::memory_order_acquire); }
  std::optional<SlotView> slot(Id id) const;
  std::optional<BookingView> booking(Id id) const;
  std::uint64_t waitlist_count() const { return waitlist_count_.load(std::memory_order_acquire); }
  std::optional<WaitlistView> waitlist_entry(Id id) const;
  // nullptr for an unknown doctor.
  const DoctorView* doctor(Id id) const;
  const StatusCounts& counts() const { return counts_; }
  std::uint64_t pending_count() const { return counts_.bookings[0].load(std::memory_order_relaxed); }
  // The last 60 minutes up to `now_ms`, oldest first (minutes without events are zero).
  std::vector<MinuteCounts> minutes(TimeMs now_ms) const;
  // Hold-to-confirm times (ms) of the most recent confirmations, newest last.
  std::vector<TimeMs> recent_hold_to_confirm_ms() const;

  // The slot changes a journal record describes, from fixed facts only (usable on any
  // thread for any durable record, e.g. for a feed catch-up read from the journal).
  SlotChanges slot_changes_of(const JournalRecord& record) const;

 private:
  struct DurableBooking {
    std::atomic<std::uint32_t> slot_id{0};
    std::atomic<std::uint8_t> status{0};
    std::atomic<TimeMs> confirmed_at_ms{0};
    std::atomic<TimeMs> ended_at_ms{0};
    std::atomic<std::uint32_t> reschedules{0};
  };
  struct DurableWaitlistEntry {
    std::atomic<std::uint8_t> status{0};
    std::atomic<std::uint32_t> booking_id{0};
  };
  struct MinuteSlot {
    std::atomic<TimeMs> minute_ms{-1};
    std::array<std::atomic<std::uint64_t>, 4> counts{};  // held, confirmed, failed, cancelled
  };
  static constexpr std::size_t kRecentConfirms = 4096;

  SlotView slot_view(Id id) const;
  Id doctor_of_slot(Id slot_id) const;
  void apply(const JournalRecord& record, std::vector<SlotChange>& changes,
             std::vector<std::pair<Id, Id>>& new_slots, bool& catalog_changed,
             bool& webhooks_changed);
  void set_slot_status(Id slot_id, SlotStatus status);
  void set_booking_status(Id booking_id, BookingStatus status);
  void move_booking(Id booking_id, Id from_slot_id, Id to_slot_id);
  void touch_doctor(Id doctor_id);
  // The two halves of load(), side by side: they touch disjoint members.
  void load_slots(const Engine& engine);
  void load_bookings(const Engine& engine);
  void count_minute(TimeMs at_ms, std::size_t which);
  void publish_new_slots(std::vector<std::pair<Id, Id>>& new_slots);
  void publish_catalog(std::uint64_t seq);
  void publish_webhooks(std::uint64_t seq);

  // Fixed facts, owned by the engine (never their changing fields).
  const ChunkedVector<Slot>& engine_slots_;
  const ChunkedVector<Booking>& engine_bookings_;
  const StringArena& engine_names_;
  const ChunkedVector<WaitlistEntry, 10>& engine_waitlist_;

  std::atomic<std::uint64_t> as_of_seq_{0};
  std::atomic<std::uint64_t> slot_count_{0};
  std::atomic<std::uint64_t> booking_count_{0};
  ChunkedVector<std::atomic<std::uint8_t>> slot_status_;
  ChunkedVector<DurableBooking> bookings_;
  ChunkedVector<DurableWaitlistEntry, 10> waitlist_;
  std::atomic<std::uint64_t> waitlist_count_{0};
  ChunkedVector<DoctorView, 10> doctors_;
  std::atomic<std::uint64_t> doctor_count_{0};
  AtomicShared<const Catalog> catalog_;
  AtomicShared<const WebhookList> webhooks_;
  StatusCounts counts_;
  std::array<MinuteSlot, 60> minutes_;
  std::array<std::atomic<TimeMs>, kRecentConfirms> recent_confirms_{};
  std::atomic<std::uint64_t> confirms_{0};

  // Publisher-only working state: the catalog being edited.
  std::vector<ClinicInfo> clinics_;
  std::vector<DoctorInfo> doctor_infos_;
  std::vector<WebhookInfo> webhook_infos_;
};

}  // namespace slotd
