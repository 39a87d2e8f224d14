// api/http_message — what the server takes from a parsed request header: the framing
// check (request smuggling) and the HttpRequest the Api sees.
//
// The templates read Beast's http::request (or anything with its interface) without
// including Beast, so only the translation units that include Beast instantiate them:
// server.cpp and the HTTP fuzz target (tests/fuzz/), which thus test the server's rules.
#pragma once

#include <cstddef>
#include <string_view>

#include "api/http.hpp"

namespace slotd {

// The header fields that decide where a request's body ends.
struct RequestFraming {
  unsigned version = 11;  // 10 = HTTP/1.0, 11 = HTTP/1.1
  std::size_t transfer_encoding_fields = 0;
  std::string_view transfer_encoding;  // the value when there is one field
  std::size_t content_length_fields = 0;
  std::string_view content_length;  // the value when there is one field
  std::size_t host_fields = 0;
};

// Framing that two parsers could read differently is refused (request smuggling):
// anything but exactly "Transfer-Encoding: chunked" (and that only in HTTP/1.1), both
// Transfer-Encoding and Content-Length, a Content-Length that is not one plain number
// (Beast takes "5, 5"), and HTTP/1.1 without exactly one Host.
// Returns why (for a 400), or an empty view when the framing is fine.
std::string_view framing_error(const RequestFraming& framing);

template <class Request>
RequestFraming framing_of(const Request& req) {
  RequestFraming f;
  f.version = req.version();
  f.transfer_encoding_fields = req.count("Transfer-Encoding");
  f.transfer_encoding = req["Transfer-Encoding"];
  f.content_length_fields = req.count("Content-Length");
  f.content_length = req["Content-Length"];
  f.host_fields = req.count("Host");
  return f;
}

// GET /ws is handed to the WebSocket feed, not to the Api.
inline bool is_feed_target(std::string_view target) {
  return target == "/ws" || target.starts_with("/ws?");
}

// The request as the Api sees it: views into `req`, valid while it lives. The identity
// and the request id are the connection's to fill in.
template <class Request>
HttpRequest api_request_of(const Request& req) {
  HttpRequest request;
  request.method = req.method_string();
  request.head = request.method == "HEAD";
  request.target = req.target();
  request.body = req.body();
  request.authorization = req["Authorization"];
  request.booking_token = req["X-Booking-Token"];
  request.waitlist_token = req["X-Waitlist-Token"];
  request.idempotency_key = req["Idempotency-Key"];
  request.if_none_match = req["If-None-Match"];
  return request;
}

}  // namespace slotd
