// journal_bench — durable append throughput of the journal next to raw RocksDB, and
// replay speed into the engine. Prints a table and writes it to a results file; asserts
// nothing about time.
//
//   journal_bench [--quick] [--out PATH] [--dir DIR]
//
// For each batch size the journal (Journal::append of SlotHeld records) and a raw
// RocksDB (WriteBatch of the same key and value bytes, sync = true, default options) run
// in alternating rounds on separate fresh databases; each side reports the median of its
// rounds, so drift in the disk's speed hits both alike. Then: replay speed, and how long an
// open takes after a clean close and after a crash (the entity index's rebuild).
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/version.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "bench/median.hpp"
#include "engine/engine.hpp"
#include "journal/codec.hpp"
#include "journal/journal.hpp"

namespace {

using namespace slotd;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr TimeMs kMonday2031Ms = 1'925'193'600'000;  // 2031-01-06T00:00:00Z

struct Settings {
  bool quick = false;
  std::string out_path = "journal_bench.results.txt";
  std::string dir;  // empty: a fresh directory under the system temp dir
};

struct RoundLimits {
  int rounds;                 // per side
  double seconds;             // a round stops after this long...
  std::uint64_t max_batches;  // ...or after this many batches
};

RoundLimits limits_for(std::size_t batch_size, bool quick) {
  // Enough batches that the fsync cost dominates, few enough that 4096-event rounds end.
  // Many short rounds rather than a few long ones: on a shared disk a slow phase then
  // spoils a few pairs instead of a whole side.
  const std::uint64_t max_batches = batch_size <= 16 ? 2000 : batch_size <= 256 ? 200 : 40;
  if (quick) return {5, 0.1, max_batches / 4};
  return {9, 0.4, max_batches};
}

[[noreturn]] void die(std::string_view what) {
  std::fprintf(stderr, "journal_bench: %.*s\n", static_cast<int>(what.size()), what.data());
  std::exit(1);
}

void check(const JournalStatus& status) {
  if (!status) die(status.message);
}
void check(const rocksdb::Status& status) {
  if (!status.ok()) die(status.ToString());
}

std::unique_ptr<Journal> open_journal(const fs::path& dir) {
  std::unique_ptr<Journal> journal;
  check(Journal::open(dir.string(), journal));
  return journal;
}

std::unique_ptr<rocksdb::DB> open_raw(const fs::path& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  check(rocksdb::DB::Open(options, dir.string(), &db));
  return std::unique_ptr<rocksdb::DB>(db);
}

using slotd::bench::median;

// A batch of realistic hold records (~100 value bytes each), renumbered per write.
class HoldBatch {
 public:
  explicit HoldBatch(std::size_t size) : records_(size) {
    std::mt19937_64 rng(size);
    for (std::size_t i = 0; i < size; ++i) {
      SlotHeld held;
      held.patient_name = fmt::format("Patient {:08} Featherstonehaugh", rng() % 100'000'000);
      held.client = rng() | 1;
      for (auto& b : held.token) b = static_cast<std::uint8_t>(rng());
      held.created_at_ms = kMonday2031Ms + static_cast<TimeMs>(rng() % 86'400'000);
      held.expires_at_ms = held.created_at_ms + 120'000;
      records_[i].at_ms = held.created_at_ms;
      records_[i].actor = Actor::patient;
      records_[i].event = std::move(held);
    }
  }

  // Gives the batch the seqs first_seq.. and matching booking/slot/request ids.
  std::span<const JournalRecord> numbered(std::uint64_t first_seq) {
    for (std::size_t i = 0; i < records_.size(); ++i) {
      JournalRecord& record = records_[i];
      record.seq = first_seq + i;
      record.request_id = first_seq + i;
      auto& held = std::get<SlotHeld>(record.event);
      held.booking_id = first_seq + i;
      held.slot_id = first_seq + i;
    }
    return records_;
  }

 private:
  std::vector<JournalRecord> records_;
};

// The raw side writes the journal's exact key and value bytes, encoded up front: what
// remains is the cost RocksDB itself puts on a synced WriteBatch.
class RawBatch {
 public:
  explicit RawBatch(std::size_t size) {
    HoldBatch holds(size);
    for (const JournalRecord& record : holds.numbered(1'000'000)) {
      values_.emplace_back();
      encode_record(record, values_.back());
      value_bytes_ += values_.back().size();
    }
  }
  std::size_t value_bytes() const { return value_bytes_; }

  void write(rocksdb::DB& db, std::uint64_t first_seq) {
    batch_.Clear();
    for (std::size_t i = 0; i < values_.size(); ++i) {
      check(batch_.Put(encode_key(first_seq + i), values_[i]));
    }
    rocksdb::WriteOptions options;
    options.sync = true;
    check(db.Write(options, &batch_));
  }

 private:
  std::vector<std::string> values_;
  std::size_t value_bytes_ = 0;
  rocksdb::WriteBatch batch_;
};

struct Round {
  std::uint64_t events = 0;
  double seconds = 0;
  double events_per_second() const { return seconds > 0 ? events / seconds : 0; }
};

template <class WriteOneBatch>
Round run_round(std::size_t batch_size, const RoundLimits& limits, WriteOneBatch&& write) {
  Round round;
  const auto start = Clock::now();
  for (std::uint64_t b = 0; b < limits.max_batches; ++b) {
    write();
    round.events += batch_size;
    round.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (round.seconds >= limits.seconds) break;
  }
  return round;
}

struct AppendRow {
  std::size_t batch_size = 0;
  double value_bytes_per_event = 0;
  double raw_events_per_second = 0;
  double journal_events_per_second = 0;
  // journal/raw of rounds run back to back, which saw the same disk conditions.
  double median_pair_ratio = 0;
  double min_pair_ratio = 0;
  double max_pair_ratio = 0;
};

AppendRow measure_append(const fs::path& base, std::size_t batch_size, bool quick) {
  const RoundLimits limits = limits_for(batch_size, quick);
  auto journal = open_journal(base / fmt::format("journal_{}", batch_size));
  auto raw_db = open_raw(base / fmt::format("raw_{}", batch_size));
  HoldBatch holds(batch_size);
  RawBatch raw(batch_size);
  std::uint64_t raw_next_seq = 1;

  std::vector<double> raw_rates;
  std::vector<double> journal_rates;
  const auto raw_round = [&] {
    raw_rates.push_back(run_round(batch_size, limits, [&] {
                          raw.write(*raw_db, raw_next_seq);
                          raw_next_seq += batch_size;
                        }).events_per_second());
  };
  const auto journal_round = [&] {
    journal_rates.push_back(run_round(batch_size, limits, [&] {
                              check(journal->append(holds.numbered(journal->last_seq() + 1)));
                            }).events_per_second());
  };
  for (int r = 0; r < limits.rounds; ++r) {
    // Alternate who goes first so neither side always runs on a warmer disk.
    if (r % 2 == 0) {
      raw_round();
      journal_round();
    } else {
      journal_round();
      raw_round();
    }
  }
  AppendRow row;
  row.batch_size = batch_size;
  row.value_bytes_per_event = static_cast<double>(raw.value_bytes()) / batch_size;
  row.raw_events_per_second = median(raw_rates);
  row.journal_events_per_second = median(journal_rates);
  std::vector<double> pair_ratios;
  for (std::size_t i = 0; i < raw_rates.size(); ++i) {
    pair_ratios.push_back(raw_rates[i] > 0 ? journal_rates[i] / raw_rates[i] : 0.0);
  }
  row.median_pair_ratio = median(pair_ratios);
  row.min_pair_ratio = *std::min_element(pair_ratios.begin(), pair_ratios.end());
  row.max_pair_ratio = *std::max_element(pair_ratios.begin(), pair_ratios.end());
  return row;
}

// A realistic stream from a real Engine: slots are created, held, and either confirmed,
// cancelled or left to expire.
std::vector<JournalRecord> engine_stream(std::size_t min_events, Engine& engine) {
  std::vector<JournalRecord> records;
  std::vector<Event> events;
  std::mt19937_64 rng(42);
  TimeMs now_ms = kMonday2031Ms - 7 * 86'400'000LL;
  std::uint64_t request_id = 0;
  const auto run = [&](const Command& command, Actor actor) {
    events.clear();
    ++request_id;
    if (engine.execute(command, now_ms, events) != Rejection::none) return;
    for (Event& event : events) {
      JournalRecord record;
      record.seq = records.size() + 1;
      record.at_ms = now_ms;
      record.request_id = actor == Actor::system ? 0 : request_id;
      record.actor = actor;
      record.event = std::move(event);
      records.push_back(std::move(record));
    }
  };

  constexpr Id kDoctors = 20;
  for (Id d = 1; d <= kDoctors; ++d) {
    run(AddDoctor{1, fmt::format("Dr {}", d), "General practice"}, Actor::admin);
  }
  std::vector<TimeMs> next_start(kDoctors, kMonday2031Ms);
  while (records.size() < min_events) {
    const Id doctor = 1 + rng() % kDoctors;
    CreateSlots create{doctor, {}};
    for (int i = 0; i < 100; ++i) {
      create.spans.push_back({next_start[doctor - 1], next_start[doctor - 1] + 900'000});
      next_start[doctor - 1] += 900'000;
    }
    const Id first_slot = engine.slots().size() + 1;
    run(create, Actor::admin);
    for (Id slot = first_slot; slot < first_slot + 100; ++slot) {
      BookSlot book{slot,
                    fmt::format("Patient {:08} Featherstonehaugh", rng() % 100'000'000),
                    rng() | 1,
                    {}};
      for (auto& b : book.token) b = static_cast<std::uint8_t>(rng());
      run(book, Actor::patient);
      const Id booking = engine.bookings().size();
      const auto fate = rng() % 10;
      if (fate < 6) {
        run(ConfirmBooking{booking}, Actor::patient);
      } else if (fate < 7) {
        run(CancelBooking{booking}, Actor::patient);
      }
      now_ms += 1'000;
    }
    now_ms += engine.config().hold_ttl_ms;
    run(ExpireDue{}, Actor::system);
  }
  return records;
}

// What the entity index adds to an open: after a clean close nothing (every key was
// ingested), after a crash the records whose keys were still in memory blocks. A crash is a
// copy of the directory taken while the journal is open and its index thread is idle
// (every append is synced); 262,000 holds make 524,000 keys, seven full blocks and a nearly
// full open one, the most that can wait for an ingest (8 sorted blocks are ingested).
struct OpenRow {
  std::uint64_t records = 0;
  std::uint64_t reindexed = 0;  // records the open after the crash indexes again
  double clean_ms = 0;
  double crashed_ms = 0;
  double crashed_rocksdb_ms = 0;  // RocksDB's own open of the same copy (its WAL replay)
};

OpenRow measure_open(const fs::path& base, bool quick) {
  OpenRow row;
  row.records = quick ? 65'000 : 262'000;
  const fs::path dir = base / "open";
  const fs::path crashed = base / "open-crashed";
  {
    auto journal = open_journal(dir);
    HoldBatch batch(250);
    for (std::uint64_t seq = 1; seq <= row.records; seq += 250) check(journal->append(batch.numbered(seq)));
    // The index thread sorts full blocks under SCHED_IDLE: wait until it is done (no
    // ingest can start with fewer than 8 full blocks, and none more is due).
    std::uint64_t covered = journal->index_ingested_up_to();
    for (int quiet = 0; quiet < 10;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const std::uint64_t now = journal->index_ingested_up_to();
      quiet = now == covered ? quiet + 1 : 0;
      covered = now;
    }
    row.reindexed = journal->last_seq() - covered;
    fs::copy(dir, crashed, fs::copy_options::recursive);
  }
  std::vector<double> clean;
  std::vector<double> after_crash;
  std::vector<double> raw_after_crash;
  for (int r = 0; r < 3; ++r) {
    auto start = Clock::now();
    { auto journal = open_journal(dir); }
    clean.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    const fs::path copy = base / fmt::format("open-crashed-{}", r);
    fs::copy(crashed, copy, fs::copy_options::recursive);
    start = Clock::now();
    {
      auto journal = open_journal(copy);
      after_crash.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    fs::remove_all(copy);
    fs::copy(crashed, copy, fs::copy_options::recursive);
    start = Clock::now();
    {
      rocksdb::Options options;
      std::vector<rocksdb::ColumnFamilyHandle*> handles;
      rocksdb::DB* raw = nullptr;
      check(rocksdb::DB::Open(options, copy.string(),
                              {{rocksdb::kDefaultColumnFamilyName, {}}, {"entities", {}}}, &handles, &raw));
      for (auto* h : handles) check(raw->DestroyColumnFamilyHandle(h));
      delete raw;
    }
    raw_after_crash.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    fs::remove_all(copy);
  }
  row.crashed_rocksdb_ms = median(raw_after_crash);
  row.clean_ms = median(clean);
  row.crashed_ms = median(after_crash);
  return row;
}

struct ReplayRow {
  std::uint64_t events = 0;
  double value_bytes_per_event = 0;
  double decode_events_per_second = 0;
  double apply_events_per_second = 0;
  bool hash_matches = false;
};

ReplayRow measure_replay(const fs::path& base, bool quick) {
  Engine source;
  const std::vector<JournalRecord> records = engine_stream(quick ? 20'000 : 300'000, source);
  ReplayRow row;
  row.events = records.size();
  std::string buffer;
  for (const JournalRecord& record : records) encode_record(record, buffer);
  row.value_bytes_per_event = static_cast<double>(buffer.size()) / records.size();

  const fs::path dir = base / "replay";
  {
    auto journal = open_journal(dir);
    std::span<const JournalRecord> rest(records);
    while (!rest.empty()) {
      const std::size_t n = std::min<std::size_t>(rest.size(), 4096);
      check(journal->append(rest.first(n)));
      rest = rest.subspan(n);
    }
  }
  // Reopen so the reads come from the files, as in a recovery.
  auto journal = open_journal(dir);

  const int runs = 3;
  std::vector<double> decode_rates;
  std::vector<double> apply_rates;
  for (int r = 0; r < runs; ++r) {
    std::uint64_t count = 0;
    auto start = Clock::now();
    check(journal->read(1, 0, [&](const JournalRecord&) {
      ++count;
      return true;
    }));
    decode_rates.push_back(count / std::chrono::duration<double>(Clock::now() - start).count());

    Engine replayed;
    start = Clock::now();
    check(journal->read(1, 0, [&](const JournalRecord& record) {
      replayed.apply(record.event);
      return true;
    }));
    apply_rates.push_back(records.size() /
                          std::chrono::duration<double>(Clock::now() - start).count());
    row.hash_matches = replayed.state_hash() == source.state_hash() &&
                       !replayed.broken_invariant() && count == records.size();
    if (!row.hash_matches) die("replay did not rebuild the same state");
  }
  row.decode_events_per_second = median(decode_rates);
  row.apply_events_per_second = median(apply_rates);
  return row;
}

Settings parse_args(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--quick") {
      settings.quick = true;
    } else if (arg == "--out" && i + 1 < argc) {
      settings.out_path = argv[++i];
    } else if (arg == "--dir" && i + 1 < argc) {
      settings.dir = argv[++i];
    } else {
      die(fmt::format(
          "unknown argument {}\nusage: journal_bench [--quick] [--out PATH] [--dir DIR]", arg));
    }
  }
  return settings;
}

}  // namespace

int main(int argc, char** argv) {
  const Settings settings = parse_args(argc, argv);
  // Always a fresh subdirectory we own, so cleaning up never touches anything else.
  const fs::path parent = settings.dir.empty() ? fs::temp_directory_path() : fs::path(settings.dir);
  const fs::path base = parent / fmt::format("journal_bench_{}_{}", std::random_device{}(),
                                             Clock::now().time_since_epoch().count());
  fs::create_directories(base);

  std::string report = fmt::format(
      "journal_bench ({}) — RocksDB {}.{}.{}, dir {}\n"
      "Durable appends: SlotHeld records; raw = the same key/value bytes as one WriteBatch,\n"
      "sync=true, default options, separate fresh DB. Rounds alternate raw/journal; events/s are\n"
      "medians per side, journal/raw is the median ratio of back-to-back round pairs.\n\n",
      settings.quick ? "quick" : "full", ROCKSDB_MAJOR, ROCKSDB_MINOR, ROCKSDB_PATCH,
      base.string());
  report +=
      fmt::format("{:>6} | {:>11} | {:>14} | {:>18} | {:>11} | {:>11}\n", "batch", "value bytes",
                  "raw events/s", "journal events/s", "journal/raw", "pair range");
  report += fmt::format("{:-<6}-+-{:-<11}-+-{:-<14}-+-{:-<18}-+-{:-<11}-+-{:-<11}\n", "", "", "",
                        "", "", "");
  std::fputs(report.c_str(), stdout);
  // Prints a part of the report as soon as it is measured, and keeps it for the file.
  auto emit = [&report](const std::string& text) {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    report += text;
  };

  for (const std::size_t batch_size : {1, 16, 256, 4096}) {
    const AppendRow row = measure_append(base, batch_size, settings.quick);
    const std::string line =
        fmt::format("{:>6} | {:>11.1f} | {:>14.0f} | {:>18.0f} | {:>11.2f} | {:>5.2f}-{:<5.2f}\n",
                    row.batch_size, row.value_bytes_per_event, row.raw_events_per_second,
                    row.journal_events_per_second, row.median_pair_ratio, row.min_pair_ratio,
                    row.max_pair_ratio);
    emit(line);
  }

  const ReplayRow replay = measure_replay(base, settings.quick);
  emit(fmt::format(
      "\nReplay after reopen: {} engine events (mixed types, {:.1f} value bytes avg)\n"
      "  Journal::read + decode only:   {:>12.0f} events/s\n"
      "  Journal::read + Engine::apply: {:>12.0f} events/s\n"
      "  state_hash after replay matches: {}\n",
      replay.events, replay.value_bytes_per_event, replay.decode_events_per_second,
      replay.apply_events_per_second, replay.hash_matches ? "yes" : "no"));

  const OpenRow open = measure_open(base, settings.quick);
  emit(fmt::format(
      "\nJournal::open with {} holds (2 index keys each), median of 3:\n"
      "  after a clean close:                     {:>8.1f} ms\n"
      "  after a crash, indexing {} records again: {:>8.1f} ms (the time to open, not to close)\n"
      "  RocksDB's own open of the same crashed copy (WAL replay, no index): {:.1f} ms\n",
      open.records, open.clean_ms, open.reindexed, open.crashed_ms, open.crashed_rocksdb_ms));

  std::error_code ignored;
  fs::remove_all(base, ignored);

  std::ofstream out(settings.out_path);
  out << report;
  if (!out) die(fmt::format("cannot write {}", settings.out_path));
  std::printf("\nwritten to %s\n", settings.out_path.c_str());
  return 0;
}
