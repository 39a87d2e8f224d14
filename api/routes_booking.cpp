// Bookings: hold a slot, see it, confirm it, cancel it, move it, add it to a calendar.
// Patient data and changes need the booking's token (X-Booking-Token or ?token=) or the
// admin token.
#include <chrono>

#include <fmt/format.h>

#include "api/auth.hpp"
#include "api/call.hpp"
#include "api/icalendar.hpp"
#include "api/iso_time.hpp"
#include "api/json_in.hpp"
#include "api/json_out.hpp"
#include "api/partition.hpp"

namespace slotd {

std::optional<Token> presented_token(const Call& call) {
  if (!call.request.booking_token.empty()) return token_from_hex(call.request.booking_token);
  if (const std::string* p = call.target.param("token")) return token_from_hex(*p);
  return std::nullopt;
}

bool take_booking_rate(Call& call) {
  unsigned wait_s = call.api.booking_limiter().take(call.request.identity);
  if (wait_s == 0) return true;
  call.fail(ApiError{429, "rate_limited",
                     fmt::format("too many booking requests from this client; retry in {} s", wait_s),
                     wait_s});
  return false;
}

void post_booking(Call& call) {
  if (!take_booking_rate(call)) return;
  auto obj = parse_body(call.request.body);
  if (!obj) return call.fail(obj.error());
  auto slot_id = entity_id_field(*obj, "slotId");
  if (!slot_id) return call.fail(slot_id.error());
  auto name = name_field(*obj, "patientName");
  if (!name) return call.fail(name.error());
  call.submit(BookSlot{*slot_id, std::move(*name), call.client, random_token(), call.idempotency},
              Actor::patient, ReplyKind::booking_created);
}

void get_booking(Call& call) {
  auto b = call.reads().booking(call.id);
  if (!b) return call.fail(rejection_error(Rejection::booking_not_found));
  std::string body;
  body.reserve(256);
  fmt::format_to(std::back_inserter(body), R"({{"id":{},"slotId":{},"status":"{}","createdAt":")",
                 external_id(b->id), external_id(b->slot_id), to_string(b->status));
  append_iso8601(body, b->created_at_ms);
  body += R"(","expiresAt":")";
  append_iso8601(body, b->expires_at_ms);
  body += R"(","confirmedAt":)";
  append_iso8601_or_null(body, b->confirmed_at_ms);
  // ?include=slot adds where and when (enough for a booking page opened on another
  // device); without it the answer keeps the contract's exact shape.
  const std::string* include = call.target.param("include");
  if (include && *include != "slot") return call.fail(bad_query("include may only be slot"));
  if (auto slot = include ? call.reads().slot(b->slot_id) : std::nullopt) {
    auto catalog = call.reads().catalog();
    const DoctorInfo* doctor = catalog->doctor(slot->doctor_id);
    fmt::format_to(std::back_inserter(body), R"(,"doctorId":{},"clinicId":{},"start":")",
                   external_id(slot->doctor_id), external_id(doctor ? doctor->clinic_id : 0));
    append_iso8601(body, slot->start_ms);
    body += R"(","end":")";
    append_iso8601(body, slot->end_ms);
    body += '"';
  }
  if (call.admin || token_matches(presented_token(call), b->token)) {
    body += R"(,"patientName":)";
    append_json_string(body, b->patient_name);
  }
  body += '}';
  call.respond(json_reply(200, std::move(body)));
}

namespace {

// Confirm and cancel need the booking's token (or admin). The token never changes, so the
// read store can check it; an unknown booking is 404 before any token check.
void change_booking(Call& call, Command command, ReplyKind kind) {
  auto b = call.reads().booking(call.id);
  if (!b) return call.fail(rejection_error(Rejection::booking_not_found));
  if (!call.admin && !token_matches(presented_token(call), b->token)) {
    return call.fail(forbidden_booking());
  }
  call.submit(std::move(command), call.admin ? Actor::admin : Actor::patient, kind);
}

}  // namespace

void confirm_booking(Call& call) {
  change_booking(call, ConfirmBooking{call.id, call.idempotency}, ReplyKind::booking_confirmed);
}

void cancel_booking(Call& call) {
  change_booking(call, CancelBooking{call.id, call.idempotency}, ReplyKind::booking_cancelled);
}

// {"slotId"}: one command, one event; the booking keeps its status and expiresAt.
void reschedule_booking(Call& call) {
  auto obj = parse_body(call.request.body);
  if (!obj) return call.fail(obj.error());
  auto slot_id = id_field(*obj, "slotId");
  if (!slot_id) return call.fail(slot_id.error());
  auto local_slot = local_id(*slot_id);
  if (!local_slot) {
    return call.fail(ApiError{400, "invalid_field",
                              "field 'slotId' names a slot of another partition: a booking moves "
                              "only within its own partition"});
  }
  slot_id = *local_slot;
  change_booking(call, RescheduleBooking{call.id, *slot_id, call.idempotency},
                 ReplyKind::booking_rescheduled);
}

// The appointment as an iCalendar event: CONFIRMED, or CANCELLED once cancelled (so a
// calendar that re-reads it drops it). SEQUENCE counts the moves, plus one for the cancel.
void get_booking_calendar(Call& call) {
  auto b = call.reads().booking(call.id);
  if (!b) return call.fail(rejection_error(Rejection::booking_not_found));
  if (!call.admin && !token_matches(presented_token(call), b->token)) {
    return call.fail(forbidden_booking());
  }
  if (b->status == BookingStatus::pending) {
    return call.fail(ApiError{409, "booking_pending",
                              "the booking is PENDING: confirm it, then add it to a calendar"});
  }
  if (b->status == BookingStatus::failed) return call.fail(rejection_error(Rejection::booking_failed));
  auto slot = call.reads().slot(b->slot_id);
  if (!slot) return call.fail(rejection_error(Rejection::slot_not_found));
  auto catalog = call.reads().catalog();
  const DoctorInfo* doctor = catalog->doctor(slot->doctor_id);
  const ClinicInfo* clinic = doctor ? catalog->clinic(doctor->clinic_id) : nullptr;

  CalendarEvent e;
  // Stable for the booking and unlikely to meet another server's booking of the same id.
  e.uid = fmt::format("booking-{}-{}@slotd", external_id(b->id), b->created_at_ms);
  e.cancelled = b->status == BookingStatus::cancelled;
  e.sequence = b->reschedules + (e.cancelled ? 1 : 0);
  e.start_ms = slot->start_ms;
  e.end_ms = slot->end_ms;
  e.created_ms = b->created_at_ms;
  e.stamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  e.time_zone = clinic ? clinic->time_zone : "UTC";
  if (doctor) {
    e.summary = doctor->specialty.empty()
                    ? fmt::format("Appointment with {}", doctor->name)
                    : fmt::format("Appointment with {} ({})", doctor->name, doctor->specialty);
  } else {
    e.summary = "Appointment";
  }
  if (clinic) e.location = clinic->name;
  e.description = fmt::format("Booking #{} for {}. Times are the clinic's local time ({}).", b->id,
                              b->patient_name, e.time_zone);
  HttpResponse r = json_reply(200, render_icalendar(e));
  r.content_type = "text/calendar; charset=utf-8";
  r.cache_control = "no-store";  // patient data, behind a token
  call.respond(std::move(r));
}

}  // namespace slotd
