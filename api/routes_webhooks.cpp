// Admin routes of webhook endpoints: register (checked, then a journaled command), list
// and show with delivery state, delete (journaled), redeliver (moves the stored cursor).
// Delivery itself is webhooks/'s, behind ApiOptions::webhooks (api/webhook_control.hpp).
#include <iterator>

#include <fmt/format.h>

#include "api/auth.hpp"
#include "api/call.hpp"
#include "api/iso_time.hpp"
#include "api/json_in.hpp"
#include "api/json_out.hpp"

namespace slotd {
namespace {

ApiError webhooks_unavailable() {
  return ApiError{503, "webhooks_unavailable", "webhook delivery is not running in this process"};
}

ApiError webhook_not_found() { return rejection_error(Rejection::webhook_not_found); }

std::string known_event_types() {
  std::string names;
  for (std::size_t i = 0; i < kWebhookEventTypes; ++i) {
    if (i) names += ", ";
    names += to_string(static_cast<WebhookEventType>(i));
  }
  return names;
}

// "events": a non-empty array of distinct event type names.
Result<std::uint32_t> events_field(JsonObject body) {
  simdjson::dom::element e;
  if (body["events"].get(e)) return ApiError{400, "missing_field", "field 'events' is required"};
  simdjson::dom::array names;
  if (e.get_array().get(names)) {
    return ApiError{400, "invalid_field", "field 'events' must be an array of event type names"};
  }
  std::uint32_t mask = 0;
  for (simdjson::dom::element item : names) {
    std::string_view name;
    if (item.get_string().get(name)) {
      return ApiError{400, "invalid_field", "field 'events' must be an array of event type names"};
    }
    std::uint32_t bit = 0;
    for (std::size_t i = 0; i < kWebhookEventTypes; ++i) {
      const auto type = static_cast<WebhookEventType>(i);
      if (to_string(type) == name) bit = webhook_event_bit(type);
    }
    if (bit == 0) {
      return ApiError{400, "invalid_field",
                      fmt::format("unknown event type in 'events'; known: {}", known_event_types())};
    }
    if (mask & bit) {
      return ApiError{400, "invalid_field", "field 'events' names an event type twice"};
    }
    mask |= bit;
  }
  if (mask == 0) {
    return ApiError{400, "invalid_field", "field 'events' must name at least one event type"};
  }
  return mask;
}

void append_optional_instant(std::string& out, std::string_view key, TimeMs ms) {
  fmt::format_to(std::back_inserter(out), R"(,"{}":)", key);
  append_iso8601_or_null(out, ms);
}

// A webhook as GET shows it: its registration (never the secret) and where delivery stands.
void append_webhook_json(std::string& out, const WebhookInfo& w, const WebhookDeliveryStatus& s,
                         std::uint64_t visible_seq) {
  auto it = std::back_inserter(out);
  fmt::format_to(it, R"({{"id":{},"url":)", external_id(w.id));
  append_json_string(out, w.url);
  out += R"(,"events":)";
  append_webhook_events_json(out, w.events);
  out += R"(,"clinicId":)";
  out += w.clinic_id ? std::to_string(external_id(w.clinic_id)) : std::string("null");
  fmt::format_to(it, R"(,"includePatient":{},"createdAt":")", w.include_patient);
  append_iso8601(out, w.created_at_ms);
  const std::uint64_t lag = s.next_seq > visible_seq ? 0 : visible_seq + 1 - s.next_seq;
  fmt::format_to(it,
                 R"(","seq":{},"delivery":{{"state":"{}","cursor":{},"lag":{},"attempts":{},"lastError":)",
                 w.registered_seq, s.state, s.next_seq, lag, s.attempts);
  if (s.last_error.empty()) {
    out += "null";
  } else {
    append_json_string(out, s.last_error);
  }
  append_optional_instant(out, "lastAttemptAt", s.last_attempt_at_ms);
  append_optional_instant(out, "nextAttemptAt", s.next_attempt_at_ms);
  fmt::format_to(it, R"(,"delivered":{},"failures":{},"retries":{}}}}})", s.delivered,
                 s.failed_attempts, s.retries);
}

// The live (not deleted) webhook of the route's :id, or nullptr.
const WebhookInfo* live_webhook(const WebhookList& list, Id id) {
  const WebhookInfo* w = list.find(id);
  return w && !w->deleted ? w : nullptr;
}

}  // namespace

// The destination is checked on the delivery thread (it may need DNS, which must not block
// an io thread); the command is submitted from there once it passes and answered like any
// command when its batch is durable.
void post_webhooks(Call& call) {
  WebhookControl* control = call.api.options().webhooks;
  if (!control) return call.fail(webhooks_unavailable());
  auto body = parse_body(call.request.body);
  if (!body) return call.fail(body.error());
  auto url = string_field(*body, "url");
  if (!url) return call.fail(url.error());
  if (url->size() > kMaxWebhookUrlBytes) {
    return call.fail(ApiError{400, "invalid_webhook_url",
                              fmt::format("the url may be at most {} bytes", kMaxWebhookUrlBytes)});
  }
  if (auto problem = control->url_problem(*url)) {
    return call.fail(ApiError{400, "invalid_webhook_url", *problem});
  }
  auto events = events_field(*body);
  if (!events) return call.fail(events.error());
  Id clinic_id = 0;
  if (has_field(*body, "clinicId")) {
    auto id = entity_id_field(*body, "clinicId");
    if (!id) return call.fail(id.error());
    if (*id == 0) return call.fail(rejection_error(Rejection::clinic_not_found));
    clinic_id = *id;
  }
  bool include_patient = false;
  if (has_field(*body, "includePatient")) {
    if ((*body)["includePatient"].get_bool().get(include_patient)) {
      return call.fail(ApiError{400, "invalid_field", "field 'includePatient' must be true or false"});
    }
  }
  RegisterWebhook command{std::string(*url), *events, clinic_id, include_patient,
                          random_webhook_secret()};
  auto answer = call.defer();
  Submission submission = call.prepare(std::move(command), Actor::admin, ReplyKind::webhook_registered);
  Sequencer& sequencer = call.api.sequencer();
  control->check_destination(
      std::string(*url),
      [answer, submission = std::move(submission), &sequencer](std::optional<std::string> refused) mutable {
        if (refused) return answer(error_response(400, "webhook_destination_refused", *refused));
        if (!sequencer.submit(std::move(submission))) {
          answer(error_response(ApiError{503, "overloaded", "the server is busy; retry shortly", 1}));
        }
      });
}

void get_webhooks(Call& call) {
  WebhookControl* control = call.api.options().webhooks;
  if (!control) return call.fail(webhooks_unavailable());
  const std::uint64_t visible = call.reads().as_of_seq();
  auto list = call.reads().webhooks();
  std::string body = R"({"webhooks":[)";
  bool first = true;
  for (const WebhookInfo& w : list->webhooks) {
    if (w.deleted) continue;
    auto status = control->status(w.id);
    if (!status) continue;  // deleted a moment ago
    if (!first) body += ',';
    first = false;
    append_webhook_json(body, w, *status, visible);
  }
  body += "]}";
  call.respond(json_reply(200, std::move(body)));
}

void get_webhook(Call& call) {
  WebhookControl* control = call.api.options().webhooks;
  if (!control) return call.fail(webhooks_unavailable());
  const std::uint64_t visible = call.reads().as_of_seq();
  auto list = call.reads().webhooks();
  const WebhookInfo* w = live_webhook(*list, call.id);
  auto status = w ? control->status(w->id) : std::nullopt;
  if (!status) return call.fail(webhook_not_found());
  std::string body;
  append_webhook_json(body, *w, *status, visible);
  call.respond(json_reply(200, std::move(body)));
}

void delete_webhook(Call& call) {
  call.submit(DeleteWebhook{call.id}, Actor::admin, ReplyKind::webhook_deleted);
}

// {"fromSeq":N} moves the cursor (1 to the durable seq + 1); without it the endpoint resumes
// from its cursor (re-enables a failing one). Answered once the new cursor is stored.
void redeliver_webhook(Call& call) {
  WebhookControl* control = call.api.options().webhooks;
  if (!control) return call.fail(webhooks_unavailable());
  if (!live_webhook(*call.reads().webhooks(), call.id)) return call.fail(webhook_not_found());
  std::optional<std::uint64_t> from_seq;
  if (!call.request.body.empty()) {
    auto body = parse_body(call.request.body);
    if (!body) return call.fail(body.error());
    if (has_field(*body, "fromSeq")) {
      auto from = id_field(*body, "fromSeq");
      if (!from) return call.fail(from.error());
      const std::uint64_t last = call.reads().as_of_seq();
      if (*from == 0 || *from > last + 1) {
        return call.fail(ApiError{
            400, "invalid_field",
            fmt::format("field 'fromSeq' must be from 1 to {} (the next seq)", last + 1)});
      }
      from_seq = *from;
    }
  }
  control->redeliver(call.id, from_seq,
                     [answer = call.defer(), control, id = call.id](std::string error) {
                       if (!error.empty()) {
                         return answer(error_response(500, "cursor_not_stored", error));
                       }
                       auto status = control->status(id);
                       if (!status) return answer(error_response(webhook_not_found()));
                       answer(json_reply(
                           200, fmt::format(R"({{"id":{},"cursor":{},"state":"{}"}})",
                                            external_id(id), status->next_seq, status->state)));
                     });
}

}  // namespace slotd
