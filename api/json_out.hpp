// api/json_out — JSON written by slotd (fmt into reused strings). Names match the C++
// names; instants are ISO-8601 UTC with milliseconds; booking tokens and webhook signing
// secrets are never written here (not even for the admin: /events is an audit log).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "api/partition.hpp"
#include "journal/codec.hpp"
#include "sequencer/read_store.hpp"

namespace slotd {

// A JSON string literal. Bytes that are not valid UTF-8 become U+FFFD, so an answer that
// echoes client bytes is still valid JSON text.
void append_json_string(std::string& out, std::string_view s);

std::string_view to_string(Actor actor);

// {"id","doctorId","start","end","status"(,"seq")}: "seq" only when non-zero.
void append_slot_json(std::string& out, const SlotView& slot, std::uint64_t seq = 0);
// {"id","name","specialty","clinicId"}
void append_doctor_json(std::string& out, const DoctorInfo& doctor);
// {"id","name","timeZone"}
void append_clinic_json(std::string& out, const ClinicInfo& clinic);
// {"seq","at","requestId","actor","type","data":{…}}: one journal record, for audit.
// Leaves out booking tokens and webhook secrets.
void append_event_json(std::string& out, const JournalRecord& record);
// ["booking.held",…]: the webhook event types whose bits are set, in bit order.
void append_webhook_events_json(std::string& out, std::uint64_t events);
// 32 lowercase hex digits.
void append_token_hex(std::string& out, const Token& token);
// Two lowercase hex digits per byte.
void append_hex(std::string& out, std::span<const std::uint8_t> bytes);

}  // namespace slotd
