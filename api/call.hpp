// api/call.hpp — what a route handler gets (one Call per request) and the handlers the
// route table (router.cpp) points at, one small file per group of routes. Internal to api/.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/api.hpp"
#include "api/errors.hpp"

namespace slotd {

// The request-target, split: path segments (still percent-encoded; ours are plain ASCII)
// and decoded query parameters.
struct Target {
  std::string_view path;
  std::array<std::string_view, 8> segments{};
  std::size_t segment_count = 0;
  std::vector<std::pair<std::string, std::string>> params;
  const std::string* param(std::string_view key) const {
    for (const auto& [k, v] : params) {
      if (k == key) return &v;
    }
    return nullptr;
  }
};

// Splits a request-target; false when it is not a valid origin-form target.
bool split_target(std::string_view raw, Target& t);

struct Call {
  Api& api;
  const HttpRequest& request;
  const Target& target;
  Responder& responder;
  PendingCommand& pending;
  std::uint16_t route;
  std::chrono::steady_clock::time_point started;
  bool admin = false;
  Id id = 0;                   // the route's :id, when it has one (the engine id)
  IdempotencyKey idempotency;  // scoped to the caller; empty when none was sent
  ClientId client = 0;         // the caller's identity digest

  const ReadStore& reads() const { return api.sequencer().reads(); }
  // The partitions a list or a tally covers: every partition of the process on the home
  // Api of a process serving several, unless ?partition= names one; else none (this Api's
  // own partition alone).
  std::span<Api* const> merged_partitions() const {
    if (api.partitions().size() < 2 || target.param("partition")) return {};
    return api.partitions();
  }
  void respond(HttpResponse&& response);
  // A 421 for a GET also gets a Location: the owner's URL with the same target.
  void fail(const ApiError& error);
  // Hands the command to the sequencer; the answer comes when its batch is durable
  // (Api::answer_command). A full queue is answered at once with 503.
  void submit(Command command, Actor actor, ReplyKind kind);
  // The same submission, prepared here (on the connection's thread) to be submitted later
  // from another thread; the connection waits for its answer.
  Submission prepare(Command command, Actor actor, ReplyKind kind);
  // An answer from another thread (Responder::defer), counted in the route's metrics.
  std::function<void(HttpResponse&&)> defer();
};

struct Route {
  std::string_view method;
  std::string_view path;  // "/"-separated; ":id" matches one segment, parsed as an id
  bool admin_only;
  void (*handler)(Call&);
  std::string_view summary;  // for /openapi.json and /metrics labels
};

// The route table, in the order it is matched.
std::span<const Route> routes();

// Handlers, by file.
// The booking token the caller presented (X-Booking-Token or ?token=), if well formed.
std::optional<Token> presented_token(const Call& call);  // routes_booking.cpp
// Takes one booking-rate token for the client; false after answering 429 (routes_booking.cpp).
bool take_booking_rate(Call& call);
// ?fromSeq= (default 1) and ?limit= (1 to 10,000, default `default_limit`) of a journal
// read; on a bad value the call is failed with 400 invalid_query and the result is empty.
struct JournalPage {
  std::uint64_t from_seq = 1;
  std::uint64_t limit = 0;
};
std::optional<JournalPage> journal_page(Call& call, std::uint64_t default_limit);  // routes_admin.cpp

void get_doctors(Call&);      // routes_catalog.cpp
void post_doctors(Call&);
void get_clinics(Call&);
void post_clinics(Call&);
void patch_clinic(Call&);
void post_slots(Call&);
void get_slots(Call&);
void delete_slot(Call&);
void post_booking(Call&);     // routes_booking.cpp
void get_booking(Call&);
void confirm_booking(Call&);
void cancel_booking(Call&);
void reschedule_booking(Call&);
void get_booking_calendar(Call&);
void post_waitlist(Call&);    // routes_waitlist.cpp
void get_waitlist_entry(Call&);
void delete_waitlist_entry(Call&);
void get_admin_stats(Call&);  // routes_admin.cpp
void get_admin_bookings(Call&);
void get_events(Call&);
void get_booking_history(Call&);  // routes_history.cpp
void get_slot_history(Call&);
void get_healthz(Call&);      // routes_ops.cpp
void get_metrics(Call&);
void get_openapi(Call&);
void post_webhooks(Call&);    // routes_webhooks.cpp
void get_webhooks(Call&);
void get_webhook(Call&);
void delete_webhook(Call&);
void redeliver_webhook(Call&);

// {"id","doctorId","from","to","patientName","status","createdAt","offer":null|{"bookingId",
// "slotId","status","expiresAt","token"}}: a waitlist entry for its holder.
void append_waitlist_entry_json(std::string& out, const WaitlistView& entry, const ReadStore& reads);

// A 200 JSON answer, with an ETag when the body shows a versioned view; If-None-Match
// with the same ETag gets 304 without a body.
HttpResponse json_reply(unsigned status, std::string body);
HttpResponse etag_reply(const Call& call, std::string etag,
                        std::shared_ptr<const std::string> body);

}  // namespace slotd
