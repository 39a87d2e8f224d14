// The route table and request dispatch: target → route → auth → handler.
#include <random>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <fmt/format.h>

#include "api/auth.hpp"
#include "api/call.hpp"
#include "api/json_in.hpp"
#include "api/json_out.hpp"
#include "api/partition.hpp"
#include "journal/digest.hpp"

namespace slotd {
namespace {

constexpr Route kRoutes[] = {
    {"GET", "doctors", false, get_doctors, "list doctors (?clinicId=)"},
    {"POST", "doctors", true, post_doctors, "add a doctor"},
    {"GET", "clinics", false, get_clinics, "list clinics"},
    {"POST", "clinics", true, post_clinics, "add a clinic"},
    {"PATCH", "clinics/:id", true, patch_clinic, "rename a clinic or change its time zone"},
    {"POST", "slots", true, post_slots, "create one slot or many"},
    {"GET", "slots/:id", false, get_slots, "a doctor's slots (?from=&to=&status=)"},
    {"GET", "slots/:id/history", true, get_slot_history, "every journal event of a slot"},
    {"DELETE", "slots/:id", true, delete_slot, "close a slot"},
    {"POST", "booking", false, post_booking, "hold a slot: a PENDING booking"},
    {"GET", "booking/:id", false, get_booking, "a booking"},
    {"GET", "booking/:id/history", false, get_booking_history, "the journal events of a booking"},
    {"POST", "booking/:id/confirm", false, confirm_booking, "confirm a PENDING booking"},
    {"POST", "booking/:id/cancel", false, cancel_booking, "cancel a booking"},
    {"POST", "booking/:id/reschedule", false, reschedule_booking, "move a booking to another slot"},
    {"GET", "booking/:id/calendar.ics", false, get_booking_calendar, "a booking as iCalendar"},
    {"POST", "waitlist", false, post_waitlist, "wait for a slot of a doctor's day or range"},
    {"GET", "waitlist/:id", false, get_waitlist_entry, "a waitlist entry and its offer"},
    {"DELETE", "waitlist/:id", false, delete_waitlist_entry, "leave the waitlist"},
    {"GET", "admin/stats", true, get_admin_stats, "live counts and rates"},
    {"GET", "admin/bookings", true, get_admin_bookings, "bookings with patient names"},
    {"GET", "events", true, get_events, "the journal, for audit"},
    {"POST", "admin/webhooks", true, post_webhooks, "register a webhook endpoint"},
    {"GET", "admin/webhooks", true, get_webhooks, "webhook endpoints and their delivery state"},
    {"GET", "admin/webhooks/:id", true, get_webhook, "one webhook endpoint and its delivery state"},
    {"DELETE", "admin/webhooks/:id", true, delete_webhook, "delete a webhook endpoint"},
    {"POST", "admin/webhooks/:id/redeliver", true, redeliver_webhook,
     "move a webhook's cursor back (or resume it) and make it active"},
    {"GET", "healthz", false, get_healthz, "liveness and the durable seq"},
    {"GET", "metrics", false, get_metrics, "Prometheus metrics"},
    {"GET", "openapi.json", false, get_openapi, "this API as OpenAPI 3.1"},
};
static_assert(std::size(kRoutes) < RouteMetrics::kUnrouted);

}  // namespace

bool split_target(std::string_view raw, Target& t) {
  auto parsed = boost::urls::parse_origin_form(raw);
  if (!parsed) return false;
  const boost::urls::url_view url = *parsed;
  t.path = url.encoded_path();
  std::string_view rest = t.path;
  while (!rest.empty()) {
    auto slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (seg.empty()) continue;
    if (t.segment_count == t.segments.size()) return true;  // too deep for any route
    t.segments[t.segment_count++] = seg;
  }
  if (url.has_query()) {
    for (auto param : url.params()) t.params.emplace_back(param.key, param.value);
  }
  return true;
}

namespace {

// True when the segments fit the pattern; id_segment is set to the ":id" segment if any.
bool path_matches(std::string_view pattern, const Target& t, std::string_view& id_segment) {
  std::size_t i = 0;
  while (!pattern.empty()) {
    auto slash = pattern.find('/');
    std::string_view part = pattern.substr(0, slash);
    if (i >= t.segment_count) return false;
    if (part == ":id") {
      id_segment = t.segments[i];
    } else if (t.segments[i] != part) {
      return false;
    }
    ++i;
    pattern = slash == std::string_view::npos ? std::string_view{} : pattern.substr(slash + 1);
  }
  return i == t.segment_count;
}

// Idempotency-Keys are client-chosen secrets: long enough not to be guessed (use a UUID).
bool valid_idempotency_key(std::string_view key) {
  if (key.size() < 16 || key.size() > 200) return false;
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
  mix(target.path);
  mix(request.body);
  return h;
}

}  // namespace

std::span<const Route> routes() { return kRoutes; }

Api::Api(Sequencer& sequencer, ApiOptions options, const ServerStats& server_stats)
    : sequencer_(sequencer), options_(std::move(options)), server_stats_(server_stats),
      booking_limiter_(options_.booking_rate,
                       options_.booking_burst > 0 ? options_.booking_burst : options_.booking_rate),
      epoch_(std::random_device{}() & 0xffffff) {}

// An error answer to `request`; a 421 for a GET also gets a Location: the owner's URL with
// the same target.
static HttpResponse error_response_to(const HttpRequest& request, const ApiError& error) {
  HttpResponse r = error_response(error);
  if (!error.owner.empty() && (request.head || request.method == "GET")) {
    r.location = error.owner + std::string(request.target);
  }
  return r;
}

void Call::fail(const ApiError& error) { respond(error_response_to(request, error)); }

void Call::respond(HttpResponse&& response) {
  api.metrics().record(route, response.status, std::chrono::steady_clock::now() - started);
  responder.respond(std::move(response));
}

Submission Call::prepare(Command command, Actor actor, ReplyKind kind) {
  pending.api = &api;
  pending.kind = kind;
  pending.id = id;
  pending.route = route;
  pending.started = started;
  Submission s;
  s.command = std::move(command);
  s.actor = actor;
  s.request_id = request.request_id;
  s.target = responder.completion_target();
  s.tag = responder.completion_tag();
  return s;
}

void Call::submit(Command command, Actor actor, ReplyKind kind) {
  if (!api.sequencer().submit(prepare(std::move(command), actor, kind))) {
    fail(ApiError{503, "overloaded", "the server is busy; retry shortly", 1});
  }
}

std::function<void(HttpResponse&&)> Call::defer() {
  return [answer = responder.defer(), &metrics = api.metrics(), route = route,
          started = started](HttpResponse&& response) {
    metrics.record(route, response.status, std::chrono::steady_clock::now() - started);
    answer(std::move(response));
  };
}

HttpResponse json_reply(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse etag_reply(const Call& call, std::string etag,
                        std::shared_ptr<const std::string> body) {
  HttpResponse r;
  // If-None-Match may list several tags; a weak comparison is enough for a GET.
  if (!call.request.if_none_match.empty() &&
      (call.request.if_none_match == "*" ||
       call.request.if_none_match.find(etag) != std::string_view::npos)) {
    r.status = 304;
  } else {
    r.shared_body = std::move(body);
  }
  r.etag = std::move(etag);
  r.cache_control = "no-cache";
  return r;
}

// A write on a node that does not lead: the client retries at the leader, never a proxy.
static HttpResponse wrong_node(const ClusterRole& cluster) {
  const std::string leader = cluster.leader_url();
  if (leader.empty()) {
    return error_response(ApiError{503, "no_leader", "no node leads this partition right now; retry shortly", 1});
  }
  HttpResponse r;
  r.status = 421;
  r.body = R"({"error":{"code":"wrong_node","message":"this node does not take writes; send them to the leader","leader":)";
  append_json_string(r.body, leader);
  r.body += "}}";
  return r;
}

void Api::serve_partitions(std::vector<Api*> all) {
  for (Api* api : all) {
    if (api != this) api->home_ = this;
  }
  partitions_ = std::move(all);
}

void Api::handle(const HttpRequest& request, Responder& responder, PendingCommand& pending) {
  // One partition: only a ?partition= naming another one needs a look (never answered
  // with this partition's data).
  if (partitions_.size() > 1 || request.target.find("partition=") != std::string_view::npos) {
    Result<Api*> to = route(request);
    if (!to) {
      HttpResponse r = error_response_to(request, to.error());
      metrics_.record(RouteMetrics::kUnrouted, r.status, std::chrono::nanoseconds{0});
      return responder.respond(std::move(r));
    }
    return (*to)->handle_here(request, responder, pending);
  }
  handle_here(request, responder, pending);
}

void Api::handle_here(const HttpRequest& request, Responder& responder, PendingCommand& pending) {
  // Every id this request names or shows is this partition's (api/partition.hpp).
  const PartitionScope scope(options_.partition);
  const auto started = std::chrono::steady_clock::now();
  auto answer = [&](HttpResponse&& r) {
    metrics().record(RouteMetrics::kUnrouted, r.status, std::chrono::steady_clock::now() - started);
    responder.respond(std::move(r));
  };
  Target target;
  if (!split_target(request.target, target)) {
    return answer(error_response(400, "invalid_target", "the request target is not a valid path"));
  }
  const std::string_view method = request.head ? std::string_view("GET") : request.method;
  bool path_known = false;
  for (std::size_t r = 0; r < std::size(kRoutes); ++r) {
    const Route& route = kRoutes[r];
    std::string_view id_segment;
    if (!path_matches(route.path, target, id_segment)) continue;
    path_known = true;
    if (route.method != method) continue;
    Call call{*this, request, target, responder, pending, static_cast<std::uint16_t>(r), started};
    // The path's id first: another partition's goes straight to its owner, not through
    // this partition's leader.
    if (!id_segment.empty()) {
      auto parsed = id_from_text(id_segment);
      if (!parsed) {
        return call.fail(ApiError{400, "invalid_path",
                                  fmt::format("'{}' is not an integer id", id_segment)});
      }
      auto local = local_id(*parsed);
      if (!local) return call.fail(local.error());
      call.id = *local;
    }
    if (options_.cluster && method != "GET" && !options_.cluster->leading()) {
      return call.respond(wrong_node(*options_.cluster));
    }
    call.admin = is_admin(request.authorization, options_.admin_token);
    if (route.admin_only && !call.admin) return call.fail(unauthorized());
    call.client = client_digest(request.identity);
    if (!request.idempotency_key.empty()) {
      if (!valid_idempotency_key(request.idempotency_key)) {
        return call.fail(ApiError{
            400, "invalid_header",
            "Idempotency-Key must be 16 to 200 visible ASCII characters (use a UUID)"});
      }
      // Scoped to the caller: the same key from someone else is a different key.
      call.idempotency = {key_digest(request.identity, request.idempotency_key),
                          request_hash(request, target)};
    }
    return route.handler(call);
  }
  if (options_.web && (method == "GET")) {
    if (auto page = options_.web(request)) return answer(std::move(*page));
  }
  if (path_known) {
    return answer(error_response(405, "method_not_allowed",
                                 fmt::format("{} is not allowed on this path", request.method)));
  }
  answer(error_response(404, "not_found", "no route for this method and path"));
}

}  // namespace slotd
