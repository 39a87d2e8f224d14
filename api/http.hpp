// api/http.hpp — a request and a response as the API sees them, free of Beast.
//
// server.cpp (the only Beast translation unit) fills an HttpRequest from the parsed
// message and writes the HttpResponse back; everything else in api/ works on these.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace slotd {

// What follows "http://" or "https://" in `url` (an Origin, a base URL); empty when it has
// neither scheme.
inline std::string_view after_http_scheme(std::string_view url) {
  if (url.starts_with("http://")) return url.substr(7);
  if (url.starts_with("https://")) return url.substr(8);
  return {};
}

class CompletionTarget;
struct BatchResults;
struct CommandOutcome;

// Views into the connection's parsed message: valid until the response is sent.
struct HttpRequest {
  std::string_view method;  // "GET", "POST", …
  std::string_view target;  // the raw request-target: /slots/3?from=…
  std::string_view body;
  std::string_view authorization;    // Authorization header
  std::string_view booking_token;    // X-Booking-Token header
  std::string_view waitlist_token;   // X-Waitlist-Token header
  std::string_view idempotency_key;  // Idempotency-Key header
  std::string_view if_none_match;    // If-None-Match header
  // Who is asking: the peer address, or what a trusted proxy says (api/identity.hpp).
  std::string_view identity;
  std::uint64_t request_id = 0;  // also sent back as X-Request-Id
  bool head = false;             // a HEAD request: the body is not sent
};

struct HttpResponse {
  unsigned status = 200;
  std::string body;
  // A body shared by many answers (a cached view); sent instead of `body` when set.
  std::shared_ptr<const std::string> shared_body;
  std::string_view content_type = "application/json";
  std::string etag;                 // sent as ETag when not empty
  std::string_view cache_control;   // sent as Cache-Control when not empty
  unsigned retry_after_s = 0;       // sent as Retry-After when not zero
  std::string location;             // sent as Location when not empty

  std::string_view body_view() const { return shared_body ? *shared_body : body; }
};

// The connection a request came on. The Api answers each request exactly once, through
// respond() (at once, for reads and refusals) or, for commands, through the sequencer's
// completion of the connection's target with `tag`, then answer_command().
class Responder {
 public:
  virtual ~Responder() = default;
  // Called on the connection's thread.
  virtual void respond(HttpResponse&& response) = 0;
  // Where the sequencer completes this connection's commands, and the tag it passes back;
  // nullptr = no target (the Api then completes through a function, e.g. in tests).
  virtual CompletionTarget* completion_target() = 0;
  virtual std::uint64_t completion_tag() = 0;
  // For an answer decided on another thread (e.g. after a DNS lookup): a function to call
  // once, from any thread, that answers on the connection's thread. The connection waits
  // for it like for a command's answer.
  virtual std::function<void(HttpResponse&&)> defer() = 0;
};

// Connection-level counters the server keeps, shown by /metrics.
struct ServerStats {
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> connections_refused{0};
  std::atomic<std::uint64_t> accept_errors{0};
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> responses_4xx{0};
  std::atomic<std::uint64_t> responses_5xx{0};
  std::atomic<std::uint64_t> ws_connections_open{0};
  std::atomic<std::uint64_t> ws_queue_bytes{0};
  std::atomic<std::uint64_t> ws_slow_closed{0};
  std::atomic<std::uint64_t> ws_messages_sent{0};
  std::atomic<std::uint64_t> ws_socket_writes{0};
};

}  // namespace slotd
