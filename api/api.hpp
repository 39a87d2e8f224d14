// api/ — the HTTP face of slotd: routes, request parsing (simdjson), replies (fmt), auth.
//
// This file and api.cpp know nothing of sockets: server.cpp (Beast) turns bytes into an
// HttpRequest and sends the HttpResponse back. Writes go to the sequencer and are answered
// only once durable; reads come from its read model and never pass through the sequencer.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "sequencer/sequencer.hpp"

namespace slotd {

struct HttpRequest {
  std::string method;  // "GET", "POST", …
  std::string target;  // the raw request-target: /slots/3?from=…
  std::string body;
  std::string authorization;     // Authorization header
  std::string booking_token;     // X-Booking-Token header
  std::string client_key;        // X-Client-Key header, else the peer address
  std::string idempotency_key;   // Idempotency-Key header
  std::string if_none_match;     // If-None-Match header (web UI files)
  std::uint64_t request_id = 0;  // also sent back as X-Request-Id
  // Runs a function on the connection's executor; completions from the sequencer use it
  // so that replies are formatted and written on an io thread, not the sequencer's.
  std::function<void(std::function<void()>)> post_to_io;
};

struct HttpResponse {
  unsigned status = 200;
  std::string body;
  std::string_view content_type = "application/json";
  std::string etag;                 // ETag header when not empty (web UI files)
  std::string_view cache_control;   // Cache-Control header when not empty
};

// Called exactly once per request, on the connection's executor.
using Respond = std::function<void(HttpResponse&&)>;

// Connection-level counters the server keeps, shown by /metrics.
struct ServerStats {
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> connections_refused{0};
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> responses_4xx{0};
  std::atomic<std::uint64_t> responses_5xx{0};
};

struct ApiOptions {
  std::string admin_token;
  std::uint32_t max_bulk_slots = 10'000;
  std::string web_dir;  // serve the web UI from this folder; empty: the copy built in
};

class WebAssets;

class Api {
 public:
  Api(Sequencer& sequencer, ApiOptions options, const ServerStats& server_stats);
  ~Api();
  void handle(HttpRequest&& request, Respond respond);

  // Builds the uniform error body {"error":{"code","message"}}.
  static HttpResponse error(unsigned status, std::string_view code, std::string_view message);

 private:
  bool is_admin(const HttpRequest& request) const;

  Sequencer& sequencer_;
  ApiOptions options_;
  const ServerStats& server_stats_;
  std::unique_ptr<const WebAssets> web_;  // the web UI's pages and files
};

}  // namespace slotd
