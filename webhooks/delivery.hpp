// webhooks/ — delivery of durable booking and slot events to the HTTP endpoints clinics
// registered (registrations are engine state; this is everything after that).
//
// Owns: the delivery thread (its own io_context; never the sequencer's or the journal's
// thread), one cursor per endpoint (stored in the journal's database after each success),
// retries with exponential backoff and jitter, the dead letter ("failing"), destination
// checks and signing. May include engine/, journal/, sequencer/, api/json_out, api/iso_time
// and api/webhook_control (the interface it implements), Boost (Asio, Beast, URL) and
// OpenSSL; Beast only in delivery.cpp.
//
// The outbox is the journal: each endpoint reads durable, published records from its
// cursor on, in seq order, one delivery at a time, so a slow or dead endpoint holds back
// only itself. At least once: the cursor moves past an event only after a 2xx, so a
// restart (or kill -9) repeats at most the event that was in flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "api/webhook_control.hpp"
#include "sequencer/sequencer.hpp"

namespace slotd {

// Cluster mode (cluster/README.md, "Webhooks"): only the leader delivers, and the cursors it
// stores are shared so the next leader resumes from them, not from its own stale ones. Filled
// by main.cpp (webhooks/ knows nothing of NATS); all empty = a single node, which always
// delivers and shares nothing. Each is called on the delivery thread only.
struct WebhookSharing {
  // May this node deliver now? Polled every 100 ms and before each attempt; never blocks.
  std::function<bool()> may_deliver;
  // The shared cursors (by webhook id), read each time this node starts delivering, before
  // its first attempt; may block for a network round trip. An error: read again later.
  std::function<bool(std::map<std::uint64_t, JournalCursor>& out, std::string& error)> load;
  // A cursor this node stored while delivering, to share; must not block (queue it).
  std::function<void(std::uint64_t webhook_id, const JournalCursor& cursor)> store;
  // A deleted endpoint's shared cursor is no longer needed; must not block.
  std::function<void(std::uint64_t webhook_id)> forget;
};

struct WebhookDeliveryOptions {
  bool allow_private = false;      // deliver to private, loopback and link-local addresses
  std::uint32_t max_attempts = 12;  // then the endpoint is marked failing
  double timeout_s = 10;           // one attempt: resolve, connect, TLS, send, response head
  double backoff_base_s = 2;       // wait before the first retry (doubling, with jitter)
  double backoff_max_s = 1800;     // the longest wait between attempts
  WebhookSharing sharing;
  std::uint32_t partition = 0;     // the sequencer's: payloads carry its ids (api/partition.hpp)
};

// Where an endpoint resumes when this node starts delivering: its own stored cursor or the
// shared one, whichever is further on (a lost or throttled share costs repeats, never a
// skipped event); at the same seq the shared one (the last leader's word on `stopped`).
inline JournalCursor merge_webhook_cursor(const JournalCursor& local,
                                          const std::optional<JournalCursor>& shared) {
  if (shared && shared->next_seq >= local.next_seq) return *shared;
  return local;
}

// The wait before the next attempt after `failed` failed attempts (>= 1): base·2^(failed-1),
// at most max, with "equal jitter" — half of it fixed, half scaled by unit_random in [0, 1).
inline std::chrono::milliseconds webhook_retry_delay(std::uint32_t failed, double base_s,
                                                      double max_s, double unit_random) {
  double delay_s = base_s;
  for (std::uint32_t i = 1; i < failed && delay_s < max_s; ++i) delay_s *= 2;
  if (delay_s > max_s) delay_s = max_s;
  const double jittered_s = delay_s / 2 + delay_s / 2 * unit_random;
  return std::chrono::milliseconds(static_cast<std::int64_t>(jittered_s * 1000));
}

class WebhookDelivery final : public WebhookControl {
 public:
  WebhookDelivery(Sequencer& sequencer, WebhookDeliveryOptions options);
  ~WebhookDelivery() override;
  WebhookDelivery(const WebhookDelivery&) = delete;
  WebhookDelivery& operator=(const WebhookDelivery&) = delete;

  // Starts the delivery thread; endpoints resume from their stored cursors.
  void start();
  // Cancels what is in flight (those events are delivered again after a restart), drops
  // pending callbacks and joins the thread. Call after the sequencer has stopped and
  // before the HTTP server is destroyed (callbacks may hold its connections).
  void stop();

  // From a sequencer observer, on the journal thread: a durable batch was published.
  // Only wakes the delivery thread, and not even that while it has no endpoint and the
  // webhook list is unchanged; never blocks, never does IO.
  void notify_durable();

  // WebhookControl
  std::optional<std::string> url_problem(std::string_view url) const override;
  void check_destination(std::string url,
                         std::function<void(std::optional<std::string>)> done) override;
  std::optional<WebhookDeliveryStatus> status(Id webhook_id) const override;
  void redeliver(Id webhook_id, std::optional<std::uint64_t> from_seq,
                 std::function<void(std::string error)> done) override;
  void render_metrics(std::string& out) const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slotd
