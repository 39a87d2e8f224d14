// memory_bench — bytes per slot and per booking of the state slotd keeps in memory, the
// read side included, at a given size (default 10M slots, 1M bookings).
//
// Builds the state through the engine (CreateSlots, BookSlot), then loads a ReadStore from
// it as slotd does at start-up, and reports the process's resident memory after each step
// (RSS from /proc, so allocator overhead counts) next to Engine::memory_bytes(). Prints
// the figures and writes them to --out; nothing is asserted.
//
// Chunks come from huge pages as in slotd (snapshots/huge_page_chunks.hpp); --heap-chunks
// takes them from the heap instead, for comparison.
//
//   memory_bench [--slots N] [--bookings N] [--slots-per-doctor N] [--heap-chunks] [--out PATH]
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "engine/engine.hpp"
#include "sequencer/read_store.hpp"
#include "snapshots/huge_page_chunks.hpp"

namespace {

using namespace slotd;

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

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t slots = 10'000'000, bookings = 1'000'000, per_doctor = 5'000;
  std::string out = "memory_bench.results.txt";
  bool heap_chunks = false;
  for (int i = 1; i < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--heap-chunks") {
      heap_chunks = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: memory_bench [--slots N] [--bookings N] [--slots-per-doctor N] [--heap-chunks] [--out PATH]\n");
      return 2;
    }
    const std::uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--slots") slots = v;
    else if (flag == "--bookings") bookings = v;
    else if (flag == "--slots-per-doctor") per_doctor = v;
    else if (flag == "--out") out = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: memory_bench [--slots N] [--bookings N] [--slots-per-doctor N] [--heap-chunks] [--out PATH]\n");
      return 2;
    }
  }
  if (bookings > slots || per_doctor == 0) {
    std::fprintf(stderr, "memory_bench: need bookings <= slots and slots-per-doctor > 0\n");
    return 2;
  }
  constexpr TimeMs kT0 = 1'925'000'000'000;
  constexpr TimeMs kSlotMs = 30 * 60 * 1000;
  if (!heap_chunks) use_huge_page_chunks();
  EngineConfig config;
  config.max_slots_per_request = 1'000'000;
  Engine engine(config);
  std::vector<Event> events;
  const std::uint64_t rss0 = rss_bytes();
  const std::uint64_t doctors = (slots + per_doctor - 1) / per_doctor;
  for (std::uint64_t d = 1; d <= doctors; ++d) {
    events.clear();
    if (engine.execute(AddDoctor{1, fmt::format("Dr. {}", d), "GP"}, kT0, events) != Rejection::none) return 1;
    CreateSlots create{d, {}};
    const std::uint64_t n = std::min(per_doctor, slots - (d - 1) * per_doctor);
    for (std::uint64_t i = 0; i < n; ++i) {
      create.spans.push_back({kT0 + static_cast<TimeMs>(i) * kSlotMs, kT0 + static_cast<TimeMs>(i + 1) * kSlotMs});
    }
    events.clear();
    if (engine.execute(create, kT0, events) != Rejection::none) return 1;
  }
  const std::uint64_t rss_slots = rss_bytes();
  const std::uint64_t engine_slots = engine.memory_bytes();
  for (std::uint64_t b = 0; b < bookings; ++b) {
    // Spread over the slots, a confirmed booking with a typical name.
    const Id slot = 1 + (b * (slots / bookings));
    events.clear();
    BookSlot book{slot, fmt::format("Patient {:07}", b), 0, {}};
    if (engine.execute(book, kT0, events) != Rejection::none) return 1;
    events.clear();
    if (engine.execute(ConfirmBooking{b + 1}, kT0 + 1000, events) != Rejection::none) return 1;
  }
  const std::uint64_t rss_bookings = rss_bytes();
  const std::uint64_t engine_all = engine.memory_bytes();
  ReadStore reads(engine);
  reads.load(engine, engine.applied_events());
  const std::uint64_t rss_reads = rss_bytes();

  auto per = [](std::uint64_t bytes, std::uint64_t n) { return n ? static_cast<double>(bytes) / static_cast<double>(n) : 0.0; };
  std::string report;
  auto say = [&](const std::string& line) {
    std::puts(line.c_str());
    report += line + "\n";
  };
  say(fmt::format("memory_bench: {} slots ({} doctors x {}), {} confirmed bookings, chunks from {}", slots, doctors,
                  per_doctor, bookings, heap_chunks ? "the heap" : "huge pages"));
  say(fmt::format("engine, slots only     : {:6.1f} B/slot RSS   ({:6.1f} B/slot by Engine::memory_bytes)",
                  per(rss_slots - rss0, slots), per(engine_slots, slots)));
  say(fmt::format("engine, per booking    : {:6.1f} B/booking RSS ({:6.1f} B/booking by memory_bytes)",
                  per(rss_bookings - rss_slots, bookings), per(engine_all - engine_slots, bookings)));
  say(fmt::format("read side (ReadStore)  : {:6.1f} B/slot RSS incl. its per-booking part ({:.1f} MiB)",
                  per(rss_reads - rss_bookings, slots), static_cast<double>(rss_reads - rss_bookings) / 1048576.0));
  say(fmt::format("total, reads included  : {:6.1f} B/slot RSS with {} bookings ({:.1f} MiB)",
                  per(rss_reads - rss0, slots), bookings, static_cast<double>(rss_reads - rss0) / 1048576.0));
  std::ofstream(out) << report;
  std::printf("results written to %s\n", out.c_str());
  return 0;
}
