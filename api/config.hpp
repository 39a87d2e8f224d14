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
  unsigned threads = 0;                    // 0 = one per core
  bool demo = false;
  std::string web_dir;                    // empty: serve the web UI built into slotd
  std::string default_time_zone = "UTC";  // IANA zone of clinics created without one
  // Limits.
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  double request_timeout_s = 30;
  double idle_timeout_s = 60;
  std::size_t max_connections = 10'000;
  std::uint32_t max_bulk_slots = 10'000;
  std::size_t queue_capacity = 65'536;
  std::size_t max_batch = 4'096;
  std::size_t ws_queue_limit = 4'096;
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
