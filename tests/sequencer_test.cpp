// The sequencer against a real RocksDB journal in a temp dir: group commit, completion only
// after durability, expiry from its own clock, bounded queue, recovery by replay.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include "sequencer/sequencer.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using namespace slotd;

namespace {

using testing::TempDir;

// A clock the test moves by hand; expiry must follow it, not the wall clock.
struct ManualClock {
  std::shared_ptr<std::atomic<TimeMs>> now = std::make_shared<std::atomic<TimeMs>>(1'000'000);
  std::function<TimeMs()> fn() const {
    return [now = now] { return now->load(); };
  }
};

std::unique_ptr<Sequencer> open_sequencer(const fs::path& dir, SequencerConfig config = {}) {
  std::unique_ptr<Sequencer> seq;
  JournalStatus st = Sequencer::open(dir.string(), std::move(config), seq);
  REQUIRE_MESSAGE(st.ok, st.message);
  return seq;
}

std::uint64_t read_hash(const Sequencer& seq) {
  return seq.reads().read([](const Engine& e, std::uint64_t) { return e.state_hash(); });
}

Id add_doctor_with_slots(Sequencer& seq, int slots) {
  CommandResult doctor = seq.execute(AddDoctor{1, "Dr. Test", "GP"});
  REQUIRE(doctor.rejection == Rejection::none);
  Id doctor_id = std::get<DoctorAdded>(doctor.events.at(0)).doctor_id;
  CreateSlots create{doctor_id, {}};
  for (int i = 0; i < slots; ++i) create.spans.push_back({i * 1000LL, i * 1000LL + 1000});
  REQUIRE(seq.execute(std::move(create)).rejection == Rejection::none);
  return doctor_id;
}

BookSlot book(Id slot_id, std::string who = "Pat") {
  return BookSlot{slot_id, std::move(who), "", Token{1, 2, 3}};
}

}  // namespace

TEST_CASE("commands queued before start are decided in one batch with one journal append") {
  TempDir dir;
  {
    auto seq = open_sequencer(dir.path());
    seq->start();
    add_doctor_with_slots(*seq, 1000);
  }
  std::vector<std::future<CommandResult>> results;
  std::vector<std::shared_ptr<std::promise<CommandResult>>> promises;
  for (Id slot = 1; slot <= 1000; ++slot) {
    auto p = std::make_shared<std::promise<CommandResult>>();
    results.push_back(p->get_future());
    promises.push_back(p);
  }
  // Not started yet: everything waits in the queue, so the first batch takes it all.
  auto seq2 = open_sequencer(dir.path());
  for (Id slot = 1; slot <= 1000; ++slot) {
    auto p = promises[slot - 1];
    REQUIRE(seq2->submit(Submission{book(slot), Actor::patient, slot,
                                    [p](CommandResult&& r) { p->set_value(std::move(r)); }}));
  }
  seq2->start();
  std::uint64_t max_seq = 0;
  for (auto& f : results) {
    CommandResult r = f.get();
    CHECK(r.rejection == Rejection::none);
    max_seq = std::max(max_seq, r.seq);
  }
  CHECK(seq2->stats().batches.load() == 1);
  CHECK(seq2->durable_seq() == max_seq);
}

TEST_CASE("a completion runs only when its events are durable and visible to readers") {
  TempDir dir;
  auto seq = open_sequencer(dir.path());
  seq->start();
  add_doctor_with_slots(*seq, 50);
  std::atomic<int> violations{0};
  std::atomic<int> done{0};
  for (Id slot = 1; slot <= 50; ++slot) {
    Sequencer* s = seq.get();
    REQUIRE(seq->submit(Submission{book(slot), Actor::patient, slot, [s, slot, &violations, &done](CommandResult&& r) {
      // The durable seq and the read model must already include this result.
      if (s->durable_seq() < r.seq) ++violations;
      bool visible = s->reads().read([&](const Engine& e, std::uint64_t as_of) {
        const Slot* sl = e.slot(slot);
        return as_of >= r.seq && sl && sl->status == SlotStatus::held;
      });
      if (!visible) ++violations;
      ++done;
    }}));
  }
  for (int i = 0; i < 500 && done.load() < 50; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(done.load() == 50);
  CHECK(violations.load() == 0);
}

TEST_CASE("of many concurrent bookings of one slot exactly one wins") {
  TempDir dir;
  auto seq = open_sequencer(dir.path());
  seq->start();
  add_doctor_with_slots(*seq, 1);
  std::atomic<int> wins{0}, unavailable{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        CommandResult r = seq->execute(book(1), Actor::patient);
        if (r.rejection == Rejection::none) ++wins;
        if (r.rejection == Rejection::slot_unavailable) ++unavailable;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wins.load() == 1);
  CHECK(unavailable.load() == 199);
  std::string broken = seq->reads().read([](const Engine& e, std::uint64_t) { return e.check_invariants(); });
  CHECK(broken.empty());
}

TEST_CASE("a full queue refuses instead of blocking") {
  TempDir dir;
  SequencerConfig config;
  config.queue_capacity = 4;
  auto seq = open_sequencer(dir.path(), config);  // not started: nothing drains
  for (int i = 0; i < 4; ++i) CHECK(seq->submit(Submission{ExpireDue{}, Actor::system, 0, nullptr}));
  CHECK_FALSE(seq->submit(Submission{ExpireDue{}, Actor::system, 0, nullptr}));
  CHECK(seq->stats().queue_full.load() == 1);
}

TEST_CASE("holds expire from the sequencer's clock as journaled events: book, tick past TTL → FAILED and slot AVAILABLE") {
  TempDir dir;
  ManualClock clock;
  SequencerConfig config;
  config.engine.hold_ttl_ms = 5'000;
  config.expiry_interval = std::chrono::milliseconds(10);
  config.clock = clock.fn();
  {
    auto seq = open_sequencer(dir.path(), config);
    seq->start();
    add_doctor_with_slots(*seq, 2);
    CommandResult held = seq->execute(book(1));
    REQUIRE(held.rejection == Rejection::none);
    Id booking_id = std::get<SlotHeld>(held.events.at(0)).booking_id;

    // Before the TTL nothing expires, however long we wait on the wall clock.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto status = [&] {
      return seq->reads().read([&](const Engine& e, std::uint64_t) { return e.booking(booking_id)->status; });
    };
    CHECK(status() == BookingStatus::pending);

    clock.now->fetch_add(5'001);
    for (int i = 0; i < 300 && status() != BookingStatus::failed; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(status() == BookingStatus::failed);
    CHECK(seq->stats().expired.load() == 1);
    SlotStatus slot_status = seq->reads().read([](const Engine& e, std::uint64_t) { return e.slot(1)->status; });
    CHECK(slot_status == SlotStatus::available);
    // The slot can be booked again.
    CHECK(seq->execute(book(1)).rejection == Rejection::none);
    seq->stop();
  }
  // The expiry is in the journal: a restart replays it.
  auto again = open_sequencer(dir.path(), config);
  BookingStatus first = again->reads().read([](const Engine& e, std::uint64_t) { return e.booking(1)->status; });
  CHECK(first == BookingStatus::failed);
}

TEST_CASE("restart replays the journal to the same state hash and continues the seq") {
  TempDir dir;
  std::uint64_t hash_before = 0, seq_before = 0;
  {
    auto seq = open_sequencer(dir.path());
    seq->start();
    add_doctor_with_slots(*seq, 300);
    for (Id slot = 1; slot <= 300; slot += 2) REQUIRE(seq->execute(book(slot)).rejection == Rejection::none);
    for (Id booking = 1; booking <= 150; booking += 3) {
      REQUIRE(seq->execute(ConfirmBooking{booking}).rejection == Rejection::none);
    }
    REQUIRE(seq->execute(CancelBooking{2}).rejection == Rejection::none);
    REQUIRE(seq->execute(CloseSlot{2}).rejection == Rejection::none);
    seq->stop();
    hash_before = read_hash(*seq);
    seq_before = seq->durable_seq();
  }
  auto seq = open_sequencer(dir.path());
  CHECK(read_hash(*seq) == hash_before);
  CHECK(seq->durable_seq() == seq_before);
  CHECK(seq->stats().replayed_events.load() == seq_before);
  seq->start();
  CommandResult next = seq->execute(book(4));
  CHECK(next.rejection == Rejection::none);
  CHECK(next.seq == seq_before + 1);
}

TEST_CASE("a refused command writes nothing to the journal") {
  TempDir dir;
  auto seq = open_sequencer(dir.path());
  seq->start();
  add_doctor_with_slots(*seq, 1);
  REQUIRE(seq->execute(book(1)).rejection == Rejection::none);
  const std::uint64_t seq_after_book = seq->durable_seq();
  const std::uint64_t hash = read_hash(*seq);
  CommandResult refused = seq->execute(book(1));
  CHECK(refused.rejection == Rejection::slot_unavailable);
  CHECK(refused.events.empty());
  CHECK(refused.seq == seq_after_book);
  CHECK(seq->durable_seq() == seq_after_book);
  CHECK(read_hash(*seq) == hash);
}

TEST_CASE("start-up stops with a message naming the seq when a journal record is corrupt") {
  TempDir dir;
  {
    auto seq = open_sequencer(dir.path());
    seq->start();
    add_doctor_with_slots(*seq, 10);  // seqs 1..11
  }
  {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options options;
    REQUIRE(rocksdb::DB::Open(options, (dir.path() / "journal").string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions sync;
    sync.sync = true;
    REQUIRE(db->Put(sync, encode_key(7), "\x01\x02garbage").ok());
  }
  std::unique_ptr<Sequencer> seq;
  JournalStatus st = Sequencer::open(dir.str(), SequencerConfig{}, seq);
  CHECK_FALSE(st.ok);
  CHECK(seq == nullptr);
  CHECK_MESSAGE(st.message.find("seq 7") != std::string::npos, st.message);
}

TEST_CASE("start-up stops when a record has an unknown format version") {
  TempDir dir;
  {
    auto seq = open_sequencer(dir.path());
    seq->start();
    add_doctor_with_slots(*seq, 3);  // seqs 1..4
  }
  {
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::Options{}, (dir.path() / "journal").string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string value;
    REQUIRE(db->Get(rocksdb::ReadOptions{}, encode_key(3), &value).ok());
    value[0] = 9;  // byte 0 is the format version
    REQUIRE(db->Put(rocksdb::WriteOptions{}, encode_key(3), value).ok());
  }
  std::unique_ptr<Sequencer> seq;
  JournalStatus st = Sequencer::open(dir.str(), SequencerConfig{}, seq);
  CHECK_FALSE(st.ok);
  CHECK_MESSAGE(st.message.find("seq 3") != std::string::npos, st.message);
  CHECK_MESSAGE(st.message.find("version") != std::string::npos, st.message);
}

namespace {

// A file system whose syncs fail on demand: the journal's fsync fails like a dying disk.
class FailingSyncFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FailingSyncFile(std::unique_ptr<rocksdb::FSWritableFile> file, std::shared_ptr<std::atomic<bool>> fail)
      : FSWritableFileOwnerWrapper(std::move(file)), fail_(std::move(fail)) {}
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected sync failure");
    return target()->Sync(o, d);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    if (fail_->load()) return rocksdb::IOStatus::IOError("injected fsync failure");
    return target()->Fsync(o, d);
  }

 private:
  std::shared_ptr<std::atomic<bool>> fail_;
};

class FailingSyncFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FailingSyncFileSystem(std::shared_ptr<std::atomic<bool>> fail)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), fail_(std::move(fail)) {}
  const char* Name() const override { return "FailingSyncFileSystem"; }
  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (s.ok()) *result = std::make_unique<FailingSyncFile>(std::move(*result), fail_);
    return s;
  }

 private:
  std::shared_ptr<std::atomic<bool>> fail_;
};

}  // namespace

TEST_CASE("a failed journal sync stops the sequencer before any reply, and the refused batch is not recovered") {
  TempDir dir;
  auto fail = std::make_shared<std::atomic<bool>>(false);
  auto env = rocksdb::NewCompositeEnv(std::make_shared<FailingSyncFileSystem>(fail));
  std::uint64_t acknowledged_seq = 0;
  {
    std::atomic<int> failures{0};
    std::promise<std::string> failure_message;
    SequencerConfig config;
    config.journal_env = env.get();
    config.on_journal_failure = [&](const std::string& message) {
      if (failures.fetch_add(1) == 0) failure_message.set_value(message);
    };
    auto seq = open_sequencer(dir.path(), config);
    seq->start();
    add_doctor_with_slots(*seq, 3);
    CommandResult held = seq->execute(book(1));
    REQUIRE(held.rejection == Rejection::none);
    acknowledged_seq = held.seq;

    fail->store(true);
    std::atomic<int> completions{0};
    REQUIRE(seq->submit(Submission{book(2), Actor::patient, 1, [&](CommandResult&&) { ++completions; }}));
    auto message = failure_message.get_future();
    REQUIRE(message.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK_MESSAGE(message.get().find("injected") != std::string::npos, "the failure names its cause");
    CHECK(completions.load() == 0);  // no reply for a batch that is not durable
    CHECK(seq->durable_seq() == acknowledged_seq);
    // Readers never see the undurable hold either.
    SlotStatus seen = seq->reads().read([](const Engine& e, std::uint64_t) { return e.slot(2)->status; });
    CHECK(seen == SlotStatus::available);
    fail->store(false);
    seq->stop();
  }
  // Recovery keeps everything acknowledged; the batch whose sync failed was never
  // acknowledged, so whether RocksDB kept it or not, nothing acknowledged is lost.
  auto again = open_sequencer(dir.path());
  CHECK(again->durable_seq() >= acknowledged_seq);
  BookingStatus first = again->reads().read([](const Engine& e, std::uint64_t) { return e.booking(1)->status; });
  CHECK(first == BookingStatus::pending);
}
