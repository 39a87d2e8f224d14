// engine_bench — commands per second of the pure engine on one thread (decide + apply).
//
// Each mix starts from a fresh engine holding `doctors × slots_per_doctor` AVAILABLE slots
// (built with CreateSlots, not timed) and runs a bounded number of commands (also bounded
// in time) exactly as the sequencer would: decide into a reused event vector, then apply
// each event. Command objects are reused and only their ids change, so the numbers are the
// engine's cost, not the cost of building commands. Results are printed and written to
// --out (default engine_bench.results.txt); nothing is asserted (timing lives
// in bench/, never in tests). The engine's chunks come from huge pages, as in slotd
// (SequencerConfig::huge_page_chunks); --heap-chunks takes them from the heap instead, where
// growing state costs a page fault per 4 KiB.
//
//   engine_bench [--quick] [--out PATH] [--doctors N] [--slots-per-doctor N]
//                [--max-commands N] [--max-seconds S] [--seed N] [--mix abcd] [--heap-chunks]
#include "engine/engine.hpp"
#include "snapshots/huge_page_chunks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using namespace slotd;
using Clock = std::chrono::steady_clock;

constexpr TimeMs kT0 = 1'925'000'000'000;
constexpr TimeMs kSlotMs = 15 * 60 * 1000;

struct Options {
  bool quick = false;
  std::string out = "engine_bench.results.txt";
  std::uint64_t doctors = 100;
  std::uint64_t slots_per_doctor = 10'000;
  std::uint64_t max_commands = 4'000'000;
  double max_seconds = 10.0;
  std::uint64_t seed = 1;
  std::string mixes = "abcd";  // which mixes to run, by letter
  bool heap_chunks = false;
};

[[noreturn]] void usage(const char* message) {
  std::fprintf(
      stderr,
      "engine_bench: %s\nusage: engine_bench [--quick] [--out PATH] [--doctors N] "
      "[--slots-per-doctor N] [--max-commands N] [--max-seconds S] [--seed N] [--mix abcd] "
      "[--heap-chunks]\n",
      message);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  // --quick first, so explicit sizes given with it still win.
  if (std::find(args.begin(), args.end(), "--quick") != args.end()) {
    o.quick = true;
    o.slots_per_doctor = 1'000;
    o.max_commands = 1'000'000;
    o.max_seconds = 2.0;
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) usage("missing value");
      return std::string(args[++i]);
    };
    auto number = [&]() -> std::uint64_t {
      const std::string v = value();
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n == 0) usage("expected a positive number");
      return n;
    };
    if (args[i] == "--quick") continue;
    if (args[i] == "--out")
      o.out = value();
    else if (args[i] == "--doctors")
      o.doctors = number();
    else if (args[i] == "--slots-per-doctor")
      o.slots_per_doctor = number();
    else if (args[i] == "--max-commands")
      o.max_commands = number();
    else if (args[i] == "--max-seconds")
      o.max_seconds = std::strtod(value().c_str(), nullptr);
    else if (args[i] == "--seed")
      o.seed = number();
    else if (args[i] == "--mix")
      o.mixes = value();
    else if (args[i] == "--heap-chunks")
      o.heap_chunks = true;
    else if (args[i] == "--help" || args[i] == "-h")
      usage("help");
    else
      usage("unknown argument");
  }
  return o;
}

// Resident set size of this process, from /proc (0 where unavailable).
std::uint64_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  std::uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "VmRSS: %lu kB", &kb) == 1) break;
  }
  std::fclose(f);
  return kb * 1024;
}

std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Runs commands like the sequencer: decide, then apply each event; counts the outcomes.
class Runner {
 public:
  explicit Runner(Engine& engine) : engine_(engine) { out_.reserve(16 * 1024); }

  void run(const Command& command, TimeMs now_ms) {
    out_.clear();
    const Rejection r = engine_.decide(command, now_ms, out_);
    if (r != Rejection::none) {
      ++rejections;
    } else {
      for (const Event& e : out_) engine_.apply(e);
      events += out_.size();
    }
    ++commands;
  }

  std::uint64_t commands = 0;
  std::uint64_t events = 0;
  std::uint64_t rejections = 0;

 private:
  Engine& engine_;
  std::vector<Event> out_;
};

struct Result {
  std::string mix;
  std::uint64_t commands = 0;
  std::uint64_t events = 0;
  std::uint64_t rejections = 0;
  double seconds = 0;
  std::uint64_t slots = 0;
  std::uint64_t bookings = 0;
  std::uint64_t rss_after = 0;
  double worst_batch_us = 0;  // the slowest kBatch consecutive commands
  double hash_seconds = 0;    // one state_hash() of the final state
  std::uint64_t hash = 0;
  std::uint64_t state_bytes_before = 0;  // Engine::memory_bytes() of the starting state
  std::uint64_t state_bytes_after = 0;
};

// A fresh engine with doctors × slots_per_doctor quarter-hour slots.
Engine make_state(const Options& o, double* setup_seconds = nullptr,
                  std::uint64_t* setup_commands = nullptr) {
  Engine engine;
  Runner runner(engine);
  for (std::uint64_t d = 0; d < o.doctors; ++d)
    runner.run(AddDoctor{1, "Dr. " + std::to_string(d + 1), "GP"}, kT0);
  const auto start = Clock::now();
  for (std::uint64_t d = 1; d <= o.doctors; ++d) {
    for (std::uint64_t first = 0; first < o.slots_per_doctor;
         first += engine.config().max_slots_per_request) {
      CreateSlots c{d, {}};
      const std::uint64_t last = std::min<std::uint64_t>(
          o.slots_per_doctor, first + engine.config().max_slots_per_request);
      for (std::uint64_t i = first; i < last; ++i) {
        c.spans.push_back(
            {kT0 + static_cast<TimeMs>(i) * kSlotMs, kT0 + static_cast<TimeMs>(i + 1) * kSlotMs});
      }
      runner.run(c, kT0);
    }
  }
  if (setup_seconds) *setup_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (setup_commands) *setup_commands = runner.commands - o.doctors;
  if (runner.rejections != 0 || engine.slots().size() != o.doctors * o.slots_per_doctor) {
    std::fprintf(stderr, "engine_bench: building the state failed\n");
    std::exit(1);
  }
  return engine;
}

// The timed loop, kept out of line so profilers can select it:
//   valgrind --tool=callgrind --toggle-collect='*drive*' engine_bench --quick
// Returns the slowest batch of kBatch consecutive commands: a latency spike (say, a big
// vector growing) shows there while the average hides it.
constexpr std::uint64_t kBatch = 4096;
template <class Body>
[[gnu::noinline]] Clock::duration drive(Runner& runner, Engine& engine, Body& body,
                                        const Options& o, Clock::time_point start) {
  const auto limit = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(o.max_seconds));
  Clock::duration worst{};
  Clock::time_point batch_start = start;
  while (runner.commands < o.max_commands) {
    if (!body(runner, engine)) break;
    if (runner.commands % kBatch == 0) {
      const Clock::time_point now = Clock::now();
      worst = std::max(worst, now - batch_start);
      batch_start = now;
      if (now > limit) break;
    }
  }
  return worst;
}

// Times `body(runner, engine)`, which runs one command per call and returns false when done.
template <class Body>
void timed(std::vector<Result>& results, const std::string& mix, const Options& o, Body body) {
  if (o.mixes.find(mix[0]) == std::string::npos) return;
  Engine engine = make_state(o);
  const std::uint64_t bytes_before = engine.memory_bytes();
  Runner runner(engine);
  const auto start = Clock::now();
  const Clock::duration worst_batch = drive(runner, engine, body, o, start);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const auto hash_start = Clock::now();
  const std::uint64_t hash = engine.state_hash();
  const double hash_seconds = std::chrono::duration<double>(Clock::now() - hash_start).count();
  if (const auto broken = engine.broken_invariant()) {
    std::fprintf(stderr, "engine_bench: %s broke an invariant: %s\n", mix.c_str(), broken->c_str());
    std::exit(1);
  }
  results.push_back(Result{mix, runner.commands, runner.events, runner.rejections, seconds,
                           engine.slots().size(), engine.bookings().size(), rss_bytes(),
                           std::chrono::duration<double, std::micro>(worst_batch).count(),
                           hash_seconds, hash, bytes_before, engine.memory_bytes()});
}

std::string row(const Result& r) {
  const double cps = r.commands / r.seconds;
  return fmt::format("{:<37} {:>11} {:>11} {:>10} {:>8.3f} {:>13} {:>13} {:>8.1f} {:>11.0f}", r.mix,
                     with_commas(r.commands), with_commas(r.events), with_commas(r.rejections),
                     r.seconds, with_commas(static_cast<std::uint64_t>(cps)),
                     with_commas(static_cast<std::uint64_t>(r.events / r.seconds)),
                     1e9 * r.seconds / r.commands, r.worst_batch_us);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.heap_chunks) use_huge_page_chunks();
  const std::uint64_t total_slots = o.doctors * o.slots_per_doctor;
  std::string report;
  auto say = [&](const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
    report += line + "\n";
  };

  say(fmt::format(
      "engine_bench{}: {} doctors x {} slots = {} slots; at most {} commands or {:.1f} s per mix; "
      "decide + apply on one thread; chunks from {}",
      o.quick ? " --quick" : "", with_commas(o.doctors), with_commas(o.slots_per_doctor),
      with_commas(total_slots), with_commas(o.max_commands), o.max_seconds,
      o.heap_chunks ? "the heap" : "huge pages"));

  // The state itself: how long CreateSlots takes and what the slots cost in memory.
  {
    const std::uint64_t rss_before = rss_bytes();
    double setup_seconds = 0;
    std::uint64_t setup_commands = 0;
    Engine engine = make_state(o, &setup_seconds, &setup_commands);
    const std::uint64_t rss_after = rss_bytes();
    say(fmt::format(
        "state: {} slots built by {} CreateSlots in {:.3f} s ({} slots/s); RSS +{:.1f} MiB "
        "(~{} bytes/slot: Slot {} B + index node)",
        with_commas(engine.slots().size()), with_commas(setup_commands), setup_seconds,
        with_commas(static_cast<std::uint64_t>(engine.slots().size() / setup_seconds)),
        (rss_after - rss_before) / 1048576.0,
        rss_after > rss_before ? (rss_after - rss_before) / engine.slots().size() : 0,
        sizeof(Slot)));
    say(fmt::format("sizes: Slot {} B, Booking {} B, Event {} B, Command {} B", sizeof(Slot),
                    sizeof(Booking), sizeof(Event), sizeof(Command)));
  }

  const ClientId client_key = 0x2030113007;  // a client's identity digest
  std::vector<Result> results;

  // (a) BookSlot only, each on a fresh AVAILABLE slot: every command succeeds.
  timed(results, "a) BookSlot, fresh slots", o,
        [&, next = Id{1}, cmd = Command{BookSlot{0, "Patient Name", client_key, {}}}](
            Runner& r, Engine&) mutable {
          if (next > total_slots) return false;
          std::get<BookSlot>(cmd).slot_id = next++;
          r.run(cmd, kT0);
          return true;
        });

  // (b) BookSlot then ConfirmBooking of that booking, slot after slot.
  timed(results, "b) BookSlot + ConfirmBooking", o,
        [&, next = Id{1}, book = Command{BookSlot{0, "Patient Name", client_key, {}}},
         confirm = Command{ConfirmBooking{0}}](Runner& r, Engine& e) mutable {
          if (next > total_slots) return false;
          std::get<BookSlot>(book).slot_id = next++;
          r.run(book, kT0);
          std::get<ConfirmBooking>(confirm).booking_id = e.bookings().size();
          r.run(confirm, kT0 + 1);
          return true;
        });

  // (c) Holds that expire: 1,000 BookSlot, then the clock passes the TTL and one ExpireDue
  // fails all 1,000 and frees their slots; the slots are booked again in later rounds.
  timed(results, "c) BookSlot + ExpireDue (1k/tick)", o,
        [&, next = Id{0}, now = kT0, in_round = 0,
         book = Command{BookSlot{0, "Patient Name", client_key, {}}},
         expire = Command{ExpireDue{}}](Runner& r, Engine& e) mutable {
          if (in_round == 1'000) {
            now += e.config().hold_ttl_ms;
            r.run(expire, now);
            in_round = 0;
            return true;
          }
          std::get<BookSlot>(book).slot_id = next % total_slots + 1;
          ++next;
          r.run(book, now);
          ++in_round;
          return true;
        });

  // (d) A realistic mix: 70% BookSlot on a random slot (taken ones are refused with
  // slot_unavailable), 20% ConfirmBooking of a recent booking (some already confirmed,
  // some expired), 10% ExpireDue ticks; the clock advances 1 ms per command, so holds
  // expire after 120,000 commands. The random stream is drawn before timing.
  {
    std::mt19937_64 rng(o.seed);
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(o.max_commands, 8'000'000));
    std::vector<std::uint32_t> op(n);
    for (auto& v : op) v = static_cast<std::uint32_t>(rng());
    std::vector<ClientId> clients;
    for (int i = 0; i < 1'000; ++i) clients.push_back(0x1985100000ULL + static_cast<ClientId>(i));
    timed(results, "d) mix 70% book/20% confirm/10% tick", o,
          [&, i = std::size_t{0}, now = kT0, book = Command{BookSlot{0, "Patient Name", 0, {}}},
           confirm = Command{ConfirmBooking{0}},
           expire = Command{ExpireDue{}}](Runner& r, Engine& e) mutable {
            if (i >= op.size()) return false;
            const std::uint32_t v = op[i++];
            now += 1;
            const std::uint32_t kind = v % 10;
            if (kind < 7) {
              auto& b = std::get<BookSlot>(book);
              b.slot_id = (v / 10) % total_slots + 1;
              b.client = clients[(v / 16) % clients.size()];
              r.run(book, now);
            } else if (kind < 9) {
              const std::uint64_t count = e.bookings().size();
              std::get<ConfirmBooking>(confirm).booking_id =
                  count == 0 ? 1 : count - (v / 10) % std::min<std::uint64_t>(count, 2'000);
              r.run(confirm, now);
            } else {
              r.run(expire, now);
            }
            return true;
          });
  }

  say("");
  say(fmt::format("{:<37} {:>11} {:>11} {:>10} {:>8} {:>13} {:>13} {:>8} {:>11}", "mix", "commands",
                  "events", "rejected", "seconds", "commands/s", "events/s", "ns/cmd",
                  "worst4k_us"));
  for (const Result& r : results) say(row(r));
  say("");
  for (const Result& r : results) {
    say(fmt::format("{:<37} after: {} slots, {} bookings, RSS {:.1f} MiB; state_hash() {:.1f} ms",
                    r.mix, with_commas(r.slots), with_commas(r.bookings), r.rss_after / 1048576.0,
                    1e3 * r.hash_seconds));
    say(fmt::format("{:<37} engine state: {:.1f} B per slot (empty bookings), +{:.1f} B per booking",
                    "", static_cast<double>(r.state_bytes_before) / static_cast<double>(r.slots),
                    r.bookings ? static_cast<double>(r.state_bytes_after - r.state_bytes_before) /
                                     static_cast<double>(r.bookings)
                               : 0.0));
  }
  say(fmt::format("worst4k_us: the slowest run of {} consecutive commands, in microseconds.",
                  kBatch));

  std::ofstream file(o.out);
  file << report;
  if (!file) {
    std::fprintf(stderr, "engine_bench: cannot write %s\n", o.out.c_str());
    return 1;
  }
  std::printf("results written to %s\n", o.out.c_str());
  return 0;
}
