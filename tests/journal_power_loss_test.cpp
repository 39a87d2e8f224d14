// Power loss, simulated under RocksDB (tests/power_loss_fs.hpp): a file system that keeps
// a file's bytes only up to its last sync and a directory's entries only as of its last
// fsync. The journal runs with a 64 KiB memtable, so a run of a few hundred batches rolls
// WAL files, flushes memtables to table files and compacts them. The power goes off before
// a random disk operation — inside an append's sync, a background flush or compaction, a
// manifest update, or while the journal opens — or after the last batch; the disk then
// keeps only what was synced (or everything, or a torn tail), and directory entries that
// no directory fsync covered are undone. One directory lives through several cuts in a
// row, each recovery followed by more writes.
//
// Every acknowledged record must come back, in order, without gaps, byte for byte; the
// batch in flight at the cut may come back or not. Disks that lie about syncing the WAL
// or about fsyncing directories must lose records (the harness can see a loss).
//
// SLOTD_JOURNAL_POWER_CUTS=N runs at least N cuts (the long run, tests/long_runs.sh); the
// default is a few dozen.
#include <doctest/doctest.h>
#include <rocksdb/env.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "journal/journal.hpp"
#include "tests/power_loss_fs.hpp"
#include "tests/test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace slotd;
using testing::CutOutcome;

// RocksDB's smallest memtable: about a thousand of these records fill it.
constexpr std::size_t kSmallMemtableBytes = 64 << 10;

// The record at `seq`, a function of seq alone, so recovery can check every byte.
JournalRecord record_at(std::uint64_t seq) {
  JournalRecord r;
  r.seq = seq;
  r.at_ms = static_cast<TimeMs>(seq) * 7;
  r.request_id = seq * 3;
  r.actor = seq % 5 == 0 ? Actor::patient : Actor::admin;
  if (seq % 5 == 0) {
    SlotHeld held;
    held.booking_id = seq;
    held.slot_id = seq / 2;
    held.patient_name = std::string(seq % 40, 'p');
    held.client = seq * 0x9e3779b97f4a7c15ULL;
    held.created_at_ms = r.at_ms;
    held.expires_at_ms = r.at_ms + 120'000;
    r.event = held;
  } else {
    r.event = SlotCreated{seq, 1 + seq % 7, static_cast<TimeMs>(seq) * 1000,
                          static_cast<TimeMs>(seq) * 1000 + 500};
  }
  return r;
}

std::string encoded(const JournalRecord& r) {
  std::string out;
  encode_record(r, out);
  return out;
}

// The entity index of the recovered journal names, for a sample of slots and bookings,
// exactly the records up to `last` that name them (whatever part of it the cut left ingested).
void check_history(const Journal& journal, std::uint64_t last, std::mt19937_64& rng) {
  if (last == 0) return;
  std::vector<EntityRef> sample;
  for (int i = 0; i < 16; ++i) {
    sample.push_back(EntityRef{i % 2 == 0 ? EntityKind::slot : EntityKind::booking, 1 + rng() % last});
  }
  std::vector<std::vector<std::uint64_t>> want(sample.size());
  for (std::uint64_t seq = 1; seq <= last; ++seq) {
    EntityRefs refs;
    const std::size_t n = entities_of(record_at(seq).event, refs);
    for (std::size_t k = 0; k < n; ++k) {
      for (std::size_t e = 0; e < sample.size(); ++e) {
        if (refs[k].kind == sample[e].kind && refs[k].id == sample[e].id) want[e].push_back(seq);
      }
    }
  }
  for (std::size_t e = 0; e < sample.size(); ++e) {
    std::vector<std::uint64_t> got;
    const JournalStatus st = journal.history(sample[e].kind, sample[e].id, 1, last, 0, [&](const JournalRecord& r) {
      got.push_back(r.seq);
      return true;
    });
    INFO("entity " << static_cast<char>(sample[e].kind) << sample[e].id);
    CHECK_MESSAGE(st.ok, st.message);
    CHECK(got == want[e]);
  }
}

enum class Lie { none, wal_syncs, dir_syncs };

struct Cut {
  std::uint64_t acknowledged = 0;  // the last seq whose append returned ok (this or an earlier run)
  std::uint64_t attempted = 0;     // the last seq handed to append
  std::uint64_t recovered = 0;     // the last seq after the cut
  bool mid_write = false;          // the power went off before the last batch was written
  std::uint64_t entries_undone = 0;  // directory entries the cut undid (no fsync covered them)
  bool reopened = false;
  bool index_ingested = false;  // the recovered journal had index keys in RocksDB
  std::string reopen_error;
  std::map<std::string, std::uint64_t> created;  // files created, by suffix
};

// A data directory that lives through power cuts: <root>/disk holds the journal, and
// <root>/graveyard the files the harness may bring back.
class Disk {
 public:
  Disk() {
    fs::create_directories(root_.path() / "disk");
    fs::create_directories(root_.path() / "graveyard");
  }
  std::string journal_dir() const { return (root_.path() / "disk" / "data" / "journal").string(); }

  // Opens the journal on the power-cut file system, appends up to `batches` batches, cuts
  // the power (before step `freeze_at`, 0 = after the last batch), leaves the disk as
  // `outcome` says and reopens the journal on the plain file system.
  Cut write_then_cut(int batches, std::uint64_t freeze_at, CutOutcome outcome, Lie lie,
                     std::mt19937_64& rng) {
    auto state = std::make_shared<testing::PowerState>();
    state->track_namespace = true;
    state->graveyard = (root_.path() / "graveyard").string();
    state->syncs_lie = lie == Lie::wal_syncs;
    state->dir_syncs_lie = lie == Lie::dir_syncs;
    state->freeze_at_step = freeze_at;
    state->watch((root_.path() / "disk").string());
    auto env = rocksdb::NewCompositeEnv(std::make_shared<testing::PowerLossFileSystem>(state));

    Cut cut;
    cut.acknowledged = cut.attempted = last_seq_;
    {
      std::unique_ptr<Journal> journal;
      JournalOptions options;
      options.env = env.get();
      options.write_buffer_bytes = kSmallMemtableBytes;
      // Ingests entity index files every thousand keys or so, so cuts land in them too.
      options.index_block_keys = 512;
      options.index_ingest_blocks = 2;
      auto power_is_off = [&] {
        std::lock_guard lock(state->mutex);
        return state->frozen;
      };
      JournalStatus opened = Journal::open(journal_dir(), journal, options);
      if (opened.ok) {
        REQUIRE(journal->last_seq() == last_seq_);
        for (int b = 0; b < batches; ++b) {
          std::vector<JournalRecord> records;
          for (std::uint64_t n = 1 + rng() % 64; n > 0; --n) records.push_back(record_at(++cut.attempted));
          JournalStatus appended = journal->append(records);
          if (!appended.ok) {
            REQUIRE_MESSAGE(power_is_off(), appended.message);  // no other reason to fail
            break;
          }
          cut.acknowledged = cut.attempted;
        }
      } else {
        REQUIRE_MESSAGE(power_is_off(), opened.message);
      }
      std::lock_guard lock(state->mutex);
      cut.mid_write = state->frozen;
      state->frozen = true;
    }  // closing writes nothing: the power is off
    cut.entries_undone = testing::cut(*state, outcome, rng);
    cut.created = state->created;

    std::unique_ptr<Journal> recovered;
    JournalStatus reopened = Journal::open(journal_dir(), recovered);
    cut.reopened = reopened.ok;
    cut.reopen_error = reopened.message;
    if (!reopened.ok) return cut;
    cut.recovered = recovered->last_seq();
    std::uint64_t expected = 1;
    JournalStatus read = recovered->read(1, 0, [&](const JournalRecord& r) {
      CHECK(r.seq == expected);
      CHECK(encoded(r) == encoded(record_at(r.seq)));
      ++expected;
      return true;
    });
    CHECK_MESSAGE(read.ok, read.message);
    CHECK(expected == cut.recovered + 1);
    check_history(*recovered, cut.recovered, rng);
    cut.index_ingested = recovered->index_ingested_up_to() > 0;
    last_seq_ = cut.recovered;
    return cut;
  }

 private:
  testing::TempDir root_{"slotd_power_loss"};
  std::uint64_t last_seq_ = 0;
};

std::uint64_t wanted_cuts() {
  const char* v = std::getenv("SLOTD_JOURNAL_POWER_CUTS");
  return v ? std::strtoull(v, nullptr, 10) : 0;
}

}  // namespace

TEST_CASE("after power cuts before random disk operations, in runs that roll WAL files and flush memtables, every acknowledged journal record comes back, in order, without gaps") {
  const std::uint64_t want = std::max<std::uint64_t>(wanted_cuts(), 36);
  constexpr int kCutsPerDisk = 6;
  std::uint64_t cuts = 0, mid_write = 0, in_flight_back = 0, rolled = 0, dropped_entries = 0, ingested = 0;
  std::map<CutOutcome, std::uint64_t> by_outcome;
  std::map<std::string, std::uint64_t> created;
  for (std::uint64_t seed = 1; cuts < want; ++seed) {
    Disk disk;
    std::mt19937_64 rng(seed);
    for (int i = 0; i < kCutsPerDisk && cuts < want; ++i) {
      const int batches = 20 + static_cast<int>(rng() % 300);
      // Mostly mid-write: about two disk operations per append, more while flushing.
      const std::uint64_t freeze_at = rng() % 8 == 0 ? 0 : 1 + rng() % (static_cast<std::uint64_t>(batches) * 5 / 2 + 40);
      const auto outcome = static_cast<CutOutcome>(rng() % 3);
      const Cut cut = disk.write_then_cut(batches, freeze_at, outcome, Lie::none, rng);
      INFO("seed " << seed << ", cut " << i << ", outcome " << static_cast<int>(outcome)
                   << ", freeze at step " << freeze_at);
      REQUIRE_MESSAGE(cut.reopened, cut.reopen_error);
      CHECK(cut.recovered >= cut.acknowledged);
      CHECK(cut.recovered <= cut.attempted);
      ++cuts;
      ++by_outcome[outcome];
      mid_write += cut.mid_write;
      dropped_entries += cut.entries_undone > 0;
      in_flight_back += cut.recovered > cut.acknowledged;
      ingested += cut.index_ingested;
      // Each open starts a WAL file; a second one means a full memtable was switched out.
      rolled += cut.created.contains(".log") && cut.created.at(".log") >= 2;
      for (const auto& [suffix, n] : cut.created) created[suffix] += n;
    }
  }
  MESSAGE("journal power cuts: " << cuts << " (synced only " << by_outcome[CutOutcome::synced_only]
                                 << ", all written " << by_outcome[CutOutcome::all_written] << ", torn "
                                 << by_outcome[CutOutcome::torn] << "), " << mid_write
                                 << " of them mid-write; " << in_flight_back
                                 << " brought back the batch in flight; " << rolled
                                 << " rolled the WAL; " << dropped_entries
                                 << " undid directory entries no fsync covered; " << ingested
                                 << " recovered index keys from ingested files; files created: WAL "
                                 << created[".log"] << ", table " << created[".sst"]);
  // The runs were long enough to move past one WAL file and one memtable.
  CHECK(rolled > 0);
  CHECK(created[".sst"] > 0);
  CHECK(mid_write > 0);
  CHECK(dropped_entries > 0);
  CHECK(ingested > 0);
}

TEST_CASE("the power-cut harness loses acknowledged records on a disk that lies about syncing the WAL") {
  Disk disk;
  std::mt19937_64 rng(7);
  const Cut cut = disk.write_then_cut(40, 0, CutOutcome::synced_only, Lie::wal_syncs, rng);
  REQUIRE(cut.acknowledged > 0);
  CHECK((!cut.reopened || cut.recovered < cut.acknowledged));
}

TEST_CASE("the power-cut harness loses acknowledged records on a disk that lies about fsyncing directories: WAL and table files written after a memtable flush vanish") {
  Disk disk;
  std::mt19937_64 rng(11);
  // An honest first run makes the journal itself durable.
  const Cut first = disk.write_then_cut(30, 0, CutOutcome::synced_only, Lie::none, rng);
  REQUIRE(first.reopened);
  REQUIRE(first.recovered == first.acknowledged);
  // Enough batches to fill several memtables: new WAL files take the acknowledged records.
  Cut second = disk.write_then_cut(300, 0, CutOutcome::synced_only, Lie::dir_syncs, rng);
  REQUIRE(second.created[".log"] >= 2);
  CHECK((!second.reopened || second.recovered < second.acknowledged));
}
