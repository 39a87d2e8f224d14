#include "api/config.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string_view>

#include <fmt/format.h>

namespace slotd {
namespace {

struct Option {
  const char* flag;  // without the leading --
  const char* help;
  bool takes_value;
  std::function<bool(Config&, std::string_view)> set;
};

template <class T>
bool parse_unsigned(std::string_view v, T& out) {
  unsigned long long x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || p != v.data() + v.size()) return false;
  if (x > static_cast<unsigned long long>(std::numeric_limits<T>::max())) return false;
  out = static_cast<T>(x);
  return true;
}

// "3" or "3,5,8": distinct partition numbers below 8192, the first the home partition.
bool parse_partitions(std::string_view v, Config& c) {
  std::vector<std::uint32_t> list;
  while (true) {
    const auto comma = v.find(',');
    std::uint32_t p = 0;
    if (!parse_unsigned(v.substr(0, comma), p) || p >= 8192 ||
        std::find(list.begin(), list.end(), p) != list.end()) {
      return false;
    }
    list.push_back(p);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  c.partition = list.front();
  c.partitions = std::move(list);
  return true;
}

bool parse_rate(std::string_view v, double& out) {
  double x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || p != v.data() + v.size() || !(x >= 0) || x > 1e9) return false;
  out = x;
  return true;
}

bool parse_seconds(std::string_view v, double& out) {
  double x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || p != v.data() + v.size() || !(x > 0) || x > 1e7) return false;
  out = x;
  return true;
}

// Seconds where 0 means "off".
bool parse_seconds_or_off(std::string_view v, double& out) {
  if (v == "0") {
    out = 0;
    return true;
  }
  return parse_seconds(v, out);
}

std::vector<std::string> split_csv(std::string_view v) {
  std::vector<std::string> out;
  while (!v.empty()) {
    auto comma = v.find(',');
    auto item = v.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

const std::vector<Option>& options() {
  static const std::vector<Option> all = {
      {"host", "address to listen on (127.0.0.1)", true,
       [](Config& c, std::string_view v) { c.host = v; return !v.empty(); }},
      {"port", "TCP port (8080; 0 = any free port)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.port); }},
      {"data-dir", "journal (RocksDB), snapshots and admin token (./data)", true,
       [](Config& c, std::string_view v) { c.data_dir = v; return !v.empty(); }},
      {"hold-ttl", "seconds a PENDING booking holds its slot (120; fractions allowed)", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.hold_ttl_s); }},
      {"admin-token", "admin bearer token (default: generated into DATA_DIR/admin-token)", true,
       [](Config& c, std::string_view v) { c.admin_token = v; return !v.empty(); }},
      {"allowed-origins", "comma-separated Origins allowed on /ws (default: loopback origins only)", true,
       [](Config& c, std::string_view v) { c.allowed_origins = split_csv(v); return true; }},
      {"max-holds-per-client", "PENDING holds one client may have (0 = no cap) → 429", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.max_holds_per_client); }},
      {"booking-rate", "POST /booking per second per client (0 = no limit) → 429", true,
       [](Config& c, std::string_view v) { return parse_rate(v, c.booking_rate); }},
      {"booking-burst", "booking requests a client may make at once (0 = the rate, at least 1)", true,
       [](Config& c, std::string_view v) { return parse_rate(v, c.booking_burst); }},
      {"trusted-proxies", "comma-separated CIDRs of proxies whose X-Forwarded-For/X-Client-Key are believed (none)", true,
       [](Config& c, std::string_view v) { c.trusted_proxies = v; return true; }},
      {"threads", "io threads (0 = 1: measured best on 2 cores, where the sequencer and journal threads need the other)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.threads); }},
      {"demo", "seed demo clinics, doctors and a week of slots on first start", false,
       [](Config& c, std::string_view) { c.demo = true; return true; }},
      {"default-time-zone", "IANA time zone of new clinics that name none (UTC)", true,
       [](Config& c, std::string_view v) { c.default_time_zone = v; return !v.empty(); }},
      {"web-dir", "serve the web UI from this folder instead of the copy built into the binary", true,
       [](Config& c, std::string_view v) { c.web_dir = v; return std::filesystem::is_directory(c.web_dir); }},
      {"idempotency-ttl", "seconds an Idempotency-Key is remembered (86400)", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.idempotency_ttl_s); }},
      {"snapshot-every", "events between snapshots (1000000; 0 = not by count)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.snapshot_every); }},
      {"snapshot-interval", "seconds between snapshots when events came (0 = not by time)", true,
       [](Config& c, std::string_view v) { return parse_seconds_or_off(v, c.snapshot_interval_s); }},
      {"snapshots-kept", "newest snapshots kept in DATA_DIR/snapshots (3; at least 1)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.snapshots_kept) && c.snapshots_kept > 0; }},
      {"journal-background", "priority of RocksDB's flush and compaction threads and the entity index's thread: idle (SCHED_IDLE, normal while writes are stalled or the index is behind) or normal (idle)", true,
       [](Config& c, std::string_view v) {
         c.journal_background_idle = v == "idle";
         return v == "idle" || v == "normal";
       }},
      {"shutdown-grace", "seconds answers may take to go out after SIGTERM (10)", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.shutdown_grace_s); }},
      {"max-body-bytes", "largest request body (1048576) → 413", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.max_body_bytes); }},
      {"max-header-bytes", "largest request header block (16384) → 431", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.max_header_bytes); }},
      {"request-timeout", "seconds to receive a whole request (30) → 408", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.request_timeout_s); }},
      {"idle-timeout", "seconds an idle keep-alive connection stays open (60)", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.idle_timeout_s); }},
      {"max-connections", "open connections (0 = the open-files limit less a reserve); beyond → 503", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.max_connections); }},
      {"max-bulk-slots", "slots in one POST /slots (10000) → 413", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.max_bulk_slots); }},
      {"queue-capacity", "commands waiting for the sequencer (65536); beyond → 503", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.queue_capacity) && c.queue_capacity > 0; }},
      {"max-batch", "commands per group commit (4096)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.max_batch) && c.max_batch > 0; }},
      {"ws-queue-bytes", "bytes of live events queued per WebSocket before it is closed as slow (4194304)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.ws_queue_bytes) && c.ws_queue_bytes > 0; }},
      {"max-feed-connections-per-client", "open WebSockets per client (64; 0 = no cap) → 429", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.max_feed_connections_per_client); }},
      {"allow-private-webhooks", "let webhooks go to private, loopback and link-local addresses (local setups, tests)", false,
       [](Config& c, std::string_view) { c.allow_private_webhooks = true; return true; }},
      {"webhook-attempts", "delivery attempts per event before an endpoint is marked failing (12)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.webhook_attempts) && c.webhook_attempts > 0; }},
      {"webhook-timeout", "seconds one delivery attempt may take: DNS, connect, TLS, send, answer (10)", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.webhook_timeout_s); }},
      {"webhook-backoff-base", "seconds before the first retry; doubles per failed attempt, with jitter (2)", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.webhook_backoff_base_s); }},
      {"webhook-backoff-max", "the longest wait between two attempts, in seconds (1800)", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.webhook_backoff_max_s); }},
      {"partition", "the partitions this node serves, 0 to 8191, comma-separated; the first is its home, in DATA_DIR, each other one in DATA_DIR/p<N> (0)", true,
       [](Config& c, std::string_view v) { return parse_partitions(v, c); }},
      {"partition-map", "file of '<partition> <base URL>' lines: where requests for other partitions' ids are sent (421)", true,
       [](Config& c, std::string_view v) { c.partition_map = v; return !v.empty(); }},
      {"nats", "cluster mode: comma-separated NATS URLs (JetStream); empty = single node (the default)", true,
       [](Config& c, std::string_view v) { c.nats_urls = split_csv(v); return !c.nats_urls.empty(); }},
      {"node-id", "cluster mode: this node's unique name (host:port)", true,
       [](Config& c, std::string_view v) { c.node_id = v; return !v.empty() && v.find(' ') == std::string_view::npos; }},
      {"advertise-url", "cluster mode: this node's HTTP base URL, given to clients when it leads (http://host:port)", true,
       [](Config& c, std::string_view v) { c.advertise_url = v; return !v.empty() && v.find(' ') == std::string_view::npos; }},
      {"stream-replicas", "cluster mode: replicas of the JetStream stream and lease bucket, 1 to 5 (3)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.stream_replicas) && c.stream_replicas >= 1 && c.stream_replicas <= 5; }},
      {"stream-keep-batches", "cluster mode: the stream keeps only the newest N batches (0 = all); a node further behind starts from a copy of another node's data dir (0)", true,
       [](Config& c, std::string_view v) { return parse_unsigned(v, c.stream_keep_batches); }},
      {"lease-ttl", "cluster mode: seconds a leader's lease lasts without renewal; failover takes about this long (3)", true,
       [](Config& c, std::string_view v) { return parse_seconds(v, c.lease_ttl_s); }},
  };
  return all;
}

std::string env_name(std::string_view flag) {
  std::string name = "SLOTD_";
  for (char ch : flag) name += ch == '-' ? '_' : static_cast<char>(std::toupper(ch));
  return name;
}

}  // namespace

std::string config_usage() {
  std::string out = "usage: slotd [flags]            serve (flags below)\n";
  for (const Option& o : options()) {
    out += fmt::format("  --{:<22} {} [env {}]\n", std::string(o.flag) + (o.takes_value ? " V" : ""),
                       o.help, env_name(o.flag));
  }
  return out;
}

ConfigResult parse_config(int argc, char** argv) {
  ConfigResult result;
  Config config;
  for (const Option& o : options()) {
    const char* value = std::getenv(env_name(o.flag).c_str());
    if (!value) continue;
    std::string_view v = value;
    if (!o.takes_value && (v.empty() || v == "0" || v == "false")) continue;
    if (!o.set(config, v)) {
      result.error = fmt::format("invalid value '{}' in {}", v, env_name(o.flag));
      return result;
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      result.help = true;
      return result;
    }
    if (!arg.starts_with("--")) {
      result.error = fmt::format("unexpected argument '{}'", arg);
      return result;
    }
    arg.remove_prefix(2);
    std::string_view inline_value;
    bool has_inline = false;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    const Option* found = nullptr;
    for (const Option& o : options()) {
      if (arg == o.flag) found = &o;
    }
    if (!found) {
      result.error = fmt::format("unknown flag --{}", arg);
      return result;
    }
    std::string_view value;
    if (found->takes_value) {
      if (has_inline) {
        value = inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        result.error = fmt::format("--{} needs a value", arg);
        return result;
      }
    }
    if (!found->set(config, value)) {
      result.error = fmt::format("invalid value '{}' for --{}", value, arg);
      return result;
    }
  }
  result.config = std::move(config);
  return result;
}

}  // namespace slotd
