#include "api/event_json.hpp"
#include "engine/overloaded.hpp"

#include <iterator>
#include <variant>

#include <fmt/format.h>

#include "api/iso_time.hpp"

namespace slotd {
namespace {

void append_instant(std::string& out, std::string_view key, TimeMs ms) {
  fmt::format_to(std::back_inserter(out), R"(,"{}":")", key);
  append_iso8601(out, ms);
  out += '"';
}

void append_idempotency(std::string& out, const IdempotencyKey& idempotency) {
  if (idempotency.key.empty()) return;
  out += R"(,"idempotencyKey":)";
  append_json_string(out, idempotency.key);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_slot_json(std::string& out, const Slot& s, SlotStatus status, std::uint64_t seq) {
  fmt::format_to(std::back_inserter(out), R"({{"id":{},"doctorId":{},"start":")", s.id,
                 s.doctor_id);
  append_iso8601(out, s.start_ms);
  out += R"(","end":")";
  append_iso8601(out, s.end_ms);
  fmt::format_to(std::back_inserter(out), R"(","status":"{}")", to_string(status));
  if (seq) fmt::format_to(std::back_inserter(out), R"(,"seq":{})", seq);
  out += '}';
}

std::string_view to_string(Actor actor) {
  switch (actor) {
    case Actor::system: return "system";
    case Actor::admin: return "admin";
    case Actor::patient: return "patient";
  }
  return "unknown";
}

void append_event_json(std::string& out, const JournalRecord& r) {
  auto it = std::back_inserter(out);
  fmt::format_to(it, R"({{"seq":{},"at":")", r.seq);
  append_iso8601(out, r.at_ms);
  fmt::format_to(it, R"(","requestId":{},"actor":"{}","type":)", r.request_id, to_string(r.actor));
  std::visit(
      overloaded{
          [&](const ClinicAdded& e) {
            fmt::format_to(it, R"("ClinicAdded","data":{{"clinicId":{},"name":)", e.clinic_id);
            append_json_string(out, e.name);
          },
          [&](const DoctorAdded& e) {
            fmt::format_to(it, R"("DoctorAdded","data":{{"doctorId":{},"clinicId":{},"name":)",
                           e.doctor_id, e.clinic_id);
            append_json_string(out, e.name);
            out += R"(,"specialty":)";
            append_json_string(out, e.specialty);
          },
          [&](const SlotCreated& e) {
            fmt::format_to(it, R"("SlotCreated","data":{{"slotId":{},"doctorId":{})", e.slot_id,
                           e.doctor_id);
            append_instant(out, "start", e.start_ms);
            append_instant(out, "end", e.end_ms);
          },
          [&](const SlotHeld& e) {
            fmt::format_to(it, R"("SlotHeld","data":{{"bookingId":{},"slotId":{},"patientName":)",
                           e.booking_id, e.slot_id);
            append_json_string(out, e.patient_name);
            out += R"(,"clientKey":)";
            append_json_string(out, e.client_key);
            append_instant(out, "createdAt", e.created_at_ms);
            append_instant(out, "expiresAt", e.expires_at_ms);
            append_idempotency(out, e.idempotency);
          },
          [&](const BookingConfirmed& e) {
            fmt::format_to(it, R"("BookingConfirmed","data":{{"bookingId":{})", e.booking_id);
            append_instant(out, "confirmedAt", e.confirmed_at_ms);
            append_idempotency(out, e.idempotency);
          },
          [&](const BookingExpired& e) {
            fmt::format_to(it, R"("BookingExpired","data":{{"bookingId":{})", e.booking_id);
            append_instant(out, "expiredAt", e.expired_at_ms);
          },
          [&](const BookingCancelled& e) {
            fmt::format_to(it, R"("BookingCancelled","data":{{"bookingId":{})", e.booking_id);
            append_instant(out, "cancelledAt", e.cancelled_at_ms);
            append_idempotency(out, e.idempotency);
          },
          [&](const SlotClosed& e) {
            fmt::format_to(it, R"("SlotClosed","data":{{"slotId":{})", e.slot_id);
          },
      },
      r.event);
  out += "}}";
}

}  // namespace slotd
