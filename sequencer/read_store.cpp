#include "sequencer/read_store.hpp"

#include <algorithm>
#include <future>
#include <variant>

#include "engine/overloaded.hpp"

namespace slotd {
namespace {

constexpr TimeMs kMinuteMs = 60'000;

std::size_t index_of(SlotStatus s) { return static_cast<std::size_t>(s); }
std::size_t index_of(BookingStatus s) { return static_cast<std::size_t>(s); }

void move_count(std::array<std::atomic<std::uint64_t>, 4>& counts, std::size_t from,
                std::size_t to) {
  counts[from].fetch_sub(1, std::memory_order_relaxed);
  counts[to].fetch_add(1, std::memory_order_relaxed);
}

enum Minute : std::size_t { kHeld = 0, kConfirmed = 1, kFailed = 2, kCancelled = 3 };

}  // namespace

void DoctorView::cache(std::shared_ptr<const CachedBody> body) const {
  // Keep the newest: two readers may render different versions at the same time.
  auto current = cached_.load();
  while (!current || current->version < body->version) {
    if (cached_.compare_exchange(current, body)) return;
  }
}

ReadStore::ReadStore(const Engine& engine)
    : engine_slots_(engine.slots()), engine_bookings_(engine.bookings()),
      engine_names_(engine.names()), engine_waitlist_(engine.waitlist()) {
  catalog_.store(std::make_shared<const Catalog>());
  webhooks_.store(std::make_shared<const WebhookList>());
}

// ---- readers --------------------------------------------------------------------

SlotView ReadStore::slot_view(Id id) const {
  const Slot& fixed = engine_slots_[id - 1];
  return SlotView{id, fixed.doctor_id, fixed.start_ms, fixed.end_ms,
                  static_cast<SlotStatus>(slot_status_[id - 1].load(std::memory_order_relaxed))};
}

std::optional<SlotView> ReadStore::slot(Id id) const {
  if (id == 0 || id > slot_count()) return std::nullopt;
  return slot_view(id);
}

std::optional<BookingView> ReadStore::booking(Id id) const {
  if (id == 0 || id > booking_count()) return std::nullopt;
  const Booking& fixed = engine_bookings_[id - 1];
  const DurableBooking& d = bookings_[id - 1];
  BookingView v;
  v.id = id;
  // Status last-written, first-read: a reader that sees CONFIRMED also sees its time.
  v.status = static_cast<BookingStatus>(d.status.load(std::memory_order_acquire));
  v.slot_id = d.slot_id.load(std::memory_order_relaxed);
  v.confirmed_at_ms = d.confirmed_at_ms.load(std::memory_order_relaxed);
  v.ended_at_ms = d.ended_at_ms.load(std::memory_order_relaxed);
  v.reschedules = d.reschedules.load(std::memory_order_relaxed);
  v.held_slot_id = fixed.held_slot_id;
  v.created_at_ms = fixed.created_at_ms;
  v.expires_at_ms = fixed.expires_at_ms;
  v.held_seq = fixed.held_seq;
  v.token = fixed.token;
  v.patient_name = engine_names_.view(fixed.patient_name);
  return v;
}

std::optional<WaitlistView> ReadStore::waitlist_entry(Id id) const {
  if (id == 0 || id > waitlist_count()) return std::nullopt;
  const WaitlistEntry& fixed = engine_waitlist_[id - 1];
  const DurableWaitlistEntry& d = waitlist_[id - 1];
  WaitlistView v;
  v.id = id;
  // Status first (acquire): a reader that sees OFFERED also sees the offer's booking id.
  v.status = static_cast<WaitlistStatus>(d.status.load(std::memory_order_acquire));
  v.booking_id = d.booking_id.load(std::memory_order_relaxed);
  v.doctor_id = fixed.doctor_id;
  v.from_ms = fixed.from_ms;
  v.to_ms = fixed.to_ms;
  v.created_at_ms = fixed.created_at_ms;
  v.token = fixed.token;
  v.offer_token = fixed.offer_token;
  v.patient_name = engine_names_.view(fixed.patient_name);
  return v;
}

const DoctorView* ReadStore::doctor(Id id) const {
  if (id == 0 || id > doctor_count_.load(std::memory_order_acquire)) return nullptr;
  return &doctors_[id - 1];
}

std::vector<MinuteCounts> ReadStore::minutes(TimeMs now_ms) const {
  std::vector<MinuteCounts> out;
  out.reserve(minutes_.size());
  const TimeMs this_minute = now_ms - ((now_ms % kMinuteMs) + kMinuteMs) % kMinuteMs;
  for (TimeMs m = this_minute - 59 * kMinuteMs; m <= this_minute; m += kMinuteMs) {
    MinuteCounts c;
    c.minute_ms = m;
    const MinuteSlot& slot = minutes_[static_cast<std::size_t>(m / kMinuteMs) % minutes_.size()];
    if (slot.minute_ms.load(std::memory_order_acquire) == m) {
      c.held = slot.counts[kHeld].load(std::memory_order_relaxed);
      c.confirmed = slot.counts[kConfirmed].load(std::memory_order_relaxed);
      c.failed = slot.counts[kFailed].load(std::memory_order_relaxed);
      c.cancelled = slot.counts[kCancelled].load(std::memory_order_relaxed);
    }
    out.push_back(c);
  }
  return out;
}

std::vector<TimeMs> ReadStore::recent_hold_to_confirm_ms() const {
  const std::uint64_t n = confirms_.load(std::memory_order_acquire);
  const std::uint64_t take = std::min<std::uint64_t>(n, kRecentConfirms);
  std::vector<TimeMs> out;
  out.reserve(take);
  for (std::uint64_t i = n - take; i < n; ++i) {
    out.push_back(recent_confirms_[i % kRecentConfirms].load(std::memory_order_relaxed));
  }
  return out;
}

SlotChanges ReadStore::slot_changes_of(const JournalRecord& record) const {
  SlotChanges out;
  auto change = [&](Id slot_id, SlotStatus slot_status, Id booking_id,
                    BookingStatus booking_status, Id booking_slot_id) {
    if (slot_id == 0 || slot_id > slot_count()) return;
    const Id doctor_id = engine_slots_[slot_id - 1].doctor_id;
    auto catalog = this->catalog();
    const DoctorInfo* doctor = catalog->doctor(doctor_id);
    out.items[out.count++] =
        SlotChange{record.seq, static_cast<std::uint8_t>(record.event.index()), slot_id,
                   doctor_id, doctor ? doctor->clinic_id : 0, slot_status, booking_id,
                   booking_status, booking_slot_id};
  };
  // Format 1 records name no slot: the booking's first slot (no booking moved then).
  auto slot_of = [&](Id booking_id, Id slot_id) -> Id {
    if (slot_id) return slot_id;
    if (booking_id == 0 || booking_id > booking_count()) return 0;
    return engine_bookings_[booking_id - 1].held_slot_id;
  };
  std::visit(
      overloaded{
          [&](const SlotCreated& e) {
            change(e.slot_id, SlotStatus::available, 0, BookingStatus::pending, 0);
          },
          [&](const SlotClosed& e) {
            change(e.slot_id, SlotStatus::closed, 0, BookingStatus::pending, 0);
          },
          [&](const SlotHeld& e) {
            change(e.slot_id, SlotStatus::held, e.booking_id, BookingStatus::pending, e.slot_id);
          },
          [&](const BookingConfirmed& e) {
            const Id slot_id = slot_of(e.booking_id, e.slot_id);
            change(slot_id, SlotStatus::booked, e.booking_id, BookingStatus::confirmed, slot_id);
          },
          [&](const BookingExpired& e) {
            const Id slot_id = slot_of(e.booking_id, e.slot_id);
            change(slot_id, SlotStatus::available, e.booking_id, BookingStatus::failed, slot_id);
          },
          [&](const BookingCancelled& e) {
            const Id slot_id = slot_of(e.booking_id, e.slot_id);
            change(slot_id, SlotStatus::available, e.booking_id, BookingStatus::cancelled, slot_id);
          },
          [&](const BookingRescheduled& e) {
            change(e.from_slot_id, SlotStatus::available, e.booking_id, e.status, e.to_slot_id);
            change(e.to_slot_id,
                   e.status == BookingStatus::confirmed ? SlotStatus::booked : SlotStatus::held,
                   e.booking_id, e.status, e.to_slot_id);
          },
          [](const auto&) {},
      },
      record.event);
  return out;
}

// ---- the publishing side ------------------------------------------------------------

Id ReadStore::doctor_of_slot(Id slot_id) const { return engine_slots_[slot_id - 1].doctor_id; }

void ReadStore::touch_doctor(Id doctor_id) {
  doctors_[doctor_id - 1].version_.fetch_add(1, std::memory_order_release);
}

void ReadStore::set_slot_status(Id slot_id, SlotStatus status) {
  auto& current = slot_status_[slot_id - 1];
  const auto from = current.load(std::memory_order_relaxed);
  if (from == static_cast<std::uint8_t>(status)) return;
  current.store(static_cast<std::uint8_t>(status), std::memory_order_relaxed);
  move_count(counts_.slots, from, index_of(status));
  const Id doctor_id = doctor_of_slot(slot_id);
  move_count(doctors_[doctor_id - 1].counts_.slots, from, index_of(status));
  touch_doctor(doctor_id);
}

void ReadStore::set_booking_status(Id booking_id, BookingStatus status) {
  DurableBooking& b = bookings_[booking_id - 1];
  const auto from = b.status.load(std::memory_order_relaxed);
  b.status.store(static_cast<std::uint8_t>(status), std::memory_order_release);
  move_count(counts_.bookings, from, index_of(status));
  const Id doctor_id = doctor_of_slot(b.slot_id.load(std::memory_order_relaxed));
  move_count(doctors_[doctor_id - 1].counts_.bookings, from, index_of(status));
}

// A booking moves between slots (maybe between doctors): its doctor's booking count goes
// with it; the slots' statuses are set by the caller.
void ReadStore::move_booking(Id booking_id, Id from_slot_id, Id to_slot_id) {
  DurableBooking& b = bookings_[booking_id - 1];
  const auto status = b.status.load(std::memory_order_relaxed);
  const Id from_doctor = doctor_of_slot(from_slot_id), to_doctor = doctor_of_slot(to_slot_id);
  if (from_doctor != to_doctor) {
    doctors_[from_doctor - 1].counts_.bookings[status].fetch_sub(1, std::memory_order_relaxed);
    doctors_[to_doctor - 1].counts_.bookings[status].fetch_add(1, std::memory_order_relaxed);
  }
  b.slot_id.store(static_cast<std::uint32_t>(to_slot_id), std::memory_order_relaxed);
  b.reschedules.fetch_add(1, std::memory_order_relaxed);
}

void ReadStore::count_minute(TimeMs at_ms, std::size_t which) {
  const TimeMs minute = at_ms - ((at_ms % kMinuteMs) + kMinuteMs) % kMinuteMs;
  MinuteSlot& slot = minutes_[static_cast<std::size_t>(minute / kMinuteMs) % minutes_.size()];
  const TimeMs current = slot.minute_ms.load(std::memory_order_relaxed);
  if (current > minute) return;  // older than the minute this slot now counts
  if (current < minute) {
    for (auto& c : slot.counts) c.store(0, std::memory_order_relaxed);
    slot.minute_ms.store(minute, std::memory_order_release);
  }
  slot.counts[which].fetch_add(1, std::memory_order_relaxed);
}

void ReadStore::apply(const JournalRecord& record, std::vector<SlotChange>& changes,
                      std::vector<std::pair<Id, Id>>& new_slots, bool& catalog_changed,
                      bool& webhooks_changed) {
  auto booking_slot = [&](Id booking_id, Id slot_id) -> Id {
    return slot_id ? slot_id
                   : bookings_[booking_id - 1].slot_id.load(std::memory_order_relaxed);
  };
  auto note = [&](Id slot_id, Id booking_id, BookingStatus booking_status,
                  Id booking_slot_id = 0) {
    const Id doctor_id = doctor_of_slot(slot_id);
    changes.push_back(SlotChange{
        record.seq, static_cast<std::uint8_t>(record.event.index()), slot_id, doctor_id,
        doctor_infos_[doctor_id - 1].clinic_id,
        static_cast<SlotStatus>(slot_status_[slot_id - 1].load(std::memory_order_relaxed)),
        booking_id, booking_status, booking_slot_id ? booking_slot_id : slot_id});
  };
  std::visit(
      overloaded{
          [&](const ClinicAdded& e) {
            clinics_.push_back(ClinicInfo{e.clinic_id, e.name, e.time_zone});
            catalog_changed = true;
          },
          [&](const ClinicUpdated& e) {
            clinics_[e.clinic_id - 1] = ClinicInfo{e.clinic_id, e.name, e.time_zone};
            catalog_changed = true;
          },
          [&](const DoctorAdded& e) {
            doctor_infos_.push_back(DoctorInfo{e.doctor_id, e.clinic_id, e.name, e.specialty});
            DoctorView& view = doctors_.emplace_back();
            view.slot_ids_.store(std::make_shared<const std::vector<std::uint32_t>>());
            doctor_count_.store(doctors_.size(), std::memory_order_release);
            catalog_changed = true;
          },
          [&](const SlotCreated& e) {
            slot_status_.emplace_back().store(static_cast<std::uint8_t>(SlotStatus::available),
                                              std::memory_order_relaxed);
            counts_.slots[index_of(SlotStatus::available)].fetch_add(1, std::memory_order_relaxed);
            doctors_[e.doctor_id - 1].counts_.slots[index_of(SlotStatus::available)].fetch_add(
                1, std::memory_order_relaxed);
            new_slots.emplace_back(e.doctor_id, e.slot_id);
            note(e.slot_id, 0, BookingStatus::pending);
          },
          [&](const SlotHeld& e) {
            DurableBooking& b = bookings_.emplace_back();
            b.slot_id.store(static_cast<std::uint32_t>(e.slot_id), std::memory_order_relaxed);
            b.status.store(static_cast<std::uint8_t>(BookingStatus::pending),
                           std::memory_order_release);
            counts_.bookings[index_of(BookingStatus::pending)].fetch_add(1, std::memory_order_relaxed);
            doctors_[doctor_of_slot(e.slot_id) - 1]
                .counts_.bookings[index_of(BookingStatus::pending)]
                .fetch_add(1, std::memory_order_relaxed);
            set_slot_status(e.slot_id, SlotStatus::held);
            count_minute(e.created_at_ms, kHeld);
            note(e.slot_id, e.booking_id, BookingStatus::pending);
          },
          [&](const BookingConfirmed& e) {
            const Id slot_id = booking_slot(e.booking_id, e.slot_id);
            bookings_[e.booking_id - 1].confirmed_at_ms.store(e.confirmed_at_ms,
                                                               std::memory_order_relaxed);
            set_booking_status(e.booking_id, BookingStatus::confirmed);
            set_slot_status(slot_id, SlotStatus::booked);
            count_minute(e.confirmed_at_ms, kConfirmed);
            const TimeMs held_ms = e.confirmed_at_ms - engine_bookings_[e.booking_id - 1].created_at_ms;
            const std::uint64_t n = confirms_.load(std::memory_order_relaxed);
            recent_confirms_[n % kRecentConfirms].store(held_ms, std::memory_order_relaxed);
            confirms_.store(n + 1, std::memory_order_release);
            note(slot_id, e.booking_id, BookingStatus::confirmed);
          },
          [&](const BookingExpired& e) {
            const Id slot_id = booking_slot(e.booking_id, e.slot_id);
            bookings_[e.booking_id - 1].ended_at_ms.store(e.expired_at_ms, std::memory_order_relaxed);
            set_booking_status(e.booking_id, BookingStatus::failed);
            set_slot_status(slot_id, SlotStatus::available);
            count_minute(e.expired_at_ms, kFailed);
            note(slot_id, e.booking_id, BookingStatus::failed);
          },
          [&](const BookingCancelled& e) {
            const Id slot_id = booking_slot(e.booking_id, e.slot_id);
            bookings_[e.booking_id - 1].ended_at_ms.store(e.cancelled_at_ms,
                                                           std::memory_order_relaxed);
            set_booking_status(e.booking_id, BookingStatus::cancelled);
            set_slot_status(slot_id, SlotStatus::available);
            count_minute(e.cancelled_at_ms, kCancelled);
            note(slot_id, e.booking_id, BookingStatus::cancelled);
          },
          [&](const SlotClosed& e) {
            set_slot_status(e.slot_id, SlotStatus::closed);
            note(e.slot_id, 0, BookingStatus::pending);
          },
          [&](const BookingRescheduled& e) {
            move_booking(e.booking_id, e.from_slot_id, e.to_slot_id);
            set_slot_status(e.to_slot_id, e.status == BookingStatus::confirmed
                                              ? SlotStatus::booked
                                              : SlotStatus::held);
            set_slot_status(e.from_slot_id, SlotStatus::available);
            note(e.from_slot_id, e.booking_id, e.status, e.to_slot_id);
            note(e.to_slot_id, e.booking_id, e.status);
          },
          [&](const WaitlistJoined&) { waitlist_.emplace_back(); },
          [&](const WaitlistLeft& e) {
            waitlist_[e.entry_id - 1].status.store(
                static_cast<std::uint8_t>(WaitlistStatus::cancelled), std::memory_order_release);
          },
          [&](const WaitlistOffered& e) {
            DurableWaitlistEntry& w = waitlist_[e.entry_id - 1];
            w.booking_id.store(static_cast<std::uint32_t>(e.booking_id), std::memory_order_relaxed);
            w.status.store(static_cast<std::uint8_t>(WaitlistStatus::offered),
                           std::memory_order_release);
          },
          [](const IdempotencyKeysForgotten&) {},
          [&](const WebhookRegistered& e) {
            webhook_infos_.push_back(WebhookInfo{e.webhook_id, e.url, e.secret,
                                                 static_cast<std::uint32_t>(e.events), e.clinic_id,
                                                 e.include_patient, false, e.created_at_ms,
                                                 record.seq});
            webhooks_changed = true;
          },
          [&](const WebhookDeleted& e) {
            webhook_infos_[e.webhook_id - 1].deleted = true;
            webhooks_changed = true;
          },
      },
      record.event);
}

// New slots join their doctor's list in (start, id) order: one copy of the list per
// doctor per batch, published atomically, so a reader holds either list whole.
void ReadStore::publish_new_slots(std::vector<std::pair<Id, Id>>& new_slots) {
  if (new_slots.empty()) return;
  std::stable_sort(new_slots.begin(), new_slots.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  auto before = [&](std::uint32_t a, std::uint32_t b) {
    const TimeMs sa = engine_slots_[a - 1].start_ms, sb = engine_slots_[b - 1].start_ms;
    return sa != sb ? sa < sb : a < b;
  };
  for (std::size_t i = 0; i < new_slots.size();) {
    const Id doctor_id = new_slots[i].first;
    std::vector<std::uint32_t> added;
    for (; i < new_slots.size() && new_slots[i].first == doctor_id; ++i) {
      added.push_back(static_cast<std::uint32_t>(new_slots[i].second));
    }
    std::sort(added.begin(), added.end(), before);
    DoctorView& view = doctors_[doctor_id - 1];
    auto old_ids = view.slot_ids_.load();
    auto merged = std::make_shared<std::vector<std::uint32_t>>();
    merged->reserve(old_ids->size() + added.size());
    std::merge(old_ids->begin(), old_ids->end(), added.begin(), added.end(),
               std::back_inserter(*merged), before);
    view.slot_ids_.store(std::move(merged));
    touch_doctor(doctor_id);
  }
}

void ReadStore::publish_catalog(std::uint64_t seq) {
  auto catalog = std::make_shared<Catalog>();
  catalog->version = seq;
  catalog->clinics = clinics_;
  catalog->doctors = doctor_infos_;
  catalog_.store(std::move(catalog));
}

void ReadStore::publish_webhooks(std::uint64_t seq) {
  auto list = std::make_shared<WebhookList>();
  list->version = seq;
  list->webhooks = webhook_infos_;
  webhooks_.store(std::move(list));
}

void ReadStore::publish(std::span<const JournalRecord> records,
                        std::vector<SlotChange>& changes) {
  if (records.empty()) return;
  std::vector<std::pair<Id, Id>> new_slots;
  bool catalog_changed = false, webhooks_changed = false;
  for (const JournalRecord& record : records) {
    apply(record, changes, new_slots, catalog_changed, webhooks_changed);
  }
  publish_new_slots(new_slots);
  if (catalog_changed) publish_catalog(records.back().seq);
  if (webhooks_changed) publish_webhooks(records.back().seq);
  slot_count_.store(slot_status_.size(), std::memory_order_release);
  booking_count_.store(bookings_.size(), std::memory_order_release);
  waitlist_count_.store(waitlist_.size(), std::memory_order_release);
  as_of_seq_.store(records.back().seq, std::memory_order_release);
}

void ReadStore::load(const Engine& engine, std::uint64_t seq) {
  for (std::size_t i = 0; i < engine.clinics().size(); ++i) {
    const Clinic& c = engine.clinics()[i];
    clinics_.push_back(ClinicInfo{i + 1, c.name, c.time_zone});
  }
  for (std::size_t i = 0; i < engine.doctors().size(); ++i) {
    const Doctor& d = engine.doctors()[i];
    doctor_infos_.push_back(DoctorInfo{i + 1, d.clinic_id, d.name, d.specialty});
    DoctorView& view = doctors_.emplace_back();
    const auto& ids = engine.slots_of(i + 1);
    view.slot_ids_.store(std::make_shared<const std::vector<std::uint32_t>>(ids));
  }
  doctor_count_.store(doctors_.size(), std::memory_order_release);
  // The slots and the bookings touch disjoint members (and different counters of each
  // doctor): the slots on a second thread (if one can be had), the bookings here.
  auto slots_loaded = std::async(std::launch::async | std::launch::deferred,
                                 [this, &engine] { load_slots(engine); });
  load_bookings(engine);
  slots_loaded.get();
  for (std::size_t i = 0; i < engine.webhooks().size(); ++i) {
    const Webhook& w = engine.webhooks()[i];
    webhook_infos_.push_back(WebhookInfo{i + 1, w.url, w.secret, w.events, w.clinic_id,
                                         w.include_patient, w.deleted, w.created_at_ms,
                                         w.registered_seq});
  }
  publish_webhooks(seq);
  publish_catalog(seq);
  slot_count_.store(slot_status_.size(), std::memory_order_release);
  booking_count_.store(bookings_.size(), std::memory_order_release);
  waitlist_count_.store(waitlist_.size(), std::memory_order_release);
  as_of_seq_.store(seq, std::memory_order_release);
}

void ReadStore::load_slots(const Engine& engine) {
  // Counted in plain integers and stored once: no reader sees this store before load ends,
  // and an atomic add per slot is most of the cost of a load of 10M slots.
  using Counts = std::array<std::uint64_t, 4>;
  std::vector<Counts> doctor_slots(engine.doctors().size(), Counts{});
  Counts slots{};
  for (std::size_t i = 0; i < engine.slots().size(); ++i) {
    const Slot& s = engine.slots()[i];
    slot_status_.emplace_back().store(static_cast<std::uint8_t>(s.status), std::memory_order_relaxed);
    ++slots[index_of(s.status)];
    ++doctor_slots[s.doctor_id - 1][index_of(s.status)];
  }
  for (std::size_t k = 0; k < 4; ++k) {
    counts_.slots[k].fetch_add(slots[k], std::memory_order_relaxed);
    for (std::size_t d = 0; d < doctor_slots.size(); ++d) doctors_[d].counts_.slots[k].fetch_add(doctor_slots[d][k]);
  }
}

void ReadStore::load_bookings(const Engine& engine) {
  // As for the slots: plain counts, stored once; relaxed stores, published by load's end.
  using Counts = std::array<std::uint64_t, 4>;
  std::vector<Counts> doctor_bookings(doctors_.size(), Counts{});
  Counts bookings{};
  constexpr auto relaxed = std::memory_order_relaxed;
  // Recent activity for the stats, from the bookings' own times.
  std::vector<std::pair<TimeMs, TimeMs>> confirmed;  // (confirmed_at, hold-to-confirm)
  confirmed.reserve(engine.bookings().size());  // one allocation, no copies as it grows
  for (std::size_t i = 0; i < engine.bookings().size(); ++i) {
    const Booking& b = engine.bookings()[i];
    DurableBooking& d = bookings_.emplace_back();
    d.slot_id.store(b.slot_id, relaxed);
    d.status.store(static_cast<std::uint8_t>(b.status), relaxed);
    d.confirmed_at_ms.store(b.confirmed_at_ms, relaxed);
    d.ended_at_ms.store(b.ended_at_ms, relaxed);
    d.reschedules.store(b.reschedules, relaxed);
    ++bookings[index_of(b.status)];
    ++doctor_bookings[engine.slots()[b.slot_id - 1].doctor_id - 1][index_of(b.status)];
    count_minute(b.created_at_ms, kHeld);
    if (b.confirmed_at_ms) {
      count_minute(b.confirmed_at_ms, kConfirmed);
      confirmed.emplace_back(b.confirmed_at_ms, b.confirmed_at_ms - b.created_at_ms);
    }
    if (b.status == BookingStatus::failed) count_minute(b.ended_at_ms, kFailed);
    if (b.status == BookingStatus::cancelled) count_minute(b.ended_at_ms, kCancelled);
  }
  for (std::size_t k = 0; k < 4; ++k) {
    counts_.bookings[k].fetch_add(bookings[k], relaxed);
    for (std::size_t doc = 0; doc < doctor_bookings.size(); ++doc) {
      doctors_[doc].counts_.bookings[k].fetch_add(doctor_bookings[doc][k], relaxed);
    }
  }
  // Only the newest kRecentConfirms are kept: select them, then sort those alone.
  const std::size_t first = confirmed.size() > kRecentConfirms ? confirmed.size() - kRecentConfirms : 0;
  std::nth_element(confirmed.begin(), confirmed.begin() + first, confirmed.end());
  std::sort(confirmed.begin() + first, confirmed.end());
  for (std::size_t i = first; i < confirmed.size(); ++i) {
    recent_confirms_[(i - first) % kRecentConfirms].store(confirmed[i].second);
  }
  confirms_.store(confirmed.size() - first);
  for (const WaitlistEntry& w : engine.waitlist()) {
    DurableWaitlistEntry& d = waitlist_.emplace_back();
    d.status.store(static_cast<std::uint8_t>(w.status));
    d.booking_id.store(w.booking_id);
  }
}

}  // namespace slotd
