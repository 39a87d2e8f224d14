#include "api/json_out.hpp"

#include <iterator>
#include <variant>

#include <fmt/format.h>

#include "api/iso_time.hpp"
#include "engine/overloaded.hpp"

namespace slotd {
namespace {

void append_instant(std::string& out, std::string_view key, TimeMs ms) {
  fmt::format_to(std::back_inserter(out), R"(,"{}":")", key);
  append_iso8601(out, ms);
  out += '"';
}

void append_idempotency(std::string& out, const IdempotencyKey& idempotency) {
  if (idempotency.key.empty()) return;
  // The digest, not the key: the key itself is never stored.
  fmt::format_to(std::back_inserter(out), R"(,"idempotencyKeyDigest":"{:016x}{:016x}")",
                 idempotency.key.hi, idempotency.key.lo);
}

// Length of the valid UTF-8 sequence at s[i], or 0 if there is none (RFC 3629: no
// overlongs, no surrogates, nothing above U+10FFFF).
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (std::size_t n = utf8_length(s, i)) {
        out.append(s.data() + i, n);
        i += n;
      } else {
        out += "\\ufffd";
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

void append_hex(std::string& out, std::span<const std::uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::uint8_t b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
}

void append_token_hex(std::string& out, const Token& token) { append_hex(out, token); }

void append_slot_json(std::string& out, const SlotView& s, std::uint64_t seq) {
  fmt::format_to(std::back_inserter(out), R"({{"id":{},"doctorId":{},"start":")", external_id(s.id),
                 external_id(s.doctor_id));
  append_iso8601(out, s.start_ms);
  out += R"(","end":")";
  append_iso8601(out, s.end_ms);
  out += R"(","status":")";
  out += to_string(s.status);
  out += '"';
  if (seq) fmt::format_to(std::back_inserter(out), R"(,"seq":{})", seq);
  out += '}';
}

void append_doctor_json(std::string& out, const DoctorInfo& d) {
  fmt::format_to(std::back_inserter(out), R"({{"id":{},"name":)", external_id(d.id));
  append_json_string(out, d.name);
  out += R"(,"specialty":)";
  append_json_string(out, d.specialty);
  fmt::format_to(std::back_inserter(out), R"(,"clinicId":{}}})", external_id(d.clinic_id));
}

void append_clinic_json(std::string& out, const ClinicInfo& c) {
  fmt::format_to(std::back_inserter(out), R"({{"id":{},"name":)", external_id(c.id));
  append_json_string(out, c.name);
  out += R"(,"timeZone":)";
  append_json_string(out, c.time_zone);
  out += '}';
}

void append_webhook_events_json(std::string& out, std::uint64_t events) {
  out += '[';
  bool first = true;
  for (std::size_t i = 0; i < kWebhookEventTypes; ++i) {
    if (!(events & (std::uint64_t{1} << i))) continue;
    if (!first) out += ',';
    first = false;
    out += '"';
    out += to_string(static_cast<WebhookEventType>(i));
    out += '"';
  }
  out += ']';
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
  fmt::format_to(it, R"(","requestId":{},"actor":"{}","type":"{}","data":{{)", r.request_id,
                 to_string(r.actor), event_name(r.event));
  auto booking_and_slot = [&](Id booking_id, Id slot_id) {
    fmt::format_to(it, R"("bookingId":{},"slotId":{})", external_id(booking_id),
                   external_id(slot_id));
  };
  std::visit(overloaded{
                 [&](const ClinicAdded& e) {
                   fmt::format_to(it, R"("clinicId":{},"name":)", external_id(e.clinic_id));
                   append_json_string(out, e.name);
                   out += R"(,"timeZone":)";
                   append_json_string(out, e.time_zone);
                 },
                 [&](const ClinicUpdated& e) {
                   fmt::format_to(it, R"("clinicId":{},"name":)", external_id(e.clinic_id));
                   append_json_string(out, e.name);
                   out += R"(,"timeZone":)";
                   append_json_string(out, e.time_zone);
                 },
                 [&](const DoctorAdded& e) {
                   fmt::format_to(it, R"("doctorId":{},"clinicId":{},"name":)",
                                  external_id(e.doctor_id), external_id(e.clinic_id));
                   append_json_string(out, e.name);
                   out += R"(,"specialty":)";
                   append_json_string(out, e.specialty);
                 },
                 [&](const SlotCreated& e) {
                   fmt::format_to(it, R"("slotId":{},"doctorId":{})", external_id(e.slot_id),
                                  external_id(e.doctor_id));
                   append_instant(out, "start", e.start_ms);
                   append_instant(out, "end", e.end_ms);
                 },
                 [&](const SlotHeld& e) {
                   fmt::format_to(it, R"("bookingId":{},"slotId":{},"patientName":)",
                                  external_id(e.booking_id), external_id(e.slot_id));
                   append_json_string(out, e.patient_name);
                   fmt::format_to(it, R"(,"client":"{:016x}")", e.client);
                   append_instant(out, "createdAt", e.created_at_ms);
                   append_instant(out, "expiresAt", e.expires_at_ms);
                   append_idempotency(out, e.idempotency);
                 },
                 [&](const BookingConfirmed& e) {
                   booking_and_slot(e.booking_id, e.slot_id);
                   append_instant(out, "confirmedAt", e.confirmed_at_ms);
                   append_idempotency(out, e.idempotency);
                 },
                 [&](const BookingExpired& e) {
                   booking_and_slot(e.booking_id, e.slot_id);
                   append_instant(out, "expiredAt", e.expired_at_ms);
                 },
                 [&](const BookingCancelled& e) {
                   booking_and_slot(e.booking_id, e.slot_id);
                   append_instant(out, "cancelledAt", e.cancelled_at_ms);
                   append_idempotency(out, e.idempotency);
                 },
                 [&](const SlotClosed& e) {
                   fmt::format_to(it, R"("slotId":{})", external_id(e.slot_id));
                 },
                 [&](const BookingRescheduled& e) {
                   fmt::format_to(it,
                                  R"("bookingId":{},"fromSlotId":{},"toSlotId":{},"status":"{}")",
                                  external_id(e.booking_id), external_id(e.from_slot_id),
                                  external_id(e.to_slot_id), to_string(e.status));
                   append_instant(out, "rescheduledAt", e.rescheduled_at_ms);
                   append_idempotency(out, e.idempotency);
                 },
                 [&](const WaitlistJoined& e) {
                   // The tokens are secrets: never shown, like a booking's.
                   fmt::format_to(it, R"("entryId":{},"doctorId":{})", external_id(e.entry_id),
                                  external_id(e.doctor_id));
                   append_instant(out, "from", e.from_ms);
                   append_instant(out, "to", e.to_ms);
                   out += R"(,"patientName":)";
                   append_json_string(out, e.patient_name);
                   fmt::format_to(it, R"(,"client":"{:016x}")", e.client);
                   append_instant(out, "createdAt", e.created_at_ms);
                 },
                 [&](const WaitlistLeft& e) {
                   fmt::format_to(it, R"("entryId":{})", external_id(e.entry_id));
                   append_instant(out, "leftAt", e.left_at_ms);
                 },
                 [&](const WaitlistOffered& e) {
                   fmt::format_to(it, R"("entryId":{},"bookingId":{},"slotId":{})",
                                  external_id(e.entry_id), external_id(e.booking_id),
                                  external_id(e.slot_id));
                 },
                 [&](const IdempotencyKeysForgotten& e) {
                   out += R"("upTo":")";
                   append_iso8601(out, e.up_to_ms);
                   out += '"';
                 },
                 // Without the secret: it is shown once, to whoever registered the endpoint.
                 [&](const WebhookRegistered& e) {
                   fmt::format_to(it, R"("webhookId":{},"url":)", external_id(e.webhook_id));
                   append_json_string(out, e.url);
                   out += R"(,"events":)";
                   append_webhook_events_json(out, e.events);
                   if (e.clinic_id) {
                     fmt::format_to(it, R"(,"clinicId":{})", external_id(e.clinic_id));
                   } else {
                     out += R"(,"clinicId":null)";
                   }
                   fmt::format_to(it, R"(,"includePatient":{})", e.include_patient);
                   append_instant(out, "createdAt", e.created_at_ms);
                 },
                 [&](const WebhookDeleted& e) {
                   fmt::format_to(it, R"("webhookId":{})", external_id(e.webhook_id));
                 },
             },
             r.event);
  out += "}}";
}

}  // namespace slotd
