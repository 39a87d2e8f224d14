// Power cuts while a snapshot is written, on the fault-injecting file system of the journal
// power-loss test (tests/power_loss_fs.hpp), which here also undoes creates, renames and
// deletes that no directory fsync covered. The snapshot writer runs with the power going
// off before its 1st, 2nd, ... operation (each append — so in the middle of the file —,
// the fsync, the rename, the directory fsync, retention's delete and fsync) and once after
// all of them; the disk then keeps only what was synced, or everything, or a torn tail.
// Every time, recovery (Sequencer::open) must end at the journal's state hash, and a file
// that does not verify must be skipped with a log line, never used. A disk that lies about
// syncing the snapshot proves the harness does leave half-written files behind.
//
// SLOTD_SNAPSHOT_POWER_CUTS=N runs at least N recoveries (the long run; default ~200).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "sequencer/sequencer.hpp"
#include "tests/power_loss_fs.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using namespace slotd;
using testing::CutOutcome;
using testing::TempDir;

namespace {

constexpr TimeMs kBase = 1'925'000'000'000;

struct History {
  std::uint64_t older_snapshot_seq = 0;  // a valid snapshot already on disk
  std::uint64_t last_seq = 0;            // the journal's end, which the new snapshot is of
  std::uint64_t hash = 0;                // the state hash at last_seq
};

std::unique_ptr<Sequencer> open_at(const fs::path& dir, std::vector<std::string>* log = nullptr) {
  SequencerConfig config;
  config.snapshot_every = 0;
  config.log = [log](const std::string& line) {
    if (log) log->push_back(line);
  };
  std::unique_ptr<Sequencer> seq;
  JournalStatus st = Sequencer::open(dir.string(), std::move(config), seq);
  REQUIRE_MESSAGE(st.ok, st.message);
  return seq;
}

void run_commands(Sequencer& seq, std::mt19937_64& rng, int slots, int bookings) {
  CommandResult doctor = seq.execute(AddDoctor{1, "Dr. Cut", "GP"});
  REQUIRE(doctor.rejection == Rejection::none);
  const Id doctor_id = std::get<DoctorAdded>(doctor.events.at(0)).doctor_id;
  const Id first_slot = seq.reads().slot_count() + 1;
  CreateSlots create{doctor_id, {}};
  const TimeMs start = kBase + static_cast<TimeMs>(first_slot) * 60'000;
  for (int i = 0; i < slots; ++i) create.spans.push_back({start + i * 60'000LL, start + i * 60'000LL + 60'000});
  REQUIRE(seq.execute(std::move(create)).rejection == Rejection::none);
  for (int i = 0; i < bookings; ++i) {
    const Id slot = first_slot + rng() % static_cast<std::uint64_t>(slots);
    CommandResult held = seq.execute(BookSlot{slot, "Pat " + std::to_string(rng() % 1000), 0, Token{7}});
    if (held.rejection != Rejection::none) continue;
    const Id booking = std::get<SlotHeld>(held.events.at(0)).booking_id;
    if (rng() % 2) (void)seq.execute(ConfirmBooking{booking});
    if (rng() % 5 == 0) (void)seq.execute(CancelBooking{booking});
  }
}

// A data dir with a journal, an older valid snapshot, and more journal after it.
History make_history(const fs::path& dir, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  History h;
  {
    auto seq = open_at(dir);
    seq->start();
    run_commands(*seq, rng, 50 + static_cast<int>(rng() % 200), 40);
    seq->stop();
    SnapshotStatus s = seq->write_final_snapshot();
    REQUIRE_MESSAGE(s.ok, s.message);
    h.older_snapshot_seq = seq->durable_seq();
  }
  auto seq = open_at(dir);
  REQUIRE(seq->recovery().snapshot_seq == h.older_snapshot_seq);
  seq->start();
  // Enough state that the snapshot takes several appends (64 KiB each).
  run_commands(*seq, rng, 3'000 + static_cast<int>(rng() % 6'000), 60);
  seq->stop();
  h.last_seq = seq->durable_seq();
  h.hash = seq->engine().state_hash();
  return h;
}

struct CutRun {
  bool used_new_snapshot = false;
  bool skipped_new_snapshot = false;
};

// Copies `base`, writes the snapshot of last_seq there with the power going off before
// step `freeze_at` (0 = never), leaves the disk as `outcome` says, recovers and checks.
CutRun cut_and_recover(const fs::path& base, const History& h, const Engine& engine,
                       std::uint64_t freeze_at, CutOutcome outcome, bool syncs_lie,
                       std::mt19937_64& rng, std::uint64_t* steps_taken = nullptr) {
  TempDir work("slotd_snapshot_cut");
  fs::copy(base, work.path() / "data", fs::copy_options::recursive);
  const fs::path data = work.path() / "data";
  fs::create_directories(work.path() / "graveyard");
  auto state = std::make_shared<testing::PowerState>();
  state->track_namespace = true;
  state->graveyard = (work.path() / "graveyard").string();
  state->freeze_at_step = freeze_at;
  state->syncs_lie = syncs_lie;
  state->lie_suffix = ".tmp";
  {
    SnapshotStore store((data / "snapshots").string(), std::make_shared<testing::PowerLossFileSystem>(state));
    // Errors after the cut are expected: the disk is gone.
    (void)store.write_now(engine, h.last_seq, /*time_floor_ms=*/0, /*keep=*/1);
  }
  if (steps_taken) *steps_taken = state->steps;
  testing::cut(*state, outcome, rng);

  std::vector<std::string> log;
  auto recovered = open_at(data, &log);
  CutRun run;
  const std::string new_name = SnapshotStore((data / "snapshots").string()).path_of(h.last_seq);
  for (const std::string& line : log) {
    if (line.find("skipping snapshot " + new_name) != std::string::npos) run.skipped_new_snapshot = true;
  }
  run.used_new_snapshot = recovered->recovery().snapshot_seq == h.last_seq;
  INFO("cut before step " << freeze_at << ", outcome " << static_cast<int>(outcome)
                          << (syncs_lie ? ", lying disk" : ""));
  CHECK(recovered->durable_seq() == h.last_seq);
  CHECK(recovered->engine().state_hash() == h.hash);
  const std::uint64_t used = recovered->recovery().snapshot_seq;
  CHECK((used == 0 || used == h.older_snapshot_seq || used == h.last_seq));
  // Every snapshot file left that does not verify was named in a skip line.
  std::vector<std::uint64_t> seqs;
  SnapshotStore plain((data / "snapshots").string());
  REQUIRE(plain.list(seqs).ok);
  for (std::uint64_t s : seqs) {
    Engine scratch;
    SnapshotHeader header;
    if (plain.load(s, scratch, header)) continue;
    bool named = false;
    for (const std::string& line : log) named |= line.find("skipping snapshot " + plain.path_of(s)) != std::string::npos;
    CHECK_MESSAGE(named, "a snapshot that does not verify was not reported: " << plain.path_of(s));
    CHECK(used != s);
  }
  return run;
}

std::uint64_t wanted_cuts() {
  const char* v = std::getenv("SLOTD_SNAPSHOT_POWER_CUTS");
  return v ? std::strtoull(v, nullptr, 10) : 0;
}

}  // namespace

TEST_CASE("a power cut at any step of writing a snapshot never loses state and never trusts a half-written file") {
  const std::uint64_t want = wanted_cuts();
  std::uint64_t runs = 0, used_new = 0;
  for (std::uint64_t seed = 1; seed <= 2 || runs < want; ++seed) {
    TempDir base("slotd_snapshot_base");
    const History h = make_history(base.path() / "data", seed);
    auto engine_source = open_at(base.path() / "data");
    const Engine& engine = engine_source->engine();
    REQUIRE(engine.state_hash() == h.hash);
    std::mt19937_64 rng(seed);
    std::uint64_t total_steps = 0;
    {
      // Without a cut: the snapshot is used, and counts the steps to cut before.
      CutRun clean = cut_and_recover(base.path() / "data", h, engine, 0, CutOutcome::synced_only,
                                     false, rng, &total_steps);
      CHECK(clean.used_new_snapshot);
      ++runs;
    }
    REQUIRE(total_steps >= 7);  // create, >= 2 appends, fsync, rename, dir fsync, delete, dir fsync
    for (std::uint64_t step = 1; step <= total_steps + 1; ++step) {
      for (CutOutcome outcome : {CutOutcome::synced_only, CutOutcome::all_written, CutOutcome::torn}) {
        CutRun run = cut_and_recover(base.path() / "data", h, engine, step, outcome, false, rng);
        used_new += run.used_new_snapshot;
        ++runs;
      }
    }
  }
  MESSAGE("snapshot power cuts: " << runs << " recoveries, " << used_new
                                  << " of them from the snapshot being written");
  CHECK(used_new > 0);
}

TEST_CASE("the power-cut harness does leave a half-written snapshot behind on a disk that lies about fsync, and recovery skips it") {
  TempDir base("slotd_snapshot_lying");
  const History h = make_history(base.path() / "data", 99);
  auto engine_source = open_at(base.path() / "data");
  std::mt19937_64 rng(99);
  std::uint64_t total_steps = 0;
  (void)cut_and_recover(base.path() / "data", h, engine_source->engine(), 0, CutOutcome::synced_only,
                        true, rng, &total_steps);
  bool skipped = false;
  for (std::uint64_t step = 1; step <= total_steps + 1; ++step) {
    CutRun run = cut_and_recover(base.path() / "data", h, engine_source->engine(), step,
                                 CutOutcome::synced_only, true, rng);
    skipped |= run.skipped_new_snapshot;
    CHECK_FALSE(run.used_new_snapshot);  // its bytes never reached the disk
  }
  CHECK(skipped);
}
