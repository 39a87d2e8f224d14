// slotd: wires configuration, sequencer (engine + journal + read store) and the HTTP server.
// Read this file top to bottom to see the whole pipeline.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "api/api.hpp"
#include "api/auth.hpp"
#include "api/config.hpp"
#include "api/partition.hpp"
#include "api/server.hpp"
#include "api/time_zones.hpp"
#include "api/web_assets.hpp"
#include "audit/audit.hpp"
#include "cluster/node.hpp"
#include "sequencer/sequencer.hpp"
#include "snapshots/huge_page_chunks.hpp"
#include "webhooks/delivery.hpp"

namespace fs = std::filesystem;
using namespace slotd;

namespace {

// Where a partition's data lives: the home partition in DATA_DIR, each other one it serves
// in DATA_DIR/p<N> (so that a node that grows from one partition to several keeps its data).
std::string partition_data_dir(const Config& config, std::uint32_t partition) {
  if (partition == config.partition) return config.data_dir;
  return (fs::path(config.data_dir) / fmt::format("p{}", partition)).string();
}

// A partition's data dir must hold that partition (a new one takes it).
bool bind_data_dir(const std::string& data_dir, std::uint32_t partition, std::string& error) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) {
    error = fmt::format("cannot create data dir {}: {}", data_dir, ec.message());
    return false;
  }
  auto stored = read_data_dir_partition(data_dir, error);
  if (!stored) return false;
  const bool has_journal = fs::exists(fs::path(data_dir) / "journal");
  if (*stored != partition && (has_journal || *stored != 0)) {
    error = fmt::format("{} holds partition {}, not partition {}: its ids would change", data_dir,
                        *stored, partition);
    return false;
  }
  if (!has_journal && partition != 0 && !write_data_dir_partition(data_dir, partition, error)) {
    return false;
  }
  return true;
}

// The partitions: each data dir bound to its partition, and the map, when given, naming
// every partition served here. Set before any thread starts (api/partition.hpp).
bool bind_partitions(const Config& config, std::string& error) {
  for (std::uint32_t p : config.partitions) {
    if (!bind_data_dir(partition_data_dir(config, p), p, error)) return false;
  }
  PartitionMap map;
  map.self = config.partition;
  if (!config.partition_map.empty()) {
    std::ifstream in(config.partition_map);
    if (!in) {
      error = fmt::format("cannot read --partition-map {}", config.partition_map);
      return false;
    }
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto parsed = PartitionMap::parse(text, config.partition, error);
    if (!parsed) {
      error = fmt::format("--partition-map {}: {}", config.partition_map, error);
      return false;
    }
    map = std::move(*parsed);
    for (std::uint32_t p : config.partitions) {
      if (map.owner(p).empty()) {
        error = fmt::format("--partition-map {}: the map does not name this node's partition {}",
                            config.partition_map, p);
        return false;
      }
    }
  }
  map.served = config.partitions;
  set_partition_map(std::move(map));
  return true;
}

// The admin token: --admin-token / SLOTD_ADMIN_TOKEN, else DATA_DIR/admin-token (created
// on first start with mode 0600).
bool resolve_admin_token(Config& config, std::string& error) {
  if (!config.admin_token.empty()) return true;
  fs::path path = fs::path(config.data_dir) / "admin-token";
  std::ifstream in(path);
  if (in && std::getline(in, config.admin_token) && !config.admin_token.empty()) return true;
  config.admin_token = random_hex(24);
  // Written like every durable file here: temp file (0600), fsync, rename, fsync the dir,
  // so a power cut never leaves an empty token file behind.
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create " + tmp.string() + ": " + std::strerror(errno);
    return false;
  }
  std::string line = config.admin_token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot write " + path.string() + ": " + std::strerror(errno);
    return false;
  }
  int dir_fd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return true;
}

// Connections need file descriptors: take the hard limit as the soft one, and keep the
// connection cap below it (the journal, snapshots and accept need some too).
std::size_t raise_open_files_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return static_cast<std::size_t>(limit.rlim_cur);
}

// --demo on an empty journal: clinics in real time zones, a few doctors, and a week of
// half-hour slots from 09:00 to 17:00 on the clinic's own clock.
void seed_demo(Sequencer& sequencer) {
  if (!sequencer.reads().catalog()->doctors.empty()) return;
  struct DemoClinic {
    Id id;
    const char* name;
    const char* zone;
  };
  const DemoClinic clinics[] = {{2, "Harbor Clinic", "Europe/Berlin"},
                                {3, "Lakeside Health", "America/New_York"}};
  for (const DemoClinic& c : clinics) (void)sequencer.execute(AddClinic{c.name, c.zone});
  struct DemoDoctor {
    Id clinic_id;
    const char* name;
    const char* specialty;
  };
  const DemoDoctor doctors[] = {
      {2, "Dr. Ada Okafor", "General Practice"}, {2, "Dr. Lena Virtanen", "Dermatology"},
      {2, "Dr. Rafael Costa", "Cardiology"},     {3, "Dr. Mei Tanaka", "Pediatrics"},
      {3, "Dr. Samuel Adeyemi", "General Practice"},
  };
  using namespace std::chrono;
  const auto today = floor<days>(system_clock::now());
  for (const DemoDoctor& d : doctors) {
    CommandResult added = sequencer.execute(AddDoctor{d.clinic_id, d.name, d.specialty});
    if (added.rejection != Rejection::none) continue;
    const Id doctor_id = std::get<DoctorAdded>(added.events.at(0)).doctor_id;
    const char* zone = clinics[d.clinic_id - 2].zone;
    CreateSlots slots{doctor_id, {}};
    for (int day = 1; day <= 7; ++day) {
      const year_month_day ymd{today + days{day}};
      for (unsigned half_hour = 0; half_hour < 16; ++half_hour) {
        auto start = local_to_utc(zone, static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                                  static_cast<unsigned>(ymd.day()), 9 * 60 + half_hour * 30);
        if (start) slots.spans.push_back({*start, *start + 1'800'000});
      }
    }
    (void)sequencer.execute(std::move(slots));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // slotd replay | verify | export: read-only tools on a data dir (audit/).
  if (argc > 1 && is_audit_command(argv[1])) return run_audit_command(argc, argv);
  // First of all, while the heap is still small: start again with glibc's heap on huge pages,
  // so a snapshot's fork() copies far fewer page-table entries (snapshots/huge_page_chunks.hpp).
  reexec_with_huge_page_heap(argv);
  ConfigResult parsed = parse_config(argc, argv);
  if (parsed.help) {
    std::fputs(config_usage().c_str(), stdout);
    std::fputs(audit_usage(), stdout);
    return 0;
  }
  if (!parsed.config) {
    std::fprintf(stderr, "slotd: %s\n%s", parsed.error.c_str(), config_usage().c_str());
    return 2;
  }
  Config config = *parsed.config;
  std::string error;
  auto proxies = TrustedProxies::parse(config.trusted_proxies, error);
  if (!proxies) {
    std::fprintf(stderr, "slotd: --trusted-proxies: %s\n", error.c_str());
    return 2;
  }
  if (!valid_time_zone(config.default_time_zone)) {
    std::fprintf(stderr, "slotd: --default-time-zone: unknown time zone '%s'\n",
                 config.default_time_zone.c_str());
    return 2;
  }
  const std::size_t open_files = raise_open_files_limit();
  const std::size_t fd_cap = open_files > 128 ? open_files - 64 : open_files / 2;
  if (config.max_connections == 0) {
    config.max_connections = fd_cap;
  } else if (config.max_connections > fd_cap) {
    std::fprintf(stderr,
                 "slotd: --max-connections %zu is above what %zu open files allow; using %zu\n",
                 config.max_connections, open_files, fd_cap);
    config.max_connections = fd_cap;
  }

  std::error_code ec;
  fs::create_directories(config.data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "slotd: cannot create data dir %s: %s\n", config.data_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  if (!bind_partitions(config, error)) {
    std::fprintf(stderr, "slotd: %s\n", error.c_str());
    return 2;
  }
  const bool token_from_file = config.admin_token.empty();
  if (!resolve_admin_token(config, error)) {
    std::fprintf(stderr, "slotd: %s\n", error.c_str());
    return 1;
  }

  SequencerConfig seq_config;
  seq_config.engine.hold_ttl_ms = static_cast<TimeMs>(config.hold_ttl_s * 1000.0);
  seq_config.engine.max_holds_per_client = config.max_holds_per_client;
  seq_config.engine.max_slots_per_request = config.max_bulk_slots;
  seq_config.engine.idempotency_ttl_ms = static_cast<TimeMs>(config.idempotency_ttl_s * 1000.0);
  seq_config.queue_capacity = config.queue_capacity;
  seq_config.max_batch = config.max_batch;
  seq_config.snapshot_every = config.snapshot_every;
  seq_config.snapshot_interval =
      std::chrono::milliseconds(static_cast<std::int64_t>(config.snapshot_interval_s * 1000.0));
  seq_config.snapshots_kept = config.snapshots_kept;
  seq_config.journal_background_idle = config.journal_background_idle;

  // Cluster mode: the journal of record is a JetStream stream; the local RocksDB journal
  // keeps a copy. A node starts as a follower (cluster/node.hpp).
  const bool clustered = !config.nats_urls.empty();
  if (clustered) {
    if (config.demo) {
      std::fprintf(stderr, "slotd: --demo is for a single node (seed the leader through the API)\n");
      return 2;
    }
    if (config.port == 0 && config.advertise_url.empty()) {
      std::fprintf(stderr, "slotd: cluster mode needs --port or --advertise-url: clients are sent to the leader's address\n");
      return 2;
    }
    // A fenced leader exits 75 (another node leads; restart it to follow), any other
    // journal failure 70; neither answers the batch.
    seq_config.on_journal_failure = [](const std::string& message) {
      std::fprintf(stderr, "slotd: journal failure, stopping without replying: %s\n", message.c_str());
      std::fflush(stderr);
      std::_Exit(message.rfind("fenced", 0) == 0 ? 75 : 70);
    };
  }

  // What glibc was told (reexec_with_huge_page_heap adds glibc.malloc.hugetlb=1).
  if (const char* tunables = std::getenv("GLIBC_TUNABLES")) {
    std::printf("slotd: GLIBC_TUNABLES=%s\n", tunables);
  }

  // Each partition served here: its own cluster node, engine, sequencer, journal, webhook
  // delivery and Api (the home partition's first).
  struct Partition {
    std::uint32_t number = 0;
    std::string data_dir;
    std::unique_ptr<ClusterNode> cluster;
    std::unique_ptr<Sequencer> sequencer;
    std::unique_ptr<WebhookDelivery> webhooks;
    std::unique_ptr<Api> api;
  };
  std::vector<Partition> partitions(config.partitions.size());
  ServerStats server_stats;
  // The web UI: GET/HEAD paths no route claims (pages and assets, web_assets.hpp).
  const WebAssets web(config.web_dir);
  for (std::size_t i = 0; i < partitions.size(); ++i) {
    Partition& part = partitions[i];
    part.number = config.partitions[i];
    part.data_dir = partition_data_dir(config, part.number);
    SequencerConfig part_config = seq_config;
    if (clustered) {
      ClusterOptions cluster_options;
      cluster_options.nats_urls = config.nats_urls;
      cluster_options.node_id = config.node_id.empty() ? fmt::format("{}:{}", config.host, config.port) : config.node_id;
      cluster_options.advertise_url = config.advertise_url.empty()
                                          ? fmt::format("http://{}:{}", config.host, config.port)
                                          : config.advertise_url;
      cluster_options.partition = fmt::format("p{}", part.number);
      cluster_options.replicas = config.stream_replicas;
      cluster_options.keep_batches = config.stream_keep_batches;
      cluster_options.lease_ttl = std::chrono::milliseconds(static_cast<std::int64_t>(config.lease_ttl_s * 1000.0));
      JournalStatus connected = ClusterNode::connect(cluster_options, part.cluster);
      if (!connected) {
        std::fprintf(stderr, "slotd: %s\n", connected.message.c_str());
        return 1;
      }
      part_config.replicate = [node = part.cluster.get()](std::span<const JournalRecord> records) {
        return node->publish(records);
      };
    }

    auto started = std::chrono::steady_clock::now();
    JournalStatus opened = Sequencer::open(part.data_dir, part_config, part.sequencer);
    if (!opened) {
      std::fprintf(stderr, "slotd: cannot recover from %s: %s\n", part.data_dir.c_str(),
                   opened.message.c_str());
      return 1;
    }
    Sequencer& sequencer = *part.sequencer;
    auto recovery_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
    const RecoveryInfo& recovery = sequencer.recovery();
    std::printf("slotd: recovered to seq %llu from %s in %lld ms (%s, then %llu journal events), "
                "state hash %016llx\n",
                static_cast<unsigned long long>(sequencer.durable_seq()), part.data_dir.c_str(),
                static_cast<long long>(recovery_ms),
                recovery.snapshot_seq
                    ? fmt::format("snapshot at seq {}", recovery.snapshot_seq).c_str()
                    : "no snapshot",
                static_cast<unsigned long long>(recovery.replayed_events),
                static_cast<unsigned long long>(sequencer.engine().state_hash()));
    std::printf("slotd: recovery phases: snapshot %.0f ms, journal tail %.0f ms, "
                "invariants and read side %.0f ms\n",
                recovery.snapshot_ms, recovery.tail_ms, recovery.checks_ms);

    // Webhook delivery: its own thread, reading durable events from the journal.
    WebhookDeliveryOptions webhook_options;
    webhook_options.allow_private = config.allow_private_webhooks;
    webhook_options.max_attempts = config.webhook_attempts;
    webhook_options.timeout_s = config.webhook_timeout_s;
    webhook_options.backoff_base_s = config.webhook_backoff_base_s;
    webhook_options.backoff_max_s = std::max(config.webhook_backoff_max_s, config.webhook_backoff_base_s);
    webhook_options.partition = part.number;
    if (part.cluster) {
      // Only the leader delivers, resuming from the cursors the last leader shared.
      ClusterNode& node = *part.cluster;
      webhook_options.sharing.may_deliver = [&node] { return node.role().leading(); };
      webhook_options.sharing.load = [&node](std::map<std::uint64_t, JournalCursor>& out, std::string& why) {
        return node.webhook_cursors().load(out, why);
      };
      webhook_options.sharing.store = [&node](std::uint64_t id, const JournalCursor& cursor) {
        node.webhook_cursors().store(id, cursor);
      };
      webhook_options.sharing.forget = [&node](std::uint64_t id) { node.webhook_cursors().forget(id); };
    }
    part.webhooks = std::make_unique<WebhookDelivery>(sequencer, webhook_options);

    ApiOptions api_options;
    api_options.admin_token = config.admin_token;
    api_options.max_bulk_slots = config.max_bulk_slots;
    api_options.booking_rate = config.booking_rate;
    api_options.booking_burst = config.booking_burst;
    api_options.default_time_zone = config.default_time_zone;
    api_options.webhooks = part.webhooks.get();
    api_options.web = [&web](const HttpRequest& request) {
      std::string_view path = request.target.substr(0, request.target.find_first_of("?#"));
      return web.lookup(path, request.if_none_match);
    };
    if (part.cluster) api_options.cluster = &part.cluster->role();
    api_options.partition = part.number;
    part.api = std::make_unique<Api>(sequencer, api_options, server_stats);
  }
  Partition& home = partitions.front();
  std::vector<FeedSource> feed_sources;
  if (partitions.size() > 1) {
    std::vector<Api*> apis;
    for (Partition& part : partitions) {
      apis.push_back(part.api.get());
      feed_sources.push_back(FeedSource{part.number, part.sequencer.get()});
    }
    home.api->serve_partitions(std::move(apis));
  }

  ServerOptions server_options;
  server_options.host = config.host;
  server_options.port = config.port;
  server_options.threads = config.threads ? config.threads : 1;
  server_options.max_body_bytes = config.max_body_bytes;
  server_options.max_header_bytes = config.max_header_bytes;
  server_options.request_timeout_s = config.request_timeout_s;
  server_options.idle_timeout_s = config.idle_timeout_s;
  server_options.max_connections = config.max_connections;
  server_options.allowed_origins = config.allowed_origins;
  server_options.feed.max_queue_bytes = config.ws_queue_bytes;
  server_options.max_feed_connections_per_client = config.max_feed_connections_per_client;
  server_options.trusted_proxies = *proxies;
  server_options.shutdown_grace_s = config.shutdown_grace_s;
  Server server(server_options, *home.api, server_stats, *home.sequencer, std::move(feed_sources));

  for (Partition& part : partitions) {
    Sequencer& sequencer = *part.sequencer;
    // The live feed: every durable batch goes to the server (registered before start).
    sequencer.add_observer([&server, number = part.number](const std::shared_ptr<const BatchResults>& batch) {
      server.publish(batch, number);
    });
    // Webhooks: only a wake-up on the journal thread; the delivery thread does the rest.
    sequencer.add_observer([webhooks = part.webhooks.get()](const std::shared_ptr<const BatchResults>&) {
      webhooks->notify_durable();
    });
    // A cluster node follows (decides nothing) until it holds the lease.
    if (part.cluster) part.cluster->start(sequencer);
    sequencer.start();
    part.webhooks->start();
    // Clinic 1 takes the default time zone on the very first start (then it is journaled
    // state, and a later flag change does not move it). Not in cluster mode: only a leader
    // may decide, and it is not known yet.
    if (!part.cluster && sequencer.durable_seq() == 0 && config.default_time_zone != "UTC") {
      (void)sequencer.execute(UpdateClinic{1, {}, config.default_time_zone});
    }
  }
  if (config.demo) seed_demo(*home.sequencer);

  auto stop_all = [&partitions] {
    for (Partition& part : partitions) part.sequencer->stop();
  };
  if (!server.listen(error)) {
    std::fprintf(stderr, "slotd: %s\n", error.c_str());
    stop_all();
    for (Partition& part : partitions) part.webhooks->stop();
    return 1;
  }
  std::string host = config.host.find(':') != std::string::npos ? "[" + config.host + "]" : config.host;
  std::printf("slotd listening on http://%s:%u\n", host.c_str(), server.bound_port());
  if (partitions.size() > 1) {
    std::string list;
    for (const Partition& part : partitions) list += fmt::format("{}{}", list.empty() ? "" : ", ", part.number);
    std::printf("partitions:   %s (home %u)\n", list.c_str(), home.number);
  }
  std::printf("patient page: http://%s:%u/\n", host.c_str(), server.bound_port());
  std::printf("admin page:   http://%s:%u/admin\n", host.c_str(), server.bound_port());
  if (token_from_file) {
    std::printf("admin token: in %s\n", (fs::path(config.data_dir) / "admin-token").c_str());
  } else {
    std::printf("admin token: as given (--admin-token or SLOTD_ADMIN_TOKEN)\n");
  }
  std::fflush(stdout);

  server.run(stop_all);
  // Before the server goes: a waiting registration's callback holds its connection. Before
  // the cluster node: the last cursors it stored are shared as the node stops.
  for (Partition& part : partitions) part.webhooks->stop();
  for (Partition& part : partitions) {
    if (part.cluster) part.cluster->stop();
  }
  // Graceful shutdown ends with a snapshot, so the next start replays nothing.
  for (Partition& part : partitions) {
    if (SnapshotStatus snapshot = part.sequencer->write_final_snapshot(); !snapshot) {
      std::fprintf(stderr, "slotd: no final snapshot of %s: %s\n", part.data_dir.c_str(),
                   snapshot.message.c_str());
    }
    std::printf("slotd: stopped cleanly at seq %llu, state hash %016llx%s\n",
                static_cast<unsigned long long>(part.sequencer->durable_seq()),
                static_cast<unsigned long long>(part.sequencer->engine().state_hash()),
                partitions.size() > 1 ? fmt::format(" (partition {})", part.number).c_str() : "");
  }
  return 0;
}
