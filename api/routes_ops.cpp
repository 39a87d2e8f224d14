// Operations: liveness, Prometheus metrics, the OpenAPI document.
#include <iterator>

#include <fmt/format.h>

#include "api/call.hpp"
#include "api/json_out.hpp"
#include "api/openapi.hpp"
#include "journal/background_priority.hpp"

namespace slotd {

void get_healthz(Call& call) {
  const ClusterRole* cluster = call.api.options().cluster;
  std::string body =
      fmt::format(R"({{"status":"ok","seq":{},"asOfSeq":{},"partition":{})",
                  call.api.sequencer().durable_seq(), call.reads().as_of_seq(), call.api.partition());
  if (cluster) {
    body += R"(,"cluster":{"node":)";
    append_json_string(body, cluster->node_id());
    fmt::format_to(std::back_inserter(body), R"(,"role":"{}","leader":)", cluster->leading() ? "leader" : "follower");
    append_json_string(body, cluster->leader_url());
    fmt::format_to(std::back_inserter(body), R"(,"streamSeq":{},"streamFirstSeq":{},"lagBatches":{}}})",
                   cluster->stream_seq(), cluster->stream_first_seq(), cluster->lag_batches());
  }
  // A process serving several partitions: each one's seqs (and role, in a cluster).
  if (call.api.partitions().size() > 1) {
    body += R"(,"partitions":[)";
    for (Api* api : call.api.partitions()) {
      if (api != call.api.partitions().front()) body += ',';
      fmt::format_to(std::back_inserter(body), R"({{"partition":{},"seq":{},"asOfSeq":{})",
                     api->partition(), api->sequencer().durable_seq(),
                     api->sequencer().reads().as_of_seq());
      if (const ClusterRole* role = api->options().cluster) {
        fmt::format_to(std::back_inserter(body), R"(,"role":"{}")", role->leading() ? "leader" : "follower");
      }
      body += '}';
    }
    body += ']';
  }
  body += '}';
  call.respond(json_reply(200, std::move(body)));
}

namespace {

std::string_view route_name(std::size_t i) {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const Route& r : routes()) out.push_back(fmt::format("{} /{}", r.method, r.path));
    return out;
  }();
  return i < names.size() ? std::string_view(names[i]) : std::string_view("unrouted");
}

}  // namespace

void get_metrics(Call& call) {
  const Sequencer& seq = call.api.sequencer();
  const SequencerStats& s = seq.stats();
  const ServerStats& server = call.api.server_stats();
  const ReadStore& reads = call.reads();
  std::string body;
  body.reserve(8192);
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help,
                    auto value) {
    fmt::format_to(std::back_inserter(body), "# HELP slotd_{} {}\n# TYPE slotd_{} {}\nslotd_{} {}\n",
                   name, help, name, type, name, value);
  };
  fmt::format_to(std::back_inserter(body),
                 "# HELP slotd_build_info the running build\n# TYPE slotd_build_info gauge\n"
                 "slotd_build_info{{version=\"{}\",journal_format=\"{}\"}} 1\n",
                 SLOTD_VERSION, static_cast<int>(kJournalFormatVersion));
  metric("partition", "gauge", "the partition these figures are of (its ids carry it; ?partition=N)",
         call.api.partition());
  metric("durable_seq", "gauge", "last journal seq synced to disk", seq.durable_seq());
  metric("read_seq", "gauge", "last seq published to readers", reads.as_of_seq());
  metric("queue_depth", "gauge", "commands waiting for the sequencer", seq.queue_depth());
  metric("batches_total", "counter", "group commits (one journal append + sync each)", s.batches.load());
  metric("commands_total", "counter", "commands decided", s.commands.load());
  metric("rejections_total", "counter", "commands refused", s.rejections.load());
  metric("events_total", "counter", "events journaled since start", s.events.load());
  metric("expired_total", "counter", "holds expired since start", s.expired.load());
  metric("queue_full_total", "counter", "commands refused with 503", s.queue_full.load());
  metric("clock_steps_back_total", "counter", "times the wall clock went backwards (held)",
         s.clock_steps_back.load());
  metric("journal_append_seconds_total", "counter", "time in journal writes incl. sync",
         static_cast<double>(s.journal_append_ns.load()) / 1e9);
  metric("journal_write_stalls_total", "counter",
         "times RocksDB held writes back (delayed or stopped) and its flush and compaction threads "
         "left SCHED_IDLE until it let them go (whole process; --journal-background idle)",
         background_priority_raises());
  metric("replayed_events", "gauge", "events replayed at start", s.replayed_events.load());
  metric("pending_holds", "gauge", "PENDING bookings", reads.pending_count());
  metric("bookings", "gauge", "bookings ever made", reads.booking_count());
  metric("slots", "gauge", "slots ever created", reads.slot_count());
  metric("connections_open", "gauge", "open connections (HTTP and WebSocket)",
         server.connections_open.load());
  metric("connections_total", "counter", "accepted connections", server.connections_total.load());
  metric("connections_refused_total", "counter", "connections over the limit",
         server.connections_refused.load());
  metric("accept_errors_total", "counter", "failed accepts (e.g. out of file descriptors)",
         server.accept_errors.load());
  metric("http_responses_4xx_total", "counter", "4xx responses", server.responses_4xx.load());
  metric("http_responses_5xx_total", "counter", "5xx responses", server.responses_5xx.load());
  metric("ws_connections", "gauge", "open WebSocket feed connections", server.ws_connections_open.load());
  metric("ws_queue_bytes", "gauge", "bytes queued for WebSocket clients", server.ws_queue_bytes.load());
  metric("ws_messages_total", "counter", "WebSocket messages sent", server.ws_messages_sent.load());
  metric("ws_writes_total", "counter", "socket writes to WebSocket clients (each one or more messages)",
         server.ws_socket_writes.load());
  metric("ws_slow_closed_total", "counter", "WebSocket clients closed as slow consumers",
         server.ws_slow_closed.load());
  if (const ClusterRole* cluster = call.api.options().cluster) {
    metric("cluster_leader", "gauge", "1 while this node leads its partition", cluster->leading() ? 1 : 0);
    metric("cluster_stream_seq", "gauge", "last stream message (batch) published or applied", cluster->stream_seq());
    metric("cluster_lag_batches", "gauge", "stream messages not yet applied (followers)", cluster->lag_batches());
    metric("cluster_stream_first_seq", "gauge", "oldest stream message still kept (--stream-keep-batches)",
           cluster->stream_first_seq());
    metric("cluster_took_lead_total", "counter", "times this node became leader", cluster->failovers());
    body += "# HELP slotd_cluster_webhook_cursor_shared a webhook cursor (next seq) this node last "
            "wrote to the shared bucket, acknowledged\n# TYPE slotd_cluster_webhook_cursor_shared gauge\n";
    for (const auto& [webhook_id, next_seq] : cluster->webhook_cursors_shared()) {
      fmt::format_to(std::back_inserter(body), "slotd_cluster_webhook_cursor_shared{{webhook=\"{}\"}} {}\n",
                     webhook_id, next_seq);
    }
  }
  if (WebhookControl* webhooks = call.api.options().webhooks) webhooks->render_metrics(body);
  // A process serving several partitions: every partition's seqs and queue, labelled, on
  // every scrape (the unlabelled figures above are of one partition: slotd_partition).
  if (call.api.partitions().size() > 1) {
    auto labelled = [&](std::string_view name, std::string_view type, std::string_view help,
                        auto value_of) {
      fmt::format_to(std::back_inserter(body), "# HELP slotd_{} {}\n# TYPE slotd_{} {}\n", name, help,
                     name, type);
      for (Api* part : call.api.partitions()) {
        fmt::format_to(std::back_inserter(body), "slotd_{}{{partition=\"{}\"}} {}\n", name,
                       part->partition(), value_of(*part));
      }
    };
    labelled("partition_durable_seq", "gauge", "last journal seq synced, per partition",
             [](Api& p) { return p.sequencer().durable_seq(); });
    labelled("partition_read_seq", "gauge", "last seq published to readers, per partition",
             [](Api& p) { return p.sequencer().reads().as_of_seq(); });
    labelled("partition_queue_depth", "gauge", "commands waiting for the sequencer, per partition",
             [](Api& p) { return p.sequencer().queue_depth(); });
    labelled("partition_commands_total", "counter", "commands decided, per partition",
             [](Api& p) { return p.sequencer().stats().commands.load(); });
    labelled("partition_leader", "gauge", "1 while this node leads the partition (cluster mode; else 1)",
             [](Api& p) { return !p.options().cluster || p.options().cluster->leading() ? 1 : 0; });
  }
  call.api.metrics().render_all(body, route_name);
  HttpResponse r;
  r.body = std::move(body);
  r.content_type = "text/plain; version=0.0.4";
  call.respond(std::move(r));
}

void get_openapi(Call& call) {
  static const auto document = std::make_shared<const std::string>(openapi_document());
  HttpResponse r;
  r.shared_body = document;
  call.respond(std::move(r));
}

}  // namespace slotd
