// The only translation unit that includes Beast (compile cost: keep it that way).
#include "api/server.hpp"

#include "api/event_json.hpp"

#include <atomic>
#include <cstdio>
#include <chrono>
#include <random>
#include <thread>
#include <deque>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <simdjson.h>
#include <boost/url/src.hpp>  // Boost.URL's sources, compiled into exactly this one TU

namespace slotd {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

struct Shared {
  ServerOptions options;
  Api& api;
  ServerStats& stats;
  Sequencer& sequencer;
  FeedHub& hub;
  std::atomic<std::uint64_t> next_request_id;
};

namespace websocket = beast::websocket;

// One GET /ws connection: a FeedSubscriber whose messages go out through a bounded queue.
// Everything below runs on the connection's strand; deliver() only posts to it.
using Messages = std::vector<std::shared_ptr<const std::string>>;

class WebSocketSession : public FeedSubscriber,
                         public std::enable_shared_from_this<WebSocketSession> {
 public:
  // Counted as an open connection (for --max-connections) for as long as it lives.
  WebSocketSession(tcp::socket&& socket, Shared& shared)
      : ws_(std::move(socket)), shared_(shared) {
    shared_.stats.connections_open.fetch_add(1);
  }
  ~WebSocketSession() override { shared_.stats.connections_open.fetch_sub(1); }

  void run(http::request<http::string_body> request) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(64 << 10);
    ws_.auto_fragment(false);  // one frame per message: simpler for clients, fewer frames
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "slotd");
    }));
    ws_.async_accept(request, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->shared_.hub.add(self);
      self->read();
    });
  }

  void deliver(std::shared_ptr<const FeedBatch> batch) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), batch = std::move(batch)] {
      self->on_batch(*batch);
    });
  }

 private:
  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->closed_ = true, void();
      std::string message = beast::buffers_to_string(self->in_.data());
      self->in_.consume(self->in_.size());
      self->on_message(message);
      if (!self->closed_) self->read();
    });
  }

  void send_error(std::string_view code, std::string_view message) {
    std::string out = R"({"type":"error","code":)";
    append_json_string(out, code);
    out += R"(,"message":)";
    append_json_string(out, message);
    out += '}';
    enqueue({std::make_shared<const std::string>(std::move(out))});
  }

  // {"op":"subscribe","doctorIds":[…]|"clinicId":N,"fromSeq":N?}
  void on_message(const std::string& text) {
    simdjson::dom::parser parser;
    simdjson::dom::object obj;
    std::string_view op;
    if (parser.parse(text).get_object().get(obj) || obj["op"].get_string().get(op)) {
      return send_error("invalid_message", "send {\"op\":\"subscribe\",\"doctorIds\":[…]} or {\"op\":\"subscribe\",\"clinicId\":N}");
    }
    if (op != "subscribe") return send_error("invalid_message", "the only op is subscribe");
    if (subscribed_) return send_error("already_subscribed", "a connection subscribes once");
    Subscription subscription;
    simdjson::dom::element e;
    if (!obj["clinicId"].get(e)) {
      std::uint64_t id;
      if (e.get_uint64().get(id)) return send_error("invalid_message", "clinicId must be an integer id");
      subscription.clinic_id = id;
    } else if (!obj["doctorIds"].get(e)) {
      simdjson::dom::array ids;
      if (e.get_array().get(ids)) return send_error("invalid_message", "doctorIds must be an array of ids");
      for (simdjson::dom::element item : ids) {
        std::uint64_t id;
        if (item.get_uint64().get(id)) return send_error("invalid_message", "doctorIds must be an array of ids");
        subscription.doctor_ids.push_back(id);
      }
      std::sort(subscription.doctor_ids.begin(), subscription.doctor_ids.end());
    } else {
      return send_error("invalid_message", "subscribe needs doctorIds or clinicId");
    }
    std::optional<std::uint64_t> from_seq;
    if (!obj["fromSeq"].get(e)) {
      std::uint64_t v;
      if (e.get_uint64().get(v)) return send_error("invalid_message", "fromSeq must be an integer");
      from_seq = v;
    }
    subscribed_ = true;
    subscription_ = std::move(subscription);
    catch_up(from_seq);
  }

  // Live batches that arrive meanwhile are only buffered by on_batch (same strand), so
  // the snapshot or the journal read and the live events meet without gap or duplicate.
  void catch_up(std::optional<std::uint64_t> from_seq) {
    constexpr std::uint64_t kMaxCatchUp = 100'000;
    const std::uint64_t durable = shared_.sequencer.durable_seq();
    if (from_seq && *from_seq >= 1 && *from_seq <= durable + 1 && durable + 1 - *from_seq <= kMaxCatchUp) {
      std::vector<JournalRecord> records;
      JournalStatus st = shared_.sequencer.read_journal(*from_seq, kMaxCatchUp, [&](const JournalRecord& r) {
        records.push_back(r);
        return true;
      });
      if (st) {
        std::uint64_t last = *from_seq - 1;
        Messages missed;
        shared_.sequencer.reads().read([&](const Engine& engine, std::uint64_t) {
          for (const JournalRecord& r : records) {
            auto event = feed_event(r, engine);
            if (event && subscription_.matches(event->doctor_id, event->clinic_id)) {
              missed.push_back(event->json);
            }
            last = r.seq;
          }
          return 0;
        });
        last_sent_seq_ = last;
        if (!missed.empty()) enqueue(std::move(missed));
        return flush_live();
      }
    }
    if (from_seq) {
      enqueue({std::make_shared<const std::string>(
          R"({"type":"resync_required","reason":"fromSeq is not within the retained journal; here is a fresh snapshot"})")});
    }
    auto snapshot = shared_.sequencer.reads().read([&](const Engine& engine, std::uint64_t as_of) {
      last_sent_seq_ = as_of;
      return snapshot_message(engine, as_of, subscription_);
    });
    enqueue({std::make_shared<const std::string>(std::move(snapshot))});
    flush_live();
  }

  void flush_live() {
    caught_up_ = true;
    std::deque<std::shared_ptr<const FeedBatch>> buffered;
    buffered.swap(buffered_);
    for (const auto& batch : buffered) on_batch(*batch);
  }

  void on_batch(const FeedBatch& batch) {
    if (!subscribed_ || closed_) return;
    if (!caught_up_) {
      buffered_.push_back(std::make_shared<const FeedBatch>(batch));
      return;
    }
    Messages messages;
    for (const FeedEvent& event : batch) {
      if (event.seq <= last_sent_seq_) continue;  // already in the snapshot or catch-up
      last_sent_seq_ = event.seq;
      if (subscription_.matches(event.doctor_id, event.clinic_id)) messages.push_back(event.json);
    }
    if (!messages.empty()) enqueue(std::move(messages));
  }

  // The queue holds groups: one durable batch's messages (or a snapshot, a catch-up, an
  // error) count once, so one large admin write cannot overflow a client that reads.
  void enqueue(Messages messages) {
    if (closed_ || closing_) return;
    if (queue_.size() >= shared_.options.ws_queue_limit) {
      // A consumer that cannot keep up is closed (it can resume with fromSeq); it never
      // slows the sequencer or other clients.
      closing_ = true;
      queue_.clear();
      next_in_front_ = 0;
      if (!writing_) close_slow();
      return;
    }
    queue_.push_back(std::move(messages));
    if (!writing_) write_next();
  }

  // The message being written stays alive in writing_ until its write completes.
  void write_next() {
    Messages& front = queue_.front();
    writing_ = std::move(front[next_in_front_++]);
    if (next_in_front_ == front.size()) {
      queue_.pop_front();
      next_in_front_ = 0;
    }
    ws_.text(true);
    ws_.async_write(net::buffer(*writing_),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      self->writing_.reset();
                      if (ec) {
                        self->closed_ = true;
                        self->queue_.clear();
                        self->next_in_front_ = 0;
                        return;
                      }
                      if (self->closing_) return self->close_slow();
                      if (!self->queue_.empty()) self->write_next();
                    });
  }

  void close_slow() {
    ws_.async_close(websocket::close_reason(websocket::close_code::policy_error,
                                            "slow consumer: outbound queue full"),
                    [self = shared_from_this()](beast::error_code) { self->closed_ = true; });
  }

  websocket::stream<beast::tcp_stream> ws_;
  Shared& shared_;
  beast::flat_buffer in_;
  std::deque<Messages> queue_;
  std::size_t next_in_front_ = 0;  // the next message of queue_.front() to write
  std::shared_ptr<const std::string> writing_;
  std::deque<std::shared_ptr<const FeedBatch>> buffered_;
  Subscription subscription_;
  std::uint64_t last_sent_seq_ = 0;
  bool subscribed_ = false;
  bool caught_up_ = false;
  bool closing_ = false;  // slow consumer: close once the write in flight is done
  bool closed_ = false;
};

// Same origin: the Origin's host[:port] is the Host header. Otherwise the allowlist.
bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed) {
  if (origin.empty()) return true;  // not a browser
  if (!allowed.empty()) {
    return std::find(allowed.begin(), allowed.end(), origin) != allowed.end();
  }
  auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos) return false;
  return origin.substr(scheme_end + 3) == host;
}

// One HTTP/1.1 connection: read a request, hand it to the Api, write the reply when the
// Api answers (for writes: after the batch is durable), then read the next. Requests of a
// pipelining client wait in the buffer, so replies keep their order.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, Shared& shared)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), shared_(shared) {
    beast::error_code ec;
    auto endpoint = stream_.socket().remote_endpoint(ec);
    if (!ec) peer_ = endpoint.address().to_string();
    shared_.stats.connections_open.fetch_add(1);
    shared_.stats.connections_total.fetch_add(1);
  }
  ~HttpSession() { shared_.stats.connections_open.fetch_sub(1); }

  void start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::read_header, shared_from_this()));
  }

 private:
  // One deadline per read phase; the generation makes a timer that already fired for an
  // earlier phase harmless.
  void arm_deadline(double timeout_s) {
    timed_out_ = false;
    const std::uint64_t generation = ++deadline_generation_;
    timer_.expires_after(seconds(timeout_s));
    timer_.async_wait([self = shared_from_this(), generation](beast::error_code ec) {
      if (ec || generation != self->deadline_generation_) return;
      self->timed_out_ = true;
      self->stream_.cancel();
    });
  }

  void disarm_deadline() {
    ++deadline_generation_;
    timer_.cancel();
  }

  // Between requests the connection may idle for idle_timeout; from the first byte of a
  // request on, the whole request must arrive within request_timeout (else 408).
  void read_header() {
    parser_.emplace();
    parser_->body_limit(shared_.options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(shared_.options.max_header_bytes));
    // A backstop in case the timer path is ever bypassed.
    stream_.expires_after(seconds(shared_.options.request_timeout_s +
                                  shared_.options.idle_timeout_s + 5));
    if (buffer_.size() > 0) return read_header_bytes();  // a pipelined request is waiting
    arm_deadline(shared_.options.idle_timeout_s);
    stream_.socket().async_wait(tcp::socket::wait_read,
                                [self = shared_from_this()](beast::error_code ec) {
                                  if (ec) return self->on_read_error(ec);
                                  self->read_header_bytes();
                                });
  }

  void read_header_bytes() {
    disarm_deadline();
    arm_deadline(shared_.options.request_timeout_s);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    const auto& req = parser_->get();
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      // Answer before reading the body so that curl & co. do not wait a second.
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(stream_, *cont,
                        [self = shared_from_this(), cont](beast::error_code wec, std::size_t) {
                          if (wec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
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
          "the request body is larger than " + std::to_string(shared_.options.max_body_bytes) +
              " bytes");
    }
    if (ec == http::error::header_limit) {
      return send_error_and_close(431, "header_too_large", "the request header is too large");
    }
    if (ec == net::error::operation_aborted || ec == beast::error::timeout ||
        ec == net::error::connection_reset) {
      return close();
    }
    send_error_and_close(400, "bad_request", "malformed HTTP request: " + ec.message());
  }

  void on_body(beast::error_code ec, std::size_t) {
    if (ec) return on_read_error(ec);
    disarm_deadline();
    stream_.expires_never();  // the Api answers when the batch is durable
    auto& req = parser_->get();
    head_ = req.method() == http::verb::head;
    if (req.target() == "/ws" || req.target().starts_with("/ws?")) return upgrade();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    shared_.stats.requests_total.fetch_add(1, std::memory_order_relaxed);

    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.body = std::move(req.body());
    request.authorization = std::string(req[http::field::authorization]);
    request.booking_token = std::string(req["X-Booking-Token"]);
    request.idempotency_key = std::string(req["Idempotency-Key"]);
    request.if_none_match = std::string(req[http::field::if_none_match]);
    auto client_key = req["X-Client-Key"];
    request.client_key = client_key.empty() ? peer_ : std::string(client_key);
    request.request_id = shared_.next_request_id.fetch_add(1, std::memory_order_relaxed);
    request_id_ = request.request_id;
    auto executor = stream_.get_executor();
    request.post_to_io = [executor](std::function<void()> fn) {
      net::post(executor, std::move(fn));
    };
    shared_.api.handle(std::move(request),
                       [self = shared_from_this()](HttpResponse&& response) {
                         self->write(std::move(response), false);
                       });
  }

  // GET /ws: check the Origin, then hand the socket to a WebSocketSession.
  void upgrade() {
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    if (!websocket::is_upgrade(req)) {
      return write(Api::error(426, "upgrade_required", "GET /ws is a WebSocket endpoint"), false);
    }
    if (!origin_allowed(req[http::field::origin], req[http::field::host],
                        shared_.options.allowed_origins)) {
      return send_error_and_close(403, "forbidden_origin", "this Origin may not open the feed");
    }
    std::make_shared<WebSocketSession>(stream_.release_socket(), shared_)->run(parser_->release());
  }

  void send_error_and_close(unsigned status, std::string_view code, std::string_view message) {
    keep_alive_ = false;
    head_ = false;
    version_ = 11;
    write(Api::error(status, code, message), true);
  }

  void write(HttpResponse&& r, bool force_close) {
    if (r.status >= 500) {
      shared_.stats.responses_5xx.fetch_add(1, std::memory_order_relaxed);
    } else if (r.status >= 400) {
      shared_.stats.responses_4xx.fetch_add(1, std::memory_order_relaxed);
    }
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version_);
    res->set(http::field::server, "slotd");
    res->set(http::field::content_type, r.content_type);
    res->set("X-Request-Id", std::to_string(request_id_));
    if (!r.etag.empty()) res->set(http::field::etag, r.etag);
    if (!r.cache_control.empty()) res->set(http::field::cache_control, r.cache_control);
    res->keep_alive(keep_alive_ && !force_close);
    if (r.status != 304) {  // a 304 has neither body nor Content-Length (RFC 9110 15.4.5)
      res->body() = std::move(r.body);
      res->prepare_payload();
      if (head_) res->body().clear();  // HEAD: the GET's headers, Content-Length included
    }
    // A client that stops reading must not hold the session forever.
    stream_.expires_after(seconds(shared_.options.request_timeout_s));
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive()) return self->close();
                        self->read_header();
                      });
  }

  void close() {
    disarm_deadline();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Shared& shared_;
  std::string peer_;
  bool keep_alive_ = true;
  bool head_ = false;  // the request being answered is a HEAD
  bool timed_out_ = false;
  unsigned version_ = 11;
  std::uint64_t request_id_ = 0;
  std::uint64_t deadline_generation_ = 0;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, Shared& shared) : ioc_(ioc), acceptor_(ioc), shared_(shared) {}

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

  void accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void stop() {
    beast::error_code ec;
    acceptor_.close(ec);
  }

 private:
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (shared_.stats.connections_open.load() >= shared_.options.max_connections) {
        shared_.stats.connections_refused.fetch_add(1);
        refuse(std::move(socket));
      } else {
        std::make_shared<HttpSession>(std::move(socket), shared_)->start();
      }
    }
    accept();
  }

  // Over the connection limit: a short 503 and close, without a session.
  static void refuse(tcp::socket socket) {
    static const std::string reply = [] {
      std::string body =
          R"({"error":{"code":"too_many_connections","message":"connection limit reached"}})";
      return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
             "Connection: close\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    beast::error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(net::buffer(reply), ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  Shared& shared_;
};

}  // namespace

struct Server::Impl {
  Impl(ServerOptions options, Api& api, ServerStats& stats, Sequencer& sequencer, FeedHub& hub)
      : ioc(static_cast<int>(std::max(1u, options.threads))),
        shared{options, api, stats, sequencer, hub, std::random_device{}() * 1'000'000ULL} {}
  net::io_context ioc;
  Shared shared;
  std::shared_ptr<Listener> listener;
};

Server::Server(ServerOptions options, Api& api, ServerStats& stats, Sequencer& sequencer,
               FeedHub& hub)
    : impl_(std::make_unique<Impl>(std::move(options), api, stats, sequencer, hub)) {}

Server::~Server() = default;

bool Server::listen(std::string& error) {
  beast::error_code ec;
  auto address = net::ip::make_address(impl_->shared.options.host, ec);
  if (ec) {
    error = "invalid --host '" + impl_->shared.options.host + "': " + ec.message();
    return false;
  }
  impl_->listener = std::make_shared<Listener>(impl_->ioc, impl_->shared);
  return impl_->listener->open(tcp::endpoint(address, impl_->shared.options.port), error);
}

std::uint16_t Server::bound_port() const { return impl_->listener->port(); }

void Server::run(const std::function<void()>& drain) {
  auto& ioc = impl_->ioc;
  // Sessions waiting for the sequencer have no pending io; without this guard the io
  // threads would return as soon as the acceptor closes and the replies of the last
  // durable batch would never be written.
  auto work = net::make_work_guard(ioc);
  impl_->listener->accept();
  std::thread drainer;
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code ec, int) {
    if (ec) return;
    impl_->listener->stop();
    // Draining blocks until the sequencer finished its queue; not on an io thread, so the
    // replies it posts can still be written. Then a short grace period, then stop.
    drainer = std::thread([&] {
      drain();
      auto grace = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(300));
      grace->async_wait([&ioc, grace](beast::error_code) { ioc.stop(); });
    });
  });
  // An exception escaping a handler would end the process; log it and keep serving (the
  // session it came from is dropped with its handler).
  auto serve = [&ioc] {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "slotd: io handler failed: %s\n", e.what());
      }
    }
  };
  const unsigned threads = std::max(1u, impl_->shared.options.threads);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back(serve);
  serve();
  for (auto& t : pool) t.join();
  if (drainer.joinable()) drainer.join();
}

}  // namespace slotd
