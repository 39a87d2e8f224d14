#include "webhooks/payload.hpp"

#include <iterator>

#include <fmt/format.h>

#include "api/iso_time.hpp"
#include "api/json_out.hpp"

namespace slotd {
namespace {

std::optional<WebhookEventType> type_of(const Event& event) {
  if (std::holds_alternative<SlotHeld>(event)) return WebhookEventType::booking_held;
  if (std::holds_alternative<BookingConfirmed>(event)) return WebhookEventType::booking_confirmed;
  if (std::holds_alternative<BookingExpired>(event)) return WebhookEventType::booking_failed;
  if (std::holds_alternative<BookingCancelled>(event)) return WebhookEventType::booking_cancelled;
  if (std::holds_alternative<SlotCreated>(event)) return WebhookEventType::slot_created;
  if (std::holds_alternative<SlotClosed>(event)) return WebhookEventType::slot_closed;
  if (std::holds_alternative<BookingRescheduled>(event)) {
    return WebhookEventType::booking_rescheduled;
  }
  return std::nullopt;
}

bool is_booking_event(WebhookEventType t) {
  return t == WebhookEventType::booking_held || t == WebhookEventType::booking_confirmed ||
         t == WebhookEventType::booking_failed || t == WebhookEventType::booking_cancelled ||
         t == WebhookEventType::booking_rescheduled;
}

}  // namespace

std::optional<WebhookEvent> webhook_event_of(const JournalRecord& record, const ReadStore& reads) {
  const auto type = type_of(record.event);
  if (!type) return std::nullopt;
  const SlotChanges changes = reads.slot_changes_of(record);
  if (changes.empty()) return std::nullopt;
  // A move changes two slots, the old one first: the event is about the new one.
  WebhookEvent event{*type, changes.items[changes.count - 1], std::nullopt};
  if (changes.count == 2) event.moved_from = changes.items[0];
  return event;
}

bool webhook_wants(const WebhookInfo& webhook, const WebhookEvent& event) {
  if (!(webhook.events & webhook_event_bit(event.type))) return false;
  // A move between clinics concerns both.
  return webhook.clinic_id == 0 || webhook.clinic_id == event.change.clinic_id ||
         (event.moved_from && webhook.clinic_id == event.moved_from->clinic_id);
}

// Seqs count per partition: another partition's events carry its number too.
std::string webhook_event_id(std::uint64_t seq) {
  const std::uint32_t partition = current_partition();
  return partition == 0 ? fmt::format("evt_{}", seq) : fmt::format("evt_p{}_{}", partition, seq);
}

std::string webhook_body(const JournalRecord& record, const WebhookEvent& event,
                         const ReadStore& reads, bool include_patient) {
  const SlotChange& c = event.change;
  const bool booking = is_booking_event(event.type);
  std::string body;
  body.reserve(320);
  auto it = std::back_inserter(body);
  fmt::format_to(it, R"({{"id":"{}","type":"{}","seq":{},"occurredAt":")",
                 webhook_event_id(record.seq), to_string(event.type), record.seq);
  append_iso8601(body, record.at_ms);
  body += R"(","data":{)";
  if (booking) fmt::format_to(it, R"("bookingId":{},)", external_id(c.booking_id));
  fmt::format_to(it, R"("slotId":{},"doctorId":{},"clinicId":{},"status":"{}")",
                 external_id(c.slot_id), external_id(c.doctor_id), external_id(c.clinic_id),
                 booking ? to_string(c.booking_status) : to_string(c.slot_status));
  if (auto slot = reads.slot(c.slot_id)) {
    body += R"(,"start":")";
    append_iso8601(body, slot->start_ms);
    body += R"(","end":")";
    append_iso8601(body, slot->end_ms);
    body += '"';
  }
  if (event.moved_from) {
    fmt::format_to(it, R"(,"from":{{"slotId":{},"doctorId":{},"clinicId":{})",
                   external_id(event.moved_from->slot_id), external_id(event.moved_from->doctor_id),
                   external_id(event.moved_from->clinic_id));
    if (auto slot = reads.slot(event.moved_from->slot_id)) {
      body += R"(,"start":")";
      append_iso8601(body, slot->start_ms);
      body += R"(","end":")";
      append_iso8601(body, slot->end_ms);
      body += '"';
    }
    body += '}';
  }
  if (booking && include_patient) {
    if (auto b = reads.booking(c.booking_id)) {
      body += R"(,"patientName":)";
      append_json_string(body, b->patient_name);
    }
  }
  body += "}}";
  return body;
}

}  // namespace slotd
