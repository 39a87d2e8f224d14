// slotd's configuration: flags, each with an environment fallback (SLOTD_PORT, …).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace slotd {

struct Config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::string data_dir = "./data";
  double hold_ttl_s = 120;
  std::string admin_token;  // empty: read or generate data_dir/admin-token
  std::vector<std::string> allowed_origins;
  std::uint32_t max_holds_per_client = 0;  // 0 = no cap
  double booking_rate = 0;                 // POST /booking per second per client; 0 = off
  double booking_burst = 0;                // 0 = max(1, rate)
  std::string trusted_proxies;             // CIDRs whose forwarding headers are believed
  unsigned threads = 0;                    // 0 = the default (see config_usage)
  bool demo = false;
  std::string default_time_zone = "UTC";
  std::string web_dir;                     // serve the UI from here instead of the binary
  double idempotency_ttl_s = 24 * 3600;
  double shutdown_grace_s = 10;
  std::uint64_t snapshot_every = 1'000'000;  // events between snapshots; 0 = not by count
  double snapshot_interval_s = 0;             // seconds between snapshots; 0 = not by time
  std::size_t snapshots_kept = 3;
  bool journal_background_idle = true;        // RocksDB's flushes and compactions under SCHED_IDLE
  // Limits.
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  double request_timeout_s = 30;
  double idle_timeout_s = 60;
  std::size_t max_connections = 0;  // 0 = derived from the open-files limit at start
  std::uint32_t max_bulk_slots = 10'000;
  std::size_t queue_capacity = 65'536;
  std::size_t max_batch = 4'096;
  std::size_t ws_queue_bytes = 4 << 20;
  std::size_t max_feed_connections_per_client = 64;
  // Webhook delivery.
  bool allow_private_webhooks = false;
  std::uint32_t webhook_attempts = 12;
  double webhook_timeout_s = 10;
  double webhook_backoff_base_s = 2;
  double webhook_backoff_max_s = 1800;
  // Partitions (api/partition.hpp).
  std::uint32_t partition = 0;              // the home partition: new clinics go here
  std::vector<std::uint32_t> partitions{0};  // every partition served, home first
  std::string partition_map;  // a file; empty = no other partition is known
  // Cluster mode (cluster/): on when nats_urls is not empty.
  std::vector<std::string> nats_urls;
  std::string node_id;        // default: host:port
  std::string advertise_url;  // default: http://host:port
  int stream_replicas = 3;
  std::uint64_t stream_keep_batches = 0;  // 0 = the stream keeps every batch
  double lease_ttl_s = 3;
};

struct ConfigResult {
  std::optional<Config> config;
  std::string error;  // set when config is empty and this is not a --help request
  bool help = false;
};

// Flags win over environment variables, which win over the defaults.
ConfigResult parse_config(int argc, char** argv);
std::string config_usage();

}  // namespace slotd
