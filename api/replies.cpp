// Answers to commands, built once their batch is durable: from the events the command
// produced, or, for a retried Idempotency-Key, from what the first request did.
#include <fmt/format.h>

#include "api/api.hpp"
#include "api/call.hpp"
#include "api/iso_time.hpp"
#include "api/json_out.hpp"
#include "api/partition.hpp"

namespace slotd {
namespace {

std::string booking_created_json(Id id, Id slot_id, std::string_view patient_name,
                                 TimeMs created_at_ms, TimeMs expires_at_ms, const Token& token,
                                 std::uint64_t seq) {
  std::string body;
  body.reserve(256);
  fmt::format_to(std::back_inserter(body), R"({{"id":{},"slotId":{},"patientName":)",
                 external_id(id), external_id(slot_id));
  append_json_string(body, patient_name);
  body += R"(,"status":"PENDING","createdAt":")";
  append_iso8601(body, created_at_ms);
  body += R"(","expiresAt":")";
  append_iso8601(body, expires_at_ms);
  body += R"(","token":")";
  append_token_hex(body, token);
  fmt::format_to(std::back_inserter(body), R"(","seq":{}}})", seq);
  return body;
}

// "The booking on its new slot": its state as the move left it.
std::string rescheduled_json(const BookingView& b, Id slot_id, BookingStatus status,
                             std::uint64_t seq) {
  std::string body;
  body.reserve(256);
  fmt::format_to(std::back_inserter(body), R"({{"id":{},"slotId":{},"status":"{}","createdAt":")",
                 external_id(b.id), external_id(slot_id), to_string(status));
  append_iso8601(body, b.created_at_ms);
  body += R"(","expiresAt":")";
  append_iso8601(body, b.expires_at_ms);
  body += R"(","confirmedAt":)";
  // The read store may already show a later confirm; the answer is the move's state.
  append_iso8601_or_null(body, status == BookingStatus::confirmed ? b.confirmed_at_ms : 0);
  fmt::format_to(std::back_inserter(body), R"(,"seq":{}}})", seq);
  return body;
}

// The seq of the request's own event: the first it produced. Offers to the waitlist that
// the request caused follow it in the same durable batch.
std::uint64_t own_seq(std::span<const JournalRecord> events, const CommandOutcome& o) {
  return events.empty() ? o.seq : events.front().seq;
}

std::string status_json(Id id, std::string_view status, std::uint64_t seq) {
  return fmt::format(R"({{"id":{},"status":"{}","seq":{}}})", external_id(id), status, seq);
}

std::string clinic_json(Id id, const std::string& name, const std::string& zone, std::uint64_t seq) {
  std::string body;
  append_clinic_json(body, ClinicInfo{id, name, zone});
  body.pop_back();
  fmt::format_to(std::back_inserter(body), R"(,"seq":{}}})", seq);
  return body;
}

// The only answer that shows a webhook's signing secret: the receiver needs it to check
// signatures, and it is never shown again (not by GET, not in /events).
std::string webhook_registered_json(const WebhookRegistered& e, std::uint64_t seq) {
  std::string body;
  fmt::format_to(std::back_inserter(body), R"({{"id":{},"url":)", external_id(e.webhook_id));
  append_json_string(body, e.url);
  body += R"(,"events":)";
  append_webhook_events_json(body, e.events);
  body += R"(,"clinicId":)";
  body += e.clinic_id ? std::to_string(external_id(e.clinic_id)) : std::string("null");
  fmt::format_to(std::back_inserter(body), R"(,"includePatient":{},"createdAt":")", e.include_patient);
  append_iso8601(body, e.created_at_ms);
  body += R"(","secret":")";
  append_hex(body, e.secret);
  fmt::format_to(std::back_inserter(body), R"(","seq":{}}})", seq);
  return body;
}

HttpResponse replay(const Api& api, const PendingCommand& pending, const CommandOutcome& o) {
  const RememberedRequest& first = o.replayed;
  switch (pending.kind) {
    case ReplyKind::booking_created: {
      auto b = api.sequencer().reads().booking(first.booking_id);
      if (!b) break;
      return json_reply(201, booking_created_json(b->id, b->held_slot_id, b->patient_name,
                                                  b->created_at_ms, b->expires_at_ms, b->token,
                                                  first.seq));
    }
    case ReplyKind::booking_confirmed: return json_reply(200, status_json(first.booking_id, "CONFIRMED", first.seq));
    case ReplyKind::booking_cancelled: return json_reply(200, status_json(first.booking_id, "CANCELLED", first.seq));
    case ReplyKind::booking_rescheduled: {
      // The first answer named the slot of that move: the journal still holds its event.
      std::optional<BookingRescheduled> move;
      JournalStatus st = api.sequencer().read_journal(first.seq, 1, [&](const JournalRecord& r) {
        if (const auto* e = std::get_if<BookingRescheduled>(&r.event)) move = *e;
        return false;
      });
      auto b = api.sequencer().reads().booking(first.booking_id);
      if (!st || !move || !b) break;
      return json_reply(200, rescheduled_json(*b, move->to_slot_id, move->status, first.seq));
    }
    default: break;
  }
  return error_response(500, "internal", "a remembered request cannot be answered again");
}

HttpResponse answer(const Api& api, const PendingCommand& pending, const BatchResults& batch,
                    const CommandOutcome& o) {
  if (o.rejection == Rejection::duplicate_request) return replay(api, pending, o);
  if (o.rejection == Rejection::too_many_holds) {
    const auto max = api.sequencer().config().engine.max_holds_per_client;
    return error_response(ApiError{
        429, "too_many_holds",
        fmt::format("this client already holds {} PENDING bookings, the most allowed; confirm or "
                    "cancel one first",
                    max),
        0});
  }
  if (o.rejection != Rejection::none) return error_response(rejection_error(o.rejection));
  const auto events = std::span(batch.records).subspan(o.first, o.last - o.first);
  switch (pending.kind) {
    case ReplyKind::clinic_created: {
      const auto& e = std::get<ClinicAdded>(events.front().event);
      return json_reply(201, clinic_json(e.clinic_id, e.name, e.time_zone, o.seq));
    }
    case ReplyKind::clinic_updated: {
      const auto& e = std::get<ClinicUpdated>(events.front().event);
      return json_reply(200, clinic_json(e.clinic_id, e.name, e.time_zone, o.seq));
    }
    case ReplyKind::doctor_created: {
      const auto& e = std::get<DoctorAdded>(events.front().event);
      std::string body;
      append_doctor_json(body, DoctorInfo{e.doctor_id, e.clinic_id, e.name, e.specialty});
      body.pop_back();
      fmt::format_to(std::back_inserter(body), R"(,"seq":{}}})", o.seq);
      return json_reply(201, std::move(body));
    }
    case ReplyKind::slot_created:
    case ReplyKind::slots_created: {
      const bool bulk = pending.kind == ReplyKind::slots_created;
      std::string body;
      body.reserve(events.size() * 120 + 2);
      if (bulk) body += '[';
      bool first_slot = true;
      for (std::size_t i = 0; i < events.size(); ++i) {
        // Offers of new slots to waiting patients follow the slots: not part of the answer.
        const auto* created = std::get_if<SlotCreated>(&events[i].event);
        if (!created) continue;
        const SlotCreated& e = *created;
        if (!first_slot) body += ',';
        first_slot = false;
        append_slot_json(body, SlotView{e.slot_id, e.doctor_id, e.start_ms, e.end_ms,
                                        SlotStatus::available},
                         events[i].seq);
      }
      if (bulk) body += ']';
      return json_reply(201, std::move(body));
    }
    case ReplyKind::slot_closed: return json_reply(200, status_json(pending.id, "CLOSED", o.seq));
    case ReplyKind::booking_created: {
      const auto& e = std::get<SlotHeld>(events.front().event);
      return json_reply(201, booking_created_json(e.booking_id, e.slot_id, e.patient_name,
                                                  e.created_at_ms, e.expires_at_ms, e.token, o.seq));
    }
    case ReplyKind::booking_confirmed: return json_reply(200, status_json(pending.id, "CONFIRMED", o.seq));
    case ReplyKind::booking_cancelled:
      return json_reply(200, status_json(pending.id, "CANCELLED", own_seq(events, o)));
    case ReplyKind::booking_rescheduled: {
      auto b = api.sequencer().reads().booking(pending.id);
      if (!b) break;
      if (events.empty()) {
        // Already on that slot: a repeat, answered with the booking as it is.
        return json_reply(200, rescheduled_json(*b, b->slot_id, b->status, o.seq));
      }
      const auto& e = std::get<BookingRescheduled>(events.front().event);
      return json_reply(200, rescheduled_json(*b, e.to_slot_id, e.status, events.front().seq));
    }
    case ReplyKind::waitlist_joined: {
      const auto& e = std::get<WaitlistJoined>(events.front().event);
      auto entry = api.sequencer().reads().waitlist_entry(e.entry_id);
      if (!entry) break;
      std::string body;
      body.reserve(512);
      append_waitlist_entry_json(body, *entry, api.sequencer().reads());
      body.pop_back();
      body += R"(,"token":")";
      append_token_hex(body, entry->token);
      fmt::format_to(std::back_inserter(body), R"(","seq":{}}})", events.front().seq);
      return json_reply(201, std::move(body));
    }
    case ReplyKind::waitlist_left:
      return json_reply(200, status_json(pending.id, "CANCELLED", o.seq));
    case ReplyKind::webhook_registered: {
      const auto& e = std::get<WebhookRegistered>(events.front().event);
      return json_reply(201, webhook_registered_json(e, o.seq));
    }
    case ReplyKind::webhook_deleted: return json_reply(200, status_json(pending.id, "DELETED", o.seq));
  }
  return error_response(500, "internal", "unknown reply kind");
}

}  // namespace

HttpResponse Api::answer_command(const PendingCommand& pending, const BatchResults& batch,
                                 std::uint32_t index) {
  if (pending.api && pending.api != this) return pending.api->answer_command(pending, batch, index);
  const PartitionScope scope(options_.partition);
  HttpResponse r = answer(*this, pending, batch, batch.outcomes.at(index));
  metrics().record(pending.route, r.status, std::chrono::steady_clock::now() - pending.started);
  return r;
}

}  // namespace slotd
