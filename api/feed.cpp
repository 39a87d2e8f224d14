#include "api/feed.hpp"
#include "engine/overloaded.hpp"

#include <algorithm>
#include <iterator>
#include <variant>

#include <fmt/format.h>

#include "api/event_json.hpp"
#include "api/iso_time.hpp"

namespace slotd {
namespace {

}  // namespace

bool Subscription::matches(Id doctor_id, Id doctor_clinic_id) const {
  if (clinic_id) return *clinic_id == doctor_clinic_id;
  return std::binary_search(doctor_ids.begin(), doctor_ids.end(), doctor_id);
}

std::optional<FeedEvent> feed_event(const JournalRecord& record, const Engine& state) {
  // The statuses right after this event, whatever happened later.
  struct Change {
    const char* name;
    Id slot_id;
    SlotStatus slot_status;
    Id booking_id = 0;
    BookingStatus booking_status = BookingStatus::pending;
  };
  auto booking_change = [&](const char* name, Id booking_id, SlotStatus slot_status,
                            BookingStatus booking_status) -> std::optional<Change> {
    const Booking* b = state.booking(booking_id);
    if (!b) return std::nullopt;
    return Change{name, b->slot_id, slot_status, booking_id, booking_status};
  };
  std::optional<Change> change = std::visit(
      overloaded{
          [](const ClinicAdded&) -> std::optional<Change> { return std::nullopt; },
          [](const DoctorAdded&) -> std::optional<Change> { return std::nullopt; },
          [](const SlotCreated& e) -> std::optional<Change> {
            return Change{"SlotCreated", e.slot_id, SlotStatus::available};
          },
          [](const SlotClosed& e) -> std::optional<Change> {
            return Change{"SlotClosed", e.slot_id, SlotStatus::closed};
          },
          [&](const SlotHeld& e) {
            return booking_change("SlotHeld", e.booking_id, SlotStatus::held,
                                  BookingStatus::pending);
          },
          [&](const BookingConfirmed& e) {
            return booking_change("BookingConfirmed", e.booking_id, SlotStatus::booked,
                                  BookingStatus::confirmed);
          },
          [&](const BookingExpired& e) {
            return booking_change("BookingExpired", e.booking_id, SlotStatus::available,
                                  BookingStatus::failed);
          },
          [&](const BookingCancelled& e) {
            return booking_change("BookingCancelled", e.booking_id, SlotStatus::available,
                                  BookingStatus::cancelled);
          },
      },
      record.event);
  if (!change) return std::nullopt;
  const Slot* slot = state.slot(change->slot_id);
  const Doctor* doctor = slot ? state.doctor(slot->doctor_id) : nullptr;
  if (!doctor) return std::nullopt;

  auto json = std::make_shared<std::string>();
  auto it = std::back_inserter(*json);
  if (change->booking_id == 0) {
    fmt::format_to(it, R"({{"type":"slot","seq":{},"event":"{}","slot":)", record.seq,
                   change->name);
  } else {
    fmt::format_to(it,
                   R"({{"type":"booking","seq":{},"event":"{}","booking":{{"id":{},"slotId":{},"status":"{}"}},"slot":)",
                   record.seq, change->name, change->booking_id, slot->id,
                   to_string(change->booking_status));
  }
  append_slot_json(*json, *slot, change->slot_status);
  *json += '}';
  return FeedEvent{record.seq, doctor->id, doctor->clinic_id, std::move(json)};
}

std::string snapshot_message(const Engine& state, std::uint64_t as_of_seq,
                             const Subscription& subscription) {
  std::string out;
  fmt::format_to(std::back_inserter(out), R"({{"type":"snapshot","asOfSeq":{},"slots":[)",
                 as_of_seq);
  bool first = true;
  for (const Doctor& d : state.doctors()) {
    if (!subscription.matches(d.id, d.clinic_id)) continue;
    for (const auto& [start_ms, slot_id] : state.slots_of(d.id)) {
      const Slot& s = *state.slot(slot_id);
      if (!first) out += ',';
      first = false;
      append_slot_json(out, s, s.status);
    }
  }
  out += "]}";
  return out;
}

void FeedHub::add(const std::shared_ptr<FeedSubscriber>& subscriber) {
  std::lock_guard lock(mutex_);
  subscribers_.push_back(subscriber);
}

std::size_t FeedHub::subscribers() const {
  std::lock_guard lock(mutex_);
  return subscribers_.size();
}

void FeedHub::publish(std::span<const JournalRecord> records, const Engine& state) {
  std::vector<std::shared_ptr<FeedSubscriber>> live;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(subscribers_, [&](const std::weak_ptr<FeedSubscriber>& weak) {
      auto strong = weak.lock();
      if (!strong) return true;
      live.push_back(std::move(strong));
      return false;
    });
  }
  if (live.empty()) return;
  auto batch = std::make_shared<FeedBatch>();
  for (const JournalRecord& record : records) {
    if (auto event = feed_event(record, state)) batch->push_back(std::move(*event));
  }
  if (batch->empty()) return;
  std::shared_ptr<const FeedBatch> shared = std::move(batch);
  for (const auto& subscriber : live) subscriber->deliver(shared);
}

}  // namespace slotd
