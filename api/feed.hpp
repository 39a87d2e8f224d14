// The live feed behind GET /ws, without Beast: what a subscription selects, the JSON of
// feed messages, and the hub the sequencer publishes each durable batch to. server.cpp
// owns the WebSocket sessions; a session is a FeedSubscriber.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "journal/codec.hpp"

namespace slotd {

// What a client subscribed to: some doctors, or every doctor of a clinic.
struct Subscription {
  std::vector<Id> doctor_ids;  // sorted
  std::optional<Id> clinic_id;
  bool matches(Id doctor_id, Id clinic_id) const;
};

// One durable event as the feed shows it (only events that change a slot).
struct FeedEvent {
  std::uint64_t seq = 0;
  Id doctor_id = 0;
  Id clinic_id = 0;
  std::shared_ptr<const std::string> json;
};
using FeedBatch = std::vector<FeedEvent>;

// The feed message of a record, or nothing for records that change no slot. `state` must
// know the slot (slots are never removed, and their times and doctor never change).
std::optional<FeedEvent> feed_event(const JournalRecord& record, const Engine& state);

// {"type":"snapshot","asOfSeq","slots":[…]} of every slot the subscription selects.
std::string snapshot_message(const Engine& state, std::uint64_t as_of_seq,
                             const Subscription& subscription);

class FeedSubscriber {
 public:
  virtual ~FeedSubscriber() = default;
  // Called on the sequencer thread: must only hand the batch to the subscriber's own
  // executor, never write to a socket.
  virtual void deliver(std::shared_ptr<const FeedBatch> batch) = 0;
};

class FeedHub {
 public:
  void add(const std::shared_ptr<FeedSubscriber>& subscriber);
  // Renders the batch's feed events once and hands them to every live subscriber. The
  // subscriber list is copied under the lock and delivered to outside it.
  void publish(std::span<const JournalRecord> records, const Engine& state);
  std::size_t subscribers() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<FeedSubscriber>> subscribers_;
};

}  // namespace slotd
