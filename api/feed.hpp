// api/feed — the live feed protocol behind GET /ws, without sockets.
//
// A client subscribes once ({"op":"subscribe","doctorIds":[…]|"clinicId":N,"fromSeq":N?});
// it then gets a snapshot (or the events it missed, read from the journal), then every
// later durable event of its subscription, in seq order, without gaps or duplicates.
// FeedSession produces the frames to send one at a time, as the socket drains: a snapshot
// or a catch-up is made page by page, never whole, and live batches wait in a queue
// bounded in bytes. server.cpp moves the frames; it decides nothing.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sequencer/sequencer.hpp"

namespace slotd {

// What a client subscribed to: some doctors, or every doctor of a clinic.
struct Subscription {
  std::vector<Id> doctor_ids;  // sorted, unique
  std::optional<Id> clinic_id;
  bool matches(Id doctor_id, Id clinic_id) const;
};

// One durable batch's feed messages, rendered once and shared by every subscriber.
struct RenderedBatch {
  std::uint32_t partition = 0;  // whose seqs and ids these are
  struct Message {
    std::uint64_t seq;
    Id doctor_id, clinic_id;
    std::uint32_t offset, length;  // in bytes
  };
  std::string bytes;
  std::vector<Message> messages;
  std::string_view text(const Message& m) const { return {bytes.data() + m.offset, m.length}; }
};

// {"type":"slot"|"booking","seq","event","slot":{…}(,"booking":{…})} for each change, in the
// current partition's ids (api/partition.hpp).
std::shared_ptr<const RenderedBatch> render_batch(std::span<const SlotChange> changes,
                                                  const ReadStore& reads);
void append_change_json(std::string& out, const SlotChange& change, const ReadStore& reads);

// One frame to send: a whole message, or a fragment of one (fin = its last fragment).
// The bytes stay valid until the next call of next_frame().
struct Frame {
  std::string_view bytes;
  bool fin = true;
};

struct FeedLimits {
  std::size_t max_queue_bytes = 4 << 20;   // live messages waiting for a slow socket
  std::uint64_t max_catch_up = 100'000;    // events a fromSeq may ask for, else resync
  std::size_t page_slots = 512;            // slots per snapshot fragment
  std::size_t page_events = 512;           // journal records read per catch-up step
};

// One partition's sequencer, in a process that serves several.
struct FeedSource {
  std::uint32_t partition = 0;
  const Sequencer* sequencer = nullptr;
};

class FeedSession {
 public:
  // `sequencer` is the home partition's. A process that serves several partitions passes
  // them all (home first, outliving the session): a subscription follows the partition of
  // the first id it names, with that partition's seqs, and names no other partition's ids.
  FeedSession(const Sequencer& sequencer, FeedLimits limits,
              std::span<const FeedSource> partitions = {});

  // A text message from the client (subscribe, or an error reply is queued).
  void on_message(std::string_view text);
  // A durable batch; ignored until subscribed. May make the session slow().
  void on_batch(std::shared_ptr<const RenderedBatch> batch);
  // The next frame to write, or nothing until on_message/on_batch bring more.
  std::optional<Frame> next_frame();
  // Live messages went over the byte limit: close the connection (1008); the client can
  // resume with fromSeq.
  bool slow() const { return slow_; }
  std::size_t queued_bytes() const { return queued_bytes_; }

 private:
  enum class Mode { idle, snapshot, catch_up, live };
  // A batch's messages for this client, one entry per batch (not per message: a shared
  // pointer copy per message and subscriber cost more than the rest of the fan-out).
  struct Queued {
    std::shared_ptr<const RenderedBatch> batch;
    std::vector<std::uint32_t> picks;  // the message indexes to send; empty: all of [next, end)
    std::uint32_t next = 0;            // position in picks, or the message index
    std::uint32_t end = 0;
  };

  void start(Subscription subscription, std::optional<std::uint64_t> from_seq);
  void start_round();
  void queue_error(std::string_view code, std::string_view message);
  std::optional<Frame> snapshot_frame();
  std::optional<Frame> catch_up_frame();
  void go_live();
  void queue_live(const std::shared_ptr<const RenderedBatch>& batch, std::uint64_t after_seq);
  std::vector<Id> subscribed_doctors() const;

  const Sequencer* sequencer_;  // the subscribed partition's
  std::span<const FeedSource> partitions_;
  std::uint32_t partition_;
  FeedLimits limits_;
  Mode mode_ = Mode::idle;
  bool subscribed_ = false;
  bool slow_ = false;
  Subscription subscription_;
  std::deque<std::string> control_;  // errors and resync notices, sent first
  std::string page_;                 // the frame being written (snapshot or catch-up)

  // Snapshot paging: the doctors to show and where we are.
  std::vector<Id> doctors_;
  std::size_t doctor_index_ = 0;
  std::size_t slot_index_ = 0;
  std::shared_ptr<const std::vector<std::uint32_t>> slot_ids_;
  bool snapshot_started_ = false;
  bool first_slot_ = true;
  std::uint64_t snapshot_seq_ = 0;

  // Catch-up from the journal: next seq to read, the published seq this round reads up to,
  // and the live batches that arrived during the round (bounded; else re-read).
  std::uint64_t next_seq_ = 0;
  std::uint64_t round_target_ = 0;
  std::deque<std::shared_ptr<const RenderedBatch>> held_;
  std::size_t held_bytes_ = 0;
  bool held_dropped_ = false;

  // Live.
  std::uint64_t last_sent_seq_ = 0;
  std::deque<Queued> live_;
  std::vector<std::uint32_t> wanted_;  // queue_live's scratch, kept for its capacity
  std::size_t queued_bytes_ = 0;
  std::shared_ptr<const RenderedBatch> writing_;  // keeps the frame's bytes alive
};

}  // namespace slotd
