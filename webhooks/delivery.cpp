// The delivery worker and its HTTP client: the only Beast translation unit of webhooks/.
//
// Everything here runs on one delivery thread (its own io_context) except the public entry
// points, which post to it, and DNS lookups, which each get a short-lived thread. Each
// endpoint has at most one attempt in flight, so its events go out in seq order; attempts
// of different endpoints run concurrently as asynchronous operations.
#include "webhooks/delivery.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

#include "api/partition.hpp"
#include "webhooks/destination.hpp"
#include "webhooks/payload.hpp"
#include "webhooks/signing.hpp"

namespace slotd {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr std::uint64_t kScanRecords = 1024;        // records one look at the journal reads
constexpr std::uint64_t kStoreSkippedEvery = 4096;  // store the cursor after skipping as many
constexpr std::uint32_t kResponseHeaderLimit = 16 << 10;
constexpr std::chrono::milliseconds kRoleCheckEvery{100};     // cluster mode: may this node deliver?
constexpr std::chrono::milliseconds kSharedLoadRetryAfter{1000};  // the shared cursors were unreadable

TimeMs wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

net::ip::address to_asio(const IpAddress& a) {
  if (a.v6) {
    net::ip::address_v6::bytes_type b;
    std::copy_n(a.bytes.begin(), 16, b.begin());
    return net::ip::address_v6(b);
  }
  net::ip::address_v4::bytes_type b;
  std::copy_n(a.bytes.begin(), 4, b.begin());
  return net::ip::address_v4(b);
}

std::string host_header(const WebhookUrl& url) {
  std::string host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
  if (url.port != (url.tls ? 443 : 80)) host += fmt::format(":{}", url.port);
  return host;
}

struct AttemptResult {
  bool ok = false;
  std::string error;
};

struct Resolution {
  std::vector<IpAddress> addresses;
  std::string error;  // empty = resolved
};

// One POST of one event: connect to the addresses it is given (already checked), TLS with
// peer and host name verification for https, send, read the response head. One deadline
// covers all of it, from construction on (so the DNS lookup before connect() counts too).
class Attempt : public std::enable_shared_from_this<Attempt> {
 public:
  using Done = std::function<void(AttemptResult)>;

  Attempt(net::io_context& ioc, ssl::context& tls, WebhookUrl url,
          http::request<http::string_body> request, Done done)
      : url_(std::move(url)), request_(std::move(request)), deadline_(ioc),
        done_(std::move(done)) {
    if (url_.tls) {
      tls_.emplace(ioc, tls);
    } else {
      plain_.emplace(ioc);
    }
  }

  void arm(std::chrono::milliseconds timeout) {
    deadline_.expires_after(timeout);
    deadline_.async_wait([weak = weak_from_this(), timeout](beast::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->fail(fmt::format("no answer within {} ms", timeout.count()));
    });
  }

  void connect(const std::vector<IpAddress>& addresses) {
    if (finished_) return;
    std::vector<tcp::endpoint> endpoints;
    for (const IpAddress& a : addresses) endpoints.emplace_back(to_asio(a), url_.port);
    lowest().async_connect(endpoints, [self = shared_from_this()](beast::error_code ec,
                                                                  const tcp::endpoint&) {
      self->on_connect(ec);
    });
  }

  void fail(std::string error) { finish(AttemptResult{false, std::move(error)}); }

  // Ends the attempt without a result (the endpoint was deleted, redelivered or stopped).
  void cancel() {
    done_ = nullptr;
    finish(AttemptResult{false, "cancelled"});
  }

 private:
  beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

  void on_connect(beast::error_code ec) {
    if (finished_) return;
    if (ec) return fail("connect failed: " + ec.message());
    if (!tls_) return send(*plain_);
    // SNI only for names (RFC 6066); the certificate must match the host either way.
    if (!url_.host_is_ip && !SSL_set_tlsext_host_name(tls_->native_handle(), url_.host.c_str())) {
      return fail("TLS: cannot set the server name");
    }
    tls_->set_verify_mode(ssl::verify_peer);
    tls_->set_verify_callback(ssl::host_name_verification(url_.host));
    tls_->async_handshake(ssl::stream_base::client,
                          [self = shared_from_this()](beast::error_code ec) {
                            if (self->finished_) return;
                            if (ec) return self->fail("TLS handshake failed: " + ec.message());
                            self->send(*self->tls_);
                          });
  }

  template <class Stream>
  void send(Stream& stream) {
    http::async_write(stream, request_,
                      [self = shared_from_this(), &stream](beast::error_code ec, std::size_t) {
                        if (self->finished_) return;
                        if (ec) return self->fail("sending the request failed: " + ec.message());
                        self->read_head(stream);
                      });
  }

  template <class Stream>
  void read_head(Stream& stream) {
    parser_.emplace();
    parser_->header_limit(kResponseHeaderLimit);
    http::async_read_header(stream, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (self->finished_) return;
                              if (ec) return self->fail("reading the response failed: " + ec.message());
                              const unsigned status = self->parser_->get().result_int();
                              if (status >= 200 && status < 300) {
                                return self->finish(AttemptResult{true, {}});
                              }
                              self->fail(fmt::format("HTTP {}", status));
                            });
  }

  void finish(AttemptResult result) {
    if (finished_) return;
    finished_ = true;
    deadline_.cancel();
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
    if (auto done = std::move(done_)) done(std::move(result));
  }

  WebhookUrl url_;
  http::request<http::string_body> request_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::empty_body>> parser_;
  net::steady_timer deadline_;
  Done done_;
  bool finished_ = false;
};

// The event an endpoint is delivering; the body is rendered once, signed per attempt.
struct Due {
  std::uint64_t seq = 0;
  std::string event_id;
  std::string body;
};

struct Endpoint {
  WebhookInfo info;
  std::optional<WebhookUrl> url;   // nullopt: the stored URL no longer parses (failing)
  std::uint64_t next_seq = 1;      // first seq not yet delivered or skipped
  std::uint64_t stored_next_seq = 0;
  bool failing = false;            // dead letter: waits for redeliver
  bool in_flight = false;
  bool waiting = false;            // for the retry timer
  std::uint32_t attempts = 0;      // failed attempts at `due`
  std::string last_error;
  TimeMs last_attempt_at_ms = 0, next_attempt_at_ms = 0;
  std::uint64_t generation = 0;    // bumped by redeliver: results of older attempts are dropped
  std::optional<Due> due;
  std::unique_ptr<net::steady_timer> timer;
  std::shared_ptr<Attempt> attempt;
  std::uint64_t delivered = 0, failed_attempts = 0, retries = 0;
};

}  // namespace

struct WebhookDelivery::Impl {
  // DNS lookups run on short-lived detached threads, so a slow DNS server delays only the
  // lookup that waits for it; the result comes back through here, closed at stop().
  struct Mailbox {
    std::mutex mutex;
    Impl* impl = nullptr;
  };

  Impl(Sequencer& sequencer, WebhookDeliveryOptions options)
      : sequencer(sequencer), options(options), ioc(std::make_unique<net::io_context>(1)),
        work(ioc->get_executor()), tls(ssl::context::tls_client),
        mailbox(std::make_shared<Mailbox>()), rng(std::random_device{}()) {
    tls.set_default_verify_paths();  // the system CA store (SSL_CERT_FILE/DIR override it)
    tls.set_verify_mode(ssl::verify_peer);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    mailbox->impl = this;
  }

  Sequencer& sequencer;
  const WebhookDeliveryOptions options;

  // Guards posting against stop(): nothing is posted once stopped.
  std::mutex lifecycle_mutex;
  bool stopped = false;
  std::unique_ptr<net::io_context> ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::thread thread;
  ssl::context tls;
  std::shared_ptr<Mailbox> mailbox;
  std::atomic<bool> wake_posted{false};
  // The webhook list version at which this thread has nothing to do (no endpoint), or
  // kNotQuiet. While the read store's list is still at that version, a durable batch
  // needs no wake-up: without webhooks, each group commit woke this thread for nothing.
  static constexpr std::uint64_t kNotQuiet = ~std::uint64_t{0};
  std::atomic<std::uint64_t> quiet_version{kNotQuiet};
  std::atomic<std::uint64_t> wakeups{0};  // runs of on_wake, for /metrics

  // Delivery-thread state.
  // Cluster mode: whether this node delivers (it leads and has merged the shared cursors).
  // A single node always does.
  bool delivering = !options.sharing.may_deliver;
  std::atomic<bool> delivering_now{false};  // the same, for readers on other threads
  std::map<std::uint64_t, JournalCursor> shared_cursors;  // as read when this node took over
  std::unique_ptr<net::steady_timer> role_timer;
  std::chrono::steady_clock::time_point next_shared_load{};
  std::map<Id, std::unique_ptr<Endpoint>> endpoints;
  std::vector<bool> deleted_seen;  // by webhook id - 1: deleted ones already cleaned up
  std::uint64_t seen_version = ~std::uint64_t{0};
  std::unordered_map<std::uint64_t, std::function<void(Resolution)>> lookups;
  std::uint64_t next_lookup = 0;
  std::mt19937_64 rng;

  // For readers on other threads (GET /admin/webhooks, /metrics).
  mutable std::mutex status_mutex;
  std::map<Id, WebhookDeliveryStatus> statuses;

  template <class F>
  bool post(F&& f) {
    std::lock_guard lock(lifecycle_mutex);
    if (stopped) return false;
    net::post(*ioc, std::forward<F>(f));
    return true;
  }

  // ---- logging: endpoint id and host only (a URL's path or query may hold a token) ----

  void log(const Endpoint& ep, const std::string& message) const {
    const std::string where =
        ep.url ? fmt::format("{}:{}", ep.url->host, ep.url->port) : std::string("bad url");
    std::fprintf(stderr, "slotd: webhook %llu (%s): %s\n",
                 static_cast<unsigned long long>(ep.info.id), where.c_str(), message.c_str());
  }

  // ---- DNS ----

  void resolve(const WebhookUrl& url, std::function<void(Resolution)> then) {
    if (url.host_is_ip) {
      Resolution r;
      if (!resolve_host(url.host, r.addresses, r.error)) r.addresses.clear();
      net::post(*ioc, [then = std::move(then), r = std::move(r)]() mutable { then(std::move(r)); });
      return;
    }
    const std::uint64_t id = ++next_lookup;
    lookups.emplace(id, std::move(then));
    try {
      std::thread([mailbox = mailbox, host = url.host, id] {
        Resolution r;
        if (!resolve_host(host, r.addresses, r.error)) r.addresses.clear();
        std::lock_guard lock(mailbox->mutex);
        if (Impl* impl = mailbox->impl) {
          net::post(*impl->ioc, [impl, id, r = std::move(r)]() mutable {
            impl->lookup_done(id, std::move(r));
          });
        }
      }).detach();
    } catch (const std::system_error& e) {
      lookup_done(id, Resolution{{}, std::string("cannot start a DNS lookup: ") + e.what()});
    }
  }

  void lookup_done(std::uint64_t id, Resolution r) {
    auto it = lookups.find(id);
    if (it == lookups.end()) return;
    auto then = std::move(it->second);
    lookups.erase(it);
    then(std::move(r));
  }

  // ---- endpoints ----

  void publish_status(const Endpoint& ep) {
    WebhookDeliveryStatus s;
    s.state = !delivering ? "standby" : ep.failing ? "failing" : ep.attempts > 0 ? "retrying" : "active";
    s.next_seq = ep.next_seq;
    s.attempts = ep.attempts;
    s.last_error = ep.last_error;
    s.last_attempt_at_ms = ep.last_attempt_at_ms;
    s.next_attempt_at_ms = ep.waiting ? ep.next_attempt_at_ms : 0;
    s.delivered = ep.delivered;
    s.failed_attempts = ep.failed_attempts;
    s.retries = ep.retries;
    std::lock_guard lock(status_mutex);
    statuses[ep.info.id] = std::move(s);
  }

  JournalStatus store_cursor(Endpoint& ep) {
    JournalStatus st = sequencer.put_cursor(ep.info.id, JournalCursor{ep.next_seq, ep.failing});
    if (st) {
      ep.stored_next_seq = ep.next_seq;
    } else {
      // Not fatal: the cursor in memory is right; a restart repeats what was delivered since.
      log(ep, "cannot store the delivery cursor: " + st.message);
    }
    if (delivering && options.sharing.store) {
      options.sharing.store(ep.info.id, JournalCursor{ep.next_seq, ep.failing});
    }
    return st;
  }

  void add_endpoint(const WebhookInfo& info) {
    auto ep = std::make_unique<Endpoint>();
    ep->info = info;
    ep->timer = std::make_unique<net::steady_timer>(*ioc);
    std::string problem;
    ep->url = parse_webhook_url(info.url, problem);
    std::optional<JournalCursor> cursor;
    JournalStatus st = sequencer.get_cursor(info.id, cursor);
    if (!st) log(*ep, "cannot read the delivery cursor, starting after the registration: " + st.message);
    if (cursor) {
      ep->next_seq = cursor->next_seq;
      ep->stored_next_seq = cursor->next_seq;
      ep->failing = cursor->stopped;
      if (ep->failing) {
        ep->last_error = "marked failing before the restart; POST /admin/webhooks/:id/redeliver resumes it";
      }
    } else {
      ep->next_seq = info.registered_seq + 1;  // events after the registration
    }
    if (delivering) (void)adopt_shared_cursor(*ep);
    if (!ep->url) {
      ep->failing = true;
      ep->last_error = "the url cannot be used: " + problem;
    }
    publish_status(*ep);
    endpoints.emplace(info.id, std::move(ep));
  }

  void drop_endpoint(std::map<Id, std::unique_ptr<Endpoint>>::iterator it) {
    Endpoint& ep = *it->second;
    ++ep.generation;
    if (ep.attempt) ep.attempt->cancel();
    ep.timer->cancel();
    JournalStatus st = sequencer.delete_cursor(ep.info.id);
    if (!st) log(ep, "cannot delete the delivery cursor: " + st.message);
    shared_cursors.erase(ep.info.id);
    if (delivering && options.sharing.forget) options.sharing.forget(ep.info.id);
    {
      std::lock_guard lock(status_mutex);
      statuses.erase(ep.info.id);
    }
    endpoints.erase(it);
  }

  // Follows registrations and deletions in the read store.
  void sync_endpoints() {
    auto list = sequencer.reads().webhooks();
    if (list->version == seen_version) return;
    seen_version = list->version;
    deleted_seen.resize(list->webhooks.size(), false);
    for (const WebhookInfo& w : list->webhooks) {
      auto it = endpoints.find(w.id);
      if (w.deleted) {
        if (it != endpoints.end()) {
          drop_endpoint(it);
        } else if (!deleted_seen[w.id - 1]) {
          // Deleted before a restart: its cursor may still be stored.
          std::optional<JournalCursor> cursor;
          if (sequencer.get_cursor(w.id, cursor) && cursor) (void)sequencer.delete_cursor(w.id);
        }
        deleted_seen[w.id - 1] = true;
        continue;
      }
      if (it == endpoints.end()) add_endpoint(w);
    }
  }

  void on_wake() {
    wake_posted.store(false, std::memory_order_relaxed);
    wakeups.fetch_add(1, std::memory_order_relaxed);
    sync_endpoints();
    check_role();
    for (auto& [id, ep] : endpoints) pump(*ep);
    // seen_version is what sync_endpoints read: a list published after that read has
    // another version, so notify_durable wakes this thread for it.
    quiet_version.store(endpoints.empty() ? seen_version : kNotQuiet, std::memory_order_release);
  }

  // ---- cluster mode: only the leader delivers ----

  // Moves the endpoint to the shared cursor where that one is further on (or, at the same
  // seq, carries the last leader's failing flag); true if it moved.
  bool adopt_shared_cursor(Endpoint& ep) {
    auto it = shared_cursors.find(ep.info.id);
    if (it == shared_cursors.end()) return false;
    const JournalCursor merged = merge_webhook_cursor(JournalCursor{ep.next_seq, ep.failing}, it->second);
    if (merged.next_seq == ep.next_seq && merged.stopped == ep.failing) return false;
    ep.next_seq = merged.next_seq;
    ep.failing = merged.stopped;
    return true;
  }

  bool may_deliver() const { return !options.sharing.may_deliver || options.sharing.may_deliver(); }

  void check_role() {
    const bool may = may_deliver();
    if (delivering && !may) stand_by();
    if (!delivering && may) take_over();
  }

  void schedule_role_check() {
    role_timer->expires_after(kRoleCheckEvery);
    role_timer->async_wait([this](beast::error_code ec) {
      if (ec) return;
      check_role();
      schedule_role_check();
    });
  }

  // No new attempts or retries; one in flight may finish (at least once: the next leader
  // may repeat it). Its result is stored here but not shared.
  void stand_by() {
    delivering = false;
    delivering_now.store(false, std::memory_order_relaxed);
    for (auto& [id, ep] : endpoints) {
      ep->timer->cancel();
      ep->waiting = false;
      if (!ep->in_flight) ep->due.reset();
      publish_status(*ep);
    }
    std::fprintf(stderr, "slotd: webhooks: not the cluster leader any more, delivery stops\n");
  }

  // This node now leads: resume every endpoint from its own cursor or the shared one,
  // whichever is further on, so a follower's stale cursors do not repeat the last leader's
  // deliveries. Until the shared cursors can be read, nothing is delivered.
  void take_over() {
    std::map<std::uint64_t, JournalCursor> shared;
    const auto load_started = std::chrono::steady_clock::now();
    if (options.sharing.load) {
      if (std::chrono::steady_clock::now() < next_shared_load) return;
      std::string error;
      if (!options.sharing.load(shared, error)) {
        next_shared_load = std::chrono::steady_clock::now() + kSharedLoadRetryAfter;
        std::fprintf(stderr, "slotd: webhooks: cannot read the shared cursors, not delivering yet: %s\n",
                     error.c_str());
        return;
      }
    }
    sync_endpoints();
    shared_cursors = std::move(shared);
    std::size_t moved = 0;
    for (auto& [id, ep] : endpoints) {
      // Attempts of an earlier term are dropped: their cursor may be behind the merged one.
      ++ep->generation;
      if (ep->attempt) ep->attempt->cancel();
      ep->attempt.reset();
      ep->timer->cancel();
      ep->in_flight = ep->waiting = false;
      ep->attempts = 0;
      ep->due.reset();
      if (!ep->url) continue;  // failing for good: its URL cannot be used
      if (!adopt_shared_cursor(*ep)) continue;
      ++moved;
      if (!ep->failing) ep->last_error.clear();
      (void)store_cursor(*ep);  // not shared: delivering is still false
    }
    delivering = true;
    delivering_now.store(true, std::memory_order_relaxed);
    // Written back at once: the shared value becomes the merged one even when this node's
    // own was further on, and the last leader's queued writes, if any, are superseded.
    if (options.sharing.store) {
      for (auto& [id, ep] : endpoints) {
        if (ep->url) options.sharing.store(id, JournalCursor{ep->next_seq, ep->failing});
      }
    }
    const auto load_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - load_started)
                             .count();
    std::fprintf(stderr,
                 "slotd: webhooks: delivering as the cluster leader; %zu of %zu endpoints resume "
                 "from the shared cursor (%zu shared, read in %lld ms)\n",
                 moved, endpoints.size(), shared_cursors.size(), static_cast<long long>(load_ms));
    for (auto& [id, ep] : endpoints) {
      publish_status(*ep);
      pump(*ep);
    }
  }

  void pump_later(Id id) {
    net::post(*ioc, [this, id] {
      auto it = endpoints.find(id);
      if (it != endpoints.end()) pump(*it->second);
    });
  }

  // Finds the next event this endpoint wants, from its cursor up to what readers can see.
  // Reads at most kScanRecords records per call and comes back for more, so one endpoint
  // with a long backlog does not hold up the others on this thread.
  bool find_due(Endpoint& ep) {
    const ReadStore& reads = sequencer.reads();
    const std::uint64_t visible = reads.as_of_seq();
    if (ep.next_seq > visible) return false;
    bool found = false;
    JournalStatus st = sequencer.read_journal(ep.next_seq, kScanRecords, [&](const JournalRecord& r) {
      if (r.seq > visible) return false;
      auto event = webhook_event_of(r, reads);
      if (event && webhook_wants(ep.info, *event)) {
        ep.due = Due{r.seq, webhook_event_id(r.seq),
                     webhook_body(r, *event, reads, ep.info.include_patient)};
        found = true;
        return false;
      }
      ep.next_seq = r.seq + 1;
      return true;
    });
    if (!st) {
      ep.last_error = "reading the journal failed: " + st.message;
      log(ep, ep.last_error);
      wait_and_retry(ep, 1);
      return false;
    }
    if (!found) {
      if (ep.next_seq >= ep.stored_next_seq + kStoreSkippedEvery) store_cursor(ep);
      if (ep.next_seq <= visible) pump_later(ep.info.id);
      publish_status(ep);
    }
    return found;
  }

  void pump(Endpoint& ep) {
    if (!delivering || ep.failing || ep.in_flight || ep.waiting) return;
    // Stepped down since the last role check: start nothing (the timer catches up).
    if (!may_deliver()) return;
    if (!ep.due && !find_due(ep)) return;
    start_attempt(ep);
  }

  void start_attempt(Endpoint& ep) {
    ep.in_flight = true;
    if (ep.attempts > 0) ++ep.retries;
    ep.last_attempt_at_ms = wall_ms();
    const Due& due = *ep.due;
    const std::int64_t timestamp_s = ep.last_attempt_at_ms / 1000;
    http::request<http::string_body> request{http::verb::post, ep.url->target, 11};
    request.set(http::field::host, host_header(*ep.url));
    request.set(http::field::user_agent, "slotd-webhooks/" SLOTD_VERSION);
    request.set(http::field::content_type, "application/json");
    request.set(http::field::connection, "close");
    request.set("X-Slotd-Event-Id", due.event_id);
    request.set("X-Slotd-Timestamp", std::to_string(timestamp_s));
    request.set("X-Slotd-Signature", webhook_signature(ep.info.secret, timestamp_s, due.body));
    request.body() = due.body;
    request.prepare_payload();

    const Id id = ep.info.id;
    const std::uint64_t generation = ep.generation;
    auto attempt = std::make_shared<Attempt>(
        *ioc, tls, *ep.url, std::move(request),
        [this, id, generation](AttemptResult r) { attempt_done(id, generation, std::move(r)); });
    ep.attempt = attempt;
    attempt->arm(millis(options.timeout_s));
    // Checked at every attempt and connected to exactly the checked addresses: no second
    // lookup between the check and the connection (DNS rebinding).
    resolve(*ep.url, [this, weak = std::weak_ptr<Attempt>(attempt),
                      host = ep.url->host](Resolution r) {
      auto a = weak.lock();
      if (!a) return;
      if (!r.error.empty()) return a->fail(r.error);
      if (auto refused = refused_destination(host, r.addresses, options.allow_private)) {
        return a->fail("destination refused: " + *refused);
      }
      a->connect(r.addresses);
    });
    publish_status(ep);
  }

  void attempt_done(Id id, std::uint64_t generation, AttemptResult r) {
    auto it = endpoints.find(id);
    if (it == endpoints.end()) return;
    Endpoint& ep = *it->second;
    if (generation != ep.generation) return;
    ep.in_flight = false;
    ep.attempt.reset();
    if (r.ok) {
      ++ep.delivered;
      if (ep.attempts > 0) log(ep, fmt::format("delivered seq {} after {} failed attempts", ep.due->seq, ep.attempts));
      ep.attempts = 0;
      ep.next_seq = ep.due->seq + 1;
      ep.due.reset();
      store_cursor(ep);
      publish_status(ep);
      return pump(ep);
    }
    ++ep.failed_attempts;
    ++ep.attempts;
    ep.last_error = std::move(r.error);
    if (!delivering) {
      // Failed after this node stepped down: the leader retries, not this node.
      ep.due.reset();
      publish_status(ep);
      return;
    }
    if (ep.attempts >= options.max_attempts) {
      ep.failing = true;
      store_cursor(ep);
      log(ep, fmt::format("marked failing after {} attempts at seq {}: {}", ep.attempts,
                          ep.due->seq, ep.last_error));
      publish_status(ep);
      return;
    }
    if (ep.attempts == 1) {
      log(ep, fmt::format("delivery of seq {} failed, retrying with backoff: {}", ep.due->seq,
                          ep.last_error));
    }
    wait_and_retry(ep, ep.attempts);
  }

  void wait_and_retry(Endpoint& ep, std::uint32_t failed) {
    const auto delay = webhook_retry_delay(failed, options.backoff_base_s, options.backoff_max_s,
                                           std::uniform_real_distribution<double>(0, 1)(rng));
    ep.waiting = true;
    ep.next_attempt_at_ms = wall_ms() + delay.count();
    ep.timer->expires_after(delay);
    ep.timer->async_wait([this, id = ep.info.id, generation = ep.generation](beast::error_code ec) {
      if (ec) return;
      auto it = endpoints.find(id);
      if (it == endpoints.end() || it->second->generation != generation) return;
      it->second->waiting = false;
      pump(*it->second);
    });
    publish_status(ep);
  }

  void redeliver(Id id, std::optional<std::uint64_t> from_seq,
                 const std::function<void(std::string)>& done) {
    sync_endpoints();
    auto it = endpoints.find(id);
    if (it == endpoints.end()) return done("no webhook has this id (or it was deleted)");
    Endpoint& ep = *it->second;
    if (!ep.url) return done(ep.last_error);
    if (!delivering) {
      return done("this node does not deliver webhooks now (it is not the cluster leader)");
    }
    ++ep.generation;
    if (ep.attempt) ep.attempt->cancel();
    ep.attempt.reset();
    ep.timer->cancel();
    ep.in_flight = ep.waiting = ep.failing = false;
    ep.attempts = 0;
    ep.due.reset();
    if (from_seq) ep.next_seq = *from_seq;
    JournalStatus st = store_cursor(ep);
    log(ep, fmt::format("redelivering from seq {}", ep.next_seq));
    publish_status(ep);
    done(st ? std::string() : st.message);
    pump(ep);
  }
};

WebhookDelivery::WebhookDelivery(Sequencer& sequencer, WebhookDeliveryOptions options)
    : impl_(std::make_unique<Impl>(sequencer, options)) {}

WebhookDelivery::~WebhookDelivery() { stop(); }

void WebhookDelivery::start() {
  Impl& impl = *impl_;
  if (impl.thread.joinable()) return;
  impl.delivering_now.store(impl.delivering, std::memory_order_relaxed);
  // Load the registered endpoints and their stored cursors before returning, on this
  // thread (the delivery thread does not run yet): a status asked for right after start,
  // e.g. by the first request once the server listens, shows a restored "failing" state
  // and cursor instead of the defaults of a webhook registered a moment ago.
  impl.sync_endpoints();
  if (impl.options.sharing.may_deliver) {
    impl.role_timer = std::make_unique<net::steady_timer>(*impl.ioc);
    impl.post([&impl] { impl.schedule_role_check(); });
  }
  impl.thread = std::thread([&impl] {
    // Every payload and every answer this thread makes shows the partition's ids.
    const PartitionScope scope(impl.options.partition);
    impl.ioc->run();
  });
  impl.post([&impl] { impl.on_wake(); });
}

void WebhookDelivery::stop() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.lifecycle_mutex);
    if (impl.stopped) return;
    impl.stopped = true;
  }
  {
    std::lock_guard lock(impl.mailbox->mutex);
    impl.mailbox->impl = nullptr;
  }
  impl.work.reset();
  impl.ioc->stop();
  if (impl.thread.joinable()) impl.thread.join();
  // No handler runs any more: tear down here, sockets and timers before their io_context,
  // and the queued handlers (and what they hold, e.g. a waiting HTTP connection) with it.
  for (auto& [id, ep] : impl.endpoints) {
    if (ep->attempt) ep->attempt->cancel();
  }
  impl.endpoints.clear();
  impl.lookups.clear();
  impl.role_timer.reset();
  impl.ioc.reset();
}

void WebhookDelivery::notify_durable() {
  Impl& impl = *impl_;
  // Called after the batch's changes are in the read store, so a batch that registered
  // or deleted a webhook shows a new version here.
  const std::uint64_t quiet = impl.quiet_version.load(std::memory_order_acquire);
  if (quiet != Impl::kNotQuiet && quiet == impl.sequencer.reads().webhooks()->version) return;
  if (impl.wake_posted.exchange(true, std::memory_order_relaxed)) return;
  if (!impl.post([&impl] { impl.on_wake(); })) impl.wake_posted.store(false);
}

std::optional<std::string> WebhookDelivery::url_problem(std::string_view url) const {
  std::string problem;
  if (parse_webhook_url(url, problem)) return std::nullopt;
  return problem;
}

void WebhookDelivery::check_destination(std::string url,
                                        std::function<void(std::optional<std::string>)> done) {
  Impl& impl = *impl_;
  auto check = [&impl, url = std::move(url), done]() mutable {
    std::string problem;
    auto parsed = parse_webhook_url(url, problem);
    if (!parsed) return done(problem);
    impl.resolve(*parsed, [&impl, host = parsed->host, done](Resolution r) {
      if (!r.error.empty()) return done(r.error);
      done(refused_destination(host, r.addresses, impl.options.allow_private));
    });
  };
  if (!impl.post(std::move(check))) done(std::string("webhook delivery is shutting down"));
}

std::optional<WebhookDeliveryStatus> WebhookDelivery::status(Id webhook_id) const {
  {
    std::lock_guard lock(impl_->status_mutex);
    auto it = impl_->statuses.find(webhook_id);
    if (it != impl_->statuses.end()) return it->second;
  }
  // Registered a moment ago: the delivery thread has not picked it up yet.
  auto list = impl_->sequencer.reads().webhooks();
  const WebhookInfo* w = list->find(webhook_id);
  if (!w || w->deleted) return std::nullopt;
  WebhookDeliveryStatus s;
  s.next_seq = w->registered_seq + 1;
  if (!impl_->delivering_now.load(std::memory_order_relaxed)) s.state = "standby";
  return s;
}

void WebhookDelivery::redeliver(Id webhook_id, std::optional<std::uint64_t> from_seq,
                                std::function<void(std::string)> done) {
  Impl& impl = *impl_;
  if (!impl.post([&impl, webhook_id, from_seq, done] { impl.redeliver(webhook_id, from_seq, done); })) {
    done("webhook delivery is shutting down");
  }
}

void WebhookDelivery::render_metrics(std::string& out) const {
  const std::uint64_t visible = impl_->sequencer.reads().as_of_seq();
  std::map<Id, WebhookDeliveryStatus> statuses;
  {
    std::lock_guard lock(impl_->status_mutex);
    statuses = impl_->statuses;
  }
  auto it = std::back_inserter(out);
  auto family = [&](std::string_view name, std::string_view type, std::string_view help,
                    auto value_of) {
    fmt::format_to(it, "# HELP slotd_webhook_{} {}\n# TYPE slotd_webhook_{} {}\n", name, help,
                   name, type);
    for (const auto& [id, s] : statuses) {
      fmt::format_to(it, "slotd_webhook_{}{{webhook=\"{}\"}} {}\n", name, id, value_of(s));
    }
  };
  family("deliveries_total", "counter", "events delivered (answered 2xx) since start",
         [](const WebhookDeliveryStatus& s) { return s.delivered; });
  family("failures_total", "counter", "delivery attempts that failed since start",
         [](const WebhookDeliveryStatus& s) { return s.failed_attempts; });
  family("retries_total", "counter", "delivery attempts that were retries since start",
         [](const WebhookDeliveryStatus& s) { return s.retries; });
  family("lag_events", "gauge", "durable journal events after the endpoint's cursor",
         [visible](const WebhookDeliveryStatus& s) {
           return s.next_seq > visible ? std::uint64_t{0} : visible + 1 - s.next_seq;
         });
  family("failing", "gauge", "1 while the endpoint is marked failing (dead letter)",
         [](const WebhookDeliveryStatus& s) { return s.state == "failing" ? 1 : 0; });
  fmt::format_to(it,
                 "# HELP slotd_webhook_delivering 1 while this node delivers webhooks (a single "
                 "node always; in cluster mode the leader)\n# TYPE slotd_webhook_delivering gauge\n"
                 "slotd_webhook_delivering {}\n",
                 impl_->delivering_now.load(std::memory_order_relaxed) ? 1 : 0);
  fmt::format_to(it,
                 "# HELP slotd_webhook_wakeups_total times the delivery thread woke for durable "
                 "batches (not while no webhook is registered)\n"
                 "# TYPE slotd_webhook_wakeups_total counter\nslotd_webhook_wakeups_total {}\n",
                 impl_->wakeups.load(std::memory_order_relaxed));
}

}  // namespace slotd
