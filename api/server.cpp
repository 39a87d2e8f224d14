// The only translation unit that includes Beast (compile cost: keep it that way).
#include "api/server.hpp"

#include <atomic>
#include <cstdio>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
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
  std::atomic<std::uint64_t> next_request_id;
};

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

  void send_error_and_close(unsigned status, std::string_view code, std::string_view message) {
    keep_alive_ = false;
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
    res->keep_alive(keep_alive_ && !force_close);
    res->body() = std::move(r.body);
    res->prepare_payload();
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
  Impl(ServerOptions options, Api& api, ServerStats& stats)
      : ioc(static_cast<int>(std::max(1u, options.threads))),
        shared{options, api, stats, std::random_device{}() * 1'000'000ULL} {}
  net::io_context ioc;
  Shared shared;
  std::shared_ptr<Listener> listener;
};

Server::Server(ServerOptions options, Api& api, ServerStats& stats)
    : impl_(std::make_unique<Impl>(std::move(options), api, stats)) {}

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
