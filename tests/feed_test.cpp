// api/feed's FeedSession without sockets, against a real sequencer and journal in a temp dir:
// what a subscriber queues and what it keeps alive while its client does not read, and which
// partition it follows in a process that serves several.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "api/feed.hpp"
#include "api/partition.hpp"
#include "tests/test_support.hpp"

using namespace slotd;
using testing::TempDir;

namespace {

// A durable batch as the server renders it once for every subscriber: `other` messages of
// doctor 2 and, in the middle, `mine` messages of doctor 1, with seqs after `after_seq`.
std::shared_ptr<RenderedBatch> batch_of(std::uint64_t after_seq, int other, int mine) {
  auto batch = std::make_shared<RenderedBatch>();
  std::uint64_t seq = after_seq;
  auto add = [&](Id doctor_id) {
    const auto offset = static_cast<std::uint32_t>(batch->bytes.size());
    batch->bytes += R"({"type":"slot","seq":)" + std::to_string(++seq) + R"(,"doctor":)" +
                    std::to_string(doctor_id) + R"(,"pad":"................................................"})";
    batch->messages.push_back(RenderedBatch::Message{
        seq, doctor_id, 1, offset, static_cast<std::uint32_t>(batch->bytes.size() - offset)});
  };
  for (int i = 0; i < other / 2; ++i) add(2);
  for (int i = 0; i < mine; ++i) add(1);
  for (int i = other / 2; i < other; ++i) add(2);
  return batch;
}

struct LiveFeed {
  TempDir dir;
  std::unique_ptr<Sequencer> sequencer;
  std::unique_ptr<FeedSession> feed;

  explicit LiveFeed(FeedLimits limits = {}) {
    REQUIRE(Sequencer::open(dir.str(), SequencerConfig{}, sequencer).ok);
    sequencer->start();
    REQUIRE(sequencer->execute(AddDoctor{1, "Dr. One", "GP"}).rejection == Rejection::none);
    REQUIRE(sequencer->execute(AddDoctor{1, "Dr. Two", "GP"}).rejection == Rejection::none);
    feed = std::make_unique<FeedSession>(*sequencer, limits);
    feed->on_message(R"({"op":"subscribe","doctorIds":[1]})");
    auto snapshot = feed->next_frame();  // doctor 1 has no slots: one frame
    REQUIRE(snapshot);
    CHECK(snapshot->fin);
    CHECK(std::string(snapshot->bytes).starts_with(R"({"type":"snapshot")"));
    REQUIRE_FALSE(feed->next_frame());  // caught up: live from here
  }
  ~LiveFeed() { sequencer->stop(); }
  std::uint64_t seq() const { return sequencer->reads().as_of_seq(); }
};

constexpr TimeMs kBase = 1'925'000'000'000;  // 2031: slots must lie after 2000-01-01
// Doctor (and slot) 1 and slot 2 of partition 3 outside, as the JSON below spells them.
static_assert((Id{3} << 40 | 1) == 3298534883329 && (Id{3} << 40 | 2) == 3298534883330);

std::size_t count_of(std::string_view text, std::string_view part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string_view::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// A process serving partitions 0 (home) and 3, each with its own sequencer in its own temp
// dir. Home: doctors 1 and 2, doctor 1 with two slots. Partition 3: doctor 1 with one slot.
// The partition map is process-wide: the default is put back at the end.
struct TwoPartitions {
  TempDir home_dir, dir_3;
  std::unique_ptr<Sequencer> home, p3;
  std::vector<FeedSource> sources;

  TwoPartitions() {
    PartitionMap map;
    map.self = 0;
    map.served = {0, 3};
    set_partition_map(std::move(map));
    REQUIRE(Sequencer::open(home_dir.str(), SequencerConfig{}, home).ok);
    REQUIRE(Sequencer::open(dir_3.str(), SequencerConfig{}, p3).ok);
    home->start();
    p3->start();
    REQUIRE(home->execute(AddDoctor{1, "Dr. Home", "GP"}).rejection == Rejection::none);
    REQUIRE(home->execute(AddDoctor{1, "Dr. Home Two", "GP"}).rejection == Rejection::none);
    REQUIRE(home->execute(CreateSlots{1, {{kBase, kBase + 1000}, {kBase + 1000, kBase + 2000}}})
                .rejection == Rejection::none);
    REQUIRE(p3->execute(AddDoctor{1, "Dr. Three", "GP"}).rejection == Rejection::none);
    REQUIRE(p3->execute(CreateSlots{1, {{kBase + 5000, kBase + 6000}}}).rejection ==
            Rejection::none);
    REQUIRE(home->reads().as_of_seq() != p3->reads().as_of_seq());
    sources = {FeedSource{0, home.get()}, FeedSource{3, p3.get()}};
  }
  ~TwoPartitions() {
    p3->stop();
    home->stop();
    set_partition_map(PartitionMap{});
  }

  // The slot changes of what `command` journals in `sequencer`, as the server gets them.
  static std::vector<SlotChange> changes_of(Sequencer& sequencer, Command command) {
    const std::uint64_t before = sequencer.reads().as_of_seq();
    REQUIRE(sequencer.execute(std::move(command)).rejection == Rejection::none);
    std::vector<SlotChange> out;
    const ReadStore& reads = sequencer.reads();
    REQUIRE(sequencer
                .read_journal(before + 1, reads.as_of_seq() - before,
                              [&](const JournalRecord& r) {
                                for (const SlotChange& c : reads.slot_changes_of(r))
                                  out.push_back(c);
                                return true;
                              })
                .ok);
    REQUIRE_FALSE(out.empty());
    return out;
  }
};

}  // namespace

TEST_CASE("a subscriber that wants one message of a big batch keeps a copy of that message, not the batch") {
  LiveFeed live;
  auto batch = batch_of(live.seq(), 1000, 1);
  const auto& mine = batch->messages[500];
  const std::string want(batch->text(mine));
  live.feed->on_batch(batch);
  CHECK(batch.use_count() == 1);  // only this test holds the batch
  CHECK(live.feed->queued_bytes() == mine.length);
  auto frame = live.feed->next_frame();
  REQUIRE(frame);
  CHECK(std::string(frame->bytes) == want);
  CHECK_FALSE(live.feed->next_frame());
  CHECK(live.feed->queued_bytes() == 0);
}

TEST_CASE("a subscriber that wants most of a batch shares the batch instead of copying it") {
  LiveFeed live;
  auto batch = batch_of(live.seq(), 2, 10);
  live.feed->on_batch(batch);
  CHECK(batch.use_count() > 1);
  for (int i = 0; i < 10; ++i) {
    auto frame = live.feed->next_frame();
    REQUIRE(frame);
    CHECK(std::string(frame->bytes) == std::string(batch->text(batch->messages[1 + i])));
  }
  CHECK_FALSE(live.feed->next_frame());
}

TEST_CASE("scattered wanted messages of shared batches come out in order, and the batch is let go after its last") {
  LiveFeed live;
  // Doctor 1, 2, 1, 1, 2, 1: four of six messages are wanted (shared, not copied), and they
  // are not one run of the batch.
  auto batch = std::make_shared<RenderedBatch>();
  std::uint64_t seq = live.seq();
  for (Id doctor_id : {1, 2, 1, 1, 2, 1}) {
    const auto offset = static_cast<std::uint32_t>(batch->bytes.size());
    batch->bytes += R"({"seq":)" + std::to_string(++seq) + R"(,"doctor":)" + std::to_string(doctor_id) + "}";
    batch->messages.push_back(RenderedBatch::Message{
        seq, doctor_id, 1, offset, static_cast<std::uint32_t>(batch->bytes.size() - offset)});
  }
  auto second = batch_of(seq, 2, 3);  // then a contiguous run of three in a second batch
  live.feed->on_batch(batch);
  live.feed->on_batch(second);
  std::size_t queued = 0;
  for (std::uint32_t i : {0, 2, 3, 5}) queued += batch->messages[i].length;
  for (std::uint32_t i : {1, 2, 3}) queued += second->messages[i].length;
  CHECK(live.feed->queued_bytes() == queued);
  std::vector<std::string> want;
  for (std::uint32_t i : {0, 2, 3, 5}) want.emplace_back(batch->text(batch->messages[i]));
  for (std::uint32_t i : {1, 2, 3}) want.emplace_back(second->text(second->messages[i]));
  for (std::size_t k = 0; k < want.size(); ++k) {
    auto frame = live.feed->next_frame();
    REQUIRE(frame);
    CHECK(frame->fin);
    CHECK(std::string(frame->bytes) == want[k]);
    if (k == 3) CHECK(batch.use_count() == 2);   // the frame of its last message holds it
    if (k == 4) CHECK(batch.use_count() == 1);   // and nothing after that
  }
  CHECK_FALSE(live.feed->next_frame());
  CHECK(live.feed->queued_bytes() == 0);
  CHECK(second.use_count() == 1);
}

TEST_CASE("a subscriber whose client does not read becomes slow once its queue passes the byte limit") {
  FeedLimits limits;
  limits.max_queue_bytes = 4096;
  LiveFeed live(limits);
  std::uint64_t seq = live.seq();
  std::size_t queued = 0;
  for (int round = 0; round < 1000 && !live.feed->slow(); ++round) {
    auto batch = batch_of(seq, 50, 1);
    seq += 51;
    live.feed->on_batch(batch);
    CHECK(batch.use_count() == 1);
    queued += batch->messages[25].length;
    CHECK(live.feed->queued_bytes() == queued);
  }
  CHECK(live.feed->slow());
  CHECK(queued > limits.max_queue_bytes);
  CHECK(queued <= limits.max_queue_bytes + 200);
  CHECK_FALSE(live.feed->next_frame());  // a slow session sends nothing more; it is closed
}

TEST_CASE(
    "a feed follows the partition of the first id it is subscribed to, with that partition's ids "
    "and batches") {
  TwoPartitions parts;
  FeedSession feed(*parts.home, FeedLimits{}, parts.sources);
  feed.on_message(R"({"op":"subscribe","doctorIds":[3298534883329]})");
  auto snapshot = feed.next_frame();
  REQUIRE(snapshot);
  CHECK(snapshot->fin);
  const std::string text(snapshot->bytes);
  CAPTURE(text);
  // Partition 3's sequencer: its seq, its doctor 1's one slot (not home's two), its ids.
  CHECK(text.starts_with(R"({"type":"snapshot","asOfSeq":)" +
                         std::to_string(parts.p3->reads().as_of_seq()) + ","));
  CHECK(count_of(text, R"("doctorId":)") == 1);
  CHECK(text.find(R"({"id":3298534883329,"doctorId":3298534883329,)") != std::string::npos);
  REQUIRE_FALSE(feed.next_frame());  // caught up: live from here

  // A second slot for partition 3's doctor 1, rendered once as partition 0 (which names a
  // doctor 1 too) and once as partition 3: only partition 3's batch is this feed's.
  const auto changes =
      TwoPartitions::changes_of(*parts.p3, CreateSlots{1, {{kBase + 7000, kBase + 8000}}});
  std::shared_ptr<const RenderedBatch> as_0, as_3;
  {
    const PartitionScope scope(0);
    as_0 = render_batch(changes, parts.p3->reads());
  }
  {
    const PartitionScope scope(3);
    as_3 = render_batch(changes, parts.p3->reads());
  }
  CHECK(as_0->partition == 0);
  CHECK(as_3->partition == 3);
  feed.on_batch(as_0);
  CHECK(feed.queued_bytes() == 0);
  CHECK_FALSE(feed.next_frame());
  feed.on_batch(as_3);
  CHECK(feed.queued_bytes() == as_3->bytes.size());
  auto live = feed.next_frame();
  REQUIRE(live);
  const std::string event(live->bytes);
  CAPTURE(event);
  CHECK(event == std::string(as_3->text(as_3->messages.at(0))));
  CHECK(event.find(R"("slot":{"id":3298534883330,"doctorId":3298534883329,)") != std::string::npos);
  CHECK_FALSE(feed.next_frame());
}

TEST_CASE(
    "a feed subscribed to the home partition's doctors ignores another served partition's "
    "batches") {
  TwoPartitions parts;
  FeedSession feed(*parts.home, FeedLimits{}, parts.sources);
  feed.on_message(R"({"op":"subscribe","doctorIds":[1]})");
  auto snapshot = feed.next_frame();
  REQUIRE(snapshot);
  const std::string text(snapshot->bytes);
  CAPTURE(text);
  CHECK(text.starts_with(R"({"type":"snapshot","asOfSeq":)" +
                         std::to_string(parts.home->reads().as_of_seq()) + ","));
  CHECK(count_of(text, R"("doctorId":1,)") == 2);
  CHECK(text.find("3298534883329") == std::string::npos);
  REQUIRE_FALSE(feed.next_frame());

  // Partition 3's seqs past home's, so that only the partition tells this batch apart.
  TimeMs start = kBase + 7000;
  for (; parts.p3->reads().as_of_seq() < parts.home->reads().as_of_seq(); start += 1000) {
    REQUIRE(parts.p3->execute(CreateSlots{1, {{start, start + 1000}}}).rejection ==
            Rejection::none);
  }
  const auto changes =
      TwoPartitions::changes_of(*parts.p3, CreateSlots{1, {{start, start + 1000}}});
  REQUIRE(changes.front().seq > parts.home->reads().as_of_seq());
  const PartitionScope scope(3);
  feed.on_batch(render_batch(changes, parts.p3->reads()));
  CHECK(feed.queued_bytes() == 0);
  CHECK_FALSE(feed.next_frame());
}

TEST_CASE(
    "a feed subscription that names doctors of two served partitions is refused as "
    "cross_partition") {
  TwoPartitions parts;
  TimeMs start = kBase + 10'000;
  for (const char* subscribe : {R"({"op":"subscribe","doctorIds":[1,3298534883329]})",
                                R"({"op":"subscribe","doctorIds":[3298534883329,1]})"}) {
    CAPTURE(subscribe);
    FeedSession feed(*parts.home, FeedLimits{}, parts.sources);
    feed.on_message(subscribe);
    auto error = feed.next_frame();
    REQUIRE(error);
    const std::string text(error->bytes);
    CAPTURE(text);
    CHECK(text.starts_with(R"({"type":"error","code":"cross_partition","message":)"));
    CHECK(text.ends_with(R"(one request changes one partition"})"));  // no owner to name
    CHECK_FALSE(feed.next_frame());  // no snapshot: nothing was subscribed to
    const auto changes =
        TwoPartitions::changes_of(*parts.home, CreateSlots{1, {{start, start + 1000}}});
    start += 1000;
    feed.on_batch(render_batch(changes, parts.home->reads()));  // home: doctor 1 of partition 0
    CHECK(feed.queued_bytes() == 0);
    CHECK_FALSE(feed.next_frame());
  }
}
