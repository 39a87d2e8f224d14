// recovery_bench — start-up time with and without snapshots, snapshot cost, and the
// writer's pause while a snapshot is taken. Prints a table and writes it to a results
// file; asserts nothing about time.
//
//   recovery_bench [--quick] [--out PATH] [--dir DIR] [--slots N,...] [--heap-chunks] [--no-pause]
//                  [--keep-data]
//
// For each size (default 1M and 10M slots; --quick 100k and 1M) it builds a data dir
// through the real Journal: S slots from SlotCreated events (10,000 per doctor), then
// S/8 bookings held and S/8 confirmed, so E = 1.25 S events. Then, each through the real
// Sequencer::open:
//   - full replay: no snapshot, all E events;
//   - snapshot + 1M tail: a snapshot written at seq E - 1M (Snapshotter::take_now), then
//     the open restores it and replays the last 1M events;
//   - the snapshot's size and write time (in-process), bytes per slot and per booking in
//     memory (Engine::memory_bytes) and on disk (snapshot and journal);
//   - the writer's pause: the sequencer runs a booking load (one command at a time from
//     a client thread) and takes fork()-based snapshots; the longest fork() pause is the
//     sequencer stall; the slowest single command with and without a snapshot in flight
//     is the client's view of it (it includes an fsync each).
// Each open is timed in wall time and in CPU time of the whole process (RocksDB's threads
// included): on a shared machine the CPU time moves less. --heap-chunks keeps the engine's
// chunks on the heap instead of huge pages (SequencerConfig::huge_page_chunks = false).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "engine/engine.hpp"
#include "journal/journal.hpp"
#include "sequencer/sequencer.hpp"
#include "engine/state_codec.hpp"
#include "snapshots/huge_page_chunks.hpp"
#include "snapshots/snapshot_store.hpp"

namespace {

using namespace slotd;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr TimeMs kBase = 1'925'193'600'000;  // 2031-01-06
constexpr std::uint64_t kTail = 1'000'000;
constexpr std::size_t kBatch = 4096;

bool g_heap_chunks = false;
bool g_keep_data = false;  // leave each data dir (snapshot at E - 1M and the journal) behind
bool g_no_pause = false;   // skip the fork()-pause phase (it appends events and snapshots)

double process_cpu_s() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::uint64_t dir_bytes(const fs::path& dir) {
  std::uint64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

// Appends the events of `engine.execute(command)` to the journal in kBatch groups.
class Builder {
 public:
  Builder(Journal& journal, Engine& engine) : journal_(journal), engine_(engine) {}
  void run(const Command& command, TimeMs at) {
    scratch_.clear();
    if (engine_.execute(command, at, scratch_) != Rejection::none) std::abort();
    for (Event& e : scratch_) {
      pending_.push_back(JournalRecord{++seq_, at, 0, Actor::admin, std::move(e)});
      if (pending_.size() == kBatch) flush();
    }
  }
  void flush() {
    if (pending_.empty()) return;
    JournalStatus st = journal_.append(pending_);
    if (!st) {
      std::fprintf(stderr, "append: %s\n", st.message.c_str());
      std::exit(1);
    }
    pending_.clear();
  }
  std::uint64_t seq() const { return seq_; }

 private:
  Journal& journal_;
  Engine& engine_;
  std::vector<JournalRecord> pending_;
  std::vector<Event> scratch_;
  std::uint64_t seq_ = 0;
};

struct Figures {
  std::uint64_t slots = 0, bookings = 0, events = 0;
  double build_s = 0;
  double full_replay_s = 0, full_replay_cpu_s = 0;
  double snapshot_tail_s = 0, snapshot_tail_cpu_s = 0;
  RecoveryInfo snapshot_tail_phases;  // Sequencer::open's own split of snapshot_tail_s
  std::uint64_t snapshot_seq = 0;
  double snapshot_write_s = 0;
  std::uint64_t snapshot_bytes = 0;
  double mem_per_slot = 0, mem_per_booking = 0;
  double journal_bytes_per_event = 0;
  std::uint64_t max_fork_us = 0, max_fork_cpu_us = 0;
  double engine_bytes_per_slot = 0, engine_bytes_per_booking = 0;
  std::uint64_t snapshots_under_load = 0;
  double fork_snapshot_write_ms = 0;
  double slowest_command_ms_idle = 0, slowest_command_ms_snapshot = 0;
  std::uint64_t commands_under_load = 0;
  double rss_mb = 0;            // of this process while the snapshots ran
  std::uint64_t mappings = 0;   // its memory mappings (fork copies each one's page tables)
  double huge_mb = 0;           // of which anonymous memory on transparent huge pages
};

double rss_mb() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1 << 20);
}

// AnonHugePages of /proc/self/smaps_rollup, in MiB.
double huge_mb() {
  std::ifstream in("/proc/self/smaps_rollup");
  for (std::string line; std::getline(in, line);) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "AnonHugePages: %llu kB", &kb) == 1) return static_cast<double>(kb) / 1024;
  }
  return 0;
}

std::uint64_t mappings() {
  std::ifstream in("/proc/self/maps");
  std::uint64_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

std::unique_ptr<Sequencer> open_data(const fs::path& dir, SequencerConfig config = {}) {
  std::unique_ptr<Sequencer> seq;
  if (!config.log) config.log = [](const std::string&) {};
  config.huge_page_chunks = !g_heap_chunks;
  JournalStatus st = Sequencer::open(dir.string(), std::move(config), seq);
  if (!st) {
    std::fprintf(stderr, "open: %s\n", st.message.c_str());
    std::exit(1);
  }
  return seq;
}

Figures run_size(const fs::path& root, std::uint64_t slots) {
  Figures f;
  f.slots = slots;
  f.bookings = slots / 8;
  const fs::path data = root / fmt::format("data-{}", slots);
  fs::remove_all(data);
  std::uint64_t slot_bytes_in_memory = 0;
  {
    const auto t0 = Clock::now();
    std::unique_ptr<Journal> journal;
    if (!Journal::open((data / "journal").string(), journal)) std::exit(1);
    Engine engine;
    Builder b(*journal, engine);
    const std::uint64_t doctors = (slots + 9'999) / 10'000;
    for (std::uint64_t d = 0; d < doctors; ++d) b.run(AddDoctor{1, fmt::format("Dr. {}", d), "GP"}, kBase);
    std::uint64_t made = 0;
    for (std::uint64_t d = 1; d <= doctors && made < slots; ++d) {
      CreateSlots c{d, {}};
      for (std::uint64_t i = 0; i < 10'000 && made < slots; ++i, ++made) {
        const TimeMs start = kBase + static_cast<TimeMs>(i) * 1'800'000;
        c.spans.push_back({start, start + 1'800'000});
      }
      b.run(c, kBase);
    }
    slot_bytes_in_memory = engine.memory_bytes();
    const std::uint64_t encoded_slots = StateCodec::encoded_size(engine);
    std::mt19937_64 rng(slots);
    // Bookings on every 8th slot, then each confirmed: held and confirmed streams interleave
    // like real traffic, in time order.
    for (std::uint64_t k = 0; k < f.bookings; ++k) {
      const TimeMs at = kBase + static_cast<TimeMs>(k);
      BookSlot book{1 + k * 8, fmt::format("Patient {}", rng() % 1'000'000), 0, Token{}};
      for (auto& byte : book.token) byte = static_cast<std::uint8_t>(rng());
      b.run(book, at);
      b.run(ConfirmBooking{k + 1}, at);
    }
    b.flush();
    f.events = b.seq();
    f.build_s = seconds_since(t0);
    f.mem_per_slot = static_cast<double>(slot_bytes_in_memory) / static_cast<double>(slots);
    f.mem_per_booking = static_cast<double>(engine.memory_bytes() - slot_bytes_in_memory) /
                        static_cast<double>(f.bookings);
    f.engine_bytes_per_slot = static_cast<double>(encoded_slots) / static_cast<double>(slots);
    f.engine_bytes_per_booking = static_cast<double>(StateCodec::encoded_size(engine) - encoded_slots) /
                                 static_cast<double>(f.bookings);
  }
  f.journal_bytes_per_event = static_cast<double>(dir_bytes(data / "journal")) / static_cast<double>(f.events);

  // A first open recovers RocksDB's own write-ahead log into a memtable (a one-off after
  // the build); the timed opens below start from the same flushed state.
  { auto warm = open_data(data); }

  // Full replay.
  std::uint64_t full_hash = 0;
  {
    const auto t0 = Clock::now();
    const double cpu0 = process_cpu_s();
    auto seq = open_data(data);
    f.full_replay_s = seconds_since(t0);
    f.full_replay_cpu_s = process_cpu_s() - cpu0;
    full_hash = seq->engine().state_hash();
  }

  // A snapshot at E - 1M: replay a copy of the journal up to there, write it in-process.
  f.snapshot_seq = f.events > kTail ? f.events - kTail : 0;
  {
    std::unique_ptr<Journal> journal;
    if (!Journal::open((data / "journal").string(), journal)) std::exit(1);
    Engine engine;
    (void)journal->read(1, f.snapshot_seq, [&](const JournalRecord& r) {
      engine.apply(r.event);
      return true;
    });
    journal.reset();
    SnapshotStore store((data / "snapshots").string());
    const auto t0 = Clock::now();
    SnapshotStatus s = store.write_now(engine, f.snapshot_seq, kBase, 3);
    f.snapshot_write_s = seconds_since(t0);
    if (!s) {
      std::fprintf(stderr, "snapshot: %s\n", s.message.c_str());
      std::exit(1);
    }
    f.snapshot_bytes = fs::file_size(store.path_of(f.snapshot_seq));
  }

  // Snapshot + 1M tail.
  {
    const auto t0 = Clock::now();
    const double cpu0 = process_cpu_s();
    auto seq = open_data(data);
    f.snapshot_tail_s = seconds_since(t0);
    f.snapshot_tail_cpu_s = process_cpu_s() - cpu0;
    f.snapshot_tail_phases = seq->recovery();
    if (seq->recovery().snapshot_seq != f.snapshot_seq || seq->engine().state_hash() != full_hash) {
      std::fprintf(stderr, "snapshot + tail did not rebuild the same state\n");
      std::exit(1);
    }
  }

  // The writer's pause under load: fork()-based snapshots every 20,000 events.
  if (!g_no_pause) {
    SequencerConfig config;
    config.snapshot_every = 20'000;
    config.snapshots_kept = 1;
    auto seq = open_data(data, config);
    seq->start();
    std::uint64_t next_slot = 2;  // every 8th slot from 1 is taken; book the others
    double slowest_idle = 0, slowest_busy = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(slots >= 5'000'000 ? 60 : 30);
    while (seq->snapshot_stats().written.load() < 3 && Clock::now() < deadline) {
      // Bursts of 4,096 commands in flight keep the sequencer busy; single commands in
      // between measure what one client waits.
      std::vector<std::future<CommandResult>> burst;
      std::atomic<int> left{0};
      for (int i = 0; i < 4096; ++i) {
        if (next_slot % 8 == 1) ++next_slot;
        Submission s;
        s.command = BookSlot{next_slot++, "Load", 0, Token{}};
        ++left;
        s.done = [&left](CommandResult&&) { --left; };
        while (!seq->submit(std::move(s))) std::this_thread::yield();
      }
      const bool busy = seq->snapshot_in_flight();
      const auto t0 = Clock::now();
      CommandResult one = seq->execute(BookSlot{next_slot++, "Probe", 0, Token{}});
      const double ms = seconds_since(t0) * 1000;
      (busy ? slowest_busy : slowest_idle) = std::max(busy ? slowest_busy : slowest_idle, ms);
      f.commands_under_load += 4097;
      while (left.load() > 0) std::this_thread::yield();
      (void)one;
    }
    f.rss_mb = rss_mb();
    f.mappings = mappings();
    f.huge_mb = huge_mb();
    seq->stop();
    f.max_fork_us = seq->snapshot_stats().max_fork_ns.load() / 1000;
    f.max_fork_cpu_us = seq->snapshot_stats().max_fork_cpu_ns.load() / 1000;
    f.snapshots_under_load = seq->snapshot_stats().written.load();
    f.fork_snapshot_write_ms = static_cast<double>(seq->snapshot_stats().last_write_ms.load());
    f.slowest_command_ms_idle = slowest_idle;
    f.slowest_command_ms_snapshot = slowest_busy;
  }
  if (!g_keep_data) fs::remove_all(data);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string out_path = "recovery_bench.results.txt";
  fs::path root;
  std::vector<std::uint64_t> sizes;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--dir" && i + 1 < argc) root = argv[++i];
    else if (a == "--heap-chunks") g_heap_chunks = true;
    else if (a == "--keep-data") g_keep_data = true;
    else if (a == "--no-pause") g_no_pause = true;
    else if (a == "--slots" && i + 1 < argc) {
      std::string list = argv[++i];
      for (std::size_t p = 0; p < list.size();) {
        const std::size_t comma = list.find(',', p);
        sizes.push_back(std::stoull(list.substr(p, comma - p)));
        p = comma == std::string::npos ? list.size() : comma + 1;
      }
    } else {
      std::fprintf(stderr, "usage: recovery_bench [--quick] [--out PATH] [--dir DIR] [--slots N,...] [--heap-chunks] [--no-pause] [--keep-data]\n");
      return 2;
    }
  }
  if (sizes.empty()) sizes = quick ? std::vector<std::uint64_t>{100'000, 1'000'000}
                                   : std::vector<std::uint64_t>{1'000'000, 10'000'000};
  // As slotd does (Sequencer::open), before any engine exists: the data dirs' builders then
  // leave no heap behind that the forks would copy page tables of.
  if (!g_heap_chunks) use_huge_page_chunks();
  const bool own_root = root.empty();
  if (own_root) root = fs::temp_directory_path() / fmt::format("slotd-recovery-bench-{}", ::getpid());
  fs::create_directories(root);

  std::string report = fmt::format(
      "recovery_bench: Sequencer::open from a real journal (RocksDB, fsync'd batches of 4096), chunks from {}\n",
      g_heap_chunks ? "the heap" : "huge pages");
  for (std::uint64_t slots : sizes) {
    std::fprintf(stderr, "building %llu slots...\n", static_cast<unsigned long long>(slots));
    const Figures f = run_size(root, slots);
    report += fmt::format(
        "\n{} slots, {} bookings (held + confirmed), {} events (built in {:.1f} s)\n"
        "  full replay of {} events:                     {:8.3f} s ({:.3f} s CPU)\n"
        "  snapshot at seq {} + {} tail events:     {:8.3f} s ({:.3f} s CPU; snapshot {:.0f} ms, tail {:.0f} ms, invariants and read side {:.0f} ms)\n"
        "  snapshot write (in-process, fsync'd):         {:8.3f} s, {} bytes\n"
        "  fork()-based snapshots under load:            {} written, longest sequencer pause (fork) {} us wall, {} us CPU; last write {:.0f} ms (process: {:.0f} MiB resident, {:.0f} MiB of it on huge pages, {} mappings)\n"
        "  slowest single command (incl. fsync):         {:.2f} ms without / {:.2f} ms with a snapshot in flight ({} commands)\n"
        "  memory: {:.1f} bytes/slot, {:.1f} bytes/booking (Engine::memory_bytes)\n"
        "  disk:   snapshot {:.1f} bytes/slot, {:.1f} bytes/booking (StateCodec::encoded_size); journal {:.1f} bytes/event (records + entity index)\n",
        f.slots, f.bookings, f.events, f.build_s, f.events, f.full_replay_s, f.full_replay_cpu_s, f.snapshot_seq,
        f.events - f.snapshot_seq, f.snapshot_tail_s, f.snapshot_tail_cpu_s, f.snapshot_tail_phases.snapshot_ms,
        f.snapshot_tail_phases.tail_ms, f.snapshot_tail_phases.checks_ms, f.snapshot_write_s, f.snapshot_bytes,
        f.snapshots_under_load, f.max_fork_us, f.max_fork_cpu_us, f.fork_snapshot_write_ms, f.rss_mb, f.huge_mb, f.mappings, f.slowest_command_ms_idle, f.slowest_command_ms_snapshot,
        f.commands_under_load, f.mem_per_slot, f.mem_per_booking, f.engine_bytes_per_slot, f.engine_bytes_per_booking,
        f.journal_bytes_per_event);
    std::fputs(report.c_str(), stdout);
    report.clear();
    std::ofstream(out_path, std::ios::app) << fmt::format(
        "chunks={} slots={} events={} full_replay_s={:.3f} full_replay_cpu_s={:.3f} snapshot_tail_s={:.3f} "
        "snapshot_tail_cpu_s={:.3f} snapshot_load_ms={:.0f} tail_apply_ms={:.0f} checks_ms={:.0f} snapshot_write_s={:.3f} snapshot_bytes={} "
        "max_fork_us={} max_fork_cpu_us={} rss_mb={:.0f} huge_mb={:.0f} mappings={} fork_snapshot_write_ms={:.0f} slowest_cmd_ms_idle={:.2f} slowest_cmd_ms_snapshot={:.2f} "
        "mem_bytes_per_slot={:.1f} mem_bytes_per_booking={:.1f} snapshot_bytes_per_slot={:.1f} snapshot_bytes_per_booking={:.1f} journal_bytes_per_event={:.1f}\n",
        g_heap_chunks ? "heap" : "huge", f.slots, f.events, f.full_replay_s, f.full_replay_cpu_s, f.snapshot_tail_s,
        f.snapshot_tail_cpu_s, f.snapshot_tail_phases.snapshot_ms, f.snapshot_tail_phases.tail_ms,
        f.snapshot_tail_phases.checks_ms, f.snapshot_write_s, f.snapshot_bytes, f.max_fork_us, f.max_fork_cpu_us, f.rss_mb, f.huge_mb, f.mappings, f.fork_snapshot_write_ms, f.slowest_command_ms_idle, f.slowest_command_ms_snapshot, f.mem_per_slot,
        f.mem_per_booking, f.engine_bytes_per_slot, f.engine_bytes_per_booking, f.journal_bytes_per_event);
  }
  if (own_root && !g_keep_data) fs::remove_all(root);
  if (g_keep_data) std::printf("data dirs kept under %s\n", root.c_str());
  std::printf("results appended to %s\n", out_path.c_str());
  return 0;
}
