// slotd: wires configuration, sequencer (engine + journal + read model) and the HTTP server.
// Read this file top to bottom to see the whole pipeline.
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "api/api.hpp"
#include "api/config.hpp"
#include "api/server.hpp"
#include "sequencer/sequencer.hpp"

namespace fs = std::filesystem;
using namespace slotd;

namespace {

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  std::size_t filled = 0;
  while (filled < bytes) {
    ssize_t n = getrandom(raw.data() + filled, bytes - filled, 0);
    if (n > 0) filled += static_cast<std::size_t>(n);
  }
  std::string hex;
  for (unsigned char c : raw) hex += fmt::format("{:02x}", c);
  return hex;
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

// --demo on an empty journal: two clinics, a few doctors, a week of half-hour slots.
void seed_demo(Sequencer& sequencer) {
  bool empty = sequencer.reads().read(
      [](const Engine& e, std::uint64_t) { return e.doctors().empty(); });
  if (!empty) return;
  (void)sequencer.execute(AddClinic{"Harbor Clinic"});
  struct DemoDoctor {
    Id clinic_id;
    const char* name;
    const char* specialty;
  };
  const DemoDoctor doctors[] = {
      {1, "Dr. Ada Okafor", "General Practice"},
      {1, "Dr. Lena Virtanen", "Dermatology"},
      {1, "Dr. Rafael Costa", "Cardiology"},
      {2, "Dr. Mei Tanaka", "Pediatrics"},
  };
  using namespace std::chrono;
  const TimeMs day_ms = 86'400'000;
  const TimeMs today_ms =
      duration_cast<milliseconds>(floor<days>(system_clock::now()).time_since_epoch()).count();
  for (const DemoDoctor& d : doctors) {
    CommandResult added = sequencer.execute(AddDoctor{d.clinic_id, d.name, d.specialty});
    if (added.rejection != Rejection::none) continue;
    Id doctor_id = std::get<DoctorAdded>(added.events.at(0)).doctor_id;
    CreateSlots slots{doctor_id, {}};
    for (int day = 1; day <= 7; ++day) {
      for (int half_hour = 0; half_hour < 16; ++half_hour) {  // 09:00–17:00 UTC
        TimeMs start = today_ms + day * day_ms + 9 * 3'600'000 + half_hour * 1'800'000;
        slots.spans.push_back({start, start + 1'800'000});
      }
    }
    (void)sequencer.execute(std::move(slots));
  }
}

}  // namespace

int main(int argc, char** argv) {
  ConfigResult parsed = parse_config(argc, argv);
  if (parsed.help) {
    std::fputs(config_usage().c_str(), stdout);
    return 0;
  }
  if (!parsed.config) {
    std::fprintf(stderr, "slotd: %s\n%s", parsed.error.c_str(), config_usage().c_str());
    return 2;
  }
  Config config = *parsed.config;

  std::error_code ec;
  fs::create_directories(config.data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "slotd: cannot create data dir %s: %s\n", config.data_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  std::string error;
  const std::string token_source =
      config.admin_token.empty()
          ? "in " + (fs::path(config.data_dir) / "admin-token").string()
          : "the one given by --admin-token or SLOTD_ADMIN_TOKEN";
  if (!resolve_admin_token(config, error)) {
    std::fprintf(stderr, "slotd: %s\n", error.c_str());
    return 1;
  }

  SequencerConfig seq_config;
  seq_config.engine.hold_ttl_ms = static_cast<TimeMs>(config.hold_ttl_s * 1000.0);
  seq_config.engine.max_holds_per_client = config.max_holds_per_client;
  seq_config.engine.max_slots_per_request = config.max_bulk_slots;
  seq_config.queue_capacity = config.queue_capacity;
  seq_config.max_batch = config.max_batch;

  auto started = std::chrono::steady_clock::now();
  std::unique_ptr<Sequencer> sequencer;
  JournalStatus opened = Sequencer::open(config.data_dir, seq_config, sequencer);
  if (!opened) {
    std::fprintf(stderr, "slotd: cannot recover from %s: %s\n", config.data_dir.c_str(),
                 opened.message.c_str());
    return 1;
  }
  auto recovery_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count();
  std::printf("slotd: recovered %llu events from %s in %lld ms\n",
              static_cast<unsigned long long>(sequencer->durable_seq()), config.data_dir.c_str(),
              static_cast<long long>(recovery_ms));
  // The live feed: every durable batch goes to the WebSocket hub (registered before start).
  FeedHub hub;
  sequencer->add_observer([&hub](std::span<const JournalRecord> records, const Engine& state) {
    hub.publish(records, state);
  });
  sequencer->start();
  if (config.demo) seed_demo(*sequencer);

  ServerStats server_stats;
  Api api(*sequencer, ApiOptions{config.admin_token, config.max_bulk_slots, config.web_dir},
          server_stats);
  ServerOptions server_options;
  server_options.host = config.host;
  server_options.port = config.port;
  server_options.threads = config.threads ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  server_options.max_body_bytes = config.max_body_bytes;
  server_options.max_header_bytes = config.max_header_bytes;
  server_options.request_timeout_s = config.request_timeout_s;
  server_options.idle_timeout_s = config.idle_timeout_s;
  server_options.max_connections = config.max_connections;
  server_options.allowed_origins = config.allowed_origins;
  server_options.ws_queue_limit = config.ws_queue_limit;
  Server server(server_options, api, server_stats, *sequencer, hub);
  if (!server.listen(error)) {
    std::fprintf(stderr, "slotd: %s\n", error.c_str());
    sequencer->stop();
    return 1;
  }
  std::string host = config.host.find(':') != std::string::npos ? "[" + config.host + "]" : config.host;
  std::printf("slotd listening on http://%s:%u\n", host.c_str(), server.bound_port());
  std::printf("patient page: http://%s:%u/\n", host.c_str(), server.bound_port());
  // The token itself stays off the terminal (and out of logs and CI output).
  std::printf("admin page:   http://%s:%u/admin (admin token: %s)\n", host.c_str(),
              server.bound_port(), token_source.c_str());
  std::fflush(stdout);

  server.run([&] { sequencer->stop(); });
  std::printf("slotd: stopped cleanly at seq %llu\n",
              static_cast<unsigned long long>(sequencer->durable_seq()));
  return 0;
}
