// The Beast HTTP/WebSocket server: listener → http_session → websocket_session, one class
// each (server.cpp, the only Beast translation unit). This header is free of Beast so that
// main.cpp and tests stay cheap to compile.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "api/api.hpp"
#include "api/feed.hpp"
#include "api/identity.hpp"

namespace slotd {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  unsigned threads = 1;  // io threads, each with its own io_context
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  double request_timeout_s = 30;
  double idle_timeout_s = 60;
  std::size_t max_connections = 10'000;
  // Origins allowed on GET /ws (exact scheme://host[:port]); empty = loopback origins only.
  std::vector<std::string> allowed_origins;
  FeedLimits feed;
  std::size_t max_feed_connections_per_client = 64;  // 0 = no cap
  TrustedProxies trusted_proxies;
  // On SIGTERM: how long answers to commands accepted before the signal may take to go out.
  double shutdown_grace_s = 10;
};

class Server {
 public:
  // `sequencer` is the home partition's; `partitions` (home first) when the process serves
  // several: the feed follows any of them (api/feed.hpp).
  Server(ServerOptions options, Api& api, ServerStats& stats, Sequencer& sequencer,
         std::vector<FeedSource> partitions = {});
  ~Server();

  // Binds and listens; on failure returns false with a message.
  [[nodiscard]] bool listen(std::string& error);
  std::uint16_t bound_port() const;

  // The live feed: call from a sequencer observer with each durable batch (any thread);
  // `partition` is the batch's (api/partition.hpp).
  void publish(const std::shared_ptr<const BatchResults>& batch, std::uint32_t partition);

  // Serves until SIGINT/SIGTERM. On the signal it stops accepting, calls drain() (which
  // must complete every queued command: their answers are posted to the io threads),
  // waits until those answers are written (at most shutdown_grace_s), and returns.
  void run(const std::function<void()>& drain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slotd
