// The Beast HTTP server: listener → http_session, one class each (server.cpp). This header
// is free of Beast so that main.cpp and tests stay cheap to compile.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <vector>

#include "api/api.hpp"
#include "api/feed.hpp"

namespace slotd {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  unsigned threads = 1;
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  double request_timeout_s = 30;
  double idle_timeout_s = 60;
  std::size_t max_connections = 10'000;
  std::vector<std::string> allowed_origins;  // for GET /ws; empty = same origin only
  std::size_t ws_queue_limit = 4'096;        // messages queued per WebSocket before closing it
};

class Server {
 public:
  Server(ServerOptions options, Api& api, ServerStats& stats, Sequencer& sequencer, FeedHub& hub);
  ~Server();

  // Binds and listens; on failure returns false with a message.
  [[nodiscard]] bool listen(std::string& error);
  std::uint16_t bound_port() const;

  // Serves until SIGINT/SIGTERM. On the signal it stops accepting, calls drain() (which
  // must complete every queued command: their replies are posted to the io threads),
  // lets those replies go out, and returns.
  void run(const std::function<void()>& drain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slotd
