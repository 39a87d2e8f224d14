// The only translation unit that includes Beast (compile cost: keep it that way).
//
// One io_context per io thread, each run by exactly one thread: a connection lives on one
// of them for its whole life, so nothing of a connection needs a strand or a lock. The
// sequencer completes commands with one post per io thread per durable batch. A GET /ws
// connection moves, once upgraded, to the feed thread (its own io_context, nice 10),
// where the durable batches are rendered and fanned out.
#include "api/server.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "api/errors.hpp"
#include "api/feed_stream.hpp"
#include "api/partition.hpp"
#include "api/http_message.hpp"

namespace slotd {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr int kFeedNice = 10;  // the feed thread's nice value (HTTP io threads keep 0)
// At most this much is read at once while a connection waits for its next request.
constexpr std::size_t kFirstReadBytes = 16 * 1024;

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

class HttpSession;
class WebSocketSession;
struct Shared;

// An HTTP connection's socket: bound to its io_context's own executor type, not to the
// type-erased any_io_executor, whose copies and destructions were about 1 % of slotd's
// samples under booking load.
using HttpSocket = net::basic_stream_socket<tcp, net::io_context::executor_type>;

// How often an io thread checks its HTTP connections' deadlines (see IoThread::sweep).
constexpr auto kDeadlineSweepEvery = std::chrono::milliseconds(100);

// An io thread: its io_context, the target the sequencer completes its commands on, the
// feed subscribers that live on it, and the deadlines of its HTTP connections.
//
// Deadlines: a connection stores when its current phase must end (a time, no timer), and
// one timer per io thread checks them all every kDeadlineSweepEvery while connections are
// open. One Asio timer per connection, armed and cancelled two or three times per request
// (and Beast's tcp_stream timer on every read and write), cost timer-queue work, a
// completion for every cancellation and a timerfd_settime call whenever the earliest
// deadline moved: about 5 % of slotd's samples under booking load. A timeout now fires up
// to kDeadlineSweepEvery late.
struct IoThread : CompletionTarget {
  explicit IoThread(Shared& shared) : ioc(1), shared(shared), sweep_timer(ioc) {}
  void complete(std::shared_ptr<const BatchResults> batch,
                std::vector<std::uint32_t> indexes) override;
  void watch(const std::shared_ptr<HttpSession>& session);  // on this thread
  void schedule_sweep();
  void sweep();

  net::io_context ioc;
  Shared& shared;
  std::vector<std::weak_ptr<WebSocketSession>> subscribers;  // touched on this thread only
  std::vector<std::weak_ptr<HttpSession>> watched;           // touched on this thread only
  net::steady_timer sweep_timer;
  bool sweeping = false;
};

struct Shared {
  ServerOptions options;
  Api& api;
  ServerStats& stats;
  Sequencer& sequencer;
  std::vector<FeedSource> partitions;  // home first, when the process serves several
  std::atomic<std::uint64_t> next_request_id{0};
  std::atomic<std::size_t> next_io{0};
  std::atomic<bool> shutting_down{false};
  std::atomic<std::int64_t> in_flight{0};  // requests read and not yet answered
  std::mutex feed_clients_mutex;
  // Open feeds per identity. Not <std::string, std::size_t>: tests/tsan.supp silences that
  // instantiation, which RocksDB's own (uninstrumented) SstFileManager uses.
  std::unordered_map<std::string, std::uint32_t> feed_clients;
  // The io contexts come last, so they are destroyed first: the sessions their pending
  // handlers still hold are destroyed with them and use the members above.
  std::vector<std::unique_ptr<IoThread>> io;
  // The feed's own thread: every GET /ws connection lives there once upgraded, and the
  // durable batches are rendered and fanned out there, so that a busy feed takes CPU from
  // itself, not from the io threads that answer HTTP. It runs at a lower priority (nice).
  std::unique_ptr<IoThread> feed;
};

// "Date:" is required of an origin server with a clock; formatted once per second.
std::string_view http_date() {
  thread_local std::time_t cached_second = 0;
  thread_local char buffer[40];
  thread_local std::size_t length = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    cached_second = now;
    std::tm tm{};
    gmtime_r(&now, &tm);
    length = std::strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  }
  return {buffer, length};
}

// Only loopback origins are trusted by default (a page on localhost), whatever the Host
// header says: a DNS-rebound name pointing at 127.0.0.1 is not loopback by name.
bool loopback_origin(std::string_view origin) {
  std::string_view host = after_http_scheme(origin);
  if (host.empty()) return false;
  if (host.starts_with("[")) {
    auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view port = host.substr(close + 1);
    if (!port.empty() && (!port.starts_with(":") || port.size() == 1 ||
                          port.find_first_not_of("0123456789", 1) != std::string_view::npos)) {
      return false;
    }
    return host.substr(1, close - 1) == "::1";
  }
  const auto colon = host.find(':');
  if (colon != std::string_view::npos) {
    std::string_view port = host.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos) return false;
    host = host.substr(0, colon);
  }
  if (host == "localhost") return true;
  return host.starts_with("127.") && host.find_first_not_of("0123456789.") == std::string_view::npos;
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;  // not a browser
  if (allowed.empty()) return loopback_origin(origin);
  for (const std::string& a : allowed) {
    if (beast::iequals(a, origin)) return true;
  }
  return false;
}

// ---- WebSocket -----------------------------------------------------------------------

// One GET /ws connection. The protocol lives in FeedSession; this class moves its frames
// into the FeedStream under Beast, as many as fit one buffer, one socket write at a time.
class WebSocketSession : public std::enable_shared_from_this<WebSocketSession> {
 public:
  WebSocketSession(tcp::socket&& socket, Shared& shared, IoThread& io, std::string identity)
      : ws_(std::move(socket)), shared_(shared), io_(io), feed_(shared.sequencer, shared.options.feed, shared.partitions),
        identity_(std::move(identity)), stuck_timer_(io.ioc) {
    shared_.stats.connections_open.fetch_add(1);
    shared_.stats.ws_connections_open.fetch_add(1);
  }
  ~WebSocketSession() {
    shared_.stats.connections_open.fetch_sub(1);
    shared_.stats.ws_connections_open.fetch_sub(1);
    shared_.stats.ws_queue_bytes.fetch_sub(reported_bytes_);
    std::lock_guard lock(shared_.feed_clients_mutex);
    auto it = shared_.feed_clients.find(identity_);
    if (it != shared_.feed_clients.end() && --it->second == 0) shared_.feed_clients.erase(it);
  }

  void run(http::request<http::string_body> request) {
    ws_.next_layer().attach(weak_from_this(), [this] { drained(); });
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(64 << 10);
    ws_.auto_fragment(false);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "slotd");
    }));
    ws_.async_accept(request, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->io_.subscribers.push_back(self);
      self->read();
    });
  }

  // A durable batch, rendered once for everyone (on this session's io thread).
  void deliver(const std::shared_ptr<const RenderedBatch>& batch) {
    if (closed_) return;
    feed_.on_batch(batch);
    pump();
  }

  bool closed() const { return closed_; }

 private:
  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->finish();
      std::string_view text(static_cast<const char*>(self->in_.data().data()), self->in_.size());
      self->feed_.on_message(text);
      self->in_.consume(self->in_.size());
      self->pump();
      if (!self->closed_) self->read();
    });
  }

  // Queued in the FeedSession, plus buffered here and not yet taken by the socket.
  void report_bytes() {
    const std::size_t now = feed_.queued_bytes() + ws_.next_layer().buffered();
    if (now >= reported_bytes_) {
      shared_.stats.ws_queue_bytes.fetch_add(now - reported_bytes_, std::memory_order_relaxed);
    } else {
      shared_.stats.ws_queue_bytes.fetch_sub(reported_bytes_ - now, std::memory_order_relaxed);
    }
    reported_bytes_ = now;
  }

  // When the socket is free, moves the next frames into one buffer (up to kBufferBytes) and
  // sends it: snapshots and catch-ups are produced page by page only as fast as the client
  // reads them, and live messages wait in the FeedSession's queue, bounded in bytes.
  void pump() {
    FeedStream& out = ws_.next_layer();
    if (closed_ || closing_ || out.writing()) return report_bytes();
    if (out.failed()) return finish();
    while (!feed_.slow() && out.buffered() < kBufferBytes) {
      auto frame = feed_.next_frame();
      if (!frame) break;
      out.append_text_frame(frame->bytes, !in_message_, frame->fin);
      in_message_ = !frame->fin;
      if (frame->fin) ++messages_in_socket_;
    }
    report_bytes();
    if (feed_.slow()) return close_slow();
    out.flush();
  }

  // The buffer went out (or the socket failed): count it, then fill the next one.
  void drained() {
    if (!ws_.next_layer().failed()) {
      shared_.stats.ws_socket_writes.fetch_add(1, std::memory_order_relaxed);
      shared_.stats.ws_messages_sent.fetch_add(messages_in_socket_, std::memory_order_relaxed);
    }
    messages_in_socket_ = 0;
    pump();
  }

  // A consumer that cannot keep up is closed with 1008 (it can resume with fromSeq). If
  // its socket does not even take the close frame, the connection is dropped.
  void close_slow() {
    if (closed_) return;
    if (!closing_) {
      closing_ = true;
      shared_.stats.ws_slow_closed.fetch_add(1, std::memory_order_relaxed);
      stuck_timer_.expires_after(std::chrono::seconds(2));
      stuck_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec || self->closed_) return;
        beast::error_code ignored;
        beast::get_lowest_layer(self->ws_).socket().close(ignored);
        self->finish();
      });
      // The close frame goes after the bytes already buffered; nothing follows it.
      ws_.async_close(websocket::close_reason(websocket::close_code::policy_error,
                                              "slow consumer: outbound queue full"),
                      [self = shared_from_this()](beast::error_code) { self->finish(); });
    }
  }

  void finish() {
    closed_ = true;
    stuck_timer_.cancel();
  }

  static constexpr std::size_t kBufferBytes = 32 << 10;  // one socket write, about

  websocket::stream<FeedStream> ws_;
  Shared& shared_;
  IoThread& io_;
  FeedSession feed_;
  std::string identity_;
  net::steady_timer stuck_timer_;
  beast::flat_buffer in_;
  std::size_t reported_bytes_ = 0;
  std::uint64_t messages_in_socket_ = 0;  // whole messages in the buffer being written
  bool in_message_ = false;               // a message's last fragment is still to come
  bool closing_ = false;
  bool closed_ = false;
};

// ---- HTTP ----------------------------------------------------------------------------

// One HTTP/1.1 connection: read a request, hand it to the Api, write the answer when the
// Api gives it (for commands: after the batch is durable), then read the next. Requests of
// a pipelining client wait in the buffer, so answers keep their order.
class HttpSession : public std::enable_shared_from_this<HttpSession>, public Responder {
 public:
  HttpSession(HttpSocket&& socket, Shared& shared, IoThread& io)
      : socket_(std::move(socket)), shared_(shared), io_(io) {
    beast::error_code ec;
    auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) peer_ = endpoint.address().to_string();
    if (shared_.options.trusted_proxies.empty()) peer_identity_ = address_identity(peer_);
    shared_.stats.connections_open.fetch_add(1);
    shared_.stats.connections_total.fetch_add(1);
  }
  ~HttpSession() override { shared_.stats.connections_open.fetch_sub(1); }

  void start() {
    io_.watch(shared_from_this());
    read_header();
  }

  // Called by the io thread's sweep: past its deadline, the connection's pending read or
  // write is cancelled, and its handler sees timed_out_. False once the connection is
  // closed (the sweep forgets it).
  bool check_deadline(std::chrono::steady_clock::time_point now) {
    if (!socket_.is_open()) return false;
    if (now < deadline_) return true;
    deadline_ = kNoDeadline;
    timed_out_ = true;
    beast::error_code ec;
    socket_.cancel(ec);
    return true;
  }

  // ---- Responder ----
  void respond(HttpResponse&& response) override {
    auto keep = std::move(self_);  // a command's self-reference ends with its answer
    write(std::move(response), false);
  }
  CompletionTarget* completion_target() override { return &io_; }
  std::uint64_t completion_tag() override {
    self_ = shared_from_this();  // alive until the sequencer answers
    return reinterpret_cast<std::uint64_t>(this);
  }

  std::function<void(HttpResponse&&)> defer() override {
    return [self = shared_from_this(), &ioc = io_.ioc](HttpResponse&& response) {
      net::post(ioc, [self, response = std::move(response)]() mutable {
        self->respond(std::move(response));
      });
    };
  }

  void command_done(const BatchResults& batch, std::uint32_t index) {
    auto keep = std::move(self_);
    write(shared_.api.answer_command(pending_, batch, index), false);
  }

 private:
  static constexpr auto kNoDeadline = std::chrono::steady_clock::time_point::max();

  // One deadline per phase (idle, reading a request, writing an answer), checked by the io
  // thread's sweep.
  void arm_deadline(double timeout_s) {
    timed_out_ = false;
    deadline_ = std::chrono::steady_clock::now() + seconds(timeout_s);
  }

  void disarm_deadline() { deadline_ = kNoDeadline; }

  // Between requests the connection may idle for idle_timeout; from the first byte of a
  // request on, the whole request must arrive within request_timeout (else 408).
  void read_header() {
    parser_.emplace();
    parser_->body_limit(shared_.options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(shared_.options.max_header_bytes));
    request_id_ = 0;
    if (buffer_.size() > 0) return read_header_bytes();  // a pipelined request is waiting
    arm_deadline(shared_.options.idle_timeout_s);
    // Waits for the first bytes by reading them, not with async_wait(wait_read): Asio
    // re-registers the socket with epoll_ctl for every wait, but not for a read (the socket
    // stays registered for input). That syscall was 3-4 % of slotd's samples under
    // booking load. The bytes read stay in buffer_, where the header parser starts.
    socket_.async_read_some(
        buffer_.prepare(beast::read_size(buffer_, kFirstReadBytes)),
        [self = shared_from_this()](beast::error_code ec, std::size_t n) {
          if (ec) return self->on_read_error(ec);
          self->buffer_.commit(n);
          self->read_header_bytes();
        });
  }

  void read_header_bytes() {
    arm_deadline(shared_.options.request_timeout_s);
    http::async_read_header(socket_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    const auto& req = parser_->get();
    if (auto why = framing_error(framing_of(req)); !why.empty()) {
      return send_error_and_close(400, "bad_request", why);
    }
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      // Answer before reading the body so that curl & co. do not wait a second.
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(socket_, *cont,
                        [self = shared_from_this(), cont](beast::error_code wec, std::size_t) {
                          if (wec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(socket_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_body, shared_from_this()));
  }

  void on_read_error(beast::error_code ec) {
    disarm_deadline();
    if (ec == http::error::end_of_stream || ec == net::error::eof) return close();
    if (timed_out_) {
      // Silence on an idle keep-alive connection just ends it; a half-sent request gets 408.
      if (parser_->got_some() || buffer_.size() > 0) {
        return send_error_and_close(408, "request_timeout", "the request took too long to arrive");
      }
      return close();
    }
    if (ec == http::error::body_limit) {
      return send_error_and_close(
          413, "body_too_large",
          "the request body is larger than " + std::to_string(shared_.options.max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return send_error_and_close(431, "header_too_large", "the request header is too large");
    }
    if (ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      return close();
    }
    send_error_and_close(400, "bad_request", "malformed HTTP request: " + ec.message());
  }

  std::string_view identity(const http::request<http::string_body>& req) {
    if (!peer_identity_.empty()) return peer_identity_;
    request_identity_ = client_identity(peer_, req["X-Forwarded-For"], req["X-Client-Key"],
                                        shared_.options.trusted_proxies);
    return request_identity_;
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    disarm_deadline();  // the Api answers when the batch is durable
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive() && !shared_.shutting_down.load(std::memory_order_relaxed);
    version_ = req.version();
    request_id_ = next_request_id();
    shared_.stats.requests_total.fetch_add(1, std::memory_order_relaxed);
    shared_.in_flight.fetch_add(1, std::memory_order_relaxed);
    answered_ = false;
    if (is_feed_target(req.target())) return upgrade();

    HttpRequest request = api_request_of(req);
    request.identity = identity(req);
    request.request_id = request_id_;
    head_ = request.head;
    shared_.api.handle(request, *this, pending_);
  }

  std::uint64_t next_request_id() {
    return shared_.next_request_id.fetch_add(1, std::memory_order_relaxed);
  }

  // GET /ws: check the Origin and the per-client cap, then hand the socket over.
  void upgrade() {
    auto& req = parser_->get();
    if (!websocket::is_upgrade(req)) {
      return write(error_response(426, "upgrade_required", "GET /ws is a WebSocket endpoint"), false);
    }
    if (!origin_allowed(req[http::field::origin], shared_.options.allowed_origins)) {
      return send_error_and_close(403, "forbidden_origin", "this Origin may not open the feed");
    }
    std::string who(identity(req));
    if (const std::size_t cap = shared_.options.max_feed_connections_per_client) {
      std::lock_guard lock(shared_.feed_clients_mutex);
      std::uint32_t& open = shared_.feed_clients[who];
      if (open >= cap) {
        if (open == 0) shared_.feed_clients.erase(who);
        return send_error_and_close(429, "too_many_feed_connections",
                                    "this client has the most feed connections allowed open");
      }
      ++open;
    } else {
      std::lock_guard lock(shared_.feed_clients_mutex);
      ++shared_.feed_clients[who];
    }
    disarm_deadline();
    answered_ = true;  // the WebSocket session answers from here on
    shared_.in_flight.fetch_sub(1, std::memory_order_relaxed);
    // The connection moves to the feed thread: its descriptor, re-opened on that thread's
    // io_context. (If that fails, the session starts here, and its handshake fails.)
    beast::error_code ec;
    const tcp protocol = socket_.local_endpoint(ec).protocol();
    const int fd = ec ? -1 : socket_.release(ec);
    if (ec || fd < 0) {
      std::make_shared<WebSocketSession>(tcp::socket(std::move(socket_)), shared_, io_, std::move(who))
          ->run(parser_->release());
      return;
    }
    net::post(shared_.feed->ioc, [&shared = shared_, protocol, fd, who = std::move(who),
                                  request = parser_->release()]() mutable {
      tcp::socket moved(shared.feed->ioc);
      beast::error_code ec;
      moved.assign(protocol, fd, ec);
      if (ec) ::close(fd);
      std::make_shared<WebSocketSession>(std::move(moved), shared, *shared.feed, std::move(who))
          ->run(std::move(request));
    });
  }

  void send_error_and_close(unsigned status, std::string_view code, std::string_view message) {
    keep_alive_ = false;
    version_ = 11;
    head_ = false;
    // A request that could not be parsed has no id of its own yet: never reuse the
    // previous request's.
    if (request_id_ == 0) request_id_ = next_request_id();
    if (answered_) {  // not counted yet: it failed before on_body
      shared_.in_flight.fetch_add(1, std::memory_order_relaxed);
      answered_ = false;
    }
    write(error_response(status, code, message), true);
  }

  void serialize_head(const HttpResponse& r, std::size_t body_size, bool keep_alive) {
    header_.clear();
    header_ += version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    header_ += std::to_string(r.status);
    header_ += ' ';
    header_ += http::obsolete_reason(static_cast<http::status>(r.status));
    header_ += "\r\nServer: slotd\r\nDate: ";
    header_ += http_date();
    header_ += "\r\nX-Request-Id: ";
    header_ += std::to_string(request_id_);
    if (r.status != 304) {
      header_ += "\r\nContent-Type: ";
      header_ += r.content_type;
      header_ += "\r\nContent-Length: ";
      header_ += std::to_string(body_size);
    }
    if (!r.etag.empty()) {
      header_ += "\r\nETag: ";
      header_ += r.etag;
    }
    if (!r.cache_control.empty()) {
      header_ += "\r\nCache-Control: ";
      header_ += r.cache_control;
    }
    if (r.retry_after_s) {
      header_ += "\r\nRetry-After: ";
      header_ += std::to_string(r.retry_after_s);
    }
    if (!r.location.empty()) {
      header_ += "\r\nLocation: ";
      header_ += r.location;
    }
    if (!keep_alive) {
      header_ += "\r\nConnection: close";
    } else if (version_ == 10) {
      header_ += "\r\nConnection: keep-alive";
    }
    header_ += "\r\n\r\n";
  }

  void write(HttpResponse&& r, bool force_close) {
    if (answered_) return;  // exactly one answer per request
    answered_ = true;
    if (r.status >= 500) {
      shared_.stats.responses_5xx.fetch_add(1, std::memory_order_relaxed);
    } else if (r.status >= 400) {
      shared_.stats.responses_4xx.fetch_add(1, std::memory_order_relaxed);
    }
    const bool keep_alive = keep_alive_ && !force_close && !shared_.shutting_down.load(std::memory_order_relaxed);
    response_ = std::move(r);
    const std::string_view body = response_.body_view();
    serialize_head(response_, body.size(), keep_alive);
    const bool send_body = !head_ && response_.status != 304;
    std::array<net::const_buffer, 2> buffers{net::buffer(header_),
                                             net::buffer(body.data(), send_body ? body.size() : 0)};
    // A client that stops reading must not hold the session forever.
    arm_deadline(shared_.options.request_timeout_s);
    net::async_write(socket_, buffers,
                     [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                       self->shared_.in_flight.fetch_sub(1, std::memory_order_relaxed);
                       self->response_ = HttpResponse{};
                       if (ec || !keep_alive) return self->close();
                       self->read_header();
                     });
  }

  void close() {
    disarm_deadline();
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    socket_.close(ec);
  }

  HttpSocket socket_;
  std::chrono::steady_clock::time_point deadline_ = kNoDeadline;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Shared& shared_;
  IoThread& io_;
  std::string peer_;
  std::string peer_identity_;     // the peer's identity when no proxy is trusted (fixed per connection)
  std::string request_identity_;  // per request, from a trusted proxy's headers
  std::shared_ptr<HttpSession> self_;
  PendingCommand pending_;
  HttpResponse response_;
  std::string header_;
  bool keep_alive_ = true;
  bool head_ = false;
  bool timed_out_ = false;
  bool answered_ = true;
  unsigned version_ = 11;
  std::uint64_t request_id_ = 0;
};

void IoThread::watch(const std::shared_ptr<HttpSession>& session) {
  watched.push_back(session);
  if (sweeping) return;
  sweeping = true;
  schedule_sweep();
}

void IoThread::schedule_sweep() {
  sweep_timer.expires_after(kDeadlineSweepEvery);
  sweep_timer.async_wait([this](beast::error_code ec) {
    if (!ec) sweep();
  });
}

// Checks every watched connection, forgets the closed ones, and runs again while any is
// left. A connection that ends between two sweeps is forgotten at the next.
void IoThread::sweep() {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(watched, [now](const std::weak_ptr<HttpSession>& weak) {
    auto session = weak.lock();
    return !session || !session->check_deadline(now);
  });
  sweeping = !watched.empty();
  if (sweeping) schedule_sweep();
}

void IoThread::complete(std::shared_ptr<const BatchResults> batch,
                        std::vector<std::uint32_t> indexes) {
  net::post(ioc, [batch = std::move(batch), indexes = std::move(indexes)] {
    for (std::uint32_t i : indexes) {
      reinterpret_cast<HttpSession*>(batch->outcomes[i].tag)->command_done(*batch, i);
    }
  });
}

// ---- accepting -----------------------------------------------------------------------

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  explicit Listener(Shared& shared)
      : shared_(shared), acceptor_(shared.io[0]->ioc), backoff_(shared.io[0]->ioc) {}

  bool open(const tcp::endpoint& endpoint, std::string& error) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      error = "cannot listen on " + endpoint.address().to_string() + ":" +
              std::to_string(endpoint.port()) + ": " + ec.message();
      return false;
    }
    return true;
  }

  std::uint16_t port() const {
    beast::error_code ec;
    return acceptor_.local_endpoint(ec).port();
  }

  // Each connection goes to the next io thread, round robin.
  void accept() {
    IoThread& io = *shared_.io[shared_.next_io.fetch_add(1) % shared_.io.size()];
    acceptor_.async_accept(io.ioc, [self = shared_from_this(), &io](beast::error_code ec, HttpSocket socket) {
      self->on_accept(ec, std::move(socket), io);
    });
  }

  void stop() {
    beast::error_code ec;
    acceptor_.close(ec);
    backoff_.cancel();
  }

 private:
  void on_accept(beast::error_code ec, HttpSocket socket, IoThread& io) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // Out of file descriptors (or another transient failure): back off instead of
      // spinning; connections already open keep being served meanwhile.
      shared_.stats.accept_errors.fetch_add(1, std::memory_order_relaxed);
      backoff_.expires_after(std::chrono::milliseconds(50));
      backoff_.async_wait([self = shared_from_this()](beast::error_code wec) {
        if (!wec) self->accept();
      });
      return;
    }
    if (shared_.stats.connections_open.load() >= shared_.options.max_connections) {
      shared_.stats.connections_refused.fetch_add(1);
      refuse(std::move(socket));
    } else {
      net::post(io.ioc, [socket = std::make_shared<HttpSocket>(std::move(socket)), &io,
                         &shared = shared_]() mutable {
        std::make_shared<HttpSession>(std::move(*socket), shared, io)->start();
      });
    }
    accept();
  }

  // Over the connection limit: a short 503 and close, without a session.
  static void refuse(HttpSocket socket) {
    static const std::string reply = [] {
      std::string body =
          R"({"error":{"code":"too_many_connections","message":"connection limit reached"}})";
      return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
             "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    beast::error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(net::buffer(reply), ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  Shared& shared_;
  tcp::acceptor acceptor_;
  net::steady_timer backoff_;
};

}  // namespace

struct Server::Impl {
  Impl(ServerOptions options, Api& api, ServerStats& stats, Sequencer& sequencer,
       std::vector<FeedSource> partitions)
      : shared{std::move(options), api, stats, sequencer} {
    shared.partitions = std::move(partitions);
    const unsigned threads = std::max(1u, shared.options.threads);
    for (unsigned i = 0; i < threads; ++i) shared.io.push_back(std::make_unique<IoThread>(shared));
    shared.feed = std::make_unique<IoThread>(shared);
    shared.next_request_id = (std::random_device{}() % 1'000'000ULL + 1) * 1'000'000ULL;
  }
  Shared shared;
  std::shared_ptr<Listener> listener;
  // Made when listening starts, before anyone is told the address: a SIGTERM from then on
  // is queued for run() instead of killing the process.
  std::optional<net::signal_set> signals;
};

Server::Server(ServerOptions options, Api& api, ServerStats& stats, Sequencer& sequencer,
               std::vector<FeedSource> partitions)
    : impl_(std::make_unique<Impl>(std::move(options), api, stats, sequencer, std::move(partitions))) {}

Server::~Server() = default;

bool Server::listen(std::string& error) {
  beast::error_code ec;
  auto address = net::ip::make_address(impl_->shared.options.host, ec);
  if (ec) {
    error = "invalid --host '" + impl_->shared.options.host + "': " + ec.message();
    return false;
  }
  impl_->listener = std::make_shared<Listener>(impl_->shared);
  if (!impl_->listener->open(tcp::endpoint(address, impl_->shared.options.port), error)) return false;
  impl_->signals.emplace(impl_->shared.io[0]->ioc, SIGINT, SIGTERM);
  return true;
}

std::uint16_t Server::bound_port() const { return impl_->listener->port(); }

// Rendering and fan-out run on the feed thread, never on the journal thread that calls
// this: the batch is rendered once, then handed to every subscriber.
void Server::publish(const std::shared_ptr<const BatchResults>& batch, std::uint32_t partition) {
  if (batch->changes.empty()) return;
  Shared& shared = impl_->shared;
  if (shared.stats.ws_connections_open.load(std::memory_order_relaxed) == 0) return;
  const Sequencer* from = &shared.sequencer;
  for (const FeedSource& source : shared.partitions) {
    if (source.partition == partition) from = source.sequencer;
  }
  net::post(shared.feed->ioc, [batch, &shared, from, partition] {
    const PartitionScope scope(partition);
    auto rendered = render_batch(batch->changes, from->reads());
    std::erase_if(shared.feed->subscribers, [&](const std::weak_ptr<WebSocketSession>& weak) {
      auto session = weak.lock();
      if (!session || session->closed()) return true;
      session->deliver(rendered);
      return false;
    });
  });
}

void Server::run(const std::function<void()>& drain) {
  Shared& shared = impl_->shared;
  // Sessions waiting for the sequencer have no pending io; without these guards the io
  // threads would return as soon as the acceptor closes and the answers of the last
  // durable batch would never be written.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work;
  for (auto& io : shared.io) work.push_back(net::make_work_guard(io->ioc));
  work.push_back(net::make_work_guard(shared.feed->ioc));
  impl_->listener->accept();
  std::thread drainer;
  impl_->signals->async_wait([&](beast::error_code ec, int) {
    if (ec) return;
    impl_->listener->stop();
    shared.shutting_down.store(true);
    // Draining blocks until the sequencer finished its queue; not on an io thread, so the
    // answers it posts can still be written. Then wait for them, at most the grace.
    drainer = std::thread([&] {
      drain();
      const auto deadline = std::chrono::steady_clock::now() + seconds(shared.options.shutdown_grace_s);
      while (shared.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (shared.in_flight.load() > 0) {
        std::fprintf(stderr, "slotd: %lld answers not written within the shutdown grace\n",
                     static_cast<long long>(shared.in_flight.load()));
      }
      for (auto& io : shared.io) io->ioc.stop();
      shared.feed->ioc.stop();
    });
  });
  // An exception escaping a handler would end the process; log it and keep serving (the
  // session it came from is dropped with its handler).
  auto serve = [](net::io_context& ioc) {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "slotd: io handler failed: %s\n", e.what());
      }
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t i = 1; i < shared.io.size(); ++i) {
    pool.emplace_back([&, i] { serve(shared.io[i]->ioc); });
  }
  pool.emplace_back([&] {
    // Lower priority than HTTP (Linux: nice applies per thread); failing that, it runs at
    // the same priority.
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kFeedNice);
    serve(shared.feed->ioc);
  });
  serve(shared.io[0]->ioc);
  for (auto& t : pool) t.join();
  if (drainer.joinable()) drainer.join();
}

}  // namespace slotd
