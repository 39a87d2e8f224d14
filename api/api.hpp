// api/ — the HTTP face of slotd: routes, request parsing, replies, auth, limits.
//
// Nothing here knows sockets: server.cpp (Beast) turns bytes into an HttpRequest and sends
// the HttpResponse back. Writes become commands for the sequencer and are answered only
// once their batch is durable (answer_command); reads come from the sequencer's read store
// and never pass through the sequencer. Errors are ApiError values (api/errors.hpp).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/errors.hpp"
#include "api/http.hpp"
#include "api/metrics.hpp"
#include "api/rate_limit.hpp"
#include "api/webhook_control.hpp"
#include "cluster/role.hpp"
#include "sequencer/atomic_shared.hpp"
#include "sequencer/sequencer.hpp"

namespace slotd {

struct ApiOptions {
  std::string admin_token;
  std::uint32_t max_bulk_slots = 10'000;
  double booking_rate = 0;   // POST /booking per second per client; 0 = no limit
  double booking_burst = 0;  // bucket size (0 = max(1, rate))
  std::string default_time_zone = "UTC";
  // Serves the web UI for GET/HEAD paths no route claims; nullopt = not a UI path.
  std::function<std::optional<HttpResponse>(const HttpRequest&)> web;
  // Webhook delivery (webhooks/); nullptr = the webhook routes answer 503.
  WebhookControl* webhooks = nullptr;
  // Cluster mode: writes only while this node leads, else 421 wrong_node naming the
  // leader; nullptr = single node.
  const ClusterRole* cluster = nullptr;
  // The partition this Api's sequencer holds (api/partition.hpp).
  std::uint32_t partition = 0;
};

class Api;

// How to answer a command once it is durable.
enum class ReplyKind : std::uint8_t {
  clinic_created,
  clinic_updated,
  doctor_created,
  slot_created,
  slots_created,  // bulk: an array
  slot_closed,
  booking_created,
  booking_confirmed,
  booking_cancelled,
  booking_rescheduled,
  waitlist_joined,
  waitlist_left,
  webhook_registered,
  webhook_deleted,
};

// What a connection keeps about the command it is waiting for (it waits for one at a
// time: pipelined requests stay unread until the answer is written).
struct PendingCommand {
  Api* api = nullptr;  // the partition's Api that submitted it
  ReplyKind kind = ReplyKind::slot_closed;
  Id id = 0;  // the route's :id
  std::uint16_t route = 0;
  std::chrono::steady_clock::time_point started;
};

// One Api per partition. A process serving several partitions has one home Api that the
// server talks to: it hands each request to the partition it concerns (partition_routing.cpp),
// merges the catalog lists, and keeps the route metrics and rate limits for all of them.
class Api {
 public:
  Api(Sequencer& sequencer, ApiOptions options, const ServerStats& server_stats);

  // Answers `request` exactly once: through responder.respond() now, or, when it becomes a
  // command, through the completion of responder's target — then the connection calls
  // answer_command with the `pending` this call filled in.
  void handle(const HttpRequest& request, Responder& responder, PendingCommand& pending);

  // The answer to a command whose batch is durable (by the Api that submitted it).
  HttpResponse answer_command(const PendingCommand& pending, const BatchResults& batch,
                              std::uint32_t index);

  // On the home Api, before serving: every partition's Api, home first.
  void serve_partitions(std::vector<Api*> all);
  // Every partition's Api (home first) on the home Api of a process serving several;
  // empty otherwise.
  std::span<Api* const> partitions() const { return partitions_; }
  std::uint32_t partition() const { return options_.partition; }

  Sequencer& sequencer() { return sequencer_; }
  const Sequencer& sequencer() const { return sequencer_; }
  const ApiOptions& options() const { return options_; }
  const ServerStats& server_stats() const { return server_stats_; }
  // Shared by every partition of the process: one client, one rate.
  RouteMetrics& metrics() { return home_ ? home_->metrics_ : metrics_; }
  RateLimiter& booking_limiter() { return home_ ? home_->booking_limiter_ : booking_limiter_; }
  // Differs on every start, so an ETag never outlives the process that made it.
  std::uint64_t epoch() const { return epoch_; }

  // A list merged from every partition (GET /clinics, GET /doctors), kept until its ETag
  // (every partition's catalog version) changes.
  struct MergedList {
    std::string etag;
    std::shared_ptr<const std::string> body;
  };
  AtomicShared<const MergedList>& merged_list(char what) { return what == 'c' ? merged_clinics_ : merged_doctors_; }

 private:
  // The request in this Api's partition.
  void handle_here(const HttpRequest& request, Responder& responder, PendingCommand& pending);
  // Which partition's Api a request is for: the partition of the id it names (path, query
  // or body), else ?partition=N, else the home partition (partition_routing.cpp).
  Result<Api*> route(const HttpRequest& request);

  Sequencer& sequencer_;
  ApiOptions options_;
  const ServerStats& server_stats_;
  RouteMetrics metrics_;
  RateLimiter booking_limiter_;
  std::uint64_t epoch_;
  std::vector<Api*> partitions_;
  Api* home_ = nullptr;  // set on the other partitions' Apis
  AtomicShared<const MergedList> merged_clinics_, merged_doctors_;
};

}  // namespace slotd
