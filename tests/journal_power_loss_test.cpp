// Power loss, simulated under RocksDB: a file system that remembers how much of each file
// was synced, and at the "power cut" freezes (later writes, renames and deletes go
// nowhere) and then truncates every file to what was synced. Everything the journal
// acknowledged must come back; a disk that lies about syncing must lose some of it (which
// proves the harness can see a loss).
#include <doctest/doctest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <random>

#include "journal/journal.hpp"
#include "tests/power_loss_fs.hpp"
#include "tests/test_support.hpp"

namespace {

using namespace slotd;
using testing::PowerLossFileSystem;
using testing::PowerState;

// Writes batches, cuts the power after a random acknowledged batch, brings the journal
// back and returns {last acknowledged seq, last recovered seq}.
std::pair<std::uint64_t, std::uint64_t> write_then_cut_power(const std::string& dir, bool syncs_lie,
                                                             std::uint64_t seed) {
  auto state = std::make_shared<PowerState>();
  state->syncs_lie = syncs_lie;
  auto env = rocksdb::NewCompositeEnv(std::make_shared<PowerLossFileSystem>(state));
  std::mt19937_64 rng(seed);
  std::uint64_t acknowledged = 0;
  {
    std::unique_ptr<Journal> journal;
    JournalStatus opened = Journal::open(dir, journal, env.get());
    REQUIRE_MESSAGE(opened.ok, opened.message);
    const int batches = 20 + static_cast<int>(rng() % 40);
    for (int b = 0; b < batches; ++b) {
      std::vector<JournalRecord> records(1 + rng() % 64);
      for (auto& r : records) {
        r.seq = ++acknowledged;
        r.at_ms = static_cast<TimeMs>(r.seq);
        r.event = SlotCreated{r.seq, 1, static_cast<TimeMs>(r.seq) * 1000, static_cast<TimeMs>(r.seq) * 1000 + 500};
      }
      JournalStatus appended = journal->append(records);
      REQUIRE_MESSAGE(appended.ok, appended.message);
    }
    {
      std::lock_guard lock(state->mutex);
      state->frozen = true;  // the power cut: nothing after this reaches the disk
    }
  }  // closing writes (memtable flush, manifest) go nowhere
  testing::cut(*state, testing::CutOutcome::synced_only, rng);
  std::unique_ptr<Journal> recovered;
  JournalStatus reopened = Journal::open(dir, recovered);
  REQUIRE_MESSAGE(reopened.ok, reopened.message);
  std::uint64_t expected = 1;
  JournalStatus read = recovered->read(1, 0, [&](const JournalRecord& r) {
    CHECK(r.seq == expected);
    CHECK(std::get<SlotCreated>(r.event).slot_id == r.seq);
    ++expected;
    return true;
  });
  CHECK_MESSAGE(read.ok, read.message);
  return {acknowledged, recovered->last_seq()};
}

}  // namespace

TEST_CASE("after a power cut every acknowledged journal record comes back, in order, without gaps") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    testing::TempDir dir("slotd_power_loss");
    auto [acknowledged, recovered] = write_then_cut_power(dir.str(), /*syncs_lie=*/false, seed);
    INFO("seed " << seed);
    CHECK(recovered == acknowledged);
  }
}

TEST_CASE("the power-cut harness does lose what a lying disk never synced") {
  testing::TempDir dir("slotd_power_loss_lying");
  auto [acknowledged, recovered] = write_then_cut_power(dir.str(), /*syncs_lie=*/true, 7);
  CHECK(recovered < acknowledged);
}
