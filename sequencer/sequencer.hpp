// sequencer/ — the one writer of slotd, as a two-stage pipeline.
//
// Owns the engine and the read store. Stage 1, the sequencer thread, takes commands from a
// bounded queue and decides/applies a batch in order; stage 2, the journal thread, appends
// the events of every batch decided so far to the journal as one write with one sync (group
// commit), then publishes the durable state to readers and completes the callers. Stage 1
// decides batch N+1 (and more) while stage 2 syncs batch N; completions and publication
// happen strictly in seq order, each only after its own batch (and so every earlier one) is
// durable. Stage 1 also issues ExpireDue from its own clock, and starts snapshots
// (snapshots/) at batch boundaries. May include engine/, journal/ and snapshots/; no Beast,
// no sockets: completions must not block.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.hpp"
#include "journal/codec.hpp"
#include "journal/journal.hpp"
#include "sequencer/read_store.hpp"
#include "snapshots/snapshot_store.hpp"
#include "snapshots/snapshotter.hpp"

namespace rocksdb {
class FileSystem;
}

namespace slotd {

// The outcome of one submitted command, inside its batch.
struct CommandOutcome {
  Rejection rejection = Rejection::none;
  std::uint32_t first = 0, last = 0;  // its events: records[first, last) of the batch
  std::uint64_t seq = 0;  // seq of its last event; the last durable seq if it has none
  // For duplicate_request: what the first request with this Idempotency-Key did.
  RememberedRequest replayed;
  std::uint64_t tag = 0;  // the submitter's own reference (Submission::tag)
};

// A durable batch: its records and the outcome of each command, in submission order.
struct BatchResults {
  TimeMs decided_at_ms = 0;
  std::vector<JournalRecord> records;
  std::vector<CommandOutcome> outcomes;
  std::vector<SlotChange> changes;  // what the batch did to slots, for the live feed
};

// Receives results, e.g. one io thread of the server. complete() is called on the journal
// thread once per durable batch with the indexes (into batch->outcomes) of this target's
// submissions, in order; it must not block (post to the owning thread).
class CompletionTarget {
 public:
  virtual ~CompletionTarget() = default;
  virtual void complete(std::shared_ptr<const BatchResults> batch,
                        std::vector<std::uint32_t> indexes) = 0;
};

// For tools and tests: a result with its own copy of the events.
struct CommandResult {
  Rejection rejection = Rejection::none;
  std::uint64_t seq = 0;
  TimeMs decided_at_ms = 0;
  std::vector<Event> events;
  RememberedRequest replayed;
};
using Completion = std::function<void(CommandResult&&)>;

struct Submission {
  Command command;
  Actor actor = Actor::system;
  std::uint64_t request_id = 0;
  // Either a target (the fast path: one post per target per batch) or a function called
  // on the journal thread; neither = nobody waits.
  CompletionTarget* target = nullptr;
  std::uint64_t tag = 0;
  Completion done;
};

struct SequencerConfig {
  EngineConfig engine;
  std::size_t queue_capacity = 65'536;
  std::size_t max_batch = 4'096;  // commands per group commit
  std::chrono::milliseconds expiry_interval{100};
  // The sequencer's clock (ms since epoch); tests inject their own. Engine time never goes
  // backwards: a step back of this clock is held at the last time used.
  std::function<TimeMs()> clock;
  // Called when the journal cannot write or sync: no reply may go out, so the default
  // logs and exits the process non-zero; recovery replays the journal.
  std::function<void(const std::string&)> on_journal_failure;
  // RocksDB Env for the journal (tests inject faults); nullptr = the default.
  rocksdb::Env* journal_env = nullptr;
  // Snapshots (DATA_DIR/snapshots): taken when `snapshot_every` events (0 = never by count)
  // or `snapshot_interval` (0 = never by time) have passed since the last one, and by
  // write_final_snapshot(); the newest `snapshots_kept` are kept.
  std::uint64_t snapshot_every = 1'000'000;
  std::chrono::milliseconds snapshot_interval{0};
  std::size_t snapshots_kept = 3;
  // Engine and read-side chunks on transparent huge pages (process-wide, from open() on):
  // the fork() of a snapshot then copies far fewer page-table entries. false leaves the
  // chunks on the heap (bench/recovery_bench --heap-chunks compares the two).
  bool huge_page_chunks = true;
  // RocksDB's flush and compaction threads under SCHED_IDLE (JournalOptions::
  // idle_background_threads); false leaves them at normal priority.
  bool journal_background_idle = true;
  // File system of the snapshot files (tests inject faults); nullptr = the default.
  std::shared_ptr<rocksdb::FileSystem> snapshot_fs;
  // Start-up and snapshot log lines; default: stdout, prefixed "slotd: ".
  std::function<void(const std::string&)> log;
  // Cluster mode (cluster/): called on the journal thread with each decided batch before
  // the local journal append; the batch counts as durable only once it returns ok. An
  // error is a journal failure (on_journal_failure). Empty = single-node mode.
  std::function<JournalStatus(std::span<const JournalRecord>)> replicate;
};

// How start-up rebuilt the state.
struct RecoveryInfo {
  std::uint64_t snapshot_seq = 0;  // 0 = no snapshot was used
  std::string snapshot_path;
  std::uint64_t replayed_events = 0;  // journal records applied after the snapshot
  // Where the time went (wall, ms): choosing and loading the snapshot (checksum, decode,
  // state hash and invariants), applying the journal tail, then the invariant check and
  // the read side's load.
  double snapshot_ms = 0;
  double tail_ms = 0;
  double checks_ms = 0;
};

// Counters for /metrics and /admin/stats; written by the pipeline, read anywhere.
struct SequencerStats {
  std::atomic<std::uint64_t> batches{0};  // group commits: one journal append + sync each
  std::atomic<std::uint64_t> commands{0};
  std::atomic<std::uint64_t> rejections{0};
  std::atomic<std::uint64_t> events{0};
  std::atomic<std::uint64_t> expired{0};
  std::atomic<std::uint64_t> queue_full{0};
  std::atomic<std::uint64_t> journal_append_ns{0};
  std::atomic<std::uint64_t> last_batch_commands{0};
  std::atomic<std::uint64_t> last_append_ns{0};
  std::atomic<std::uint64_t> replayed_events{0};
  std::atomic<std::uint64_t> clock_steps_back{0};  // times the clock went backwards
};

class Sequencer {
 public:
  // Opens the journal under data_dir/journal, restores the newest valid snapshot under
  // data_dir/snapshots (if any) and replays the journal tail after it into the engine.
  [[nodiscard]] static JournalStatus open(const std::string& data_dir, SequencerConfig config,
                                          std::unique_ptr<Sequencer>& out);
  ~Sequencer();
  Sequencer(const Sequencer&) = delete;
  Sequencer& operator=(const Sequencer&) = delete;

  void start();
  // Stops taking commands, completes everything already queued, joins the threads, and
  // gives up a snapshot still being taken.
  void stop();
  // After stop(): a snapshot of the final state in this thread, unless the newest one is
  // already at the last seq (graceful shutdown).
  [[nodiscard]] SnapshotStatus write_final_snapshot();

  // Instead of start(): runs what is queued through both stages on the calling thread
  // (decide, journal, publish, observers, completions), batch by batch until the queue is
  // empty — a sequencer without threads, so fuzzing and tests are deterministic and may look
  // at engine() between calls. ExpireDue is issued as in start()'s threads, from the clock.
  // Returns false once the journal has failed (on_journal_failure was called).
  [[nodiscard]] bool run_queued();

  // False when the queue is full or the sequencer is stopping: answer 503, do not wait.
  [[nodiscard]] bool submit(Submission&& submission);

  // Cluster followers: a batch decided by the leader (seqs must continue the engine's),
  // applied as replay does, then journaled locally, published and fed like any batch, but
  // never passed to `replicate`. False when stopping.
  [[nodiscard]] bool submit_replicated(std::vector<JournalRecord>&& records);
  // Whether this sequencer decides on its own (ExpireDue from its clock): a cluster
  // follower does not, its leader does. Any thread; true by default.
  void set_deciding(bool deciding) { deciding_.store(deciding, std::memory_order_release); }

  // Submits and blocks the calling (non-io) thread until the result is durable.
  [[nodiscard]] CommandResult execute(Command command, Actor actor = Actor::admin);

  // The durable state for readers (any thread, no lock the writer waits for).
  const ReadStore& reads() const { return *reads_; }

  // Durable journal records from from_seq on (for audit and catch-up); any thread. Records
  // beyond reads().as_of_seq() may be durable but not yet published.
  [[nodiscard]] JournalStatus read_journal(
      std::uint64_t from_seq, std::uint64_t limit,
      const std::function<bool(const JournalRecord&)>& visit) const {
    return journal_->read(from_seq, limit, visit);
  }
  // Consumer cursors (e.g. webhook delivery positions) stored in the journal's database,
  // synced; any thread (Journal::put_cursor). Not events: they never reach the engine.
  [[nodiscard]] JournalStatus put_cursor(std::uint64_t consumer_id, const JournalCursor& cursor) {
    return journal_->put_cursor(consumer_id, cursor);
  }
  [[nodiscard]] JournalStatus get_cursor(std::uint64_t consumer_id,
                                         std::optional<JournalCursor>& out) const {
    return journal_->get_cursor(consumer_id, out);
  }
  [[nodiscard]] JournalStatus delete_cursor(std::uint64_t consumer_id) {
    return journal_->delete_cursor(consumer_id);
  }
  // The published records naming one booking or slot (the journal's entity index), from
  // from_seq on, in seq order, at most `limit` (0 = all); any thread.
  [[nodiscard]] JournalStatus read_history(
      EntityKind kind, Id id, std::uint64_t from_seq, std::uint64_t limit,
      const std::function<bool(const JournalRecord&)>& visit) const {
    return journal_->history(kind, id, from_seq, reads_->as_of_seq(), limit, visit);
  }
  const SequencerStats& stats() const { return stats_; }
  const SnapshotterStats& snapshot_stats() const { return snapshotter_->stats(); }
  bool snapshot_in_flight() const { return snapshotter_->busy(); }
  const RecoveryInfo& recovery() const { return recovery_; }
  // The last seq synced to disk and published to readers.
  std::uint64_t durable_seq() const { return durable_seq_.load(std::memory_order_acquire); }
  // The last seq decided (or applied from a leader) and handed to the journal stage; ahead
  // of durable_seq() while a batch is being replicated or synced.
  std::uint64_t decided_seq() const { return decided_seq_.load(std::memory_order_acquire); }
  std::size_t queue_depth() const;
  const SequencerConfig& config() const { return config_; }

  // Observers of each durable batch (e.g. the WebSocket hub), called on the journal thread
  // after the read store has published it and before completions. Register before start().
  using DurableObserver = std::function<void(const std::shared_ptr<const BatchResults>&)>;
  void add_observer(DurableObserver observer) { observers_.push_back(std::move(observer)); }

  // The engine, for start-up tasks before start() and for tests after stop().
  const Engine& engine() const { return engine_; }

 private:
  struct Decided;
  Sequencer(SequencerConfig config, std::unique_ptr<Journal> journal);
  void run_decide();
  void run_journal();
  // Stage 2 for consecutive batches: one append and one sync for all, then each batch is
  // published and completed in order; false if the journal failed (nothing is published).
  bool write_and_finish(std::span<Decided> group);
  JournalStatus replicate_group(std::span<Decided> group);
  std::shared_ptr<BatchResults> decide_batch(std::vector<Submission>& batch,
                                             std::vector<Submission>& waiting);
  std::shared_ptr<BatchResults> apply_replicated(std::deque<std::vector<JournalRecord>>& batches);
  bool hand_off(Decided&& decided);
  void finish_batch(const std::shared_ptr<BatchResults>& batch, std::vector<Submission>& waiting);
  TimeMs now_ms();
  void maybe_snapshot();
  bool wait_durable(std::uint64_t seq);

  SequencerConfig config_;
  std::unique_ptr<Journal> journal_;
  Engine engine_;  // owned by the sequencer thread once started
  std::unique_ptr<ReadStore> reads_;
  SequencerStats stats_;
  std::vector<DurableObserver> observers_;

  RecoveryInfo recovery_;
  std::unique_ptr<SnapshotStore> snapshot_store_;
  std::unique_ptr<Snapshotter> snapshotter_;
  // Decide-thread state for snapshots: the last one started, and the latest record time
  // (the engine-time floor a snapshot carries).
  std::uint64_t last_snapshot_seq_ = 0;
  std::chrono::steady_clock::time_point last_snapshot_time_{};
  TimeMs last_record_at_ms_ = 0;
  // Lets a snapshot wait for its seq to be durable.
  std::mutex durable_mutex_;
  std::condition_variable durable_cv_;
  bool journal_dead_ = false;  // guarded by durable_mutex_

  std::uint64_t next_seq_ = 1;
  std::atomic<std::uint64_t> durable_seq_{0};
  std::atomic<std::uint64_t> decided_seq_{0};
  TimeMs next_expiry_ms_ = 0;
  TimeMs last_now_ms_ = 0;

  mutable std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<Submission> queue_;
  std::deque<std::vector<JournalRecord>> replicated_;  // cluster follower: leader's batches
  bool stopping_ = false;
  std::atomic<bool> deciding_{true};
  std::thread decide_thread_;

  // Stage 1 → stage 2: decided batches with the submissions waiting for them. Bounded, so
  // the decide stage cannot run far ahead of the disk; roomy enough that one slow sync does
  // not stop decisions (stage 2 writes all waiting batches with one sync).
  struct Decided {
    std::shared_ptr<BatchResults> results;
    std::vector<Submission> waiting;
    bool replicated = false;  // the leader's batch: already in the cluster's stream
  };
  static constexpr std::size_t kMaxInFlight = 16;
  std::vector<std::span<const JournalRecord>> append_parts_;  // journal thread, reused
  std::vector<JournalRecord> replicate_buffer_;                // journal thread, reused
  std::mutex pipe_mutex_;
  std::condition_variable pipe_cv_;
  std::deque<Decided> pipe_;
  bool decide_done_ = false;
  bool journal_failed_ = false;
  std::thread journal_thread_;
};

}  // namespace slotd
