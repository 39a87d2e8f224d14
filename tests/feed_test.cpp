// api/feed's FeedSession without sockets, against a real sequencer and journal in a temp dir:
// what a subscriber queues and what it keeps alive while its client does not read.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "api/feed.hpp"
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
