// Raw bytes from a client, as the server reads them: Beast's request parser with the
// server's limits, the server's framing rules (api/http_message.hpp), then the router and
// the handlers against a real sequencer (tests/fuzz/fuzz_world.hpp). An input may hold
// several pipelined requests; like the server, it stops at the first one that is refused
// at the HTTP level, incomplete, or not keep-alive. The peer is a trusted proxy, so the
// input's X-Forwarded-For and X-Client-Key pick the identity (api/identity).
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/http_message.hpp"
#include "api/identity.hpp"
#include "api/server.hpp"
#include "tests/fuzz/fuzz_world.hpp"

namespace http = boost::beast::http;
using namespace slotd;

namespace {

constexpr int kMaxRequestsPerInput = 8;

// Parses one request from the front of `rest`, consuming what the parser used. False when
// the server would answer with a 400 (or wait for more bytes) and close.
bool parse_one(std::string_view& rest, http::request_parser<http::string_body>& parser) {
  const ServerOptions limits;
  parser.body_limit(limits.max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  bool framing_checked = false;
  while (!parser.is_done()) {
    boost::beast::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
    rest.remove_prefix(used);
    // Nothing used and no error also means "more bytes" (the server's read loop then reads
    // the socket): with the whole input given, the request is incomplete.
    if (ec == http::error::need_more || (!ec && used == 0)) {
      if (used == 0) return false;  // incomplete: the server waits, then answers 408
      continue;
    }
    if (ec) return false;  // malformed, or over a limit: 400/413/431
    if (parser.is_header_done() && !framing_checked) {
      framing_checked = true;
      const std::string_view why = framing_error(framing_of(parser.get()));
      if (!why.empty()) return false;  // 400 bad_request
      // What the server refuses must be one of the smuggling shapes it names.
      const auto& req = parser.get();
      FUZZ_CHECK(req.count(http::field::content_length) <= 1, "two Content-Lengths passed");
      FUZZ_CHECK(!(req.count(http::field::transfer_encoding) > 0 &&
                   req.count(http::field::content_length) > 0),
                 "Transfer-Encoding and Content-Length passed together");
    }
  }
  return true;
}

const TrustedProxies& proxies() {
  static const TrustedProxies trusted = [] {
    std::string error;
    auto parsed = TrustedProxies::parse("127.0.0.1", error);
    FUZZ_CHECK(parsed.has_value(), "%s", error.c_str());
    return *parsed;
  }();
  return trusted;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzWorld& world = fuzz::FuzzWorld::get();
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < kMaxRequestsPerInput && !rest.empty(); ++i) {
    http::request_parser<http::string_body> parser;
    if (!parse_one(rest, parser)) break;
    const auto& req = parser.get();
    if (is_feed_target(req.target())) break;  // the WebSocket feed has its own target
    const std::string identity =
        client_identity("127.0.0.1", req["X-Forwarded-For"], req["X-Client-Key"], proxies());
    HttpRequest request = api_request_of(req);
    request.identity = identity;
    world.call(request);
    if (!req.keep_alive()) break;
  }
  world.end_input();
  return 0;
}
