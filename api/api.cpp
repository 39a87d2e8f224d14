#include "api/api.hpp"

#include <sys/random.h>

#include <array>
#include <charconv>
#include <optional>
#include <variant>
#include <vector>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include "api/event_json.hpp"
#include "api/iso_time.hpp"

namespace slotd {
namespace {

// ---- JSON out ---------------------------------------------------------------------

std::string token_hex(const Token& token) {
  std::string out;
  out.reserve(32);
  for (std::uint8_t b : token) fmt::format_to(std::back_inserter(out), "{:02x}", b);
  return out;
}

// Tokens are written as 32 lowercase hex digits; only that exact spelling is accepted.
std::optional<Token> token_from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  Token token{};
  for (std::size_t i = 0; i < 16; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    token[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return token;
}

// Compares secrets in time independent of where they differ.
bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

Token random_token() {
  Token token{};
  std::size_t filled = 0;
  while (filled < token.size()) {
    ssize_t n = getrandom(token.data() + filled, token.size() - filled, 0);
    if (n > 0) filled += static_cast<std::size_t>(n);
  }
  return token;
}

void append_doctor(std::string& out, const Doctor& d) {
  fmt::format_to(std::back_inserter(out), R"({{"id":{},"name":)", d.id);
  append_json_string(out, d.name);
  out += R"(,"specialty":)";
  append_json_string(out, d.specialty);
  fmt::format_to(std::back_inserter(out), R"(,"clinicId":{}}})", d.clinic_id);
}

HttpResponse json(unsigned status, std::string body) {
  return HttpResponse{status, std::move(body), "application/json"};
}

// ---- Rejections → HTTP ----------------------------------------------------------------

unsigned status_of(Rejection r) {
  switch (r) {
    case Rejection::none: return 200;
    case Rejection::clinic_not_found:
    case Rejection::doctor_not_found:
    case Rejection::slot_not_found:
    case Rejection::booking_not_found: return 404;
    case Rejection::slot_unavailable:
    case Rejection::slot_overlap:
    case Rejection::booking_expired:
    case Rejection::booking_failed:
    case Rejection::booking_cancelled:
    case Rejection::booking_confirmed:
    case Rejection::slot_booked: return 409;
    case Rejection::invalid_name:
    case Rejection::invalid_time_range:
    case Rejection::empty_request: return 400;
    case Rejection::too_many_slots: return 413;
    case Rejection::too_many_holds: return 429;
    case Rejection::idempotency_key_reused: return 409;
    case Rejection::duplicate_request: return 200;  // answered by the route's replay, not here
  }
  return 500;
}

std::string_view message_of(Rejection r) {
  switch (r) {
    case Rejection::none: return "ok";
    case Rejection::clinic_not_found: return "no clinic has this id";
    case Rejection::doctor_not_found: return "no doctor has this id";
    case Rejection::slot_not_found: return "no slot has this id";
    case Rejection::booking_not_found: return "no booking has this id";
    case Rejection::slot_unavailable: return "the slot is not available: it is held, booked or closed";
    case Rejection::slot_overlap: return "the slot overlaps another slot of this doctor";
    case Rejection::booking_expired: return "the hold expired before it was confirmed";
    case Rejection::booking_failed: return "the booking failed: its hold expired unconfirmed";
    case Rejection::booking_cancelled: return "the booking was cancelled";
    case Rejection::booking_confirmed: return "the booking is already confirmed";
    case Rejection::slot_booked: return "the slot is held or booked; cancel the booking first";
    case Rejection::invalid_name: return "names must be 1 to 200 bytes";
    case Rejection::invalid_time_range: return "a slot's end must be after its start";
    case Rejection::too_many_slots: return "too many slots in one request";
    case Rejection::empty_request: return "the request creates no slot";
    case Rejection::too_many_holds: return "this client already holds the maximum number of PENDING bookings";
    case Rejection::idempotency_key_reused:
      return "this Idempotency-Key was already used for a different request";
    case Rejection::duplicate_request: return "already done";
  }
  return "refused";
}

HttpResponse rejection_response(Rejection r) {
  return Api::error(status_of(r), to_string(r), message_of(r));
}

// ---- JSON in --------------------------------------------------------------------------

// A request-body problem, answered as 400 with its code.
struct BadInput {
  std::string code;
  std::string message;
};

template <class T>
using Parsed = std::variant<T, BadInput>;

BadInput missing(std::string_view field) {
  return {"missing_field", fmt::format("field '{}' is required", field)};
}
BadInput mistyped(std::string_view field, std::string_view expected) {
  return {"invalid_field", fmt::format("field '{}' must be {}", field, expected)};
}

// Parses and fully validates the body as a JSON object.
Parsed<simdjson::dom::object> parse_object(simdjson::dom::parser& parser, const std::string& body) {
  simdjson::dom::element root;
  if (auto err = parser.parse(body).get(root)) {
    if (err == simdjson::NUMBER_OUT_OF_RANGE) {
      // Valid JSON, but a number no field of ours can hold.
      return BadInput{"invalid_field", "a number in the body is out of range"};
    }
    return BadInput{"invalid_json", fmt::format("the body is not valid JSON: {}",
                                                simdjson::error_message(err))};
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) {
    return BadInput{"invalid_json", "the body must be a JSON object"};
  }
  return object;
}

// Ids are JSON integers; a digit string is accepted too.
std::optional<Id> id_from_text(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  Id id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || p != text.data() + text.size()) return std::nullopt;
  return id;
}

Parsed<Id> id_field(simdjson::dom::object object, std::string_view field) {
  simdjson::dom::element e;
  if (object[field].get(e)) return missing(field);
  std::uint64_t u;
  if (e.is_uint64() && !e.get_uint64().get(u)) return Id{u};
  std::string_view s;
  if (e.is_string() && !e.get_string().get(s)) {
    if (auto id = id_from_text(s)) return *id;
  }
  return mistyped(field, "a positive integer id");
}

Parsed<std::string_view> string_field(simdjson::dom::object object, std::string_view field) {
  simdjson::dom::element e;
  if (object[field].get(e)) return missing(field);
  std::string_view s;
  if (e.get_string().get(s)) return mistyped(field, "a string");
  return s;
}

Parsed<TimeMs> instant_field(simdjson::dom::object object, std::string_view field) {
  auto s = string_field(object, field);
  if (auto* bad = std::get_if<BadInput>(&s)) return *bad;
  auto ms = parse_iso8601(std::get<std::string_view>(s));
  if (!ms) return mistyped(field, "an ISO-8601 UTC instant like 2031-01-06T08:00:00.000Z");
  return *ms;
}

HttpResponse bad_request(const BadInput& bad) { return Api::error(400, bad.code, bad.message); }

simdjson::dom::parser& thread_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// ---- routing helpers ----------------------------------------------------------------

struct Target {
  std::vector<std::string> segments;
  boost::urls::url_view url;
  std::optional<std::string> param(std::string_view key) const {
    auto it = url.params().find(key);
    if (it == url.params().end()) return std::nullopt;
    return std::string((*it).value);
  }
};

std::optional<Target> parse_target(const std::string& raw) {
  auto parsed = boost::urls::parse_origin_form(raw);
  if (!parsed) return std::nullopt;
  Target t;
  t.url = *parsed;
  for (auto seg : t.url.segments()) {
    if (!seg.empty()) t.segments.push_back(std::string(seg));
  }
  return t;
}

}  // namespace

// ---- Api ------------------------------------------------------------------------------

Api::Api(Sequencer& sequencer, ApiOptions options, const ServerStats& server_stats)
    : sequencer_(sequencer), options_(std::move(options)), server_stats_(server_stats) {}

HttpResponse Api::error(unsigned status, std::string_view code, std::string_view message) {
  std::string body = R"({"error":{"code":)";
  append_json_string(body, code);
  body += R"(,"message":)";
  append_json_string(body, message);
  body += "}}";
  return json(status, std::move(body));
}

bool Api::is_admin(const HttpRequest& request) const {
  std::string_view auth = request.authorization;
  constexpr std::string_view kBearer = "bearer ";
  if (auth.size() <= kBearer.size()) return false;
  for (std::size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(auth[i])) != kBearer[i]) return false;
  }
  auth.remove_prefix(kBearer.size());
  return !options_.admin_token.empty() && constant_time_equal(auth, options_.admin_token);
}

namespace {

// Hands a command to the sequencer; `reply` builds the answer from the durable result on
// the connection's io thread.
// `replay` answers a retry whose Idempotency-Key the engine remembers (duplicate_request),
// as the first answer was given.
void submit(Sequencer& sequencer, HttpRequest& request, Respond respond, Command command,
            Actor actor, std::function<HttpResponse(CommandResult&)> reply,
            std::function<HttpResponse()> replay = nullptr) {
  auto post = request.post_to_io;
  Submission s{std::move(command), actor, request.request_id,
               [post, respond, reply, replay](CommandResult&& result) {
                 post([result = std::move(result), respond, reply, replay]() mutable {
                   if (result.rejection == Rejection::duplicate_request && replay) {
                     respond(replay());
                   } else if (result.rejection != Rejection::none) {
                     respond(rejection_response(result.rejection));
                   } else {
                     respond(reply(result));
                   }
                 });
               }};
  if (!sequencer.submit(std::move(s))) {
    respond(Api::error(503, "overloaded", "the server is busy; retry shortly"));
  }
}

HttpResponse unauthorized() {
  return Api::error(401, "unauthorized", "this operation needs 'Authorization: Bearer <admin token>'");
}

HttpResponse list_doctors(const Sequencer& seq, const Target& target) {
  std::optional<Id> clinic_id;
  if (auto p = target.param("clinicId")) {
    clinic_id = id_from_text(*p);
    if (!clinic_id) return Api::error(400, "invalid_query", "clinicId must be an integer id");
  }
  std::vector<Doctor> doctors = seq.reads().read([&](const Engine& e, std::uint64_t) {
    std::vector<Doctor> out;
    for (const Doctor& d : e.doctors()) {
      if (!clinic_id || d.clinic_id == *clinic_id) out.push_back(d);
    }
    return out;
  });
  std::string body = "[";
  for (std::size_t i = 0; i < doctors.size(); ++i) {
    if (i) body += ',';
    append_doctor(body, doctors[i]);
  }
  body += ']';
  return json(200, std::move(body));
}

HttpResponse list_clinics(const Sequencer& seq) {
  std::vector<Clinic> clinics =
      seq.reads().read([](const Engine& e, std::uint64_t) { return e.clinics(); });
  std::string body = "[";
  for (std::size_t i = 0; i < clinics.size(); ++i) {
    if (i) body += ',';
    fmt::format_to(std::back_inserter(body), R"({{"id":{},"name":)", clinics[i].id);
    append_json_string(body, clinics[i].name);
    body += '}';
  }
  body += ']';
  return json(200, std::move(body));
}

std::optional<SlotStatus> slot_status_from(std::string_view s) {
  std::string upper;
  for (char c : s) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (auto st : {SlotStatus::available, SlotStatus::held, SlotStatus::booked, SlotStatus::closed}) {
    if (upper == to_string(st)) return st;
  }
  return std::nullopt;
}

HttpResponse list_slots(const Sequencer& seq, const Target& target, Id doctor_id) {
  TimeMs from = std::numeric_limits<TimeMs>::min();
  TimeMs to = std::numeric_limits<TimeMs>::max();
  std::optional<SlotStatus> status;
  if (auto p = target.param("from")) {
    auto ms = parse_iso8601(*p);
    if (!ms) return Api::error(400, "invalid_query", "from must be an ISO-8601 UTC instant");
    from = *ms;
  }
  if (auto p = target.param("to")) {
    auto ms = parse_iso8601(*p);
    if (!ms) return Api::error(400, "invalid_query", "to must be an ISO-8601 UTC instant");
    to = *ms;
  }
  if (auto p = target.param("status")) {
    status = slot_status_from(*p);
    if (!status) {
      return Api::error(400, "invalid_query", "status must be AVAILABLE, HELD, BOOKED or CLOSED");
    }
  }
  std::vector<Slot> slots = seq.reads().read([&](const Engine& e, std::uint64_t) {
    std::vector<Slot> out;
    const auto& index = e.slots_of(doctor_id);
    for (auto it = index.lower_bound({from, 0}); it != index.end() && it->first < to; ++it) {
      const Slot& s = *e.slot(it->second);
      if (!status || s.status == *status) out.push_back(s);
    }
    return out;
  });
  std::string body;
  body.reserve(slots.size() * 110 + 2);
  body += '[';
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (i) body += ',';
    append_slot_json(body, slots[i], slots[i].status);
  }
  body += ']';
  return json(200, std::move(body));
}

// Who may see patient data of a booking: its token holder or the admin.
std::optional<Token> presented_token(const HttpRequest& request, const Target& target) {
  if (!request.booking_token.empty()) return token_from_hex(request.booking_token);
  if (auto p = target.param("token")) return token_from_hex(*p);
  return std::nullopt;
}

bool token_matches(const std::optional<Token>& presented, const Token& actual) {
  if (!presented) return false;
  return constant_time_equal(
      std::string_view(reinterpret_cast<const char*>(presented->data()), presented->size()),
      std::string_view(reinterpret_cast<const char*>(actual.data()), actual.size()));
}

HttpResponse get_booking(const Sequencer& seq, const HttpRequest& request, const Target& target,
                         Id booking_id, bool admin) {
  std::optional<Booking> booking = seq.reads().read(
      [&](const Engine& e, std::uint64_t) -> std::optional<Booking> {
        const Booking* b = e.booking(booking_id);
        if (!b) return std::nullopt;
        return *b;
      });
  if (!booking) return Api::error(404, "booking_not_found", "no booking has this id");
  const Booking& b = *booking;
  std::string body;
  fmt::format_to(std::back_inserter(body), R"({{"id":{},"slotId":{},"status":"{}","createdAt":")",
                 b.id, b.slot_id, to_string(b.status));
  append_iso8601(body, b.created_at_ms);
  body += R"(","expiresAt":")";
  append_iso8601(body, b.expires_at_ms);
  body += R"(","confirmedAt":)";
  if (b.confirmed_at_ms) {
    body += '"';
    append_iso8601(body, b.confirmed_at_ms);
    body += '"';
  } else {
    body += "null";
  }
  if (admin || token_matches(presented_token(request, target), b.token)) {
    body += R"(,"patientName":)";
    append_json_string(body, b.patient_name);
  }
  body += '}';
  return json(200, std::move(body));
}

// Live counts from the durable read model; rates are 0 when nothing is there to count.
HttpResponse admin_stats(const Sequencer& seq) {
  struct Counts {
    std::uint64_t as_of_seq, clinics, doctors;
    std::array<std::uint64_t, 4> slots, bookings;
  };
  Counts c = seq.reads().read([](const Engine& e, std::uint64_t as_of) {
    Counts out{as_of, e.clinics().size(), e.doctors().size(), {}, {}};
    for (auto s : {SlotStatus::available, SlotStatus::held, SlotStatus::booked, SlotStatus::closed}) {
      out.slots[static_cast<std::size_t>(s)] = e.count(s);
    }
    for (auto b : {BookingStatus::pending, BookingStatus::confirmed, BookingStatus::failed,
                   BookingStatus::cancelled}) {
      out.bookings[static_cast<std::size_t>(b)] = e.count(b);
    }
    return out;
  });
  auto ratio = [](std::uint64_t a, std::uint64_t b) {
    return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b);
  };
  const auto [available, held, booked, closed] = c.slots;
  const auto [pending, confirmed, failed, cancelled] = c.bookings;
  const std::uint64_t open_slots = available + held + booked;
  const SequencerStats& st = seq.stats();
  return json(
      200,
      fmt::format(
          R"({{"asOfSeq":{},"clinics":{},"doctors":{},)"
          R"("slots":{{"total":{},"available":{},"held":{},"booked":{},"closed":{}}},)"
          R"("bookings":{{"total":{},"pending":{},"confirmed":{},"failed":{},"cancelled":{}}},)"
          R"("fillRate":{:.4f},"conversion":{:.4f},"expiries":{},)"
          R"("sequencer":{{"commands":{},"rejections":{},"batches":{},"queueDepth":{}}}}})",
          c.as_of_seq, c.clinics, c.doctors, open_slots + closed, available, held, booked, closed,
          pending + confirmed + failed + cancelled, pending, confirmed, failed, cancelled,
          ratio(held + booked, open_slots), ratio(confirmed, confirmed + failed), failed,
          st.commands.load(), st.rejections.load(), st.batches.load(), seq.queue_depth()));
}

// The journal for audit: durable records from fromSeq (default 1), at most limit (100,
// at most 10,000), with the seq to ask for next.
HttpResponse list_events(const Sequencer& seq, const Target& target) {
  std::uint64_t from_seq = 1, limit = 100;
  if (auto p = target.param("fromSeq")) {
    auto v = id_from_text(*p);
    if (!v || *v == 0) return Api::error(400, "invalid_query", "fromSeq must be a positive integer");
    from_seq = *v;
  }
  if (auto p = target.param("limit")) {
    auto v = id_from_text(*p);
    if (!v || *v == 0 || *v > 10'000) {
      return Api::error(400, "invalid_query", "limit must be an integer from 1 to 10000");
    }
    limit = *v;
  }
  std::string body = R"({"events":[)";
  std::uint64_t next_seq = from_seq;
  bool first = true;
  JournalStatus st = seq.read_journal(from_seq, limit, [&](const JournalRecord& r) {
    if (!first) body += ',';
    first = false;
    append_event_json(body, r);
    next_seq = r.seq + 1;
    return true;
  });
  if (!st) return Api::error(500, "journal_unreadable", st.message);
  fmt::format_to(std::back_inserter(body), R"(],"fromSeq":{},"nextSeq":{},"lastSeq":{}}})",
                 from_seq, next_seq, seq.durable_seq());
  return json(200, std::move(body));
}

// ---- one handler per route ----------------------------------------------------------

// Everything a handler needs about one request.
struct Call {
  Sequencer& sequencer;
  const ApiOptions& options;
  const ServerStats& server_stats;
  HttpRequest& request;
  const Target& target;
  Respond& respond;
  bool admin;
  Id id;  // the route's :id, when it has one
  IdempotencyKey idempotency;  // from the Idempotency-Key header; empty key when none
};

// Unwraps a parsed value; on bad input answers 400 and returns nothing.
template <class T>
std::optional<T> take(Call& call, Parsed<T>&& parsed) {
  if (auto* bad = std::get_if<BadInput>(&parsed)) {
    call.respond(bad_request(*bad));
    return std::nullopt;
  }
  return std::get<T>(std::move(parsed));
}

std::optional<simdjson::dom::object> body_object(Call& call) {
  return take(call, parse_object(thread_parser(), call.request.body));
}

void get_doctors(Call& call) { call.respond(list_doctors(call.sequencer, call.target)); }

void post_doctors(Call& call) {
  auto obj = body_object(call);
  if (!obj) return;
  auto name = take(call, string_field(*obj, "name"));
  if (!name) return;
  auto specialty = take(call, string_field(*obj, "specialty"));
  if (!specialty) return;
  Id clinic_id = 1;  // clinic 1 always exists
  simdjson::dom::element present;
  if (!(*obj)["clinicId"].get(present)) {
    auto id = take(call, id_field(*obj, "clinicId"));
    if (!id) return;
    clinic_id = *id;
  }
  submit(call.sequencer, call.request, call.respond,
         AddDoctor{clinic_id, std::string(*name), std::string(*specialty)}, Actor::admin,
         [](CommandResult& r) {
           const auto& e = std::get<DoctorAdded>(r.events.at(0));
           std::string body;
           append_doctor(body, Doctor{e.doctor_id, e.clinic_id, e.name, e.specialty});
           body.pop_back();
           fmt::format_to(std::back_inserter(body), R"(,"seq":{}}})", r.seq);
           return json(201, std::move(body));
         });
}

void get_clinics(Call& call) { call.respond(list_clinics(call.sequencer)); }

void post_clinics(Call& call) {
  auto obj = body_object(call);
  if (!obj) return;
  auto name = take(call, string_field(*obj, "name"));
  if (!name) return;
  submit(call.sequencer, call.request, call.respond, AddClinic{std::string(*name)}, Actor::admin,
         [](CommandResult& r) {
           const auto& e = std::get<ClinicAdded>(r.events.at(0));
           std::string body;
           fmt::format_to(std::back_inserter(body), R"({{"id":{},"name":)", e.clinic_id);
           append_json_string(body, e.name);
           fmt::format_to(std::back_inserter(body), R"(,"seq":{}}})", r.seq);
           return json(201, std::move(body));
         });
}

std::optional<SlotSpan> span_of(Call& call, simdjson::dom::object obj) {
  auto start = take(call, instant_field(obj, "start"));
  if (!start) return std::nullopt;
  auto end = take(call, instant_field(obj, "end"));
  if (!end) return std::nullopt;
  return SlotSpan{*start, *end};
}

// One slot {"doctorId","start","end"} or many {"doctorId","slots":[…]}, all or nothing.
void post_slots(Call& call) {
  auto obj = body_object(call);
  if (!obj) return;
  auto doctor_id = take(call, id_field(*obj, "doctorId"));
  if (!doctor_id) return;
  CreateSlots command{*doctor_id, {}};
  simdjson::dom::element slots_element;
  const bool bulk = !(*obj)["slots"].get(slots_element);
  if (bulk) {
    simdjson::dom::array array;
    if (slots_element.get_array().get(array)) {
      return call.respond(bad_request(mistyped("slots", "an array of {\"start\",\"end\"}")));
    }
    if (array.size() > call.options.max_bulk_slots) {
      return call.respond(Api::error(
          413, "too_many_slots", fmt::format("at most {} slots per request", call.options.max_bulk_slots)));
    }
    command.spans.reserve(array.size());
    for (simdjson::dom::element item : array) {
      simdjson::dom::object span_object;
      if (item.get_object().get(span_object)) {
        return call.respond(bad_request(mistyped("slots[]", "an object {\"start\",\"end\"}")));
      }
      auto span = span_of(call, span_object);
      if (!span) return;
      command.spans.push_back(*span);
    }
  } else {
    auto span = span_of(call, *obj);
    if (!span) return;
    command.spans.push_back(*span);
  }
  submit(call.sequencer, call.request, call.respond, std::move(command), Actor::admin,
         [bulk](CommandResult& r) {
           std::string body;
           body.reserve(r.events.size() * 120 + 2);
           if (bulk) body += '[';
           const std::uint64_t first_seq = r.seq + 1 - r.events.size();
           for (std::size_t i = 0; i < r.events.size(); ++i) {
             const auto& e = std::get<SlotCreated>(r.events[i]);
             if (i) body += ',';
             append_slot_json(body, Slot{e.slot_id, e.doctor_id, e.start_ms, e.end_ms},
                              SlotStatus::available, first_seq + i);
           }
           if (bulk) body += ']';
           return json(201, std::move(body));
         });
}

void get_slots(Call& call) { call.respond(list_slots(call.sequencer, call.target, call.id)); }

void delete_slot(Call& call) {
  submit(call.sequencer, call.request, call.respond, CloseSlot{call.id}, Actor::admin,
         [slot_id = call.id](CommandResult& r) {
           return json(200, fmt::format(R"({{"id":{},"status":"CLOSED","seq":{}}})", slot_id, r.seq));
         });
}

// The 201 body of a new booking; also the replay of a retried POST /booking.
std::string booking_created_json(const Booking& b, std::uint64_t seq) {
  std::string body;
  body.reserve(256);
  fmt::format_to(std::back_inserter(body), R"({{"id":{},"slotId":{},"patientName":)", b.id,
                 b.slot_id);
  append_json_string(body, b.patient_name);
  body += R"(,"status":"PENDING","createdAt":")";
  append_iso8601(body, b.created_at_ms);
  body += R"(","expiresAt":")";
  append_iso8601(body, b.expires_at_ms);
  fmt::format_to(std::back_inserter(body), R"(","token":"{}","seq":{}}})", token_hex(b.token),
                 seq);
  return body;
}

// The first answer to a request remembered under `key`, rebuilt from the durable state.
std::function<HttpResponse()> replay_of(const Sequencer& seq, std::string key,
                                        std::function<HttpResponse(const Booking&, std::uint64_t)> answer) {
  if (key.empty()) return nullptr;
  return [&seq, key = std::move(key), answer = std::move(answer)] {
    return seq.reads().read([&](const Engine& e, std::uint64_t) {
      const RememberedRequest* done = e.remembered(key);
      const Booking* b = done ? e.booking(done->booking_id) : nullptr;
      if (!b) return Api::error(500, "internal", "a remembered request lost its booking");
      return answer(*b, done->seq);
    });
  };
}

void post_booking(Call& call) {
  auto obj = body_object(call);
  if (!obj) return;
  auto slot_id = take(call, id_field(*obj, "slotId"));
  if (!slot_id) return;
  auto name = take(call, string_field(*obj, "patientName"));
  if (!name) return;
  BookSlot command{*slot_id, std::string(*name), call.request.client_key, random_token(),
                   call.idempotency};
  submit(call.sequencer, call.request, call.respond, std::move(command), Actor::patient,
         [](CommandResult& r) {
           const auto& e = std::get<SlotHeld>(r.events.at(0));
           return json(201, booking_created_json(
                                Booking{e.booking_id, e.slot_id, e.patient_name, e.client_key,
                                        e.token, BookingStatus::pending, e.created_at_ms,
                                        e.expires_at_ms, 0, 0, r.seq},
                                r.seq));
         },
         replay_of(call.sequencer, call.idempotency.key, [](const Booking& b, std::uint64_t seq) {
           return json(201, booking_created_json(b, seq));
         }));
}

void get_booking_route(Call& call) {
  call.respond(get_booking(call.sequencer, call.request, call.target, call.id, call.admin));
}

// Confirm and cancel need the booking's token (or admin). The token never changes, so the
// durable read model can check it; an unknown booking is 404 before any token check.
void change_booking(Call& call, Command command, std::string_view new_status) {
  auto answer = [new_status](Id booking_id, std::uint64_t seq) {
    return json(200, fmt::format(R"({{"id":{},"status":"{}","seq":{}}})", booking_id, new_status, seq));
  };
  std::optional<Token> actual = call.sequencer.reads().read(
      [&](const Engine& e, std::uint64_t) -> std::optional<Token> {
        const Booking* b = e.booking(call.id);
        if (!b) return std::nullopt;
        return b->token;
      });
  if (!actual) return call.respond(Api::error(404, "booking_not_found", "no booking has this id"));
  if (!call.admin && !token_matches(presented_token(call.request, call.target), *actual)) {
    return call.respond(Api::error(
        403, "forbidden", "this needs the booking's token (X-Booking-Token) or the admin token"));
  }
  submit(call.sequencer, call.request, call.respond, std::move(command),
         call.admin ? Actor::admin : Actor::patient,
         [booking_id = call.id, answer](CommandResult& r) { return answer(booking_id, r.seq); },
         replay_of(call.sequencer, call.idempotency.key, [answer](const Booking& b, std::uint64_t seq) {
           return answer(b.id, seq);
         }));
}

void confirm_booking(Call& call) {
  change_booking(call, ConfirmBooking{call.id, call.idempotency}, "CONFIRMED");
}
void cancel_booking(Call& call) {
  change_booking(call, CancelBooking{call.id, call.idempotency}, "CANCELLED");
}

void get_admin_stats(Call& call) { call.respond(admin_stats(call.sequencer)); }
void get_events(Call& call) { call.respond(list_events(call.sequencer, call.target)); }

void get_healthz(Call& call) {
  call.respond(json(200, fmt::format(R"({{"status":"ok","seq":{}}})", call.sequencer.durable_seq())));
}

void get_metrics(Call& call) {
  const Sequencer& seq = call.sequencer;
  const SequencerStats& s = seq.stats();
  const ServerStats& server = call.server_stats;
  auto [pending, bookings, slots] = seq.reads().read([](const Engine& e, std::uint64_t) {
    return std::tuple{e.pending_count(), e.bookings().size(), e.slots().size()};
  });
  std::string body;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help,
                    auto value) {
    fmt::format_to(std::back_inserter(body), "# HELP slotd_{} {}\n# TYPE slotd_{} {}\nslotd_{} {}\n",
                   name, help, name, type, name, value);
  };
  metric("durable_seq", "gauge", "last journal seq synced to disk", seq.durable_seq());
  metric("queue_depth", "gauge", "commands waiting for the sequencer", seq.queue_depth());
  metric("batches_total", "counter", "group commits (one journal append + sync each)",
         s.batches.load());
  metric("commands_total", "counter", "commands decided", s.commands.load());
  metric("rejections_total", "counter", "commands refused", s.rejections.load());
  metric("events_total", "counter", "events journaled since start", s.events.load());
  metric("expired_total", "counter", "holds expired since start", s.expired.load());
  metric("queue_full_total", "counter", "commands refused with 503", s.queue_full.load());
  metric("journal_append_seconds_total", "counter", "time in journal writes incl. sync",
         static_cast<double>(s.journal_append_ns.load()) / 1e9);
  metric("replayed_events", "gauge", "events replayed at start", s.replayed_events.load());
  metric("pending_holds", "gauge", "PENDING bookings", pending);
  metric("bookings", "gauge", "bookings ever made", bookings);
  metric("slots", "gauge", "slots ever created", slots);
  metric("connections_open", "gauge", "open connections", server.connections_open.load());
  metric("connections_total", "counter", "accepted connections", server.connections_total.load());
  metric("connections_refused_total", "counter", "connections over the limit",
         server.connections_refused.load());
  metric("http_requests_total", "counter", "requests", server.requests_total.load());
  metric("http_responses_4xx_total", "counter", "4xx responses", server.responses_4xx.load());
  metric("http_responses_5xx_total", "counter", "5xx responses", server.responses_5xx.load());
  call.respond(HttpResponse{200, std::move(body), "text/plain; version=0.0.4"});
}

// ---- the route table ----------------------------------------------------------------

struct Route {
  std::string_view method;
  std::string_view path;  // "/"-separated; ":id" matches one segment, parsed as an id
  bool admin_only;
  void (*handler)(Call&);
};

constexpr Route kRoutes[] = {
    {"GET", "doctors", false, get_doctors},
    {"POST", "doctors", true, post_doctors},
    {"GET", "clinics", true, get_clinics},
    {"POST", "clinics", true, post_clinics},
    {"POST", "slots", true, post_slots},
    {"GET", "slots/:id", false, get_slots},
    {"DELETE", "slots/:id", true, delete_slot},
    {"POST", "booking", false, post_booking},
    {"GET", "booking/:id", false, get_booking_route},
    {"POST", "booking/:id/confirm", false, confirm_booking},
    {"POST", "booking/:id/cancel", false, cancel_booking},
    {"GET", "admin/stats", true, get_admin_stats},
    {"GET", "events", true, get_events},
    {"GET", "healthz", false, get_healthz},
    {"GET", "metrics", false, get_metrics},
};

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 200) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// What "the same request" means for an Idempotency-Key: method, path and body, byte for
// byte. FNV-1a 64: stable across builds and restarts, since it is journaled.
std::uint64_t request_hash(const HttpRequest& request, const Target& target) {
  std::uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;  // separator, so ("ab","c") and ("a","bc") differ
    h *= 1099511628211ULL;
  };
  mix(request.method);
  mix(std::string_view(target.url.encoded_path()));
  mix(request.body);
  return h;
}

// True when the segments fit the pattern; id_segment points at the ":id" segment if any.
bool path_matches(std::string_view pattern, const std::vector<std::string>& segments,
                  const std::string*& id_segment) {
  id_segment = nullptr;
  std::size_t i = 0;
  while (!pattern.empty()) {
    auto slash = pattern.find('/');
    std::string_view part = pattern.substr(0, slash);
    if (i >= segments.size()) return false;
    if (part == ":id") {
      id_segment = &segments[i];
    } else if (segments[i] != part) {
      return false;
    }
    ++i;
    pattern = slash == std::string_view::npos ? std::string_view{} : pattern.substr(slash + 1);
  }
  return i == segments.size();
}

}  // namespace

void Api::handle(HttpRequest&& request, Respond respond) {
  std::optional<Target> target = parse_target(request.target);
  if (!target) {
    return respond(error(400, "invalid_target", "the request target is not a valid path"));
  }
  bool path_known = false;
  for (const Route& route : kRoutes) {
    const std::string* id_segment = nullptr;
    if (!path_matches(route.path, target->segments, id_segment)) continue;
    path_known = true;
    if (route.method != request.method) continue;
    const bool admin = is_admin(request);
    if (route.admin_only && !admin) return respond(unauthorized());
    Id id = 0;
    if (id_segment) {
      auto parsed = id_from_text(*id_segment);
      if (!parsed) {
        return respond(error(400, "invalid_path", fmt::format("'{}' is not an integer id", *id_segment)));
      }
      id = *parsed;
    }
    IdempotencyKey idempotency;
    if (!request.idempotency_key.empty()) {
      if (!valid_idempotency_key(request.idempotency_key)) {
        return respond(error(400, "invalid_header",
                             "Idempotency-Key must be 1 to 200 visible ASCII characters"));
      }
      idempotency = {request.idempotency_key, request_hash(request, *target)};
    }
    Call call{sequencer_, options_, server_stats_, request, *target, respond, admin, id,
              std::move(idempotency)};
    return route.handler(call);
  }
  if (path_known) {
    return respond(error(405, "method_not_allowed",
                         fmt::format("{} is not allowed on {}", request.method, target->url.path())));
  }
  respond(error(404, "not_found", fmt::format("no route for {} {}", request.method, target->url.path())));
}

}  // namespace slotd
