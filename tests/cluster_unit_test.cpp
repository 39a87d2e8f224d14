// Cluster mode without NATS: the batch message format, and the sequencer's two cluster
// seams (replicate before the local append; submit_replicated on a follower), with real
// RocksDB journals in temp dirs. The NATS side runs in tests/cluster_test.py.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "cluster/batch_codec.hpp"
#include "cluster/stream_position.hpp"
#include "cluster/webhook_cursors.hpp"
#include "sequencer/sequencer.hpp"
#include "tests/test_support.hpp"

using namespace slotd;
using testing::TempDir;

namespace {

constexpr TimeMs kBase = 1'925'000'000'000;  // 2031: slots must lie after 2000-01-01

std::unique_ptr<Sequencer> open_sequencer(const TempDir& dir, SequencerConfig config = {}) {
  std::unique_ptr<Sequencer> seq;
  JournalStatus st = Sequencer::open(dir.str(), std::move(config), seq);
  REQUIRE_MESSAGE(st.ok, st.message);
  return seq;
}

std::vector<std::string> journal_values(const Sequencer& seq) {
  std::vector<std::string> out;
  JournalStatus st = seq.read_journal(1, 0, [&](const JournalRecord& r) {
    std::string v = std::to_string(r.seq) + ":";
    encode_record(r, v);
    out.push_back(std::move(v));
    return true;
  });
  REQUIRE_MESSAGE(st.ok, st.message);
  return out;
}

void wait_durable(const Sequencer& seq, std::uint64_t seq_no) {
  for (int i = 0; i < 10'000 && seq.durable_seq() < seq_no; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(seq.durable_seq() == seq_no);
}

std::vector<JournalRecord> some_records(std::uint64_t first) {
  std::vector<JournalRecord> out;
  out.push_back({first, kBase, 7, Actor::admin, DoctorAdded{1, 1, "Dr. Batch", "GP"}});
  out.push_back({first + 1, kBase + 1, 8, Actor::admin, SlotCreated{1, 1, kBase, kBase + 1000}});
  out.push_back({first + 2, kBase + 2, 0, Actor::system, SlotClosed{1}});
  return out;
}

// Submits an admin command whose answer, if it ever comes, only sets `answered`.
void submit_watched(Sequencer& seq, Command command, std::atomic<bool>& answered) {
  Submission s;
  s.command = std::move(command);
  s.actor = Actor::admin;
  s.done = [&answered](CommandResult&&) { answered = true; };
  REQUIRE(seq.submit(std::move(s)));
}

}  // namespace

TEST_CASE("a batch message carries its records byte for byte, seqs included") {
  const auto records = some_records(41);
  std::string message;
  encode_batch(records, message);
  std::vector<JournalRecord> decoded;
  JournalStatus st = decode_batch(message, decoded);
  REQUIRE_MESSAGE(st.ok, st.message);
  REQUIRE(decoded.size() == records.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    CHECK(decoded[i].seq == records[i].seq);
    std::string a, b;
    encode_record(records[i], a);
    encode_record(decoded[i], b);
    CHECK(a == b);
  }
}

TEST_CASE("a truncated, extended or unknown-version batch message is refused") {
  std::string message;
  encode_batch(some_records(1), message);
  std::vector<JournalRecord> out;
  for (std::size_t cut = 0; cut < message.size(); ++cut) {
    CHECK_FALSE(decode_batch(std::string_view(message).substr(0, cut), out).ok);
  }
  CHECK_FALSE(decode_batch(message + '\0', out).ok);
  std::string other_version = message;
  other_version[0] = 2;
  CHECK_FALSE(decode_batch(other_version, out).ok);
}

TEST_CASE("a follower fed the leader's batch messages reaches the leader's journal and state, and decides no expiry of its own") {
  TempDir leader_dir, follower_dir;
  std::mutex mutex;
  std::vector<std::string> messages;  // what the leader would have published
  SequencerConfig leader_config;
  leader_config.engine.hold_ttl_ms = 60'000;
  leader_config.clock = [] { return kBase; };
  leader_config.replicate = [&](std::span<const JournalRecord> records) {
    std::string m;
    encode_batch(records, m);
    std::lock_guard lock(mutex);
    messages.push_back(std::move(m));
    return JournalStatus{};
  };
  auto leader = open_sequencer(leader_dir, leader_config);
  leader->start();
  CommandResult doctor = leader->execute(AddDoctor{1, "Dr. Lead", "GP"});
  const Id doctor_id = std::get<DoctorAdded>(doctor.events.at(0)).doctor_id;
  CreateSlots create{doctor_id, {}};
  for (int i = 0; i < 20; ++i) create.spans.push_back({kBase + 3'600'000 + i * 1000LL, kBase + 3'600'000 + i * 1000LL + 1000});
  REQUIRE(leader->execute(std::move(create)).rejection == Rejection::none);
  for (Id slot = 1; slot <= 10; ++slot) {
    REQUIRE(leader->execute(BookSlot{slot, "Pat", 0, Token{1, 2, 3}}, Actor::patient).rejection == Rejection::none);
  }
  leader->stop();

  // The follower's clock is an hour ahead: the holds are due, but only a leader expires them.
  SequencerConfig follower_config;
  follower_config.engine.hold_ttl_ms = 60'000;
  follower_config.clock = [] { return kBase + 3'600'000; };
  follower_config.expiry_interval = std::chrono::milliseconds(1);
  follower_config.replicate = [](std::span<const JournalRecord>) {
    FAIL("a follower published its leader's batch");
    return JournalStatus::error("unreachable");
  };
  auto follower = open_sequencer(follower_dir, follower_config);
  follower->set_deciding(false);
  follower->start();
  for (const std::string& m : messages) {
    std::vector<JournalRecord> records;
    JournalStatus st = decode_batch(m, records);
    REQUIRE_MESSAGE(st.ok, st.message);
    REQUIRE(follower->submit_replicated(std::move(records)));
  }
  wait_durable(*follower, leader->durable_seq());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // room for a wrong expiry
  follower->stop();
  CHECK(follower->durable_seq() == leader->durable_seq());
  CHECK(follower->engine().state_hash() == leader->engine().state_hash());
  CHECK(journal_values(*follower) == journal_values(*leader));
  CHECK(follower->reads().as_of_seq() == leader->durable_seq());
}

TEST_CASE("a batch whose replication fails is never answered nor written to the local journal") {
  TempDir dir;
  std::atomic<int> replicate_calls{0};
  std::string failure;
  std::mutex mutex;
  SequencerConfig config;
  config.replicate = [&](std::span<const JournalRecord>) {
    // The first batch (the doctor) replicates; the second is fenced.
    return replicate_calls.fetch_add(1) == 0 ? JournalStatus{} : JournalStatus::error("fenced: test");
  };
  config.on_journal_failure = [&](const std::string& message) {
    std::lock_guard lock(mutex);
    failure = message;
  };
  {
    auto seq = open_sequencer(dir, config);
    seq->start();
    REQUIRE(seq->execute(AddDoctor{1, "Dr. One", "GP"}).rejection == Rejection::none);
    std::atomic<bool> answered{false};
    submit_watched(*seq, AddDoctor{1, "Dr. Two", "GP"}, answered);
    for (int i = 0; i < 5'000; ++i) {
      {
        std::lock_guard lock(mutex);
        if (!failure.empty()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    seq->stop();
    CHECK_FALSE(answered.load());
    std::lock_guard lock(mutex);
    CHECK(failure == "fenced: test");
    CHECK(seq->durable_seq() == 1);
  }
  auto reopened = open_sequencer(dir);
  CHECK(reopened->durable_seq() == 1);
}

TEST_CASE("a replicated batch that does not continue the follower's seqs stops the follower") {
  TempDir dir;
  std::mutex mutex;
  std::string failure;
  SequencerConfig config;
  config.on_journal_failure = [&](const std::string& message) {
    std::lock_guard lock(mutex);
    failure = message;
  };
  auto seq = open_sequencer(dir, config);
  seq->set_deciding(false);
  seq->start();
  REQUIRE(seq->submit_replicated(some_records(2)));  // seq 1 is missing
  for (int i = 0; i < 5'000; ++i) {
    {
      std::lock_guard lock(mutex);
      if (!failure.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  seq->stop();
  std::lock_guard lock(mutex);
  CHECK(failure.find("replicated record seq 2") != std::string::npos);
  CHECK(failure.rfind("fenced", 0) != 0);  // a gap is a broken journal (exit 70), not a fence
  CHECK(seq->durable_seq() == 0);
}

TEST_CASE("a deposed leader whose own batch is still replicating when the new leader's batch arrives is fenced") {
  // The race CI met: the old leader decided seq 1 and is publishing it when it steps down
  // and, as follower, receives the new leader's seq 1. Its own batch can never be stored.
  TempDir dir;
  std::mutex mutex;
  std::condition_variable cv;
  std::string first_failure;
  bool release = false;
  bool replicating = false;
  SequencerConfig config;
  config.replicate = [&](std::span<const JournalRecord>) {
    std::unique_lock lock(mutex);
    replicating = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    return JournalStatus::error("fenced: this node is not the leader");
  };
  config.on_journal_failure = [&](const std::string& message) {
    std::lock_guard lock(mutex);
    if (first_failure.empty()) first_failure = message;
    cv.notify_all();
  };
  auto seq = open_sequencer(dir, config);
  seq->start();
  std::atomic<bool> answered{false};
  submit_watched(*seq, AddDoctor{1, "Dr. Old Leader", "GP"}, answered);
  {
    std::unique_lock lock(mutex);  // seq 1 is decided once its replication has begun
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return replicating; }));
  }
  // What a stepping-down node waits on (ClusterNode::step_down): decided, not yet durable.
  CHECK(seq->decided_seq() == 1);
  CHECK(seq->durable_seq() == 0);
  seq->set_deciding(false);
  REQUIRE(seq->submit_replicated(some_records(1)));
  {
    std::unique_lock lock(mutex);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return !first_failure.empty(); });
    release = true;
    cv.notify_all();
  }
  seq->stop();
  CHECK_FALSE(answered.load());
  CHECK(seq->durable_seq() == 0);
  std::lock_guard lock(mutex);
  INFO(first_failure);
  CHECK(first_failure.rfind("fenced", 0) == 0);
  CHECK(first_failure.find("replicated record seq 1") != std::string::npos);
}

TEST_CASE("a shared webhook cursor is '<next seq> <stopped>' and anything else does not decode") {
  CHECK(encode_shared_cursor(JournalCursor{42, false}) == "42 0");
  CHECK(encode_shared_cursor(JournalCursor{7, true}) == "7 1");
  auto back = decode_shared_cursor(encode_shared_cursor(JournalCursor{18'446'744'073'709'551'615ULL, true}));
  REQUIRE(back);
  CHECK(back->next_seq == 18'446'744'073'709'551'615ULL);
  CHECK(back->stopped);
  for (const char* bad : {"", "42", "42 ", "42 2", "42 01", " 0", "0 0", "x 0", "4x 0", "42  0", "-1 0",
                          "18446744073709551616 0"}) {
    CHECK_MESSAGE(!decode_shared_cursor(bad), bad);
  }
}

TEST_CASE("a restart finds the last stream message its journal holds entirely, in about log2(messages) reads") {
  // A stream of messages holding 1..7 consecutive events each, starting at stream seq
  // `first` (a stream whose oldest messages are gone starts later).
  std::mt19937_64 random(20261203);
  for (int round = 0; round < 200; ++round) {
    const std::uint64_t first = 1 + random() % 3;
    const std::size_t messages = 1 + random() % 300;
    std::vector<std::uint64_t> last_event;  // of stream seq first + i
    std::uint64_t event = random() % 5;     // events before the stream's first message
    const std::uint64_t before = event;
    for (std::size_t i = 0; i < messages; ++i) {
      event += 1 + random() % 7;
      last_event.push_back(event);
    }
    const std::uint64_t last = first + messages - 1;
    const std::uint64_t local = random() % (event + 3);  // may be behind, inside or past the stream
    unsigned reads = 0;
    auto read = [&](std::uint64_t stream_seq) -> std::optional<std::uint64_t> {
      ++reads;
      REQUIRE(stream_seq >= first);
      REQUIRE(stream_seq <= last);
      return last_event[stream_seq - first];
    };
    const std::optional<StreamPosition> found = find_stream_position(local, first, last, read);
    // What reading the stream from its first message finds: the last message entirely held.
    std::optional<std::uint64_t> expected;
    for (std::size_t i = 0; i < messages; ++i) {
      if (last_event[i] <= local) expected = first + i;
    }
    INFO("round " << round << ", local " << local << ", events " << before << ".." << event);
    REQUIRE(found.has_value() == expected.has_value());
    if (found) {
      CHECK(found->stream_seq == *expected);
      CHECK(found->event_seq == last_event[*expected - first]);
      CHECK(found->reads == reads);
    }
    unsigned bound = 1;
    while ((std::size_t{1} << (bound - 1)) <= messages) ++bound;
    CHECK(reads <= bound);
  }
}

TEST_CASE("a restart whose stream message cannot be read, or that holds no event, follows from the first message") {
  auto never = [](std::uint64_t) -> std::optional<std::uint64_t> { return std::nullopt; };
  CHECK(!find_stream_position(100, 1, 50, never));
  auto some = [](std::uint64_t seq) -> std::optional<std::uint64_t> { return seq * 2; };
  CHECK(!find_stream_position(0, 1, 50, some));   // an empty local journal
  CHECK(!find_stream_position(100, 1, 0, some));  // an empty stream
  CHECK(!find_stream_position(1, 1, 50, some));   // the first message ends at event 2
  const std::optional<StreamPosition> all = find_stream_position(1000, 1, 50, some);
  REQUIRE(all);
  CHECK(all->stream_seq == 50);
  CHECK(all->event_seq == 100);
}

TEST_CASE("a message that skips events is followed again when the stream still holds the skipped message, else stops the node") {
  std::vector<std::uint64_t> asked;
  const auto holds_from = [&](std::uint64_t first_kept) {
    return [&asked, first_kept](std::uint64_t seq) -> std::optional<bool> {
      asked.push_back(seq);
      return seq >= first_kept;
    };
  };
  // Applied up to stream seq 5, seq 7 arrives, seq 6 is still in the stream: follow again.
  CHECK(classify_stream_gap(5, 7, holds_from(1)) == StreamGap::follow_again);
  CHECK(asked == std::vector<std::uint64_t>{6});
  // The same after retention discarded seq 6: the events are gone.
  asked.clear();
  CHECK(classify_stream_gap(5, 7, holds_from(7)) == StreamGap::events_gone);
  CHECK(asked == std::vector<std::uint64_t>{6});
  // The very next message skips events: the stream itself lacks them, nothing to ask.
  asked.clear();
  CHECK(classify_stream_gap(5, 6, holds_from(1)) == StreamGap::events_gone);
  CHECK(asked.empty());
  // A fresh follower (nothing applied) whose first message is not the stream's first.
  CHECK(classify_stream_gap(0, 12, holds_from(10)) == StreamGap::events_gone);
  CHECK(classify_stream_gap(0, 12, holds_from(1)) == StreamGap::follow_again);
  // When the stream cannot be read, follow again: the next pass decides.
  const auto unreadable = [](std::uint64_t) -> std::optional<bool> { return std::nullopt; };
  CHECK(classify_stream_gap(5, 7, unreadable) == StreamGap::follow_again);
}
