// The WebSocket feed's protocol (api/feed.hpp) without sockets: client messages, writes
// that make durable batches, and a socket that drains frames, in the order the input says,
// against a real sequencer (tests/fuzz/fuzz_world.hpp). Small limits make paging, catch-up
// rounds and slow-consumer closing happen within a short input.
//
// Checked: every message (its fragments joined) is one JSON object of a known type;
// events come in strictly increasing seq, never at or below the snapshot they follow; a
// session that went slow sends nothing more.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/feed.hpp"
#include "tests/fuzz/fuzz_world.hpp"

using namespace slotd;

namespace {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::string_view bytes(std::size_t n) {
    n = std::min(n, size_ - pos_);
    std::string_view out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

class FeedChecker {
 public:
  explicit FeedChecker(FeedSession& feed) : feed_(feed) {}

  // Writes up to `frames` frames; false once the session has nothing to send.
  bool drain(int frames) {
    for (int i = 0; i < frames; ++i) {
      if (feed_.slow()) {
        FUZZ_CHECK(!feed_.next_frame(), "a slow session still sends frames");
        return false;
      }
      auto frame = feed_.next_frame();
      if (!frame) return false;
      message_.append(frame->bytes);
      FUZZ_CHECK(message_.size() < (64u << 20), "a message without end");
      if (frame->fin) {
        check(message_);
        message_.clear();
      }
    }
    return true;
  }

  bool mid_message() const { return !message_.empty(); }

 private:
  void check(std::string_view text) {
    thread_local simdjson::dom::parser parser;
    simdjson::dom::object obj;
    std::string_view type;
    FUZZ_CHECK(!parser.parse(text.data(), text.size()).get_object().get(obj) &&
                   !obj["type"].get_string().get(type),
               "not a feed message: %.*s", static_cast<int>(text.size()), text.data());
    if (type == "snapshot") {
      std::uint64_t as_of = 0;
      FUZZ_CHECK(!obj["asOfSeq"].get_uint64().get(as_of), "a snapshot without asOfSeq");
      FUZZ_CHECK(as_of >= last_seq_, "a snapshot (as of %llu) older than an event sent (%llu)",
                 static_cast<unsigned long long>(as_of), static_cast<unsigned long long>(last_seq_));
      last_seq_ = as_of;
    } else if (type == "slot" || type == "booking") {
      std::uint64_t seq = 0;
      FUZZ_CHECK(!obj["seq"].get_uint64().get(seq), "an event without seq");
      FUZZ_CHECK(seq > last_seq_, "event seq %llu after %llu", static_cast<unsigned long long>(seq),
                 static_cast<unsigned long long>(last_seq_));
      last_seq_ = seq;
    } else {
      FUZZ_CHECK(type == "error" || type == "resync_required", "unknown message type %.*s",
                 static_cast<int>(type.size()), type.data());
    }
  }

  FeedSession& feed_;
  std::string message_;
  std::uint64_t last_seq_ = 0;
};

// A write that changes slots, so that batches reach the feed.
void write_something(fuzz::FuzzWorld& world, std::uint8_t pick) {
  const int slot = 1 + pick % 8;
  std::string target, body;
  switch ((pick >> 3) % 4) {
    case 0: {
      const int day = 10 + pick % 16;  // a fresh time, so most of these succeed
      body = "{\"doctorId\":" + std::to_string(1 + (pick >> 5) % 2) + ",\"start\":\"2031-02-" +
             std::to_string(day) + "T08:00:00Z\",\"end\":\"2031-02-" + std::to_string(day) +
             "T08:30:00Z\"}";
      world.call("POST", "/slots", body);
      return;
    }
    case 1:
      body = "{\"slotId\":" + std::to_string(slot) + ",\"patientName\":\"P\"}";
      world.call("POST", "/booking", body, /*admin=*/false);
      return;
    case 2:
      target = "/booking/" + std::to_string(1 + pick % 4) + ((pick & 0x20) ? "/confirm" : "/cancel");
      world.call("POST", target, "");
      return;
    default:
      target = "/slots/" + std::to_string(slot);
      world.call("DELETE", target, "");
      return;
  }
}

void deliver(fuzz::FuzzWorld& world, FeedSession& feed) {
  for (const auto& batch : world.take_batches()) {
    feed.on_batch(render_batch(batch->changes, world.sequencer().reads()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzWorld& world = fuzz::FuzzWorld::get();
  world.take_batches();  // older batches belong to earlier inputs
  FeedLimits limits;
  limits.max_queue_bytes = 2048;
  limits.max_catch_up = 64;
  limits.page_slots = 2;
  limits.page_events = 3;
  FeedSession feed(world.sequencer(), limits);
  FeedChecker checker(feed);
  Input in(data, size);
  int ops = 0;
  while (!in.empty() && ++ops <= 64 && !feed.slow()) {
    switch (in.byte() % 4) {
      case 0: feed.on_message(in.bytes(in.byte())); break;
      case 1: checker.drain(1 + in.byte() % 16); break;
      case 2:
        write_something(world, in.byte());
        deliver(world, feed);
        break;
      default: deliver(world, feed); break;
    }
  }
  // The socket drains: everything queued comes out, and the last message is whole.
  bool more = true;
  for (int i = 0; i < 10'000 && more; ++i) more = checker.drain(16);
  FUZZ_CHECK(more || feed.slow() || !checker.mid_message(), "the feed stopped inside a message");
  world.end_input();
  return 0;
}
