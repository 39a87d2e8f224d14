// sequencer/ — the one writer thread of slotd.
//
// Owns the engine. Takes commands from a bounded queue, decides/applies a batch in
// order, appends all the batch's events to the journal as one write with one sync
// (group commit), and only then publishes the durable state to readers and completes
// the callers. It also issues ExpireDue from its own clock. May include engine/ and
// journal/; no Beast, no sockets: completions must not block.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.hpp"
#include "journal/codec.hpp"
#include "journal/journal.hpp"

namespace slotd {

struct CommandResult {
  Rejection rejection = Rejection::none;
  std::uint64_t seq = 0;      // seq of the command's last event; the last durable seq if none
  TimeMs decided_at_ms = 0;   // the sequencer's clock when it decided
  std::vector<Event> events;  // what the command did (empty when refused)
};

// Called on the sequencer thread once the result is durable. Must be quick and must not
// block (post to an io executor).
using Completion = std::function<void(CommandResult&&)>;

struct Submission {
  Command command;
  Actor actor = Actor::system;
  std::uint64_t request_id = 0;
  Completion done;
};

struct SequencerConfig {
  EngineConfig engine;
  std::size_t queue_capacity = 65'536;
  std::size_t max_batch = 4'096;  // commands per group commit
  std::chrono::milliseconds expiry_interval{100};
  // The sequencer's clock (ms since epoch); tests inject their own.
  std::function<TimeMs()> clock;
  // Called when the journal cannot write or sync: no reply may go out, so the default
  // logs and exits the process non-zero; recovery replays the journal.
  std::function<void(const std::string&)> on_journal_failure;
  // RocksDB Env for the journal (tests inject faults); nullptr = the default.
  rocksdb::Env* journal_env = nullptr;
};

// Counters for /metrics; written by the sequencer thread, read anywhere.
struct SequencerStats {
  std::atomic<std::uint64_t> batches{0};  // group commits: one journal append + sync each
  std::atomic<std::uint64_t> commands{0};
  std::atomic<std::uint64_t> rejections{0};
  std::atomic<std::uint64_t> events{0};
  std::atomic<std::uint64_t> expired{0};
  std::atomic<std::uint64_t> queue_full{0};
  std::atomic<std::uint64_t> journal_append_ns{0};
  std::atomic<std::uint64_t> replayed_events{0};
};

// The durable state, for readers: a second engine that sees only synced events.
class ReadModel {
 public:
  // Runs f(engine, as_of_seq) under a shared lock: copy out what you need, format later.
  template <class F>
  auto read(F&& f) const {
    std::shared_lock lock(mutex_);
    return f(static_cast<const Engine&>(engine_), as_of_seq_);
  }

 private:
  friend class Sequencer;
  mutable std::shared_mutex mutex_;
  Engine engine_;
  std::uint64_t as_of_seq_ = 0;
};

class Sequencer {
 public:
  // Opens the journal under data_dir/journal and replays it into the engine.
  [[nodiscard]] static JournalStatus open(const std::string& data_dir, SequencerConfig config,
                                          std::unique_ptr<Sequencer>& out);
  ~Sequencer();
  Sequencer(const Sequencer&) = delete;
  Sequencer& operator=(const Sequencer&) = delete;

  void start();
  // Stops taking commands, completes everything already queued, joins the thread.
  void stop();

  // False when the queue is full or the sequencer is stopping: answer 503, do not wait.
  [[nodiscard]] bool submit(Submission&& submission);

  // Submits and blocks the calling (non-io) thread until the result is durable.
  [[nodiscard]] CommandResult execute(Command command, Actor actor = Actor::admin);

  const ReadModel& reads() const { return reads_; }

  // Durable journal records from from_seq on (for audit and catch-up); any thread.
  [[nodiscard]] JournalStatus read_journal(
      std::uint64_t from_seq, std::uint64_t limit,
      const std::function<bool(const JournalRecord&)>& visit) const {
    return journal_->read(from_seq, limit, visit);
  }
  const SequencerStats& stats() const { return stats_; }
  std::uint64_t durable_seq() const { return durable_seq_.load(std::memory_order_acquire); }
  std::size_t queue_depth() const;
  const SequencerConfig& config() const { return config_; }

  // Observers of each durable batch (e.g. the WebSocket hub), called on the sequencer
  // thread after the sync and before completions. Register before start().
  using DurableObserver = std::function<void(std::span<const JournalRecord>, const Engine&)>;
  void add_observer(DurableObserver observer) { observers_.push_back(std::move(observer)); }

 private:
  Sequencer(SequencerConfig config, std::unique_ptr<Journal> journal);
  void run();
  void process(std::vector<Submission>& batch);

  SequencerConfig config_;
  std::unique_ptr<Journal> journal_;
  Engine engine_;  // owned by the sequencer thread once started
  ReadModel reads_;
  SequencerStats stats_;
  std::vector<DurableObserver> observers_;

  std::uint64_t next_seq_ = 1;
  std::atomic<std::uint64_t> durable_seq_{0};
  TimeMs next_expiry_ms_ = 0;

  mutable std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<Submission> queue_;
  bool stopping_ = false;
  std::thread thread_;

  // Scratch buffers reused across batches to keep the hot path allocation-light.
  std::vector<JournalRecord> records_;
  std::vector<Event> scratch_;
};

}  // namespace slotd
