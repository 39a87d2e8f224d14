#include "api/errors.hpp"

#include "api/json_out.hpp"

namespace slotd {

HttpResponse error_response(unsigned status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = R"({"error":{"code":)";
  append_json_string(r.body, code);
  r.body += R"(,"message":)";
  append_json_string(r.body, message);
  r.body += "}}";
  return r;
}

HttpResponse error_response(const ApiError& error) {
  HttpResponse r = error_response(error.status, error.code, error.message);
  r.retry_after_s = error.retry_after_s;
  if (!error.owner.empty()) {
    r.body.resize(r.body.size() - 2);  // reopen "error"
    r.body += R"(,"owner":)";
    append_json_string(r.body, error.owner);
    r.body += "}}";
  }
  return r;
}

unsigned status_of(Rejection r) {
  switch (r) {
    case Rejection::none: return 200;
    case Rejection::clinic_not_found:
    case Rejection::doctor_not_found:
    case Rejection::slot_not_found:
    case Rejection::booking_not_found:
    case Rejection::waitlist_entry_not_found:
    case Rejection::webhook_not_found: return 404;
    case Rejection::slot_unavailable:
    case Rejection::slot_overlap:
    case Rejection::booking_expired:
    case Rejection::booking_failed:
    case Rejection::booking_cancelled:
    case Rejection::booking_confirmed:
    case Rejection::slot_booked:
    case Rejection::idempotency_key_reused:
    case Rejection::waitlist_entry_served: return 409;
    case Rejection::invalid_name:
    case Rejection::invalid_time_range:
    case Rejection::empty_request:
    case Rejection::invalid_webhook: return 400;
    case Rejection::too_many_slots: return 413;
    case Rejection::too_many_holds: return 429;
    case Rejection::duplicate_request: return 200;  // answered by the route's replay
  }
  return 500;
}

namespace {

std::string_view message_of(Rejection r) {
  switch (r) {
    case Rejection::none: return "ok";
    case Rejection::clinic_not_found: return "no clinic has this id";
    case Rejection::doctor_not_found: return "no doctor has this id";
    case Rejection::slot_not_found: return "no slot has this id";
    case Rejection::booking_not_found: return "no booking has this id";
    case Rejection::slot_unavailable:
      return "the slot is not available: it is held, booked or closed";
    case Rejection::slot_overlap: return "the slot overlaps another slot of this doctor";
    case Rejection::booking_expired: return "the hold expired before it was confirmed";
    case Rejection::booking_failed: return "the booking failed: its hold expired unconfirmed";
    case Rejection::booking_cancelled: return "the booking was cancelled";
    case Rejection::booking_confirmed: return "the booking is already confirmed";
    case Rejection::slot_booked: return "the slot is held or booked; cancel the booking first";
    case Rejection::invalid_name: return "names must be 1 to 200 bytes";
    case Rejection::invalid_time_range:
      return "the end must be after the start, both between 2000-01-01 and 9999-12-31 (and a "
             "waitlist range must end in the future)";
    case Rejection::too_many_slots: return "too many slots in one request";
    case Rejection::empty_request: return "the request creates no slot";
    case Rejection::too_many_holds:
      return "this client already holds the maximum number of PENDING bookings";
    case Rejection::idempotency_key_reused:
      return "this Idempotency-Key was already used for a different request";
    case Rejection::duplicate_request: return "already done";
    case Rejection::waitlist_entry_not_found: return "no waitlist entry has this id";
    case Rejection::waitlist_entry_served:
      return "the entry was already offered a slot; cancel that booking instead";
    case Rejection::webhook_not_found: return "no webhook has this id (or it was deleted)";
    case Rejection::invalid_webhook:
      return "a webhook needs a URL of at most 2048 bytes and at least one known event type";
  }
  return "refused";
}

}  // namespace

ApiError rejection_error(Rejection r) {
  return ApiError{status_of(r), std::string(to_string(r)), std::string(message_of(r))};
}

ApiError bad_query(std::string_view message) {
  return ApiError{400, "invalid_query", std::string(message)};
}

ApiError unauthorized() {
  return ApiError{401, "unauthorized", "this operation needs 'Authorization: Bearer <admin token>'"};
}

ApiError forbidden_booking() {
  return ApiError{403, "forbidden",
                  "this needs the booking's token (X-Booking-Token) or the admin token"};
}

}  // namespace slotd
