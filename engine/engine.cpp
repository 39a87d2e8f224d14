#include "engine/engine.hpp"
#include "engine/overloaded.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <string>
#include <type_traits>

namespace slotd {
namespace {

// Invariant breaks are bugs: stop the process in every build type, never limp on.
[[noreturn]] void invariant_broken(const char* what) {
  std::fprintf(stderr, "slotd engine invariant broken: %s\n", what);
  std::abort();
}
#define SLOTD_ENSURE(cond) \
  do {                     \
    if (!(cond)) invariant_broken(#cond); \
  } while (0)

// A stable, dependency-free 64-bit hash for state comparison (not security): each 64-bit
// word is folded in with a multiply-xorshift step, strings 8 bytes at a time.
class Hasher {
 public:
  void word(std::uint64_t v) {
    h_ ^= v + 0x9e3779b97f4a7c15ULL + (h_ << 6) + (h_ >> 2);
    h_ *= 0xff51afd7ed558ccdULL;
    h_ ^= h_ >> 33;
  }
  template <class T>
    requires std::is_integral_v<T> || std::is_enum_v<T>
  void num(T v) {
    word(static_cast<std::uint64_t>(v));
  }
  void bytes(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    word(n);
    while (n > 0) {
      std::uint64_t chunk = 0;
      std::size_t take = n < 8 ? n : 8;
      for (std::size_t i = 0; i < take; ++i) chunk |= std::uint64_t{p[i]} << (8 * i);
      word(chunk);
      p += take;
      n -= take;
    }
  }
  void str(std::string_view s) { bytes(s.data(), s.size()); }
  std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_ = 0x243f6a8885a308d3ULL;
};

// Element i of a long array is folded into lane i % 4 of four independent Hashers, so the
// CPU works on four multiply chains at once instead of one (a 10M-slot state_hash() is on
// the start-up path twice: the snapshot check and the log line). The lanes' values are
// then folded into `h` in lane order.
template <class Array, class HashOne>
void hash_in_lanes(Hasher& h, const Array& array, HashOne&& one) {
  Hasher l0, l1, l2, l3;
  const std::size_t n = array.size();
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    one(l0, array[i]);
    one(l1, array[i + 1]);
    one(l2, array[i + 2]);
    one(l3, array[i + 3]);
  }
  if (i < n) one(l0, array[i++]);
  if (i < n) one(l1, array[i++]);
  if (i < n) one(l2, array[i++]);
  h.num(l0.value());
  h.num(l1.value());
  h.num(l2.value());
  h.num(l3.value());
}

template <class Container>
const typename Container::value_type* at_id(const Container& v, Id id) {
  return (id >= 1 && id <= v.size()) ? &v[id - 1] : nullptr;
}

}  // namespace

std::string_view to_string(SlotStatus s) {
  switch (s) {
    case SlotStatus::available: return "AVAILABLE";
    case SlotStatus::held: return "HELD";
    case SlotStatus::booked: return "BOOKED";
    case SlotStatus::closed: return "CLOSED";
  }
  return "UNKNOWN";
}

std::string_view to_string(BookingStatus s) {
  switch (s) {
    case BookingStatus::pending: return "PENDING";
    case BookingStatus::confirmed: return "CONFIRMED";
    case BookingStatus::failed: return "FAILED";
    case BookingStatus::cancelled: return "CANCELLED";
  }
  return "UNKNOWN";
}

std::string_view to_string(WaitlistStatus s) {
  switch (s) {
    case WaitlistStatus::waiting: return "WAITING";
    case WaitlistStatus::offered: return "OFFERED";
    case WaitlistStatus::cancelled: return "CANCELLED";
  }
  return "UNKNOWN";
}

std::string_view to_string(Rejection r) {
  switch (r) {
    case Rejection::none: return "none";
    case Rejection::clinic_not_found: return "clinic_not_found";
    case Rejection::doctor_not_found: return "doctor_not_found";
    case Rejection::slot_not_found: return "slot_not_found";
    case Rejection::booking_not_found: return "booking_not_found";
    case Rejection::slot_unavailable: return "slot_unavailable";
    case Rejection::slot_overlap: return "slot_overlap";
    case Rejection::booking_expired: return "booking_expired";
    case Rejection::booking_failed: return "booking_failed";
    case Rejection::booking_cancelled: return "booking_cancelled";
    case Rejection::booking_confirmed: return "booking_confirmed";
    case Rejection::slot_booked: return "slot_booked";
    case Rejection::invalid_name: return "invalid_name";
    case Rejection::invalid_time_range: return "invalid_time_range";
    case Rejection::too_many_slots: return "too_many_slots";
    case Rejection::empty_request: return "empty_request";
    case Rejection::too_many_holds: return "too_many_holds";
    case Rejection::idempotency_key_reused: return "idempotency_key_reused";
    case Rejection::waitlist_entry_not_found: return "waitlist_entry_not_found";
    case Rejection::waitlist_entry_served: return "waitlist_entry_served";
    case Rejection::duplicate_request: return "duplicate_request";
    case Rejection::webhook_not_found: return "webhook_not_found";
    case Rejection::invalid_webhook: return "invalid_webhook";
  }
  return "unknown";
}

std::string_view to_string(WebhookEventType t) {
  switch (t) {
    case WebhookEventType::booking_held: return "booking.held";
    case WebhookEventType::booking_confirmed: return "booking.confirmed";
    case WebhookEventType::booking_failed: return "booking.failed";
    case WebhookEventType::booking_cancelled: return "booking.cancelled";
    case WebhookEventType::slot_created: return "slot.created";
    case WebhookEventType::slot_closed: return "slot.closed";
    case WebhookEventType::booking_rescheduled: return "booking.rescheduled";
  }
  return "unknown";
}

Id affected_doctor(const Engine& engine, const Event& event) {
  auto doctor_of_slot = [&](Id slot_id) -> Id {
    const Slot* s = engine.slot(slot_id);
    return s ? s->doctor_id : 0;
  };
  auto doctor_of_booking = [&](Id booking_id, Id slot_id) -> Id {
    if (slot_id) return doctor_of_slot(slot_id);
    const Booking* b = engine.booking(booking_id);
    return b ? doctor_of_slot(b->slot_id) : 0;
  };
  return std::visit(
      overloaded{
          [](const ClinicAdded&) -> Id { return 0; },
          [](const ClinicUpdated&) -> Id { return 0; },
          [](const IdempotencyKeysForgotten&) -> Id { return 0; },
          [](const WebhookRegistered&) -> Id { return 0; },
          [](const WebhookDeleted&) -> Id { return 0; },
          [](const DoctorAdded& e) -> Id { return e.doctor_id; },
          [](const SlotCreated& e) -> Id { return e.doctor_id; },
          [&](const SlotHeld& e) -> Id { return doctor_of_slot(e.slot_id); },
          [&](const BookingConfirmed& e) { return doctor_of_booking(e.booking_id, e.slot_id); },
          [&](const BookingExpired& e) { return doctor_of_booking(e.booking_id, e.slot_id); },
          [&](const BookingCancelled& e) { return doctor_of_booking(e.booking_id, e.slot_id); },
          [&](const SlotClosed& e) -> Id { return doctor_of_slot(e.slot_id); },
          [&](const BookingRescheduled& e) -> Id { return doctor_of_slot(e.to_slot_id); },
          [](const WaitlistJoined&) -> Id { return 0; },
          [](const WaitlistLeft&) -> Id { return 0; },
          [](const WaitlistOffered&) -> Id { return 0; },  // its SlotHeld changed the slot
      },
      event);
}

Engine::Engine(EngineConfig config) : config_(config) {
  clinics_.push_back(Clinic{"Main Clinic", "UTC"});
}

const Clinic* Engine::clinic(Id id) const { return at_id(clinics_, id); }
const Doctor* Engine::doctor(Id id) const { return at_id(doctors_, id); }
const Slot* Engine::slot(Id id) const { return at_id(slots_, id); }
const Booking* Engine::booking(Id id) const { return at_id(bookings_, id); }
const Webhook* Engine::webhook(Id id) const { return at_id(webhooks_, id); }
const WaitlistEntry* Engine::waitlist_entry(Id id) const { return at_id(waitlist_, id); }

const std::vector<std::uint32_t>& Engine::slots_of(Id doctor_id) const {
  static const std::vector<std::uint32_t> empty;
  return (doctor_id >= 1 && doctor_id <= slots_by_doctor_.size())
             ? slots_by_doctor_[doctor_id - 1]
             : empty;
}

const std::vector<std::uint32_t>& Engine::waiting_for(Id doctor_id) const {
  static const std::vector<std::uint32_t> empty;
  return (doctor_id >= 1 && doctor_id <= waiting_by_doctor_.size())
             ? waiting_by_doctor_[doctor_id - 1]
             : empty;
}

const RememberedRequest* Engine::remembered(const KeyDigest& key) const {
  auto it = remembered_.find(key);
  return it == remembered_.end() ? nullptr : &it->second;
}

// A retry of a carried-out request is answered, never redone; the key of one request
// cannot be used for another. A key older than the TTL counts as never seen, whether or
// not its IdempotencyKeysForgotten event has been written yet.
Rejection Engine::check_idempotency(const IdempotencyKey& idempotency, TimeMs now_ms) const {
  if (idempotency.key.empty()) return Rejection::none;
  const RememberedRequest* done = remembered(idempotency.key);
  if (!done || now_ms - done->at_ms >= config_.idempotency_ttl_ms) return Rejection::none;
  return done->request_hash == idempotency.request_hash ? Rejection::duplicate_request
                                                        : Rejection::idempotency_key_reused;
}

void Engine::remember(const IdempotencyKey& idempotency, Id booking_id, TimeMs at_ms) {
  remembered_[idempotency.key] =
      RememberedRequest{idempotency.request_hash, booking_id, applied_events_, at_ms};
  // In time order; times only go back when a journal of an older release recorded a
  // wall-clock step, so the search is the rare path.
  std::pair<TimeMs, KeyDigest> entry{at_ms, idempotency.key};
  if (remembered_order_.empty() || remembered_order_.back().first <= at_ms) {
    remembered_order_.push_back(entry);
  } else {
    remembered_order_.insert(
        std::upper_bound(remembered_order_.begin(), remembered_order_.end(), entry,
                         [](const auto& a, const auto& b) { return a.first < b.first; }),
        entry);
  }
}

std::uint32_t Engine::holds_of(ClientId client) const {
  auto it = holds_by_client_.find(client);
  return it == holds_by_client_.end() ? 0 : it->second;
}

bool Engine::valid_name(std::string_view name) const {
  return !name.empty() && name.size() <= config_.max_name_bytes;
}

std::size_t Engine::memory_bytes() const {
  std::size_t bytes = slots_.memory_bytes() + bookings_.memory_bytes() + names_.memory_bytes() +
                      waitlist_.memory_bytes();
  for (const auto& ids : slots_by_doctor_) bytes += ids.capacity() * sizeof(std::uint32_t);
  for (const auto& ids : waiting_by_doctor_) bytes += ids.capacity() * sizeof(std::uint32_t);
  bytes += expiry_queue_.size() * sizeof(expiry_queue_[0]);
  bytes += remembered_.size() * (sizeof(KeyDigest) + sizeof(RememberedRequest) + 16) +
           remembered_.bucket_count() * sizeof(void*);
  bytes += remembered_order_.size() * sizeof(remembered_order_[0]);
  bytes += holds_by_client_.size() * 32 + holds_by_client_.bucket_count() * sizeof(void*);
  for (const Webhook& w : webhooks_) bytes += sizeof(Webhook) + w.url.capacity();
  return bytes;
}

// ---- decide -------------------------------------------------------------------

Rejection Engine::decide(const Command& command, TimeMs now_ms, std::vector<Event>& out) const {
  // The hottest commands skip std::visit's closure set-up (~40 instructions a command).
  if (const BookSlot* c = std::get_if<BookSlot>(&command)) return decide_book(*c, now_ms, out);
  if (const ConfirmBooking* c = std::get_if<ConfirmBooking>(&command)) {
    return decide_confirm(*c, now_ms, out);
  }
  return std::visit(
      overloaded{
          [&](const AddClinic& c) { return decide_add_clinic(c, out); },
          [&](const AddDoctor& c) { return decide_add_doctor(c, out); },
          [&](const CreateSlots& c) { return decide_create_slots(c, now_ms, out); },
          [&](const BookSlot& c) { return decide_book(c, now_ms, out); },
          [&](const ConfirmBooking& c) { return decide_confirm(c, now_ms, out); },
          [&](const CancelBooking& c) { return decide_cancel(c, now_ms, out); },
          [&](const CloseSlot& c) { return decide_close(c, out); },
          [&](const ExpireDue&) { return decide_expire(now_ms, out); },
          [&](const UpdateClinic& c) { return decide_update_clinic(c, out); },
          [&](const RegisterWebhook& c) { return decide_register_webhook(c, now_ms, out); },
          [&](const DeleteWebhook& c) { return decide_delete_webhook(c, out); },
          [&](const RescheduleBooking& c) { return decide_reschedule(c, now_ms, out); },
          [&](const JoinWaitlist& c) { return decide_join_waitlist(c, now_ms, out); },
          [&](const LeaveWaitlist& c) { return decide_leave_waitlist(c, now_ms, out); },
      },
      command);
}

Rejection Engine::decide_register_webhook(const RegisterWebhook& c, TimeMs now_ms,
                                          std::vector<Event>& out) const {
  if (c.url.empty() || c.url.size() > kMaxWebhookUrlBytes) return Rejection::invalid_webhook;
  if (c.events == 0 || (c.events & ~kAllWebhookEvents) != 0) return Rejection::invalid_webhook;
  if (c.clinic_id != 0 && !clinic(c.clinic_id)) return Rejection::clinic_not_found;
  out.push_back(WebhookRegistered{webhooks_.size() + 1, c.url, c.events, c.clinic_id,
                                  c.include_patient, c.secret, now_ms});
  return Rejection::none;
}

Rejection Engine::decide_delete_webhook(const DeleteWebhook& c, std::vector<Event>& out) const {
  const Webhook* w = webhook(c.webhook_id);
  if (!w || w->deleted) return Rejection::webhook_not_found;
  out.push_back(WebhookDeleted{c.webhook_id});
  return Rejection::none;
}

Rejection Engine::decide_add_clinic(const AddClinic& c, std::vector<Event>& out) const {
  if (!valid_name(c.name) || !valid_name(c.time_zone)) return Rejection::invalid_name;
  out.push_back(ClinicAdded{clinics_.size() + 1, c.name, c.time_zone});
  return Rejection::none;
}

Rejection Engine::decide_update_clinic(const UpdateClinic& c, std::vector<Event>& out) const {
  const Clinic* clinic = this->clinic(c.clinic_id);
  if (!clinic) return Rejection::clinic_not_found;
  if (c.name.size() > config_.max_name_bytes || c.time_zone.size() > config_.max_name_bytes) {
    return Rejection::invalid_name;
  }
  out.push_back(ClinicUpdated{c.clinic_id, c.name.empty() ? clinic->name : c.name,
                              c.time_zone.empty() ? clinic->time_zone : c.time_zone});
  return Rejection::none;
}

Rejection Engine::decide_add_doctor(const AddDoctor& c, std::vector<Event>& out) const {
  if (!clinic(c.clinic_id)) return Rejection::clinic_not_found;
  if (!valid_name(c.name) || c.specialty.size() > config_.max_name_bytes) {
    return Rejection::invalid_name;
  }
  out.push_back(DoctorAdded{doctors_.size() + 1, c.clinic_id, c.name, c.specialty});
  return Rejection::none;
}

bool Engine::overlaps_live_slot(Id doctor_id, TimeMs start_ms, TimeMs end_ms) const {
  // Live slots of one doctor never overlap, so sorted by start their ends are sorted
  // too: only the nearest live slot starting before end_ms can overlap [start, end).
  const std::vector<std::uint32_t>& index = slots_of(doctor_id);
  auto it = std::lower_bound(index.begin(), index.end(), end_ms,
                             [&](std::uint32_t id, TimeMs t) { return slots_[id - 1].start_ms < t; });
  while (it != index.begin()) {
    --it;
    const Slot& s = slots_[*it - 1];
    if (s.status == SlotStatus::closed) continue;
    return s.end_ms > start_ms;
  }
  return false;
}

Rejection Engine::decide_create_slots(const CreateSlots& c, TimeMs now_ms,
                                      std::vector<Event>& out) const {
  if (!doctor(c.doctor_id)) return Rejection::doctor_not_found;
  if (c.spans.empty()) return Rejection::empty_request;
  if (c.spans.size() > config_.max_slots_per_request) return Rejection::too_many_slots;
  if (slots_.size() + c.spans.size() >= ChunkedVector<Slot>::kMaxSize) {
    return Rejection::too_many_slots;
  }
  for (const SlotSpan& span : c.spans) {
    if (span.end_ms <= span.start_ms || span.start_ms < kMinInstantMs ||
        span.end_ms > kMaxInstantMs) {
      return Rejection::invalid_time_range;
    }
  }
  for (const SlotSpan& span : c.spans) {
    if (overlaps_live_slot(c.doctor_id, span.start_ms, span.end_ms)) return Rejection::slot_overlap;
  }
  if (c.spans.size() > 1) {
    // Spans of one request must not overlap each other either.
    std::vector<SlotSpan> sorted = c.spans;
    std::sort(sorted.begin(), sorted.end(),
              [](const SlotSpan& a, const SlotSpan& b) { return a.start_ms < b.start_ms; });
    for (std::size_t i = 1; i < sorted.size(); ++i) {
      if (sorted[i].start_ms < sorted[i - 1].end_ms) return Rejection::slot_overlap;
    }
  }
  const Id first_id = slots_.size() + 1;
  Id next_id = first_id;
  out.reserve(out.size() + c.spans.size());
  for (const SlotSpan& span : c.spans) {
    out.push_back(SlotCreated{next_id++, c.doctor_id, span.start_ms, span.end_ms});
  }
  // New slots are AVAILABLE: waiting patients get them, in the order they were given.
  if (!waiting_for(c.doctor_id).empty()) {
    Offers offers = offers_from_here();
    for (std::size_t i = 0; i < c.spans.size(); ++i) {
      offer_freed_slot(first_id + i, c.doctor_id, c.spans[i].start_ms, now_ms, offers, out);
    }
  }
  return Rejection::none;
}

Rejection Engine::decide_book(const BookSlot& c, TimeMs now_ms, std::vector<Event>& out) const {
  if (Rejection r = check_idempotency(c.idempotency, now_ms); r != Rejection::none) return r;
  if (!valid_name(c.patient_name)) return Rejection::invalid_name;
  const Slot* s = slot(c.slot_id);
  if (!s) return Rejection::slot_not_found;
  if (s->status != SlotStatus::available) return Rejection::slot_unavailable;
  if (config_.max_holds_per_client > 0 && c.client != 0 &&
      holds_of(c.client) >= config_.max_holds_per_client) {
    return Rejection::too_many_holds;
  }
  if (bookings_.size() + 1 >= ChunkedVector<Booking>::kMaxSize) return Rejection::too_many_holds;
  // Built in place: a SlotHeld is the largest event, and this is the hottest command.
  SlotHeld& e = std::get<SlotHeld>(out.emplace_back(std::in_place_type<SlotHeld>));
  e.booking_id = bookings_.size() + 1;
  e.slot_id = c.slot_id;
  e.patient_name = c.patient_name;
  e.client = c.client;
  e.token = c.token;
  e.created_at_ms = now_ms;
  e.expires_at_ms = now_ms + config_.hold_ttl_ms;
  e.idempotency = c.idempotency;
  return Rejection::none;
}

Rejection Engine::decide_confirm(const ConfirmBooking& c, TimeMs now_ms,
                                 std::vector<Event>& out) const {
  if (Rejection r = check_idempotency(c.idempotency, now_ms); r != Rejection::none) return r;
  const Booking* b = booking(c.booking_id);
  if (!b) return Rejection::booking_not_found;
  switch (b->status) {
    case BookingStatus::confirmed: return Rejection::none;  // idempotent repeat
    case BookingStatus::cancelled: return Rejection::booking_cancelled;
    case BookingStatus::failed: return Rejection::booking_failed;
    case BookingStatus::pending: break;
  }
  // Past expires_at a hold is dead even if ExpireDue has not written it yet.
  if (now_ms >= b->expires_at_ms) return Rejection::booking_expired;
  // Field by field: clang 14 has no parenthesized aggregate initialization (P0960).
  BookingConfirmed& e = std::get<BookingConfirmed>(out.emplace_back(std::in_place_type<BookingConfirmed>));
  e.booking_id = c.booking_id;
  e.slot_id = b->slot_id;
  e.confirmed_at_ms = now_ms;
  e.idempotency = c.idempotency;
  return Rejection::none;
}

Rejection Engine::decide_cancel(const CancelBooking& c, TimeMs now_ms,
                                std::vector<Event>& out) const {
  if (Rejection r = check_idempotency(c.idempotency, now_ms); r != Rejection::none) return r;
  const Booking* b = booking(c.booking_id);
  if (!b) return Rejection::booking_not_found;
  switch (b->status) {
    case BookingStatus::cancelled: return Rejection::none;  // idempotent repeat
    case BookingStatus::failed: return Rejection::booking_failed;
    case BookingStatus::pending:
    case BookingStatus::confirmed: break;
  }
  out.push_back(BookingCancelled{c.booking_id, b->slot_id, now_ms, c.idempotency});
  Offers offers = offers_from_here();
  const Slot& freed = slots_[b->slot_id - 1];
  offer_freed_slot(b->slot_id, freed.doctor_id, freed.start_ms, now_ms, offers, out);
  return Rejection::none;
}

Rejection Engine::decide_close(const CloseSlot& c, std::vector<Event>& out) const {
  const Slot* s = slot(c.slot_id);
  if (!s) return Rejection::slot_not_found;
  switch (s->status) {
    case SlotStatus::closed: return Rejection::none;
    case SlotStatus::held:
    case SlotStatus::booked: return Rejection::slot_booked;
    case SlotStatus::available: break;
  }
  out.push_back(SlotClosed{c.slot_id});
  return Rejection::none;
}

Rejection Engine::decide_expire(TimeMs now_ms, std::vector<Event>& out) const {
  std::uint32_t emitted = 0;
  Offers offers = offers_from_here();
  for (const auto& [expires_at_ms, booking_id] : expiry_queue_) {
    if (expires_at_ms > now_ms || emitted >= config_.max_expiries_per_command) break;
    const Booking& b = bookings_[booking_id - 1];
    if (b.status != BookingStatus::pending || b.expires_at_ms != expires_at_ms) continue;
    out.push_back(BookingExpired{booking_id, b.slot_id, now_ms});
    ++emitted;
    // The freed slot goes to the waitlist at once (offers made here are not in the queue
    // yet, so an offer never expires in the command that made it).
    const Slot& freed = slots_[b.slot_id - 1];
    offer_freed_slot(b.slot_id, freed.doctor_id, freed.start_ms, now_ms, offers, out);
  }
  // Forget keys past the TTL, all in one event (decide already ignores them). Only when a
  // key is really due: entries of keys remembered again since are skipped.
  const TimeMs forget_up_to = now_ms - config_.idempotency_ttl_ms;
  for (const auto& [at_ms, key] : remembered_order_) {
    if (at_ms > forget_up_to) break;
    auto it = remembered_.find(key);
    if (it != remembered_.end() && it->second.at_ms == at_ms) {
      out.push_back(IdempotencyKeysForgotten{forget_up_to});
      break;
    }
  }
  return Rejection::none;
}

Rejection Engine::decide_reschedule(const RescheduleBooking& c, TimeMs now_ms,
                                    std::vector<Event>& out) const {
  if (Rejection r = check_idempotency(c.idempotency, now_ms); r != Rejection::none) return r;
  const Booking* b = booking(c.booking_id);
  if (!b) return Rejection::booking_not_found;
  switch (b->status) {
    case BookingStatus::cancelled: return Rejection::booking_cancelled;
    case BookingStatus::failed: return Rejection::booking_failed;
    case BookingStatus::pending:
      if (now_ms >= b->expires_at_ms) return Rejection::booking_expired;
      break;
    case BookingStatus::confirmed: break;
  }
  const Slot* to = slot(c.slot_id);
  if (!to) return Rejection::slot_not_found;
  if (c.slot_id == b->slot_id) return Rejection::none;  // already there: a repeat
  if (to->status != SlotStatus::available) return Rejection::slot_unavailable;
  // A move keeps expires_at: rescheduling never extends a hold.
  out.push_back(
      BookingRescheduled{c.booking_id, b->slot_id, c.slot_id, b->status, now_ms, c.idempotency});
  Offers offers = offers_from_here();
  const Slot& freed = slots_[b->slot_id - 1];
  offer_freed_slot(b->slot_id, freed.doctor_id, freed.start_ms, now_ms, offers, out);
  return Rejection::none;
}

Rejection Engine::decide_join_waitlist(const JoinWaitlist& c, TimeMs now_ms,
                                       std::vector<Event>& out) const {
  if (!doctor(c.doctor_id)) return Rejection::doctor_not_found;
  if (!valid_name(c.patient_name)) return Rejection::invalid_name;
  // An empty range, or one that has passed (nothing could ever be offered), is refused.
  if (c.to_ms <= c.from_ms || c.from_ms < kMinInstantMs || c.to_ms > kMaxInstantMs ||
      c.to_ms <= now_ms) {
    return Rejection::invalid_time_range;
  }
  if (waitlist_.size() + 1 >= ChunkedVector<WaitlistEntry, 10>::kMaxSize) {
    return Rejection::too_many_holds;
  }
  const Id entry_id = waitlist_.size() + 1;
  out.push_back(WaitlistJoined{entry_id, c.doctor_id, c.from_ms, c.to_ms, c.patient_name,
                               c.client, c.token, c.offer_token, now_ms});
  // A slot in the range that is AVAILABLE now is offered at once: the earliest one. No
  // older entry can want it: it would have been offered the slot when it became free.
  const std::vector<std::uint32_t>& index = slots_of(c.doctor_id);
  auto it = std::lower_bound(index.begin(), index.end(), c.from_ms,
                             [&](std::uint32_t id, TimeMs t) { return slots_[id - 1].start_ms < t; });
  for (; it != index.end() && slots_[*it - 1].start_ms < c.to_ms; ++it) {
    const Slot& s = slots_[*it - 1];
    if (s.status != SlotStatus::available || s.start_ms <= now_ms) continue;
    Offers offers = offers_from_here();
    offer_to(entry_id, c.patient_name, c.client, c.offer_token, *it, now_ms, offers, out);
    break;
  }
  return Rejection::none;
}

Rejection Engine::decide_leave_waitlist(const LeaveWaitlist& c, TimeMs now_ms,
                                        std::vector<Event>& out) const {
  const WaitlistEntry* entry = waitlist_entry(c.entry_id);
  if (!entry) return Rejection::waitlist_entry_not_found;
  switch (entry->status) {
    case WaitlistStatus::cancelled: return Rejection::none;  // idempotent repeat
    case WaitlistStatus::offered: return Rejection::waitlist_entry_served;
    case WaitlistStatus::waiting: break;
  }
  out.push_back(WaitlistLeft{c.entry_id, now_ms});
  return Rejection::none;
}

void Engine::offer_freed_slot(Id slot_id, Id doctor_id, TimeMs start_ms, TimeMs now_ms,
                              Offers& offers, std::vector<Event>& out) const {
  // A slot that has started is no use to anyone waiting.
  if (start_ms <= now_ms) return;
  for (std::uint32_t entry_id : waiting_for(doctor_id)) {
    const WaitlistEntry& entry = waitlist_[entry_id - 1];
    if (start_ms < entry.from_ms || start_ms >= entry.to_ms) continue;
    if (std::find(offers.served.begin(), offers.served.end(), entry_id) != offers.served.end()) {
      continue;
    }
    offer_to(entry_id, names_.view(entry.patient_name), entry.client, entry.offer_token, slot_id,
             now_ms, offers, out);
    return;
  }
}

// An offer is an ordinary hold (SlotHeld, with the hold TTL) followed by WaitlistOffered.
// It counts as a hold of the entry's client but is never refused for the hold cap.
void Engine::offer_to(Id entry_id, std::string_view patient_name, ClientId client,
                      const Token& offer_token, Id slot_id, TimeMs now_ms, Offers& offers,
                      std::vector<Event>& out) const {
  if (offers.next_booking_id + 1 >= ChunkedVector<Booking>::kMaxSize) return;  // store full
  const Id booking_id = offers.next_booking_id++;
  SlotHeld& e = std::get<SlotHeld>(out.emplace_back(std::in_place_type<SlotHeld>));
  e.booking_id = booking_id;
  e.slot_id = slot_id;
  e.patient_name = patient_name;
  e.client = client;
  e.token = offer_token;
  e.created_at_ms = now_ms;
  e.expires_at_ms = now_ms + config_.hold_ttl_ms;
  out.push_back(WaitlistOffered{entry_id, booking_id, slot_id});
  offers.served.push_back(static_cast<std::uint32_t>(entry_id));
}

Rejection Engine::execute(const Command& command, TimeMs now_ms, std::vector<Event>& out) {
  std::size_t first = out.size();
  Rejection r = decide(command, now_ms, out);
  if (r != Rejection::none) return r;
  for (std::size_t i = first; i < out.size(); ++i) apply(out[i]);
  return r;
}

// ---- apply ----------------------------------------------------------------------

// The per-client hold count only exists to enforce the cap, so it is kept only when a cap
// is configured (it costs a hash-map update per hold otherwise).
void Engine::count_hold(ClientId client, int delta) {
  if (config_.max_holds_per_client == 0 || client == 0) return;
  if (delta > 0) {
    ++holds_by_client_[client];
    return;
  }
  auto it = holds_by_client_.find(client);
  SLOTD_ENSURE(it != holds_by_client_.end() && it->second > 0);
  if (--it->second == 0) holds_by_client_.erase(it);
}

void Engine::end_pending(const Booking& booking) {
  SLOTD_ENSURE(booking.status == BookingStatus::pending && pending_count_ > 0);
  --pending_count_;
  count_hold(booking.client, -1);
}

void Engine::release_hold(Id booking_id, Booking& booking) {
  Slot& s = slots_[booking.slot_id - 1];
  SLOTD_ENSURE(s.booking_id == booking_id);
  set_status(s, SlotStatus::available);
  s.booking_id = 0;
  if (booking.status == BookingStatus::pending) end_pending(booking);
}

// The booking an event names; its slot, when the event names one (format 2), must be the
// booking's slot.
Booking& Engine::booking_of_event(Id booking_id, Id slot_id) {
  SLOTD_ENSURE(booking_id >= 1 && booking_id <= bookings_.size());
  Booking& b = bookings_[booking_id - 1];
  SLOTD_ENSURE(slot_id == 0 || slot_id == b.slot_id);
  return b;
}

void Engine::set_status(Slot& slot, SlotStatus status) {
  --slot_counts_[static_cast<std::size_t>(slot.status)];
  ++slot_counts_[static_cast<std::size_t>(status)];
  slot.status = status;
}

void Engine::set_status(Booking& booking, BookingStatus status) {
  --booking_counts_[static_cast<std::size_t>(booking.status)];
  ++booking_counts_[static_cast<std::size_t>(status)];
  booking.status = status;
}

void Engine::set_config(const EngineConfig& config) {
  config_ = config;
  holds_by_client_.clear();
  if (config_.max_holds_per_client == 0) return;
  for (const Booking& b : bookings_) {
    if (b.status == BookingStatus::pending) count_hold(b.client, +1);
  }
}

void Engine::stop_waiting(Id entry_id, const WaitlistEntry& entry) {
  auto& index = waiting_by_doctor_[entry.doctor_id - 1];
  auto it = std::lower_bound(index.begin(), index.end(), static_cast<std::uint32_t>(entry_id));
  SLOTD_ENSURE(it != index.end() && *it == entry_id);
  index.erase(it);
}

void Engine::trim_expiry_queue() {
  while (!expiry_queue_.empty()) {
    const auto& [expires_at_ms, booking_id] = expiry_queue_.front();
    const Booking& b = bookings_[booking_id - 1];
    if (b.status == BookingStatus::pending && b.expires_at_ms == expires_at_ms) break;
    expiry_queue_.pop_front();
  }
}

void Engine::apply_held(const SlotHeld& e) {
  SLOTD_ENSURE(e.booking_id == bookings_.size() + 1);
  SLOTD_ENSURE(e.slot_id >= 1 && e.slot_id <= slots_.size());
  Slot& s = slots_[e.slot_id - 1];
  SLOTD_ENSURE(s.status == SlotStatus::available);
  set_status(s, SlotStatus::held);
  s.booking_id = static_cast<std::uint32_t>(e.booking_id);
  Booking& b = bookings_.emplace_back();
  b.created_at_ms = e.created_at_ms;
  b.expires_at_ms = e.expires_at_ms;
  b.held_seq = applied_events_;
  b.client = e.client;
  b.token = e.token;
  b.patient_name = names_.add(e.patient_name);
  b.slot_id = b.held_slot_id = static_cast<std::uint32_t>(e.slot_id);
  b.status = BookingStatus::pending;
  if (!e.idempotency.key.empty()) remember(e.idempotency, e.booking_id, e.created_at_ms);
  ++pending_count_;
  ++booking_counts_[static_cast<std::size_t>(BookingStatus::pending)];
  count_hold(e.client, +1);
  // Keep the queue sorted by expiry; with a fixed TTL and a monotone clock the
  // new entry always goes at the back, so the search is the rare path.
  std::pair<TimeMs, std::uint32_t> entry{e.expires_at_ms,
                                         static_cast<std::uint32_t>(e.booking_id)};
  if (expiry_queue_.empty() || expiry_queue_.back() <= entry) {
    expiry_queue_.push_back(entry);
  } else {
    expiry_queue_.insert(
        std::upper_bound(expiry_queue_.begin(), expiry_queue_.end(), entry), entry);
  }
}

void Engine::apply_confirmed(const BookingConfirmed& e) {
  Booking& b = booking_of_event(e.booking_id, e.slot_id);
  SLOTD_ENSURE(b.status == BookingStatus::pending);
  Slot& s = slots_[b.slot_id - 1];
  SLOTD_ENSURE(s.booking_id == e.booking_id && s.status == SlotStatus::held);
  end_pending(b);
  set_status(b, BookingStatus::confirmed);
  b.confirmed_at_ms = e.confirmed_at_ms;
  if (!e.idempotency.key.empty()) remember(e.idempotency, e.booking_id, e.confirmed_at_ms);
  set_status(s, SlotStatus::booked);
  trim_expiry_queue();
}

void Engine::apply(const Event& event) {
  ++applied_events_;
  // The hottest events skip std::visit's closure set-up, as in decide.
  if (const SlotHeld* e = std::get_if<SlotHeld>(&event)) return apply_held(*e);
  if (const BookingConfirmed* e = std::get_if<BookingConfirmed>(&event)) return apply_confirmed(*e);
  std::visit(
      overloaded{
          [&](const ClinicAdded& e) {
            SLOTD_ENSURE(e.clinic_id == clinics_.size() + 1);
            clinics_.push_back(Clinic{e.name, e.time_zone});
          },
          [&](const ClinicUpdated& e) {
            SLOTD_ENSURE(e.clinic_id >= 1 && e.clinic_id <= clinics_.size());
            clinics_[e.clinic_id - 1] = Clinic{e.name, e.time_zone};
          },
          [&](const DoctorAdded& e) {
            SLOTD_ENSURE(e.doctor_id == doctors_.size() + 1);
            SLOTD_ENSURE(e.clinic_id >= 1 && e.clinic_id <= clinics_.size());
            doctors_.push_back(Doctor{e.clinic_id, e.name, e.specialty});
            slots_by_doctor_.emplace_back();
            waiting_by_doctor_.emplace_back();
          },
          [&](const SlotCreated& e) {
            SLOTD_ENSURE(e.slot_id == slots_.size() + 1);
            SLOTD_ENSURE(e.doctor_id >= 1 && e.doctor_id <= doctors_.size());
            Slot& s = slots_.emplace_back();
            s = Slot{e.start_ms, e.end_ms, static_cast<std::uint32_t>(e.doctor_id), 0,
                     SlotStatus::available};
            // Keep the doctor's index sorted by (start, id); slots usually come in time
            // order, so appending is the common case.
            auto& index = slots_by_doctor_[e.doctor_id - 1];
            const auto id = static_cast<std::uint32_t>(e.slot_id);
            if (index.empty() || slots_[index.back() - 1].start_ms <= e.start_ms) {
              index.push_back(id);
            } else {
              auto it = std::upper_bound(index.begin(), index.end(), e.start_ms,
                                         [&](TimeMs t, std::uint32_t other) {
                                           return t < slots_[other - 1].start_ms;
                                         });
              index.insert(it, id);
            }
            ++slot_counts_[static_cast<std::size_t>(SlotStatus::available)];
          },
          [&](const SlotHeld& e) { apply_held(e); },
          [&](const BookingConfirmed& e) { apply_confirmed(e); },
          [&](const BookingExpired& e) {
            Booking& b = booking_of_event(e.booking_id, e.slot_id);
            SLOTD_ENSURE(b.status == BookingStatus::pending);
            release_hold(e.booking_id, b);
            set_status(b, BookingStatus::failed);
            b.ended_at_ms = e.expired_at_ms;
            trim_expiry_queue();
          },
          [&](const BookingCancelled& e) {
            Booking& b = booking_of_event(e.booking_id, e.slot_id);
            SLOTD_ENSURE(b.status == BookingStatus::pending ||
                         b.status == BookingStatus::confirmed);
            release_hold(e.booking_id, b);
            set_status(b, BookingStatus::cancelled);
            b.ended_at_ms = e.cancelled_at_ms;
            if (!e.idempotency.key.empty()) remember(e.idempotency, e.booking_id, e.cancelled_at_ms);
            trim_expiry_queue();
          },
          [&](const SlotClosed& e) {
            SLOTD_ENSURE(e.slot_id >= 1 && e.slot_id <= slots_.size());
            Slot& s = slots_[e.slot_id - 1];
            SLOTD_ENSURE(s.status == SlotStatus::available);
            set_status(s, SlotStatus::closed);
          },
          [&](const BookingRescheduled& e) {
            Booking& b = booking_of_event(e.booking_id, e.from_slot_id);
            SLOTD_ENSURE(b.status == e.status && (b.status == BookingStatus::pending ||
                                                  b.status == BookingStatus::confirmed));
            SLOTD_ENSURE(e.to_slot_id >= 1 && e.to_slot_id <= slots_.size());
            Slot& from = slots_[b.slot_id - 1];
            Slot& to = slots_[e.to_slot_id - 1];
            SLOTD_ENSURE(from.booking_id == e.booking_id && to.status == SlotStatus::available);
            set_status(to, from.status);
            to.booking_id = from.booking_id;
            set_status(from, SlotStatus::available);
            from.booking_id = 0;
            b.slot_id = static_cast<std::uint32_t>(e.to_slot_id);
            ++b.reschedules;
            if (!e.idempotency.key.empty()) remember(e.idempotency, e.booking_id, e.rescheduled_at_ms);
          },
          [&](const WaitlistJoined& e) {
            SLOTD_ENSURE(e.entry_id == waitlist_.size() + 1);
            SLOTD_ENSURE(e.doctor_id >= 1 && e.doctor_id <= doctors_.size());
            WaitlistEntry& w = waitlist_.emplace_back();
            w.from_ms = e.from_ms;
            w.to_ms = e.to_ms;
            w.created_at_ms = e.created_at_ms;
            w.client = e.client;
            w.token = e.token;
            w.offer_token = e.offer_token;
            w.patient_name = names_.add(e.patient_name);
            w.doctor_id = static_cast<std::uint32_t>(e.doctor_id);
            // The newest entry has the highest id: appending keeps the index oldest first.
            waiting_by_doctor_[e.doctor_id - 1].push_back(static_cast<std::uint32_t>(e.entry_id));
          },
          [&](const WaitlistLeft& e) {
            SLOTD_ENSURE(e.entry_id >= 1 && e.entry_id <= waitlist_.size());
            WaitlistEntry& w = waitlist_[e.entry_id - 1];
            SLOTD_ENSURE(w.status == WaitlistStatus::waiting);
            stop_waiting(e.entry_id, w);
            w.status = WaitlistStatus::cancelled;
          },
          [&](const WaitlistOffered& e) {
            SLOTD_ENSURE(e.entry_id >= 1 && e.entry_id <= waitlist_.size());
            WaitlistEntry& w = waitlist_[e.entry_id - 1];
            SLOTD_ENSURE(w.status == WaitlistStatus::waiting);
            const Booking& b = booking_of_event(e.booking_id, e.slot_id);
            SLOTD_ENSURE(b.status == BookingStatus::pending && b.token == w.offer_token);
            stop_waiting(e.entry_id, w);
            w.status = WaitlistStatus::offered;
            w.booking_id = static_cast<std::uint32_t>(e.booking_id);
          },
          [&](const IdempotencyKeysForgotten& e) {
            while (!remembered_order_.empty() && remembered_order_.front().first <= e.up_to_ms) {
              const auto& [at_ms, key] = remembered_order_.front();
              auto it = remembered_.find(key);
              // Skip entries whose key was remembered again later: the newer one stays.
              if (it != remembered_.end() && it->second.at_ms == at_ms) remembered_.erase(it);
              remembered_order_.pop_front();
            }
          },
          [&](const WebhookRegistered& e) {
            SLOTD_ENSURE(e.webhook_id == webhooks_.size() + 1);
            SLOTD_ENSURE(e.events != 0 && (e.events & ~std::uint64_t{kAllWebhookEvents}) == 0);
            SLOTD_ENSURE(e.clinic_id == 0 || e.clinic_id <= clinics_.size());
            webhooks_.push_back(Webhook{e.url, e.secret, e.created_at_ms, applied_events_,
                                        e.clinic_id, static_cast<std::uint32_t>(e.events),
                                        e.include_patient, false});
          },
          [&](const WebhookDeleted& e) {
            SLOTD_ENSURE(e.webhook_id >= 1 && e.webhook_id <= webhooks_.size());
            SLOTD_ENSURE(!webhooks_[e.webhook_id - 1].deleted);
            webhooks_[e.webhook_id - 1].deleted = true;
          },
      },
      event);
}

// ---- hash and invariants -----------------------------------------------------------

std::uint64_t Engine::state_hash() const {
  Hasher h;
  h.num(clinics_.size());
  for (const Clinic& c : clinics_) {
    h.str(c.name);
    h.str(c.time_zone);
  }
  h.num(doctors_.size());
  for (const Doctor& d : doctors_) {
    h.num(d.clinic_id);
    h.str(d.name);
    h.str(d.specialty);
  }
  h.num(slots_.size());
  hash_in_lanes(h, slots_, [](Hasher& l, const Slot& s) {
    l.num(s.doctor_id);
    l.num(s.start_ms);
    l.num(s.end_ms);
    l.num(s.status);
    l.num(s.booking_id);
  });
  h.num(bookings_.size());
  hash_in_lanes(h, bookings_, [this](Hasher& l, const Booking& b) {
    l.num(b.slot_id);
    l.num(b.held_slot_id);
    l.str(names_.view(b.patient_name));
    l.num(b.client);
    l.bytes(b.token.data(), b.token.size());
    l.num(b.status);
    l.num(b.created_at_ms);
    l.num(b.expires_at_ms);
    l.num(b.confirmed_at_ms);
    l.num(b.ended_at_ms);
    l.num(b.held_seq);
    l.num(b.reschedules);
  });
  h.num(waitlist_.size());
  for (const WaitlistEntry& w : waitlist_) {
    h.num(w.doctor_id);
    h.num(w.from_ms);
    h.num(w.to_ms);
    h.num(w.created_at_ms);
    h.num(w.client);
    h.bytes(w.token.data(), w.token.size());
    h.bytes(w.offer_token.data(), w.offer_token.size());
    h.str(names_.view(w.patient_name));
    h.num(w.status);
    h.num(w.booking_id);
  }
  // Remembered Idempotency-Keys, in key order (the map's own order is not stable).
  std::vector<const std::pair<const KeyDigest, RememberedRequest>*> keys;
  keys.reserve(remembered_.size());
  for (const auto& entry : remembered_) keys.push_back(&entry);
  std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return a->first < b->first; });
  h.num(keys.size());
  for (const auto* entry : keys) {
    h.num(entry->first.hi);
    h.num(entry->first.lo);
    h.num(entry->second.request_hash);
    h.num(entry->second.booking_id);
    h.num(entry->second.seq);
    h.num(entry->second.at_ms);
  }
  h.num(webhooks_.size());
  for (const Webhook& w : webhooks_) {
    h.str(w.url);
    h.bytes(w.secret.data(), w.secret.size());
    h.num(w.created_at_ms);
    h.num(w.registered_seq);
    h.num(w.clinic_id);
    h.num(w.events);
    h.num(w.include_patient);
    h.num(w.deleted);
  }
  h.num(applied_events_);
  return h.value();
}

std::optional<std::string> Engine::broken_invariant() const {
  auto fail = [](std::string what, Id id) { return what + " (id " + std::to_string(id) + ")"; };
  for (std::size_t i = 0; i < doctors_.size(); ++i) {
    if (!clinic(doctors_[i].clinic_id)) return fail("doctor of an unknown clinic", i + 1);
  }
  if (slots_by_doctor_.size() != doctors_.size()) return "slot index size != doctor count";
  std::size_t indexed = 0;
  std::vector<bool> seen(slots_.size(), false);
  for (std::size_t d = 0; d < slots_by_doctor_.size(); ++d) {
    const Slot* previous = nullptr;
    const Slot* previous_live = nullptr;
    for (std::uint32_t slot_id : slots_by_doctor_[d]) {
      ++indexed;
      const Slot* s = slot(slot_id);
      if (!s || s->doctor_id != d + 1 || seen[slot_id - 1]) {
        return fail("slot index entry does not match its slot", slot_id);
      }
      seen[slot_id - 1] = true;
      if (previous && previous->start_ms > s->start_ms) {
        return fail("slot index out of start order", slot_id);
      }
      previous = s;
      if (s->status == SlotStatus::closed) continue;
      if (previous_live && previous_live->end_ms > s->start_ms) {
        return fail("two live slots of one doctor overlap", slot_id);
      }
      previous_live = s;
    }
  }
  if (indexed != slots_.size()) return "slot index does not hold every slot exactly once";
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    const Id id = i + 1;
    if (s.end_ms <= s.start_ms) return fail("slot ends before it starts", id);
    if (!doctor(s.doctor_id)) return fail("slot of an unknown doctor", id);
    switch (s.status) {
      case SlotStatus::available:
      case SlotStatus::closed:
        if (s.booking_id != 0) return fail("free slot points at a booking", id);
        break;
      case SlotStatus::held:
      case SlotStatus::booked: {
        const Booking* b = booking(s.booking_id);
        if (!b || b->slot_id != id) return fail("taken slot without its booking", id);
        auto want = s.status == SlotStatus::held ? BookingStatus::pending : BookingStatus::confirmed;
        if (b->status != want) return fail("taken slot's booking has the wrong status", id);
        break;
      }
    }
  }
  std::uint64_t pending = 0;
  std::unordered_map<ClientId, std::uint32_t> holds;
  for (std::size_t i = 0; i < bookings_.size(); ++i) {
    const Booking& b = bookings_[i];
    const Id id = i + 1;
    const Slot* s = slot(b.slot_id);
    if (!s || !slot(b.held_slot_id)) return fail("booking of an unknown slot", id);
    bool holds_slot = b.status == BookingStatus::pending || b.status == BookingStatus::confirmed;
    if (holds_slot && s->booking_id != id) {
      return fail("live booking's slot does not point back at it", id);
    }
    if (!holds_slot && s->booking_id == id) return fail("ended booking still holds its slot", id);
    if (b.status == BookingStatus::pending) {
      ++pending;
      if (config_.max_holds_per_client > 0 && b.client != 0) ++holds[b.client];
    }
  }
  if (pending != pending_count_) return "pending_count does not match the PENDING bookings";
  std::array<std::uint64_t, 4> slot_counts{}, booking_counts{};
  for (const Slot& s : slots_) ++slot_counts[static_cast<std::size_t>(s.status)];
  for (const Booking& b : bookings_) ++booking_counts[static_cast<std::size_t>(b.status)];
  if (slot_counts != slot_counts_) return "per-status slot counts do not match the slots";
  if (booking_counts != booking_counts_) return "per-status booking counts do not match";
  if (holds != holds_by_client_) return "per-client hold counts do not match";
  // Every PENDING booking must be reachable by expiry, in order.
  std::uint64_t queued_pending = 0;
  for (std::size_t i = 0; i < expiry_queue_.size(); ++i) {
    if (i > 0 && expiry_queue_[i] < expiry_queue_[i - 1]) return "expiry queue out of order";
    const auto& [expires_at_ms, booking_id] = expiry_queue_[i];
    const Booking* b = booking(booking_id);
    if (!b) return "expiry queue names an unknown booking";
    if (b->status == BookingStatus::pending && b->expires_at_ms == expires_at_ms) ++queued_pending;
  }
  if (queued_pending != pending) return "a PENDING booking is missing from the expiry queue";
  if (auto broken = broken_waitlist_invariant()) return broken;
  // Every remembered key can be forgotten: it is in the order queue with its own time.
  std::size_t reachable = 0;
  for (std::size_t i = 0; i < remembered_order_.size(); ++i) {
    if (i > 0 && remembered_order_[i].first < remembered_order_[i - 1].first) {
      return "remembered keys out of time order";
    }
    auto it = remembered_.find(remembered_order_[i].second);
    if (it != remembered_.end() && it->second.at_ms == remembered_order_[i].first) ++reachable;
  }
  if (reachable < remembered_.size()) return "a remembered Idempotency-Key can never be forgotten";
  for (std::size_t i = 0; i < webhooks_.size(); ++i) {
    const Webhook& w = webhooks_[i];
    if (w.clinic_id != 0 && !clinic(w.clinic_id)) return fail("webhook of an unknown clinic", i + 1);
    if (w.events == 0 || (w.events & ~kAllWebhookEvents) != 0) {
      return fail("webhook without a known event type", i + 1);
    }
    if (w.url.empty()) return fail("webhook without a URL", i + 1);
    if (w.registered_seq == 0 || w.registered_seq > applied_events_) {
      return fail("webhook registered at a seq that was never applied", i + 1);
    }
  }
  for (const auto& [key, request] : remembered_) {
    if (!booking(request.booking_id)) return "an Idempotency-Key remembers an unknown booking";
    if (request.seq == 0 || request.seq > applied_events_) {
      return "an Idempotency-Key remembers a seq that was never applied";
    }
  }
  return std::nullopt;
}

std::optional<std::string> Engine::broken_waitlist_invariant() const {
  auto fail = [](std::string what, Id id) { return what + " (id " + std::to_string(id) + ")"; };
  if (waiting_by_doctor_.size() != doctors_.size()) return "waiting index size != doctor count";
  std::vector<std::vector<std::uint32_t>> waiting(doctors_.size());
  std::vector<bool> offer_taken(bookings_.size(), false);
  for (std::size_t i = 0; i < waitlist_.size(); ++i) {
    const WaitlistEntry& w = waitlist_[i];
    const Id id = i + 1;
    if (!doctor(w.doctor_id)) return fail("waitlist entry of an unknown doctor", id);
    if (w.to_ms <= w.from_ms) return fail("waitlist entry with an empty range", id);
    if (w.status != WaitlistStatus::offered) {
      if (w.booking_id != 0) return fail("waitlist entry without an offer names a booking", id);
      if (w.status == WaitlistStatus::waiting) waiting[w.doctor_id - 1].push_back(id);
      continue;
    }
    const Booking* b = booking(w.booking_id);
    if (!b || offer_taken[w.booking_id - 1]) return fail("offer of an unknown or shared booking", id);
    offer_taken[w.booking_id - 1] = true;
    const Slot& offered = slots_[b->held_slot_id - 1];
    if (offered.doctor_id != w.doctor_id || offered.start_ms < w.from_ms ||
        offered.start_ms >= w.to_ms) {
      return fail("offer of a slot outside the entry's range", id);
    }
    if (b->token != w.offer_token || names_.view(b->patient_name) != names_.view(w.patient_name) ||
        b->client != w.client) {
      return fail("offer's booking is not the entry's", id);
    }
  }
  if (waiting != waiting_by_doctor_) return "waiting index does not match the WAITING entries";
  return std::nullopt;
}

}  // namespace slotd
