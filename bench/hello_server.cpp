// hello_server — "the limit" slotd's HTTP figures are compared against: a minimal Boost.Beast
// HTTP/1.1 server, written the way a Beast user would write a fast one, that answers every
// request (any method, any path) with the same small JSON body. Keep-alive; pipelined
// requests are answered in order (each session reads one request, writes its reply, then
// reads the next, which may already wait in the buffer); a POST's body is read in full.
//
// Threading: one io_context per io thread. The acceptor lives on the first; each accepted
// socket goes to the next context round-robin and stays there, so every handler of a
// connection runs on one thread and needs no strand: the usual fast shape, with nothing
// shared between threads but the accept hand-off. slotd instead runs one io_context on N
// threads with a strand per connection. With --threads 1 (the default) both have one io
// thread; slotd still goes through its strands.
//
//   hello_server [--host 127.0.0.1] [--port 8081] [--threads 1]
// Prints "hello_server listening on http://HOST:PORT" (--port 0 picks a free port).
// SIGINT/SIGTERM stop it (exit 0).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::string_view kBody = R"({"status":"ok","message":"hello"})";
// The same order of magnitude as slotd's limits: a stalled client is dropped.
constexpr auto kRequestTimeout = std::chrono::seconds(30);

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket&& socket) : stream_(std::move(socket)) {}

  void start() { read(); }

 private:
  void read() {
    request_ = {};
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, request_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return close();
    if (ec) return;  // reset, timeout or a malformed request: drop the connection
    response_ = {};
    response_.result(http::status::ok);
    response_.version(request_.version());
    response_.set(http::field::server, "hello_server");
    response_.set(http::field::content_type, "application/json");
    response_.keep_alive(request_.keep_alive());
    response_.body() = kBody;
    response_.prepare_payload();
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return;
    if (!response_.keep_alive()) return close();
    read();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& accept_context, std::vector<net::io_context*> session_contexts)
      : acceptor_(accept_context), session_contexts_(std::move(session_contexts)) {}

  bool open(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      std::fprintf(stderr, "hello_server: cannot listen on %s:%u: %s\n",
                   endpoint.address().to_string().c_str(), endpoint.port(), ec.message().c_str());
      return false;
    }
    return true;
  }

  std::uint16_t port() const {
    beast::error_code ec;
    return acceptor_.local_endpoint(ec).port();
  }

  void accept() {
    net::io_context& next = *session_contexts_[next_context_++ % session_contexts_.size()];
    acceptor_.async_accept(next,
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void stop() {
    beast::error_code ec;
    acceptor_.close(ec);
  }

 private:
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    if (!ec) {
      // The socket belongs to the context it was accepted onto; start it on that thread.
      auto executor = socket.get_executor();
      net::post(executor,
                [session = std::make_shared<Session>(std::move(socket))] { session->start(); });
    }
    accept();
  }

  tcp::acceptor acceptor_;
  std::vector<net::io_context*> session_contexts_;
  std::size_t next_context_ = 0;
};

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8081;
  unsigned threads = 1;
};

[[noreturn]] void usage(const char* message) {
  std::fprintf(stderr,
               "hello_server: %s\nusage: hello_server [--host 127.0.0.1] [--port 8081] "
               "[--threads 1]\n",
               message);
  std::exit(2);
}

template <class T>
T parse_number(std::string_view text, const char* flag) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    usage((std::string("invalid value for ") + flag).c_str());
  }
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") usage("a Beast HTTP server that answers a fixed JSON body");
    if (i + 1 >= argc) usage("every flag takes a value");
    std::string_view value = argv[++i];
    if (arg == "--host") {
      o.host = value;
    } else if (arg == "--port") {
      o.port = parse_number<std::uint16_t>(value, "--port");
    } else if (arg == "--threads") {
      o.threads = parse_number<unsigned>(value, "--threads");
      if (o.threads == 0) usage("--threads must be at least 1");
    } else {
      usage("unknown flag");
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  beast::error_code ec;
  const auto address = net::ip::make_address(options.host, ec);
  if (ec) usage("invalid --host");

  // Concurrency hint 1: each context is run by exactly one thread.
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::io_context*> session_contexts;
  for (unsigned i = 0; i < options.threads; ++i) {
    contexts.push_back(std::make_unique<net::io_context>(1));
    session_contexts.push_back(contexts.back().get());
  }
  auto listener = std::make_shared<Listener>(*contexts.front(), session_contexts);
  if (!listener->open(tcp::endpoint(address, options.port))) return 1;
  std::printf("hello_server listening on http://%s:%u (%u io threads)\n", options.host.c_str(),
              listener->port(), options.threads);
  std::fflush(stdout);

  // Idle contexts must keep running until the signal: sessions arrive later.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  for (auto& c : contexts) guards.push_back(net::make_work_guard(*c));
  net::signal_set signals(*contexts.front(), SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    listener->stop();
    for (auto& c : contexts) c->stop();
  });
  listener->accept();

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < contexts.size(); ++i) {
    threads.emplace_back([&context = *contexts[i]] { context.run(); });
  }
  contexts.front()->run();
  for (auto& t : threads) t.join();
  return 0;
}
