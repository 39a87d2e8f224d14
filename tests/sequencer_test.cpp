// The sequencer against a real RocksDB journal in a temp dir: group commit, completion only
// after durability, expiry from its own clock, bounded queue, recovery by replay.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <thread>

#include <sched.h>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include "sequencer/atomic_shared.hpp"
#include "sequencer/sequencer.hpp"
#include "sequencer/tail_reader.hpp"
#include "tests/failing_sync_fs.hpp"
#include "tests/raw_rocksdb.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using namespace slotd;

namespace {

using testing::FailingSyncFileSystem;
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

// The engine's hash; only while the sequencer is not running (before start, after stop).
std::uint64_t engine_hash(const Sequencer& seq) { return seq.engine().state_hash(); }

Submission submission(Command command, Actor actor, std::uint64_t request_id, Completion done) {
  Submission s;
  s.command = std::move(command);
  s.actor = actor;
  s.request_id = request_id;
  s.done = std::move(done);
  return s;
}

Id add_doctor_with_slots(Sequencer& seq, int slots) {
  CommandResult doctor = seq.execute(AddDoctor{1, "Dr. Test", "GP"});
  REQUIRE(doctor.rejection == Rejection::none);
  Id doctor_id = std::get<DoctorAdded>(doctor.events.at(0)).doctor_id;
  CreateSlots create{doctor_id, {}};
  constexpr TimeMs kBase = 1'925'000'000'000;  // 2031: slots must lie after 2000-01-01
  for (int i = 0; i < slots; ++i) create.spans.push_back({kBase + i * 1000LL, kBase + i * 1000LL + 1000});
  REQUIRE(seq.execute(std::move(create)).rejection == Rejection::none);
  return doctor_id;
}

BookSlot book(Id slot_id, std::string who = "Pat") {
  return BookSlot{slot_id, std::move(who), 0, Token{1, 2, 3}};
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
    REQUIRE(seq2->submit(submission(book(slot), Actor::patient, slot,
                                    [p](CommandResult&& r) { p->set_value(std::move(r)); })));
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

namespace {

// Scheduling policy (stat field 41) of this process's threads named `name` (comm).
std::vector<int> policies_of_threads_named(const std::string& name) {
  std::vector<int> out;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string c;
    std::getline(comm, c);
    if (c != name) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    // Fields after the parenthesised comm, which may hold spaces: field 3 is the first.
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 41 && fields >> field; ++i) {
      if (i == 41) out.push_back(std::stoi(field));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("the decide and journal stages run as named SCHED_BATCH threads, from start to stop") {
  TempDir dir;
  auto seq = open_sequencer(dir.path());
  CHECK(policies_of_threads_named("slotd-decide").empty());
  seq->start();
  // Once a command is durable, both threads have passed their start (and still decide and
  // sync: the helper REQUIREs success).
  add_doctor_with_slots(*seq, 3);
  // A wake-up must not preempt the io thread that hands over a command (sequencer.cpp).
  CHECK(policies_of_threads_named("slotd-decide") == std::vector<int>{SCHED_BATCH});
  CHECK(policies_of_threads_named("slotd-journal") == std::vector<int>{SCHED_BATCH});
  seq->stop();
  CHECK(policies_of_threads_named("slotd-decide").empty());
  CHECK(policies_of_threads_named("slotd-journal").empty());
}

TEST_CASE("a completion runs only when its events are durable and published to readers") {
  TempDir dir;
  auto seq = open_sequencer(dir.path());
  seq->start();
  add_doctor_with_slots(*seq, 50);
  std::atomic<int> violations{0};
  std::atomic<int> done{0};
  for (Id slot = 1; slot <= 50; ++slot) {
    Sequencer* s = seq.get();
    REQUIRE(seq->submit(submission(book(slot), Actor::patient, slot, [s, slot, &violations, &done](CommandResult&& r) {
      // The durable seq and the read store must already include this result.
      if (s->durable_seq() < r.seq) ++violations;
      auto seen = s->reads().slot(slot);
      if (s->reads().as_of_seq() < r.seq || !seen || seen->status != SlotStatus::held) ++violations;
      ++done;
    })));
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
  CHECK(seq->reads().slot(1)->status == SlotStatus::held);
  seq->stop();
  CHECK(seq->engine().broken_invariant() == std::nullopt);
}

TEST_CASE("a full queue refuses instead of blocking") {
  TempDir dir;
  SequencerConfig config;
  config.queue_capacity = 4;
  auto seq = open_sequencer(dir.path(), config);  // not started: nothing drains
  for (int i = 0; i < 4; ++i) CHECK(seq->submit(submission(ExpireDue{}, Actor::system, 0, nullptr)));
  CHECK_FALSE(seq->submit(submission(ExpireDue{}, Actor::system, 0, nullptr)));
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
    auto status = [&] { return seq->reads().booking(booking_id)->status; };
    CHECK(status() == BookingStatus::pending);

    clock.now->fetch_add(5'001);
    for (int i = 0; i < 300 && status() != BookingStatus::failed; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(status() == BookingStatus::failed);
    CHECK(seq->stats().expired.load() == 1);
    CHECK(seq->reads().slot(1)->status == SlotStatus::available);
    // The slot can be booked again.
    CHECK(seq->execute(book(1)).rejection == Rejection::none);
    seq->stop();
  }
  // The expiry is in the journal: a restart replays it.
  auto again = open_sequencer(dir.path(), config);
  CHECK(again->reads().booking(1)->status == BookingStatus::failed);
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
    hash_before = engine_hash(*seq);
    seq_before = seq->durable_seq();
  }
  auto seq = open_sequencer(dir.path());
  CHECK(engine_hash(*seq) == hash_before);
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
  CommandResult refused = seq->execute(book(1));
  CHECK(refused.rejection == Rejection::slot_unavailable);
  CHECK(refused.events.empty());
  CHECK(refused.seq == seq_after_book);
  CHECK(seq->durable_seq() == seq_after_book);
  seq->stop();
  const std::uint64_t hash = engine_hash(*seq);
  seq.reset();
  auto reopened = open_sequencer(dir.path());
  CHECK(reopened->durable_seq() == seq_after_book);
  CHECK(engine_hash(*reopened) == hash);
}

TEST_CASE("start-up stops with a message naming the seq when a journal record is corrupt") {
  TempDir dir;
  {
    auto seq = open_sequencer(dir.path());
    seq->start();
    add_doctor_with_slots(*seq, 10);  // seqs 1..11
  }
  {
    testing::RawDb db((dir.path() / "journal").string());
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
    testing::RawDb db((dir.path() / "journal").string());
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
    REQUIRE(seq->submit(submission(book(2), Actor::patient, 1, [&](CommandResult&&) { ++completions; })));
    auto message = failure_message.get_future();
    REQUIRE(message.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK_MESSAGE(message.get().find("injected") != std::string::npos, "the failure names its cause");
    CHECK(completions.load() == 0);  // no reply for a batch that is not durable
    CHECK(seq->durable_seq() == acknowledged_seq);
    // Readers never see the undurable hold either.
    CHECK(seq->reads().slot(2)->status == SlotStatus::available);
    fail->store(false);
    seq->stop();
  }
  // Recovery keeps everything acknowledged; the batch whose sync failed was never
  // acknowledged, so whether RocksDB kept it or not, nothing acknowledged is lost.
  auto again = open_sequencer(dir.path());
  CHECK(again->durable_seq() >= acknowledged_seq);
  CHECK(again->reads().booking(1)->status == BookingStatus::pending);
}

TEST_CASE("a wall clock that steps back never lets a late confirm through: engine time holds still") {
  TempDir dir;
  ManualClock clock;
  SequencerConfig config;
  config.engine.hold_ttl_ms = 5'000;
  config.expiry_interval = std::chrono::hours(1);  // no ExpireDue: only the confirm decides
  config.clock = clock.fn();
  auto seq = open_sequencer(dir.path(), config);
  seq->start();
  add_doctor_with_slots(*seq, 1);
  CommandResult held = seq->execute(book(1));
  REQUIRE(held.rejection == Rejection::none);
  const Id booking_id = std::get<SlotHeld>(held.events.at(0)).booking_id;
  const TimeMs booked_at = held.decided_at_ms;

  clock.now->store(booked_at + 5'001);                          // past expires_at …
  CHECK(seq->execute(CloseSlot{999}).rejection == Rejection::slot_not_found);  // … seen once
  clock.now->store(booked_at + 1'000);                          // then NTP steps back
  CommandResult late = seq->execute(ConfirmBooking{booking_id});
  CHECK(late.rejection == Rejection::booking_expired);
  CHECK(late.decided_at_ms == booked_at + 5'001);
  CHECK(seq->stats().clock_steps_back.load() >= 1);
  CHECK(seq->reads().booking(booking_id)->status == BookingStatus::pending);
}

TEST_CASE("after a restart engine time starts from the journal's last time, not an earlier wall clock") {
  TempDir dir;
  ManualClock clock;
  SequencerConfig config;
  config.engine.hold_ttl_ms = 5'000;
  config.expiry_interval = std::chrono::hours(1);
  config.clock = clock.fn();
  TimeMs booked_at = 0;
  {
    auto seq = open_sequencer(dir.path(), config);
    seq->start();
    add_doctor_with_slots(*seq, 1);
    clock.now->fetch_add(10'000);
    CommandResult held = seq->execute(book(1));
    REQUIRE(held.rejection == Rejection::none);
    booked_at = held.decided_at_ms;
    clock.now->store(booked_at + 6'000);
    CHECK(seq->execute(CloseSlot{999}).rejection == Rejection::slot_not_found);  // journals nothing
    seq->stop();
  }
  // The machine comes back with a clock far behind the last journaled event.
  clock.now->store(booked_at - 60'000);
  auto seq = open_sequencer(dir.path(), config);
  seq->start();
  CommandResult confirm = seq->execute(ConfirmBooking{1});
  CHECK(confirm.decided_at_ms >= booked_at);
  CHECK(confirm.rejection == Rejection::none);  // booked_at is the last journaled time: in TTL
}

namespace {

// Every sync takes `delay`: lets a test see the decide stage run ahead of the disk.
class SlowSyncFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  SlowSyncFile(std::unique_ptr<rocksdb::FSWritableFile> file, std::chrono::milliseconds delay)
      : FSWritableFileOwnerWrapper(std::move(file)), delay_(delay) {}
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    std::this_thread::sleep_for(delay_);
    return target()->Sync(o, d);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* d) override {
    std::this_thread::sleep_for(delay_);
    return target()->Fsync(o, d);
  }

 private:
  std::chrono::milliseconds delay_;
};

class SlowSyncFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit SlowSyncFileSystem(std::chrono::milliseconds delay)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), delay_(delay) {}
  const char* Name() const override { return "SlowSyncFileSystem"; }
  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, result, dbg);
    if (s.ok()) *result = std::make_unique<SlowSyncFile>(std::move(*result), delay_);
    return s;
  }

 private:
  std::chrono::milliseconds delay_;
};

}  // namespace

TEST_CASE("pipelined batches complete in seq order, and a refusal waits for what it saw to be durable") {
  TempDir dir;
  auto env = rocksdb::NewCompositeEnv(std::make_shared<SlowSyncFileSystem>(std::chrono::milliseconds(30)));
  SequencerConfig config;
  config.journal_env = env.get();
  config.max_batch = 1;  // every command its own batch, so decide can run ahead of the sync
  auto seq = open_sequencer(dir.path(), config);
  seq->start();
  add_doctor_with_slots(*seq, 20);
  std::mutex mutex;
  std::vector<std::uint64_t> completed;  // seqs in completion order
  std::vector<std::string> violations;
  std::atomic<int> done{0};
  Sequencer* s = seq.get();
  // Two commands per slot: the first holds it, the second is refused because of the first.
  for (Id slot = 1; slot <= 20; ++slot) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      REQUIRE(seq->submit(submission(book(slot), Actor::patient, slot, [&, s, attempt](CommandResult&& r) {
        std::lock_guard lock(mutex);
        if (attempt == 1 && r.rejection != Rejection::slot_unavailable) violations.push_back("second won");
        // Whatever a command saw (its seq) is durable and published when it is answered.
        if (s->durable_seq() < r.seq || s->reads().as_of_seq() < r.seq) {
          violations.push_back("answered before seq " + std::to_string(r.seq) + " was durable");
        }
        completed.push_back(r.seq);
        ++done;
      })));
    }
  }
  for (int i = 0; i < 1000 && done.load() < 40; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(done.load() == 40);
  CHECK(violations.empty());
  CHECK(std::is_sorted(completed.begin(), completed.end()));
  // The decide stage ran ahead: fewer syncs than commands would be impossible one at a time
  // with max_batch 1 unless refusals (no events) shared the pipeline without a sync.
  CHECK(seq->stats().batches.load() < seq->stats().commands.load());
}

TEST_CASE("without threads, run_queued decides, journals and completes what is queued on the calling thread, and expires holds from the clock") {
  TempDir dir;
  ManualClock clock;
  SequencerConfig config;
  config.engine.hold_ttl_ms = 5'000;
  config.expiry_interval = std::chrono::milliseconds(1'000);
  config.clock = clock.fn();
  std::uint64_t hash = 0, durable = 0;
  {
    auto seq = open_sequencer(dir.path(), config);
    const std::thread::id caller = std::this_thread::get_id();
    std::vector<CommandResult> results;
    auto queue = [&](Command command) {
      REQUIRE(seq->submit(submission(std::move(command), Actor::admin, 1, [&](CommandResult&& r) {
        CHECK(std::this_thread::get_id() == caller);
        results.push_back(std::move(r));
      })));
    };
    queue(AddDoctor{1, "Dr. Sync", "GP"});
    queue(CreateSlots{1, {{1'925'000'000'000, 1'925'000'001'000}}});
    queue(book(1));
    CHECK(results.empty());  // nothing runs until asked
    REQUIRE(seq->run_queued());
    REQUIRE(results.size() == 3);
    for (const CommandResult& r : results) CHECK(r.rejection == Rejection::none);
    CHECK(seq->reads().booking(1)->status == BookingStatus::pending);
    CHECK_FALSE(seq->engine().broken_invariant());

    // A refused command: answered, nothing journaled, the state unchanged.
    const std::uint64_t before = seq->durable_seq();
    const std::uint64_t hash_before = engine_hash(*seq);
    queue(book(1));
    REQUIRE(seq->run_queued());
    CHECK(results.back().rejection == Rejection::slot_unavailable);
    CHECK(seq->durable_seq() == before);
    CHECK(engine_hash(*seq) == hash_before);

    // Past the TTL, the next run issues ExpireDue even with nothing queued.
    clock.now->fetch_add(5'001);
    REQUIRE(seq->run_queued());
    CHECK(seq->reads().booking(1)->status == BookingStatus::failed);
    CHECK(seq->durable_seq() > before);
    hash = engine_hash(*seq);
    durable = seq->durable_seq();
  }
  auto again = open_sequencer(dir.path(), config);
  CHECK(again->durable_seq() == durable);
  CHECK(engine_hash(*again) == hash);
}

namespace {

// A journal of `count` SlotClosed records, seqs 1..count.
std::unique_ptr<Journal> journal_of(const TempDir& dir, std::size_t count) {
  std::unique_ptr<Journal> journal;
  REQUIRE(Journal::open((dir.path() / "journal").string(), journal).ok);
  std::vector<JournalRecord> records(count);
  for (std::size_t i = 0; i < count; ++i) {
    records[i].seq = i + 1;
    records[i].at_ms = 1'925'000'000'000 + static_cast<TimeMs>(i);
    records[i].event = SlotClosed{i + 1};
  }
  REQUIRE(journal->append(records).ok);
  return journal;
}

}  // namespace

TEST_CASE("the tail reader hands over every record from its seq, in order, in blocks") {
  TempDir dir("slotd-tail-reader");
  auto journal = journal_of(dir, 1'000);
  TailReader tail(*journal, 101, /*block_records=*/64, /*max_blocks=*/2);
  std::uint64_t expected = 101;
  std::vector<std::size_t> sizes;
  for (auto block = tail.next(); !block.empty(); block = tail.next()) {
    sizes.push_back(block.size());
    for (const JournalRecord& r : block) {
      REQUIRE(r.seq == expected);
      CHECK(std::get<SlotClosed>(r.event).slot_id == expected);
      ++expected;
    }
  }
  CHECK(expected == 1'001);
  CHECK(tail.status().ok);
  std::vector<std::size_t> want(14, 64);  // 900 records: 14 full blocks and the rest
  want.push_back(900 - 14 * 64);
  CHECK(sizes == want);
  CHECK(tail.next().empty());  // and stays ended
}

TEST_CASE("a tail reader beyond the journal's end hands over nothing, and one dropped while its queue is full stops") {
  TempDir dir("slotd-tail-reader-stop");
  auto journal = journal_of(dir, 1'000);
  {
    TailReader past(*journal, 1'001);
    CHECK(past.next().empty());
    CHECK(past.status().ok);
  }
  // Two blocks of ten wait; the reader's thread blocks on the third until it is dropped.
  auto tail = std::make_unique<TailReader>(*journal, 1, 10, 2);
  auto first = tail->next();
  REQUIRE(first.size() == 10);
  CHECK(first.front().seq == 1);
  tail.reset();  // joins the reader's thread: a hang here fails the test by its timeout
  // The journal is still whole and readable.
  std::uint64_t count = 0;
  REQUIRE(journal->read(1, 0, [&](const JournalRecord&) { return ++count > 0; }).ok);
  CHECK(count == 1'000);
}

TEST_CASE("records read by moving out of the journal's scratch record arrive whole, through handed-back blocks") {
  // Names longer than the small-string buffer next to empty and short ones: a record decoded
  // into the scratch record a visitor moved from must not keep anything of the one before.
  TempDir dir("slotd-tail-reader-move");
  std::unique_ptr<Journal> journal;
  REQUIRE(Journal::open((dir.path() / "journal").string(), journal).ok);
  std::vector<JournalRecord> records(200);
  auto name_of = [](std::size_t i) {
    return i % 3 == 0 ? std::string() : std::string(i % 3 == 1 ? 40 + i % 7 : 3, static_cast<char>('a' + i % 26));
  };
  for (std::size_t i = 0; i < records.size(); ++i) {
    records[i].seq = i + 1;
    records[i].at_ms = 1'925'000'000'000 + static_cast<TimeMs>(i);
    if (i % 2 == 0) {
      records[i].event = ClinicAdded{i + 1, name_of(i), i % 4 == 0 ? "Europe/Zurich" : ""};
    } else {
      records[i].event = SlotClosed{i + 1};
    }
  }
  REQUIRE(journal->append(records).ok);
  auto same = [&](const JournalRecord& got) {
    REQUIRE(got.seq >= 1);
    REQUIRE(got.seq <= records.size());
    const JournalRecord& want = records[got.seq - 1];
    CHECK(got.at_ms == want.at_ms);
    REQUIRE(got.event.index() == want.event.index());
    if (const auto* c = std::get_if<ClinicAdded>(&got.event)) {
      const auto& w = std::get<ClinicAdded>(want.event);
      CHECK(c->clinic_id == w.clinic_id);
      CHECK(c->name == w.name);
      CHECK(c->time_zone == w.time_zone);
    } else {
      CHECK(std::get<SlotClosed>(got.event).slot_id == std::get<SlotClosed>(want.event).slot_id);
    }
  };
  std::vector<JournalRecord> moved;
  REQUIRE(journal->read(1, 0, [&](JournalRecord& r) {
    moved.push_back(std::move(r));
    return true;
  }).ok);
  REQUIRE(moved.size() == records.size());
  for (const JournalRecord& r : moved) same(r);

  // Blocks of 3 with at most 2 waiting, each handed back after use: the reader refills them.
  TailReader tail(*journal, 1, 3, 2);
  std::uint64_t expected = 1;
  for (auto block = tail.next(); !block.empty(); block = tail.next()) {
    for (const JournalRecord& r : block) {
      REQUIRE(r.seq == expected++);
      same(r);
    }
    tail.give_back(std::move(block));
  }
  CHECK(expected == records.size() + 1);
  CHECK(tail.status().ok);
}

TEST_CASE("an AtomicShared read while another thread replaces it sees whole published values, in order") {
  // The read side's views are published this way; under ThreadSanitizer (the tsan build)
  // this case also checks that a load is ordered before the next store's write, which
  // libstdc++ 12's std::atomic<std::shared_ptr> does not do.
  struct View {
    std::uint64_t version;
    std::vector<std::uint64_t> ids;
  };
  AtomicShared<const View> slot;
  slot.store(std::make_shared<const View>(View{0, {}}));
  constexpr std::uint64_t kVersions = 2'000;
  std::atomic<bool> done{false}, reading{false};
  std::uint64_t loads = 0, bad = 0, backwards = 0;
  std::thread reader([&] {
    std::uint64_t last = 0;
    while (!done.load()) {
      auto v = slot.load();
      ++loads;
      reading.store(true);
      if (v->ids.size() != v->version % 17 || (!v->ids.empty() && v->ids.back() != v->version)) ++bad;
      if (v->version < last) ++backwards;
      last = v->version;
    }
  });
  while (!reading.load()) std::this_thread::yield();
  for (std::uint64_t n = 1; n <= kVersions; ++n) {
    slot.store(std::make_shared<const View>(View{n, std::vector<std::uint64_t>(n % 17, n)}));
  }
  done.store(true);
  reader.join();
  CHECK(loads > 0);
  CHECK(bad == 0);
  CHECK(backwards == 0);
  CHECK(slot.load()->version == kVersions);
  // compare_exchange: replaces only the value it was given, else reports the current one.
  auto current = slot.load();
  auto stale = std::make_shared<const View>(View{1, {}});
  CHECK_FALSE(slot.compare_exchange(stale, std::make_shared<const View>(View{7, {}})));
  CHECK(stale == current);
  CHECK(slot.compare_exchange(current, std::make_shared<const View>(View{kVersions + 1, {}})));
  CHECK(slot.load()->version == kVersions + 1);
}
