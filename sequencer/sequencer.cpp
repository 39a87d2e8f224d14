#include "sequencer/sequencer.hpp"

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <unordered_map>
#include <utility>

#include "engine/overloaded.hpp"
#include "sequencer/tail_reader.hpp"
#include "snapshots/huge_page_chunks.hpp"

#include <fmt/format.h>

namespace slotd {
namespace {

TimeMs system_clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

[[noreturn]] void exit_on_journal_failure(const std::string& message) {
  std::fprintf(stderr, "slotd: journal failure, stopping without replying: %s\n",
               message.c_str());
  std::fflush(stderr);
  std::_Exit(70);
}

const IdempotencyKey* idempotency_of(const Command& command) {
  return std::visit(overloaded{
                        [](const BookSlot& c) -> const IdempotencyKey* { return &c.idempotency; },
                        [](const ConfirmBooking& c) -> const IdempotencyKey* { return &c.idempotency; },
                        [](const CancelBooking& c) -> const IdempotencyKey* { return &c.idempotency; },
                        [](const RescheduleBooking& c) -> const IdempotencyKey* { return &c.idempotency; },
                        [](const auto&) -> const IdempotencyKey* { return nullptr; },
                    },
                    command);
}

void log_to_stdout(const std::string& line) {
  std::printf("slotd: %s\n", line.c_str());
  std::fflush(stdout);
}

// The decide and journal threads run under SCHED_BATCH: the same share of the CPU as any
// thread, but a wake-up does not preempt the running thread. An io thread that hands the
// sleeping sequencer a command then goes on reading and parsing the requests already waiting
// instead of being switched out on the spot, and the sequencer takes them all as one batch
// once the io thread waits or another core is free. On this 2-core machine that cut slotd's
// CPU per durable booking by 17-24 % (bench/booking_ab.sh; the figures are in
// bench/results/2026-12-04-sched-batch.txt). Best effort: if the call fails, the thread stays
// SCHED_OTHER, which is only slower. The name shows in top -H, perf and /proc.
void enter_stage_thread(const char* name) {
  sched_param param{};
  (void)sched_setscheduler(0, SCHED_BATCH, &param);  // 0: the calling thread (Linux)
  (void)pthread_setname_np(pthread_self(), name);
}

}  // namespace

Sequencer::Sequencer(SequencerConfig config, std::unique_ptr<Journal> journal)
    : config_(std::move(config)), journal_(std::move(journal)), engine_(config_.engine) {
  if (!config_.clock) config_.clock = system_clock_ms;
  if (!config_.on_journal_failure) config_.on_journal_failure = exit_on_journal_failure;
  if (!config_.log) config_.log = log_to_stdout;
  if (config_.max_batch == 0) config_.max_batch = 1;
}

Sequencer::~Sequencer() { stop(); }

JournalStatus Sequencer::open(const std::string& data_dir, SequencerConfig config,
                              std::unique_ptr<Sequencer>& out) {
  // Before the engine exists: its chunks then sit on huge pages, which keeps the fork() of
  // every snapshot short (snapshots/huge_page_chunks.hpp).
  if (config.huge_page_chunks) use_huge_page_chunks();
  std::unique_ptr<Journal> journal;
  JournalOptions journal_options;
  journal_options.env = config.journal_env;
  journal_options.defer_compactions = true;  // until recovery is done, below
  journal_options.idle_background_threads = config.journal_background_idle;
  JournalStatus status = Journal::open((std::filesystem::path(data_dir) / "journal").string(),
                                       journal, journal_options);
  if (!status) return status;
  std::unique_ptr<Sequencer> seq(new Sequencer(std::move(config), std::move(journal)));
  Sequencer& s = *seq;

  // Recovery: the newest snapshot that verifies and that the journal reaches, then the
  // journal tail after it through apply alone (or the whole journal without a snapshot).
  s.snapshot_store_ = std::make_unique<SnapshotStore>(
      (std::filesystem::path(data_dir) / "snapshots").string(), s.config_.snapshot_fs);
  s.snapshot_store_->remove_temp_files();
  // The tail after the newest snapshot the journal reaches is read on a second thread while
  // that snapshot loads, and while it is applied. If recovery must start elsewhere (that
  // snapshot does not verify), the reader is dropped and the journal read from there.
  std::vector<std::uint64_t> snapshot_seqs;
  std::uint64_t newest = 0;
  if (s.snapshot_store_->list(snapshot_seqs)) {
    for (std::uint64_t seq : snapshot_seqs) {
      if (seq <= s.journal_->last_seq()) {
        newest = seq;
        break;
      }
    }
  }
  using Clock = std::chrono::steady_clock;
  const auto ms_since = [](Clock::time_point from) {
    return std::chrono::duration<double, std::milli>(Clock::now() - from).count();
  };
  auto phase = Clock::now();
  auto tail = std::make_unique<TailReader>(*s.journal_, newest + 1);
  ChosenSnapshot chosen;
  SnapshotStatus restored = choose_snapshot(*s.snapshot_store_, s.journal_->last_seq(),
                                            s.config_.engine, s.engine_, chosen, s.config_.log);
  if (!restored) return JournalStatus::error("snapshots: " + restored.message);
  const std::uint64_t base = chosen.found ? chosen.header.seq : 0;
  std::uint64_t expected = base + 1;
  TimeMs last_at_ms = chosen.found ? chosen.header.time_floor_ms : 0;
  auto apply = [&](const JournalRecord& record) {
    // Journal::read already refuses gaps; this guards the engine's own assumption.
    if (record.seq != expected) return false;
    s.engine_.apply(record.event);
    last_at_ms = std::max(last_at_ms, record.at_ms);
    ++expected;
    return true;
  };
  const double snapshot_ms = ms_since(phase);
  phase = Clock::now();
  if (tail->from_seq() != expected) tail.reset();
  if (tail) {
    bool in_order = true;
    for (auto block = tail->next(); in_order && !block.empty(); block = tail->next()) {
      for (const JournalRecord& record : block) {
        if (!(in_order = apply(record))) break;
      }
      tail->give_back(std::move(block));
    }
    status = in_order ? tail->status() : JournalStatus{};
    tail.reset();
  } else {
    status = s.journal_->read(expected, 0, apply);
  }
  const double tail_ms = ms_since(phase);
  phase = Clock::now();
  if (!status) return status;
  if (expected - 1 != s.journal_->last_seq()) {
    return JournalStatus::error("journal replay stopped at seq " + std::to_string(expected) +
                                " before the last seq " +
                                std::to_string(s.journal_->last_seq()));
  }
  // The invariant check and the read side's load only read the recovered state: side by
  // side (on a second thread if one can be had). Nothing is handed out before both are done.
  auto broken = std::async(std::launch::async | std::launch::deferred,
                           [&s] { return s.engine_.broken_invariant(); });
  s.recovery_ = RecoveryInfo{base, chosen.path, expected - 1 - base};
  s.next_seq_ = expected;
  s.last_now_ms_ = last_at_ms;
  s.last_record_at_ms_ = last_at_ms;
  s.last_snapshot_seq_ = base;
  s.last_snapshot_time_ = std::chrono::steady_clock::now();
  s.durable_seq_.store(expected - 1);
  s.decided_seq_.store(expected - 1);
  s.stats_.replayed_events.store(expected - 1 - base);
  s.snapshotter_ = std::make_unique<Snapshotter>(
      *s.snapshot_store_, s.config_.snapshots_kept,
      [&s](std::uint64_t seq) { return s.wait_durable(seq); }, s.config_.log);
  s.reads_ = std::make_unique<ReadStore>(s.engine_);
  s.reads_->load(s.engine_, expected - 1);
  if (auto what = broken.get()) {
    return JournalStatus::error("state after replay breaks an invariant: " + *what);
  }
  s.recovery_.snapshot_ms = snapshot_ms;
  s.recovery_.tail_ms = tail_ms;
  s.recovery_.checks_ms = ms_since(phase);
  if (JournalStatus on = s.journal_->start_compactions(); !on) return on;
  out = std::move(seq);
  return {};
}

void Sequencer::start() {
  if (decide_thread_.joinable()) return;
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = false;
  }
  {
    std::lock_guard lock(pipe_mutex_);
    decide_done_ = false;
  }
  next_expiry_ms_ = now_ms();
  journal_thread_ = std::thread([this] {
    enter_stage_thread("slotd-journal");
    run_journal();
  });
  decide_thread_ = std::thread([this] {
    enter_stage_thread("slotd-decide");
    run_decide();
  });
}

void Sequencer::stop() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (decide_thread_.joinable()) decide_thread_.join();
  if (journal_thread_.joinable()) journal_thread_.join();
  // The final state supersedes a snapshot still being taken (write_final_snapshot).
  if (snapshotter_) snapshotter_->cancel();
}

SnapshotStatus Sequencer::write_final_snapshot() {
  const std::uint64_t seq = next_seq_ - 1;
  // Covered only by a snapshot on disk: the one recovery started from, or one published
  // since. last_snapshot_seq_ counts started ones, and stop() gives up a running one.
  const std::uint64_t on_disk =
      std::max(recovery_.snapshot_seq, snapshotter_->stats().last_seq.load());
  if (seq == 0 || seq <= on_disk) return {};
  {
    std::lock_guard lock(durable_mutex_);
    if (journal_dead_) return SnapshotStatus::error("the journal failed: no final snapshot");
  }
  SnapshotStatus s = snapshotter_->take_now(engine_, seq, last_record_at_ms_);
  if (s) last_snapshot_seq_ = seq;
  return s;
}

bool Sequencer::wait_durable(std::uint64_t seq) {
  std::unique_lock lock(durable_mutex_);
  durable_cv_.wait(lock, [&] { return durable_seq() >= seq || journal_dead_; });
  return durable_seq() >= seq;
}

// At a batch boundary of the decide thread: the engine is at next_seq_ - 1.
void Sequencer::maybe_snapshot() {
  const std::uint64_t seq = next_seq_ - 1;
  if (seq <= last_snapshot_seq_ || snapshotter_->busy()) return;
  const auto now = std::chrono::steady_clock::now();
  const bool by_count =
      config_.snapshot_every > 0 && seq - last_snapshot_seq_ >= config_.snapshot_every;
  const bool by_time = config_.snapshot_interval.count() > 0 &&
                       now - last_snapshot_time_ >= config_.snapshot_interval;
  if (!by_count && !by_time) return;
  // A failed start (logged) is retried after another interval or count, not every batch.
  last_snapshot_seq_ = seq;
  last_snapshot_time_ = now;
  (void)snapshotter_->start(engine_, seq, last_record_at_ms_);
}

bool Sequencer::submit(Submission&& submission) {
  bool was_empty;
  {
    std::lock_guard lock(queue_mutex_);
    if (stopping_ || queue_.size() >= config_.queue_capacity) {
      stats_.queue_full.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    was_empty = queue_.empty();
    queue_.push_back(std::move(submission));
  }
  // The sequencer only sleeps on an empty queue, so only that transition needs a wake-up.
  if (was_empty) queue_cv_.notify_one();
  return true;
}

bool Sequencer::submit_replicated(std::vector<JournalRecord>&& records) {
  {
    std::lock_guard lock(queue_mutex_);
    if (stopping_) return false;
    replicated_.push_back(std::move(records));
  }
  queue_cv_.notify_one();
  return true;
}

CommandResult Sequencer::execute(Command command, Actor actor) {
  std::promise<CommandResult> promise;
  auto future = promise.get_future();
  Submission s;
  s.command = std::move(command);
  s.actor = actor;
  s.done = [&promise](CommandResult&& r) { promise.set_value(std::move(r)); };
  while (!submit(std::move(s))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return future.get();
}

std::size_t Sequencer::queue_depth() const {
  std::lock_guard lock(queue_mutex_);
  return queue_.size();
}

// The engine's clock never goes backwards: a wall-clock step back holds time still until
// the clock catches up (a late confirm must not pass, an expiry must not be delayed).
TimeMs Sequencer::now_ms() {
  TimeMs t = config_.clock();
  if (t < last_now_ms_) {
    stats_.clock_steps_back.fetch_add(1, std::memory_order_relaxed);
    t = last_now_ms_;
  }
  last_now_ms_ = t;
  return t;
}

// ---- stage 1: decide ------------------------------------------------------------------

void Sequencer::run_decide() {
  std::vector<Submission> batch;
  batch.reserve(config_.max_batch);
  std::deque<std::vector<JournalRecord>> replicated;
  for (;;) {
    bool stop_now = false;
    {
      std::unique_lock lock(queue_mutex_);
      // Waits on the steady clock: a wall-clock step cannot stall expiry.
      queue_cv_.wait_for(lock, config_.expiry_interval,
                         [&] { return !queue_.empty() || !replicated_.empty() || stopping_; });
      stop_now = queue_.empty() && replicated_.empty() && stopping_;
      std::size_t n = std::min(queue_.size(), config_.max_batch);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      replicated.swap(replicated_);
    }
    if (stop_now) break;
    // The leader's batches come before anything decided here, which must follow them.
    if (!replicated.empty()) {
      Decided applied;
      applied.replicated = true;
      applied.results = apply_replicated(replicated);
      replicated.clear();
      if (applied.results) {
        if (!hand_off(std::move(applied))) return;
      } else {
        std::lock_guard lock(pipe_mutex_);
        if (journal_failed_) return;
      }
    }
    Decided decided;
    decided.results = decide_batch(batch, decided.waiting);
    batch.clear();
    if (decided.results && !hand_off(std::move(decided))) return;
    // After the hand-off, so the journal stage syncs while this thread forks.
    maybe_snapshot();
  }
  std::lock_guard lock(pipe_mutex_);
  decide_done_ = true;
  pipe_cv_.notify_all();
}

// False once the journal stage failed: nothing more may be written or answered.
bool Sequencer::hand_off(Decided&& decided) {
  std::unique_lock lock(pipe_mutex_);
  pipe_cv_.wait(lock, [&] { return pipe_.size() < kMaxInFlight || journal_failed_; });
  if (journal_failed_) return false;
  if (!decided.results->records.empty()) {
    decided_seq_.store(decided.results->records.back().seq, std::memory_order_release);
  }
  pipe_.push_back(std::move(decided));
  pipe_cv_.notify_all();
  return true;
}

// A follower replays its leader's batches as recovery does: apply alone, seqs checked.
std::shared_ptr<BatchResults> Sequencer::apply_replicated(
    std::deque<std::vector<JournalRecord>>& batches) {
  auto results = std::make_shared<BatchResults>();
  for (std::vector<JournalRecord>& records : batches) {
    for (JournalRecord& r : records) {
      if (r.seq != next_seq_) {
        // The engine cannot follow its leader any more: batches already handed off are
        // finished (they are the leader's too), nothing after them is.
        {
          std::lock_guard lock(pipe_mutex_);
          journal_failed_ = true;
          decide_done_ = true;
          pipe_cv_.notify_all();
        }
        // A replicated record at a seq this node decided itself but has not made durable:
        // it led, was deposed, and its own batch can never be published (the stream holds
        // the new leader's). That is a fence (exit 75), not a broken journal.
        const bool deposed = r.seq < next_seq_ && r.seq > durable_seq();
        config_.on_journal_failure(fmt::format(
            "{}replicated record seq {} does not follow the local seq {}",
            deposed ? "fenced: this node's own undurable batch conflicts with the new leader's; " : "", r.seq,
            next_seq_ - 1));
        return nullptr;
      }
      engine_.apply(r.event);
      ++next_seq_;
      last_record_at_ms_ = std::max(last_record_at_ms_, r.at_ms);
      last_now_ms_ = std::max(last_now_ms_, r.at_ms);
      results->decided_at_ms = r.at_ms;
      results->records.push_back(std::move(r));
    }
  }
  if (results->records.empty()) return nullptr;
  return results;
}

std::shared_ptr<BatchResults> Sequencer::decide_batch(std::vector<Submission>& batch,
                                                      std::vector<Submission>& waiting) {
  const TimeMs now = now_ms();
  auto results = std::make_shared<BatchResults>();
  results->decided_at_ms = now;
  results->outcomes.reserve(batch.size());
  std::vector<Event> scratch;

  auto run_command = [&](const Command& command, Actor actor, std::uint64_t request_id) {
    scratch.clear();
    CommandOutcome o;
    o.rejection = engine_.decide(command, now, scratch);
    o.first = static_cast<std::uint32_t>(results->records.size());
    if (o.rejection == Rejection::none) {
      if (!scratch.empty()) last_record_at_ms_ = std::max(last_record_at_ms_, now);
      for (Event& e : scratch) {
        engine_.apply(e);
        results->records.push_back(JournalRecord{next_seq_++, now, request_id, actor, std::move(e)});
      }
    } else if (o.rejection == Rejection::duplicate_request) {
      if (const IdempotencyKey* key = idempotency_of(command)) {
        if (const RememberedRequest* done = engine_.remembered(key->key)) o.replayed = *done;
      }
    }
    o.last = static_cast<std::uint32_t>(results->records.size());
    // A command without events answers with the last seq it saw; it is durable by the
    // time the answer goes out (this batch is synced after every earlier one).
    o.seq = next_seq_ - 1;
    return o;
  };

  // Expiry is an ordinary journaled command, issued from the sequencer's own clock.
  if (now >= next_expiry_ms_ && deciding_.load(std::memory_order_acquire)) {
    next_expiry_ms_ = now + config_.expiry_interval.count();
    CommandOutcome o = run_command(ExpireDue{}, Actor::system, 0);
    std::uint64_t expired = 0;
    for (std::uint32_t i = o.first; i < o.last; ++i) {
      expired += std::holds_alternative<BookingExpired>(results->records[i].event);
    }
    stats_.expired.fetch_add(expired, std::memory_order_relaxed);
  }
  for (Submission& s : batch) {
    CommandOutcome o = run_command(s.command, s.actor, s.request_id);
    o.tag = s.tag;
    results->outcomes.push_back(o);
    waiting.push_back(std::move(s));
  }
  if (results->records.empty() && results->outcomes.empty()) return nullptr;
  return results;
}

// ---- stage 2: journal, publish, complete --------------------------------------------

void Sequencer::run_journal() {
  std::vector<Decided> group;
  for (;;) {
    {
      std::unique_lock lock(pipe_mutex_);
      pipe_cv_.wait(lock, [&] { return !pipe_.empty() || decide_done_; });
      if (pipe_.empty()) return;  // decide_done_ and nothing left
      // Every batch decided while the previous sync ran goes into one write and one sync:
      // the group grows with the load instead of staying at what one wake-up collected.
      while (!pipe_.empty()) {
        group.push_back(std::move(pipe_.front()));
        pipe_.pop_front();
      }
      pipe_cv_.notify_all();
    }
    if (!write_and_finish(group)) return;
    group.clear();
  }
}

// Cluster mode: the group's batches decided here go to the stream as one message (their
// records are consecutive), before the local append; batches that came from the stream don't.
JournalStatus Sequencer::replicate_group(std::span<Decided> group) {
  if (!config_.replicate) return {};
  std::size_t own = 0;
  const Decided* only = nullptr;
  for (const Decided& decided : group) {
    if (decided.replicated || decided.results->records.empty()) continue;
    ++own;
    only = &decided;
  }
  if (own == 0) return {};
  if (own == 1) return config_.replicate(only->results->records);
  std::vector<JournalRecord>& records = replicate_buffer_;
  records.clear();
  for (const Decided& decided : group) {
    if (decided.replicated) continue;
    records.insert(records.end(), decided.results->records.begin(), decided.results->records.end());
  }
  return config_.replicate(records);
}

bool Sequencer::write_and_finish(std::span<Decided> group) {
  std::vector<std::span<const JournalRecord>>& parts = append_parts_;
  parts.clear();
  for (const Decided& decided : group) {
    if (!decided.results->records.empty()) parts.emplace_back(decided.results->records);
  }
  if (!parts.empty()) {
    auto t0 = std::chrono::steady_clock::now();
    JournalStatus status = replicate_group(group);
    if (status) status = journal_->append_parts(parts);
    if (!status) {
      // Nothing of this batch, nor of any batch decided after it, may be seen by anyone.
      {
        std::lock_guard lock(pipe_mutex_);
        journal_failed_ = true;
        pipe_.clear();
        pipe_cv_.notify_all();
      }
      {
        std::lock_guard lock(durable_mutex_);
        journal_dead_ = true;
      }
      durable_cv_.notify_all();
      config_.on_journal_failure(status.message);
      return false;
    }
    auto ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             std::chrono::steady_clock::now() - t0)
                                             .count());
    stats_.journal_append_ns.fetch_add(ns, std::memory_order_relaxed);
    stats_.last_append_ns.store(ns, std::memory_order_relaxed);
    stats_.batches.fetch_add(1, std::memory_order_relaxed);
  }
  // In seq order, each batch as it was decided: readers, observers and callers see the
  // same batches as with one sync per batch.
  for (Decided& decided : group) {
    BatchResults& results = *decided.results;
    if (!results.records.empty()) {
      reads_->publish(results.records, results.changes);
      {
        // Under the lock, so a snapshot waiting for this seq cannot miss the wake-up.
        std::lock_guard lock(durable_mutex_);
        durable_seq_.store(results.records.back().seq, std::memory_order_release);
      }
      durable_cv_.notify_all();
    }
    finish_batch(decided.results, decided.waiting);
  }
  return true;
}

bool Sequencer::run_queued() {
  std::vector<Submission> batch;
  for (;;) {
    {
      std::lock_guard lock(pipe_mutex_);
      if (journal_failed_) return false;
    }
    {
      std::lock_guard lock(queue_mutex_);
      const std::size_t n = std::min(queue_.size(), config_.max_batch);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Decided decided;
    decided.results = decide_batch(batch, decided.waiting);
    const bool was_empty = batch.empty();
    batch.clear();
    if (decided.results && !decided.results->records.empty()) {
      decided_seq_.store(decided.results->records.back().seq, std::memory_order_release);
    }
    if (decided.results && !write_and_finish(std::span<Decided>(&decided, 1))) return false;
    if (was_empty) return true;  // completions may have queued more: loop until none did
  }
}

void Sequencer::finish_batch(const std::shared_ptr<BatchResults>& batch,
                             std::vector<Submission>& waiting) {
  // Counters first: whoever hears of a result may look at them.
  std::uint64_t rejections = 0;
  for (const CommandOutcome& o : batch->outcomes) {
    rejections += o.rejection != Rejection::none && o.rejection != Rejection::duplicate_request;
  }
  stats_.commands.fetch_add(batch->outcomes.size(), std::memory_order_relaxed);
  stats_.last_batch_commands.store(batch->outcomes.size(), std::memory_order_relaxed);
  stats_.rejections.fetch_add(rejections, std::memory_order_relaxed);
  stats_.events.fetch_add(batch->records.size(), std::memory_order_relaxed);

  std::shared_ptr<const BatchResults> shared = batch;
  if (!batch->records.empty()) {
    for (const DurableObserver& observer : observers_) observer(shared);
  }
  // One hand-off per target per batch, in submission order.
  std::vector<std::pair<CompletionTarget*, std::vector<std::uint32_t>>> targets;
  for (std::uint32_t i = 0; i < waiting.size(); ++i) {
    Submission& s = waiting[i];
    if (s.target) {
      auto it = std::find_if(targets.begin(), targets.end(),
                             [&](const auto& t) { return t.first == s.target; });
      if (it == targets.end()) it = targets.insert(targets.end(), {s.target, {}});
      it->second.push_back(i);
    }
    if (!s.done) continue;
    const CommandOutcome& o = batch->outcomes[i];
    CommandResult result{o.rejection, o.seq, batch->decided_at_ms, {}, o.replayed};
    for (std::uint32_t k = o.first; k < o.last; ++k) result.events.push_back(batch->records[k].event);
    // A completion only posts to another thread; if even that fails, the caller's reply is
    // lost but the state is durable and consistent, so the pipeline carries on.
    try {
      s.done(std::move(result));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "slotd: completion of request %llu failed: %s\n",
                   static_cast<unsigned long long>(s.request_id), e.what());
    }
  }
  for (auto& [target, indexes] : targets) {
    try {
      target->complete(shared, std::move(indexes));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "slotd: completing a batch failed: %s\n", e.what());
    }
  }
}

}  // namespace slotd
