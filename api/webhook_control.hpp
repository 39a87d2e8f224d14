// api/webhook_control.hpp — what the API needs of webhook delivery, as an interface.
//
// webhooks/ implements it and main.cpp hands it to the Api (ApiOptions::webhooks), so api/
// never includes webhooks/ (webhooks/ uses api/'s JSON writers: the dependency runs one way).
// Registrations themselves are engine state and go through the sequencer like any command;
// this is only the delivery side: destination checks, delivery state, redelivery, metrics.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "engine/engine.hpp"

namespace slotd {

// Where one endpoint's deliveries stand. Not engine state: the cursor is stored in the
// journal's database, the rest lives in memory (counters start at 0 with the process).
struct WebhookDeliveryStatus {
  std::string_view state = "active";  // "active", "retrying" or "failing" (dead letter)
  std::uint64_t next_seq = 1;         // the cursor: first journal seq not yet delivered or skipped
  std::uint32_t attempts = 0;         // failed attempts at the event now due
  std::string last_error;             // of the last failed attempt; empty when there was none
  TimeMs last_attempt_at_ms = 0;      // 0 = none since start
  TimeMs next_attempt_at_ms = 0;      // while retrying
  std::uint64_t delivered = 0;        // events answered with a 2xx, since start
  std::uint64_t failed_attempts = 0;  // attempts that failed, since start
  std::uint64_t retries = 0;          // attempts that were retries, since start
};

class WebhookControl {
 public:
  virtual ~WebhookControl() = default;

  // Why `url` cannot be a webhook destination by its form alone (scheme, credentials,
  // host, port), or nullopt. Immediate: no DNS.
  virtual std::optional<std::string> url_problem(std::string_view url) const = 0;

  // Resolves the URL's host off the caller's thread and calls `done` once, on another
  // thread, with why the destination is refused (e.g. a loopback address), or nullopt.
  virtual void check_destination(std::string url,
                                 std::function<void(std::optional<std::string>)> done) = 0;

  // The delivery state of a registered webhook that is not deleted; nullopt otherwise.
  virtual std::optional<WebhookDeliveryStatus> status(Id webhook_id) const = 0;

  // Moves the endpoint's cursor to from_seq (nullopt: keeps it), clears its failed attempts
  // and makes it active again; calls `done` once, on another thread, when the new cursor is
  // stored (with an empty string) or could not be (with why).
  virtual void redeliver(Id webhook_id, std::optional<std::uint64_t> from_seq,
                         std::function<void(std::string error)> done) = 0;

  // Appends the delivery counters as Prometheus text.
  virtual void render_metrics(std::string& out) const = 0;
};

}  // namespace slotd
