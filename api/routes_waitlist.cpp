// The waitlist: join it for a doctor's day or range, see the entry (and the offer, once a
// slot came free), leave it. An entry's data needs its token (X-Waitlist-Token or ?token=)
// or the admin token. An offer is an ordinary PENDING booking whose token GET shows.
#include <fmt/format.h>

#include "api/auth.hpp"
#include "api/call.hpp"
#include "api/iso_time.hpp"
#include "api/json_in.hpp"
#include "api/json_out.hpp"

namespace slotd {
namespace {

std::optional<Token> presented_waitlist_token(const Call& call) {
  if (!call.request.waitlist_token.empty()) return token_from_hex(call.request.waitlist_token);
  if (const std::string* p = call.target.param("token")) return token_from_hex(*p);
  return std::nullopt;
}

ApiError forbidden_waitlist() {
  return ApiError{403, "forbidden",
                  "this needs the waitlist entry's token (X-Waitlist-Token) or the admin token"};
}

// An unknown entry is 404 before any token check (ids are guessable, tokens are not).
std::optional<WaitlistView> entry_for(Call& call) {
  auto entry = call.reads().waitlist_entry(call.id);
  if (!entry) {
    call.fail(rejection_error(Rejection::waitlist_entry_not_found));
    return std::nullopt;
  }
  if (!call.admin && !token_matches(presented_waitlist_token(call), entry->token)) {
    call.fail(forbidden_waitlist());
    return std::nullopt;
  }
  return entry;
}

}  // namespace

void append_waitlist_entry_json(std::string& out, const WaitlistView& w, const ReadStore& reads) {
  fmt::format_to(std::back_inserter(out), R"({{"id":{},"doctorId":{},"from":")", external_id(w.id),
                 external_id(w.doctor_id));
  append_iso8601(out, w.from_ms);
  out += R"(","to":")";
  append_iso8601(out, w.to_ms);
  out += R"(","patientName":)";
  append_json_string(out, w.patient_name);
  fmt::format_to(std::back_inserter(out), R"(,"status":"{}","createdAt":")", to_string(w.status));
  append_iso8601(out, w.created_at_ms);
  out += R"(","offer":)";
  auto offer = w.booking_id ? reads.booking(w.booking_id) : std::nullopt;
  if (!offer) {
    out += "null}";
    return;
  }
  // The offer is an ordinary booking: its token opens /b/:id like any other booking's.
  fmt::format_to(std::back_inserter(out),
                 R"({{"bookingId":{},"slotId":{},"status":"{}","expiresAt":")",
                 external_id(offer->id), external_id(offer->slot_id), to_string(offer->status));
  append_iso8601(out, offer->expires_at_ms);
  out += R"(","token":")";
  append_token_hex(out, offer->token);
  out += "\"}}";
}

// {"doctorId","from","to","patientName"}: the range holds the starts of the slots wanted
// (from <= start < to); one clinic-local day is the day's two midnights.
void post_waitlist(Call& call) {
  if (!take_booking_rate(call)) return;
  auto obj = parse_body(call.request.body);
  if (!obj) return call.fail(obj.error());
  auto doctor_id = entity_id_field(*obj, "doctorId");
  if (!doctor_id) return call.fail(doctor_id.error());
  auto from = instant_field(*obj, "from");
  if (!from) return call.fail(from.error());
  auto to = instant_field(*obj, "to");
  if (!to) return call.fail(to.error());
  if (*to <= *from) {
    return call.fail(ApiError{400, "invalid_field", "'to' must be after 'from'"});
  }
  auto name = name_field(*obj, "patientName");
  if (!name) return call.fail(name.error());
  call.submit(JoinWaitlist{*doctor_id, *from, *to, std::move(*name), call.client, random_token(),
                           random_token()},
              Actor::patient, ReplyKind::waitlist_joined);
}

void get_waitlist_entry(Call& call) {
  auto entry = entry_for(call);
  if (!entry) return;
  std::string body;
  body.reserve(384);
  append_waitlist_entry_json(body, *entry, call.reads());
  call.respond(json_reply(200, std::move(body)));
}

void delete_waitlist_entry(Call& call) {
  if (!entry_for(call)) return;
  call.submit(LeaveWaitlist{call.id}, call.admin ? Actor::admin : Actor::patient,
              ReplyKind::waitlist_left);
}

}  // namespace slotd
