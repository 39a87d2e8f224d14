// ws_fanout — the live feed of a running slotd (GET /ws) under a paced booking load.
//
// For each scenario (N subscribers) it runs two phases against the same slotd:
//   stuck=no:  N subscribers of clinic 1 that read everything;
//   stuck=yes: the same plus one subscriber that subscribes and never reads (its receive
//              buffer is set small, so it is stuck from the start).
// In each phase a paced load books distinct AVAILABLE slots (seeded beforehand through the
// admin bulk POST /slots) at --rate bookings/s for --duration seconds over --connections
// keep-alive HTTP connections. It is open loop: request i is due at start + i/rate, goes out
// on the next idle connection, and its latency counts from its due time, so a slow server
// cannot hide its delays. Requests without a reply by the deadline (duration + drain), sent
// or not, are `unanswered` and count in the booking percentiles with their wait until then
// (a lower bound). Every booking is one SlotHeld event, i.e. one message to each subscriber.
//
// Measured per phase: bookings 201 / other, booking latency p50/p99; feed messages received
// per second (all subscribers together) and received / expected (the phase's durable
// events, from slotd's seq after the load, x subscribers); the event latency from the
// moment the booking's HTTP 201 reply is received to the moment a subscriber receives the
// event with that reply's seq (slotd sends both only after the batch is durable, so this is
// "durable commit -> client receipt" as seen from outside; slotd hands the feed its batch
// before the replies, so an event can arrive first: those count as 0 and as `early`;
// events whose 201 never came, because the load stopped waiting at its deadline, are left
// out as `without_reply`); the latency from a request's due time to the event's receipt;
// how many subscribers slotd closed (1008 = slow consumer); seq breaks (a seq that is not
// the previous one + 1); and what slotd did with the stuck subscriber (read at the end: a
// close, or the backlog).
//
// Subscribers subscribe with "fromSeq" = the seq after seeding + 1 (an empty catch-up), not
// with a snapshot: a snapshot of clinic 1 would carry every seeded slot (megabytes) to each
// of the N subscribers. A probe booking that every subscriber must receive marks them all
// live before the timed load starts; after a phase, the next starts once slotd reports no
// open connection but ours (GET /metrics).
//
// Two threads: one runs the subscribers, one the booking load, so that booking replies do
// not queue behind feed messages inside this client. Both share the machine with slotd.
// A bench, not a test: figures are printed and written to --out, nothing is asserted.
//
//   ws_fanout --port P --admin-token T [--host 127.0.0.1] [--subscribers 100,1000,5000]
//             [--rate 10000] [--duration 10] [--connections 64] [--drain 10] [--quick]
//             [--out ws_fanout.results.txt]
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Latencies in microseconds: exact below 128 µs, then 64 buckets per power of two (each
// bucket within 1.6 % of its values). Percentiles report a bucket's upper bound.
class Histogram {
 public:
  void record_ns(std::int64_t ns) {
    const std::uint64_t us = ns <= 0 ? 0 : static_cast<std::uint64_t>(ns / 1000);
    ++counts_[index(us)];
    ++total_;
  }
  std::uint64_t count() const { return total_; }
  void remove_zeros(std::uint64_t n) {
    counts_[0] -= n;
    total_ -= n;
  }
  double percentile_ms(double p) const {
    if (total_ == 0) return 0;
    const auto rank =
        static_cast<std::uint64_t>(std::max(1.0, std::ceil(p / 100.0 * double(total_))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return double(upper_bound_us(i)) / 1000.0;
    }
    return double(upper_bound_us(counts_.size() - 1)) / 1000.0;
  }

 private:
  static constexpr std::size_t kExact = 128;
  static constexpr std::size_t kPerOctave = 64;
  static std::size_t index(std::uint64_t us) {
    if (us < kExact) return us;
    const int msb = 63 - std::countl_zero(us);  // >= 7
    const int shift = msb - 6;                  // us >> shift is in [64, 128)
    return kExact + std::size_t(msb - 7) * kPerOctave + ((us >> shift) - kPerOctave);
  }
  static std::uint64_t upper_bound_us(std::size_t i) {
    if (i < kExact) return i;
    const std::size_t octave = (i - kExact) / kPerOctave, sub = (i - kExact) % kPerOctave;
    const int shift = int(octave) + 1;
    return ((kPerOctave + sub + 1) << shift) - 1;
  }
  std::array<std::uint64_t, kExact + 57 * kPerOctave> counts_{};
  std::uint64_t total_ = 0;
};

// The unsigned integer after "key": in a small JSON text we produced or slotd wrote.
std::optional<std::uint64_t> uint_field(std::string_view json, std::string_view key) {
  std::string needle = "\"";
  needle += key;
  needle += "\":";
  const auto at = json.find(needle);
  if (at == std::string_view::npos) return std::nullopt;
  const char* first = json.data() + at + needle.size();
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(first, json.data() + json.size(), value);
  if (ec != std::errc{} || end == first) return std::nullopt;
  return value;
}

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string admin_token;
  std::vector<std::size_t> subscribers = {100, 1000, 5000};
  double rate = 10'000;
  double duration_s = 10;
  std::size_t connections = 64;
  double drain_s = 10;
  std::string out = "ws_fanout.results.txt";
};

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "ws_fanout: %s\nusage: ws_fanout --port P --admin-token T [--host 127.0.0.1] "
               "[--subscribers 100,1000,5000] [--rate 10000] [--duration 10] "
               "[--connections 64] [--drain 10] [--quick] [--out FILE]\n",
               message.c_str());
  std::exit(2);
}

template <class T>
T number(std::string_view text, std::string_view flag) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    usage(fmt::format("invalid value '{}' for {}", text, flag));
  }
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") usage("the live feed of a running slotd under load");
    if (arg == "--quick") {
      o.duration_s = 3;
      o.drain_s = 5;
      continue;
    }
    if (i + 1 >= argc) usage(fmt::format("{} needs a value", arg));
    const std::string_view v = argv[++i];
    if (arg == "--host") {
      o.host = v;
    } else if (arg == "--port") {
      o.port = number<std::uint16_t>(v, arg);
    } else if (arg == "--admin-token") {
      o.admin_token = v;
    } else if (arg == "--subscribers") {
      o.subscribers.clear();
      for (std::string_view rest = v; !rest.empty();) {
        const auto comma = rest.find(',');
        o.subscribers.push_back(number<std::size_t>(rest.substr(0, comma), arg));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
    } else if (arg == "--rate") {
      o.rate = number<double>(v, arg);
    } else if (arg == "--duration") {
      o.duration_s = number<double>(v, arg);
    } else if (arg == "--connections") {
      o.connections = number<std::size_t>(v, arg);
    } else if (arg == "--drain") {
      o.drain_s = number<double>(v, arg);
    } else if (arg == "--out") {
      o.out = v;
    } else {
      usage(fmt::format("unknown flag {}", arg));
    }
  }
  if (o.port == 0 || o.admin_token.empty()) usage("--port and --admin-token are required");
  if (!(o.rate > 0) || !(o.duration_s > 0) || o.connections == 0 || o.subscribers.empty()) {
    usage("--rate, --duration, --connections and --subscribers must be positive");
  }
  return o;
}

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "ws_fanout: %s\n", message.c_str());
  std::exit(1);
}

// Setup calls (seeding, health, the probe booking): one blocking keep-alive connection.
class SetupClient {
 public:
  SetupClient(net::io_context& ioc, const tcp::endpoint& endpoint, std::string host,
              std::string admin_token)
      : stream_(ioc), host_(std::move(host)), admin_token_(std::move(admin_token)) {
    stream_.connect(endpoint);
  }

  struct Reply {
    unsigned status = 0;
    std::string body;
  };

  Reply call(http::verb verb, std::string_view target, std::string body = {}) {
    http::request<http::string_body> request{verb, target, 11};
    request.set(http::field::host, host_);
    request.set(http::field::authorization, "Bearer " + admin_token_);
    request.set(http::field::content_type, "application/json");
    request.body() = std::move(body);
    request.prepare_payload();
    http::write(stream_, request);
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    http::read(stream_, buffer_, parser);
    auto& response = parser.get();
    return {response.result_int(), std::move(response.body())};
  }

  // Open connections slotd counts (HTTP and WebSocket, this one included).
  std::uint64_t open_connections() {
    const Reply r = call(http::verb::get, "/metrics");
    const auto at = r.body.find("\nslotd_connections_open ");
    if (r.status != 200 || at == std::string::npos) fail("GET /metrics: no slotd_connections_open");
    return std::strtoull(r.body.c_str() + at + 24, nullptr, 10);
  }

  std::uint64_t durable_seq() {
    const Reply r = call(http::verb::get, "/healthz");
    const auto seq = uint_field(r.body, "seq");
    if (r.status != 200 || !seq) fail("GET /healthz: " + std::to_string(r.status) + " " + r.body);
    return *seq;
  }

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::string host_;
  std::string admin_token_;
};

// 2031-01-01T00:00:00Z plus `minute` minutes, as slotd writes instants.
std::string iso_minute(std::int64_t minute) {
  const std::time_t t = 1'924'992'000 + minute * 60;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
  return text;
}

// A new doctor of clinic 1 with `count` one-minute AVAILABLE slots; returns the first slot
// id (slotd numbers one bulk request's slots consecutively; checked).
std::uint64_t seed_slots(SetupClient& client, std::size_t count) {
  const auto doctor =
      client.call(http::verb::post, "/doctors", R"({"name":"Dr. Fanout","specialty":"Bench"})");
  const auto doctor_id = uint_field(doctor.body, "id");
  if (doctor.status != 201 || !doctor_id) fail("POST /doctors: " + doctor.body);
  std::uint64_t first_id = 0, expected_next = 0;
  simdjson::dom::parser parser;
  for (std::size_t made = 0; made < count;) {
    const std::size_t n = std::min<std::size_t>(10'000, count - made);  // --max-bulk-slots
    std::string body = fmt::format(R"({{"doctorId":{},"slots":[)", *doctor_id);
    for (std::size_t i = 0; i < n; ++i) {
      const auto minute = std::int64_t(made + i);
      fmt::format_to(std::back_inserter(body), R"({}{{"start":"{}","end":"{}"}})", i ? "," : "",
                     iso_minute(minute), iso_minute(minute + 1));
    }
    body += "]}";
    const auto reply = client.call(http::verb::post, "/slots", std::move(body));
    if (reply.status != 201)
      fail("POST /slots: " + std::to_string(reply.status) + " " + reply.body);
    simdjson::dom::array slots;
    if (parser.parse(reply.body).get_array().get(slots)) fail("POST /slots: not an array");
    for (simdjson::dom::element slot : slots) {
      std::uint64_t id = 0;
      if (slot["id"].get_uint64().get(id)) fail("POST /slots: a slot without id");
      if (first_id == 0) first_id = expected_next = id;
      if (id != expected_next) fail("seeded slot ids are not consecutive");
      ++expected_next;
    }
    made += n;
  }
  return first_id;
}

// What one phase shares between the main thread, the subscriber thread and the load thread.
struct Phase {
  // Seqs of this phase's timed bookings start here; set once the probe is through.
  std::atomic<std::uint64_t> first_seq{UINT64_MAX};
  // Set before either thread starts.
  std::uint64_t first_slot_id = 0;  // request i books first_slot_id + i
  std::uint64_t planned = 0;
  double rate = 0;
  std::atomic<std::int64_t> load_start_ns{0};
  // reply_ns[seq - first_seq]: when the 201 with that seq arrived (0: not yet).
  std::unique_ptr<std::atomic<std::int64_t>[]> reply_ns;
  std::size_t reply_slots = 0;
  // Events received before the 201 of their seq, per seq (subscriber thread).
  std::unique_ptr<std::uint32_t[]> early_by_seq;

  // Written by the subscriber thread only; read by main after it has stopped, or atomics.
  Histogram event_from_reply;
  Histogram event_from_due;
  std::uint64_t events = 0;          // booking events of the timed load received, all subscribers
  std::uint64_t early = 0;           // received before the 201 of the same seq
  std::uint64_t seq_breaks = 0;      // a seq not the previous + 1: a gap, duplicate or reorder
  std::uint64_t unexpected = 0;      // messages other than booking events
  std::uint64_t closed = 0;          // readers whose connection slotd ended
  std::uint64_t closed_slow = 0;     // ... with close code 1008 (slow consumer)
  std::uint64_t connect_failed = 0;  // could not connect, handshake or subscribe
  std::string first_connect_error;
  std::atomic<std::int64_t> last_event_ns{0};
  std::atomic<std::size_t> subscribed{0};  // readers only
  std::atomic<std::size_t> finished_connecting{0};

  // Written by the load thread only.
  Histogram booking;
  std::uint64_t created = 0, conflicts = 0, other = 0, io_errors = 0, sent = 0;
  std::uint64_t unanswered = 0;  // no reply by the deadline (sent or not)
  std::int64_t last_reply_ns = 0;
  std::atomic<bool> load_done{false};
};

class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  Subscriber(net::io_context& ioc, Phase& phase, bool reads)
      : ws_(ioc), phase_(phase), reads_(reads) {}

  std::atomic<std::uint64_t> last_seq{0};
  std::atomic<bool> live{false};  // subscribed and not closed

  void start(const tcp::endpoint& endpoint, std::string host, std::uint64_t from_seq,
             std::function<void()> on_ready) {
    host_ = std::move(host);
    on_ready_ = std::move(on_ready);
    subscribe_ = fmt::format(R"({{"op":"subscribe","clinicId":1,"fromSeq":{}}})", from_seq);
    last_seq = from_seq - 1;
    auto& socket = beast::get_lowest_layer(ws_).socket();
    beast::error_code ec;
    socket.open(endpoint.protocol(), ec);
    // A stuck client with a tiny receive buffer fills up at once instead of after megabytes.
    if (!reads_ && !ec) socket.set_option(net::socket_base::receive_buffer_size(4096), ec);
    if (ec) return connected(ec);
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds(30));
    beast::get_lowest_layer(ws_).async_connect(endpoint, [self = shared_from_this()](
                                                             beast::error_code e) {
      if (e) return self->connected(e);
      beast::get_lowest_layer(self->ws_).expires_never();  // the websocket times itself
      self->ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
      self->ws_.async_handshake(self->host_, "/ws", [self](beast::error_code he) {
        if (he) return self->connected(he);
        self->ws_.text(true);
        self->ws_.async_write(net::buffer(self->subscribe_),
                              [self](beast::error_code we, std::size_t) { self->connected(we); });
      });
    });
  }

  // Starts reading a stuck subscriber at the end: what did slotd do with it?
  void drain(std::function<void(std::uint64_t messages, int close_code, std::string error)> done) {
    drained_ = std::move(done);
    read();
  }

 private:
  void connected(beast::error_code ec) {
    if (ec) {
      if (phase_.connect_failed++ == 0) phase_.first_connect_error = ec.message();
    } else {
      live = true;
      if (reads_) {
        phase_.subscribed.fetch_add(1);
        read();
      }
    }
    phase_.finished_connecting.fetch_add(1);
    if (on_ready_) std::exchange(on_ready_, nullptr)();
  }

  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->ended(ec);
      const auto data = self->buffer_.cdata();
      self->on_message(std::string_view(static_cast<const char*>(data.data()), data.size()));
      self->buffer_.consume(self->buffer_.size());
      self->read();
    });
  }

  void ended(beast::error_code ec) {
    const bool was_live = live.exchange(false);
    const int code = ec == websocket::error::closed ? int(ws_.reason().code) : 0;
    if (drained_) return std::exchange(drained_, nullptr)(drained_messages_, code, ec.message());
    if (!was_live) return;
    ++phase_.closed;
    if (code == int(websocket::close_code::policy_error)) ++phase_.closed_slow;
  }

  void on_message(std::string_view text) {
    const std::int64_t received_ns = now_ns();
    const auto seq = uint_field(text, "seq");
    if (drained_) {
      ++drained_messages_;
      if (seq) last_seq.store(*seq, std::memory_order_relaxed);
      return;
    }
    if (!text.starts_with(R"({"type":"booking")") || !seq) return void(++phase_.unexpected);
    const std::uint64_t last = last_seq.load(std::memory_order_relaxed);
    if (*seq != last + 1) ++phase_.seq_breaks;
    last_seq.store(*seq, std::memory_order_relaxed);
    const std::uint64_t first_seq = phase_.first_seq.load(std::memory_order_relaxed);
    if (*seq < first_seq) return;  // the probe or earlier
    ++phase_.events;
    phase_.last_event_ns.store(received_ns, std::memory_order_relaxed);
    const std::uint64_t index = *seq - first_seq;
    if (index < phase_.reply_slots) {
      const std::int64_t reply = phase_.reply_ns[index].load(std::memory_order_relaxed);
      if (reply == 0) {
        ++phase_.early;
        ++phase_.early_by_seq[index];
        phase_.event_from_reply.record_ns(0);
      } else {
        phase_.event_from_reply.record_ns(received_ns - reply);
      }
    }
    if (const auto slot = uint_field(text, "slotId");
        slot && *slot >= phase_.first_slot_id && *slot - phase_.first_slot_id < phase_.planned) {
      const auto i = *slot - phase_.first_slot_id;
      const auto due = phase_.load_start_ns.load(std::memory_order_relaxed) +
                       std::int64_t(double(i) * 1e9 / phase_.rate);
      phase_.event_from_due.record_ns(received_ns - due);
    }
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  Phase& phase_;
  const bool reads_;
  std::string host_;
  std::string subscribe_;
  std::function<void()> on_ready_;
  std::function<void(std::uint64_t, int, std::string)> drained_;
  std::uint64_t drained_messages_ = 0;
};

// The paced booking load: request i is due at start + i/rate; it goes out on the next idle
// connection, and its latency counts from its due time.
class BookingLoad {
 public:
  BookingLoad(net::io_context& ioc, Phase& phase, const tcp::endpoint& endpoint,
              const std::string& host, std::size_t connections, double deadline_s)
      : phase_(phase), pacer_(ioc), deadline_s_(deadline_s) {
    for (std::size_t i = 0; i < connections; ++i) {
      auto c = std::make_unique<Connection>(ioc);
      c->stream.connect(endpoint);
      c->request = {http::verb::post, "/booking", 11};
      c->request.set(http::field::host, host);
      c->request.set(http::field::content_type, "application/json");
      idle_.push_back(c.get());
      connections_.push_back(std::move(c));
    }
  }

  void start() {
    start_ns_ = now_ns();
    phase_.load_start_ns.store(start_ns_);
    tick();
  }

 private:
  struct Connection {
    explicit Connection(net::io_context& ioc) : stream(ioc) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
    std::int64_t due_ns = 0;
    bool busy = false;  // a request is out and its reply not yet in
  };

  std::int64_t due_ns(std::uint64_t i) const {
    return start_ns_ + std::int64_t(double(i) * 1e9 / phase_.rate);
  }

  // Wakes when the next request is due (at most every 100 µs, at least every 1 ms, so that
  // the deadline is seen); replies also send what is due.
  void tick() {
    const std::int64_t now = now_ns();
    if (now - start_ns_ > std::int64_t(deadline_s_ * 1e9)) return finish();
    pump(now);
    if (phase_.sent == phase_.planned && in_flight_ == 0) return finish();
    const std::int64_t wait_ns =
        phase_.sent < phase_.planned
            ? std::clamp<std::int64_t>(due_ns(phase_.sent) - now, 100'000, 1'000'000)
            : 1'000'000;
    pacer_.expires_after(std::chrono::nanoseconds(wait_ns));
    pacer_.async_wait([this](beast::error_code ec) {
      if (!ec) tick();
    });
  }

  void pump(std::int64_t now) {
    if (phase_.load_done) return;
    while (phase_.sent < phase_.planned && !idle_.empty() && due_ns(phase_.sent) <= now) {
      Connection* c = idle_.back();
      idle_.pop_back();
      ++in_flight_;
      send(*c, phase_.sent++);
    }
  }

  void send(Connection& c, std::uint64_t i) {
    c.due_ns = due_ns(i);
    c.busy = true;
    c.request.body() =
        fmt::format(R"({{"slotId":{},"patientName":"Fanout Load"}})", phase_.first_slot_id + i);
    c.request.prepare_payload();
    http::async_write(c.stream, c.request, [this, &c](beast::error_code ec, std::size_t) {
      if (ec) return broken(c);
      c.response = {};
      http::async_read(c.stream, c.buffer, c.response,
                       [this, &c](beast::error_code rec, std::size_t) {
                         if (rec) return broken(c);
                         replied(c);
                       });
    });
  }

  void replied(Connection& c) {
    --in_flight_;
    c.busy = false;
    if (phase_.load_done) return;  // already counted as unanswered
    const std::int64_t now = now_ns();
    phase_.last_reply_ns = now;
    phase_.booking.record_ns(now - c.due_ns);
    if (c.response.result_int() == 201) {
      ++phase_.created;
      if (const auto seq = uint_field(c.response.body(), "seq")) {
        if (*seq >= phase_.first_seq && *seq - phase_.first_seq < phase_.reply_slots) {
          phase_.reply_ns[*seq - phase_.first_seq].store(now, std::memory_order_relaxed);
        }
      }
    } else if (c.response.result_int() == 409) {
      ++phase_.conflicts;
    } else {
      ++phase_.other;
    }
    idle_.push_back(&c);
    pump(now);
  }

  // The connection stays out of the idle list. Requests cut off by the deadline are not
  // errors: they are the sent ones without a reply.
  void broken(Connection& c) {
    --in_flight_;
    c.busy = false;
    if (!phase_.load_done) ++phase_.io_errors;
  }

  // At the deadline each request without a reply (in flight, or never sent because no
  // connection was free) counts with its wait so far: a lower bound, so that the booking
  // percentiles do not leave out the slowest requests.
  void finish() {
    if (phase_.load_done.exchange(true)) return;
    const std::int64_t now = now_ns();
    for (const auto& c : connections_) {
      if (!c->busy) continue;
      phase_.booking.record_ns(now - c->due_ns);
      ++phase_.unanswered;
    }
    for (std::uint64_t i = phase_.sent; i < phase_.planned; ++i) {
      phase_.booking.record_ns(now - due_ns(i));
      ++phase_.unanswered;
    }
    pacer_.cancel();
    for (auto& c : connections_) c->stream.cancel();
  }

  Phase& phase_;
  net::steady_timer pacer_;
  double deadline_s_;
  std::int64_t start_ns_ = 0;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> idle_;
  std::size_t in_flight_ = 0;
};

// Waits (polling) until done() or the timeout; true if done.
template <class F>
bool wait_until(F done, double timeout_s) {
  const auto until = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (!done()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

struct PhaseResult {
  std::string text;  // the RESULT line
  double booking_p99_ms = 0, event_p99_ms = 0;
  std::uint64_t closed = 0;
  std::string stuck;
};

PhaseResult run_phase(const Options& o, const tcp::endpoint& endpoint, const std::string& host,
                      SetupClient& setup, std::size_t subscribers, bool with_stuck,
                      std::uint64_t first_slot_id) {
  Phase phase;
  phase.rate = o.rate;
  phase.planned = std::uint64_t(o.rate * o.duration_s + 0.5);
  phase.first_slot_id = first_slot_id + 1;  // first_slot_id itself is the probe's
  phase.reply_slots = phase.planned + 1024;
  phase.reply_ns = std::make_unique<std::atomic<std::int64_t>[]>(phase.reply_slots);
  phase.early_by_seq = std::make_unique<std::uint32_t[]>(phase.reply_slots);

  net::io_context feed_ioc(1);
  auto feed_work = net::make_work_guard(feed_ioc);
  std::thread feed_thread([&] { feed_ioc.run(); });
  struct StopFeed {
    net::io_context& ioc;
    std::thread& thread;
    ~StopFeed() {
      ioc.stop();
      if (thread.joinable()) thread.join();
    }
  } stop_feed{feed_ioc, feed_thread};

  // Connect at most 128 at a time: a burst of thousands of SYNs overflows the backlog.
  const std::uint64_t from_seq = setup.durable_seq() + 1;
  std::vector<std::shared_ptr<Subscriber>> readers;
  for (std::size_t i = 0; i < subscribers; ++i) {
    readers.push_back(std::make_shared<Subscriber>(feed_ioc, phase, true));
  }
  std::shared_ptr<Subscriber> stuck;
  if (with_stuck) stuck = std::make_shared<Subscriber>(feed_ioc, phase, false);
  std::size_t next = 0;
  std::function<void()> launch = [&] {
    if (next < readers.size()) readers[next++]->start(endpoint, host, from_seq, launch);
  };
  net::post(feed_ioc, [&] {
    for (int i = 0; i < 128; ++i) launch();
    if (stuck) stuck->start(endpoint, host, from_seq, nullptr);
  });
  const std::size_t total = subscribers + (with_stuck ? 1 : 0);
  if (!wait_until([&] { return phase.finished_connecting.load() == total; }, 120)) {
    fail("subscribers did not finish connecting within 120 s");
  }
  if (phase.connect_failed > 0) {  // the feed thread is done with it: everyone has finished
    std::fprintf(stderr,
                 "ws_fanout: WARNING: %llu of %zu subscribers could not subscribe (first: %s); "
                 "slotd caps feed connections per client (--max-feed-connections-per-client)\n",
                 static_cast<unsigned long long>(phase.connect_failed), total,
                 phase.first_connect_error.c_str());
  }

  // The probe: when every reader has its event, every subscription is live.
  const auto probe =
      setup.call(http::verb::post, "/booking",
                 fmt::format(R"({{"slotId":{},"patientName":"Probe"}})", first_slot_id));
  const auto probe_seq = uint_field(probe.body, "seq");
  if (probe.status != 201 || !probe_seq) fail("probe booking: " + probe.body);
  const bool all_live = wait_until(
      [&] {
        for (const auto& r : readers) {
          if (r->live && r->last_seq.load() < *probe_seq) return false;
        }
        return true;
      },
      30);
  if (!all_live)
    std::fprintf(stderr, "ws_fanout: not every subscriber saw the probe within 30 s\n");
  phase.first_seq = *probe_seq + 1;

  // Connections first, then the clock starts.
  net::io_context load_ioc(1);
  BookingLoad load(load_ioc, phase, endpoint, host, o.connections, o.duration_s + o.drain_s);
  net::post(load_ioc, [&] { load.start(); });
  std::thread load_thread([&] { load_ioc.run(); });
  load_thread.join();  // returns when every reply is in, or at the deadline

  // Requests cut off at the deadline may still become durable: wait until the journal
  // stops growing (at most 5 s), then until every live reader has the last event.
  std::uint64_t last_seq = setup.durable_seq();
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::uint64_t now = setup.durable_seq();
    if (now == last_seq) break;
    last_seq = now;
  }
  const std::uint64_t durable_events = last_seq - *probe_seq;
  wait_until(
      [&] {
        for (const auto& r : readers) {
          if (r->live && r->last_seq.load() < last_seq) return false;
        }
        return true;
      },
      o.drain_s);

  std::string stuck_outcome = "-";
  std::atomic<bool> drained{false};  // written by the feed thread, which stops before these go
  std::uint64_t messages = 0;
  int code = 0;
  std::string error;
  if (stuck) {
    net::post(feed_ioc, [&] {
      stuck->drain([&](std::uint64_t m, int c, std::string e) {
        messages = m;
        code = c;
        error = std::move(e);
        drained = true;
      });
    });
    // Closed (1008: slow consumer), or it never fell far enough behind to be closed and
    // catches up once it reads.
    if (wait_until([&] { return drained.load() || stuck->last_seq.load() >= last_seq; }, 5)) {
      if (!drained) {
        stuck_outcome = "not_closed_caught_up_when_read";
      } else if (code) {
        stuck_outcome = fmt::format("closed_by_slotd_code_{}_after_{}_messages", code, messages);
      } else {
        // Ended without a close frame (e.g. reset): name the error, one word per RESULT field.
        std::replace(error.begin(), error.end(), ' ', '_');
        stuck_outcome =
            fmt::format("ended_without_close_frame_({})_after_{}_messages", error, messages);
      }
    } else {
      stuck_outcome = "open_and_behind_after_5s_of_reading";
    }
  }
  feed_ioc.stop();
  feed_thread.join();

  const std::size_t live_readers = std::size_t(
      std::count_if(readers.begin(), readers.end(), [](const auto& r) { return r->live.load(); }));
  const double window_s =
      double(std::max(phase.last_event_ns.load(), phase.last_reply_ns) - phase.load_start_ns) / 1e9;
  // Events whose booking never got its 201 (cut off at the deadline) have no reply time:
  // they were counted as early at 0 ms, which they were not.
  std::uint64_t without_reply = 0;
  for (std::size_t i = 0; i < phase.reply_slots; ++i) {
    if (phase.early_by_seq[i] == 0 || phase.reply_ns[i].load() != 0) continue;
    without_reply += phase.early_by_seq[i];
    phase.event_from_reply.remove_zeros(phase.early_by_seq[i]);
  }
  phase.early -= without_reply;
  const std::uint64_t expected = durable_events * subscribers;
  PhaseResult result;
  result.booking_p99_ms = phase.booking.percentile_ms(99);
  result.event_p99_ms = phase.event_from_reply.percentile_ms(99);
  result.closed = phase.closed;
  result.stuck = stuck_outcome;
  result.text = fmt::format(
      "RESULT name=ws_fanout subscribers={} stuck={} rate={:.0f} duration_s={:.1f} "
      "connections={} planned={} sent={} s201={} s409={} other={} io_errors={} "
      "unanswered={} booking_p50_ms={:.3f} "
      "booking_p99_ms={:.3f} durable_events={} events_per_s={:.0f} delivered={} expected={} "
      "event_p50_ms={:.3f} event_p99_ms={:.3f} early={} without_reply={} "
      "due_to_event_p50_ms={:.3f} "
      "due_to_event_p99_ms={:.3f} seq_breaks={} unexpected={} subscribed={} "
      "connect_failed={} closed={} closed_slow={} live_at_end={} stuck_outcome={}",
      subscribers, with_stuck ? "yes" : "no", o.rate, o.duration_s, o.connections, phase.planned,
      phase.sent, phase.created, phase.conflicts, phase.other, phase.io_errors, phase.unanswered,
      phase.booking.percentile_ms(50), phase.booking.percentile_ms(99), durable_events,
      window_s > 0 ? double(phase.events) / window_s : 0.0, phase.events, expected,
      phase.event_from_reply.percentile_ms(50), phase.event_from_reply.percentile_ms(99),
      phase.early, without_reply, phase.event_from_due.percentile_ms(50),
      phase.event_from_due.percentile_ms(99), phase.seq_breaks, phase.unexpected,
      phase.subscribed.load(), phase.connect_failed, phase.closed, phase.closed_slow, live_readers,
      stuck_outcome);
  return result;
}

// Each subscriber and HTTP connection is a descriptor; raise the soft limit to what is needed.
void raise_nofile(std::size_t needed) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur >= needed) return;
  if (limit.rlim_max < needed) {
    fail(fmt::format("needs {} file descriptors, the hard limit is {}", needed, limit.rlim_max));
  }
  limit.rlim_cur = needed;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) fail("setrlimit(RLIMIT_NOFILE) failed");
}

}  // namespace

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::size_t most = *std::max_element(o.subscribers.begin(), o.subscribers.end());
  raise_nofile(most + o.connections + 256);

  net::io_context setup_ioc;
  beast::error_code ec;
  const tcp::endpoint endpoint(net::ip::make_address(o.host, ec), o.port);
  if (ec) usage("invalid --host");
  const std::string host = fmt::format("{}:{}", o.host, o.port);
  SetupClient setup(setup_ioc, endpoint, host, o.admin_token);

  const std::uint64_t per_phase = std::uint64_t(o.rate * o.duration_s + 0.5) + 1;  // + probe
  std::string report = fmt::format(
      "# ws_fanout {}: {} bookings/s for {} s per phase over {} HTTP connections, drain {} s, "
      "slotd at {}, {} cores shared by slotd and this client\n",
      [] {
        char t[32];
        const std::time_t now = std::time(nullptr);
        std::tm tm{};
        gmtime_r(&now, &tm);
        std::strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return std::string(t);
      }(),
      o.rate, o.duration_s, o.connections, o.drain_s, host, std::thread::hardware_concurrency());
  std::fputs(report.c_str(), stdout);
  std::fflush(stdout);
  for (const std::size_t n : o.subscribers) {
    std::vector<PhaseResult> results;
    for (const bool with_stuck : {false, true}) {
      std::fprintf(stderr, "ws_fanout: seeding %llu slots\n",
                   static_cast<unsigned long long>(per_phase));
      const std::uint64_t first_slot = seed_slots(setup, per_phase);
      std::fprintf(stderr, "ws_fanout: %zu subscribers%s, %.0f bookings/s for %.1f s\n", n,
                   with_stuck ? " + 1 stuck" : "", o.rate, o.duration_s);
      results.push_back(run_phase(o, endpoint, host, setup, n, with_stuck, first_slot));
      const std::string line = results.back().text + "\n";
      std::fputs(line.c_str(), stdout);
      std::fflush(stdout);
      report += line;
      // The next phase starts on a slotd that has dropped this phase's sockets and their
      // queued messages, so that it does not pay for this one.
      const bool idle = wait_until([&] { return setup.open_connections() <= 1; }, 120);
      if (!idle) std::fprintf(stderr, "ws_fanout: slotd still has connections open after 120 s\n");
    }
    const std::string summary = fmt::format(
        "# {} subscribers, with one stuck subscriber added: booking p99 {:.3f} -> {:.3f} ms, "
        "event p99 {:.3f} -> {:.3f} ms, readers closed {} -> {}; the stuck one: {}\n",
        n, results[0].booking_p99_ms, results[1].booking_p99_ms, results[0].event_p99_ms,
        results[1].event_p99_ms, results[0].closed, results[1].closed, results[1].stuck);
    std::fputs(summary.c_str(), stdout);
    std::fflush(stdout);
    report += summary;
  }
  std::ofstream(o.out) << report;
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fail(e.what());
  }
}
