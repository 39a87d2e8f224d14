#include "sequencer/sequencer.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <utility>

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

}  // namespace

Sequencer::Sequencer(SequencerConfig config, std::unique_ptr<Journal> journal)
    : config_(std::move(config)), journal_(std::move(journal)), engine_(config_.engine) {
  if (!config_.clock) config_.clock = system_clock_ms;
  if (!config_.on_journal_failure) config_.on_journal_failure = exit_on_journal_failure;
  if (config_.max_batch == 0) config_.max_batch = 1;
}

Sequencer::~Sequencer() { stop(); }

JournalStatus Sequencer::open(const std::string& data_dir, SequencerConfig config,
                              std::unique_ptr<Sequencer>& out) {
  std::unique_ptr<Journal> journal;
  JournalStatus status =
      Journal::open((std::filesystem::path(data_dir) / "journal").string(), journal,
                    config.journal_env);
  if (!status) return status;
  std::unique_ptr<Sequencer> seq(new Sequencer(std::move(config), std::move(journal)));

  // Recovery: replay the whole journal through apply alone.
  std::uint64_t expected = 1;
  status = seq->journal_->read(1, 0, [&](const JournalRecord& record) {
    // Journal::read already refuses gaps; this guards the engine's own assumption.
    if (record.seq != expected) return false;
    seq->engine_.apply(record.event);
    ++expected;
    return true;
  });
  if (!status) return status;
  if (expected - 1 != seq->journal_->last_seq()) {
    return JournalStatus::error("journal replay stopped at seq " + std::to_string(expected) +
                                " before the last seq " +
                                std::to_string(seq->journal_->last_seq()));
  }
  std::string broken = seq->engine_.check_invariants();
  if (!broken.empty()) {
    return JournalStatus::error("state after replay breaks an invariant: " + broken);
  }
  seq->next_seq_ = expected;
  seq->durable_seq_.store(expected - 1);
  seq->stats_.replayed_events.store(expected - 1);
  seq->reads_.engine_ = seq->engine_;  // a copy is cheaper than a second replay
  seq->reads_.as_of_seq_ = expected - 1;
  out = std::move(seq);
  return {};
}

void Sequencer::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = false;
  }
  next_expiry_ms_ = config_.clock();
  thread_ = std::thread([this] { run(); });
}

void Sequencer::stop() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
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

CommandResult Sequencer::execute(Command command, Actor actor) {
  std::promise<CommandResult> promise;
  auto future = promise.get_future();
  Submission s{std::move(command), actor, 0,
               [&promise](CommandResult&& r) { promise.set_value(std::move(r)); }};
  while (!submit(std::move(s))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return future.get();
}

std::size_t Sequencer::queue_depth() const {
  std::lock_guard lock(queue_mutex_);
  return queue_.size();
}

void Sequencer::run() {
  std::vector<Submission> batch;
  batch.reserve(config_.max_batch);
  for (;;) {
    {
      std::unique_lock lock(queue_mutex_);
      auto wake_at = std::chrono::system_clock::now() + config_.expiry_interval;
      queue_cv_.wait_until(lock, wake_at, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty() && stopping_) return;
      std::size_t n = std::min(queue_.size(), config_.max_batch);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    process(batch);
    batch.clear();
  }
}

void Sequencer::process(std::vector<Submission>& batch) {
  struct Outcome {
    Rejection rejection;
    std::size_t first, last;  // the command's records: [first, last)
  };
  const TimeMs now_ms = config_.clock();
  records_.clear();
  std::vector<Outcome> outcomes;
  outcomes.reserve(batch.size());

  auto run_command = [&](const Command& command, Actor actor, std::uint64_t request_id) {
    scratch_.clear();
    Rejection r = engine_.decide(command, now_ms, scratch_);
    std::size_t first = records_.size();
    if (r == Rejection::none) {
      for (Event& e : scratch_) {
        engine_.apply(e);
        records_.push_back(JournalRecord{next_seq_++, now_ms, request_id, actor, std::move(e)});
      }
    }
    return Outcome{r, first, records_.size()};
  };

  // Expiry is an ordinary journaled command, issued from the sequencer's own clock.
  if (now_ms >= next_expiry_ms_) {
    next_expiry_ms_ = now_ms + config_.expiry_interval.count();
    if (engine_.pending_count() > 0) {
      Outcome o = run_command(ExpireDue{}, Actor::system, 0);
      stats_.expired.fetch_add(o.last - o.first, std::memory_order_relaxed);
    }
  }
  for (Submission& s : batch) {
    outcomes.push_back(run_command(s.command, s.actor, s.request_id));
  }

  if (!records_.empty()) {
    auto t0 = std::chrono::steady_clock::now();
    JournalStatus status = journal_->append(records_);
    if (!status) {
      // Nothing of this batch may be seen by anyone: stop before any completion.
      config_.on_journal_failure(status.message);
      return;
    }
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
    stats_.journal_append_ns.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
    const std::uint64_t last_seq = records_.back().seq;
    {
      std::unique_lock lock(reads_.mutex_);
      for (const JournalRecord& r : records_) reads_.engine_.apply(r.event);
      reads_.as_of_seq_ = last_seq;
    }
    durable_seq_.store(last_seq, std::memory_order_release);
    for (const DurableObserver& observer : observers_) observer(records_, engine_);
  }

  // Counters first: whoever hears of a result may look at them.
  std::uint64_t rejections = 0;
  for (const Outcome& o : outcomes) rejections += o.rejection != Rejection::none;
  if (!records_.empty()) stats_.batches.fetch_add(1, std::memory_order_relaxed);
  stats_.commands.fetch_add(batch.size(), std::memory_order_relaxed);
  stats_.rejections.fetch_add(rejections, std::memory_order_relaxed);
  stats_.events.fetch_add(records_.size(), std::memory_order_relaxed);

  const std::uint64_t durable = durable_seq_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Outcome& o = outcomes[i];
    CommandResult result;
    result.rejection = o.rejection;
    result.decided_at_ms = now_ms;
    result.seq = o.last > o.first ? records_[o.last - 1].seq : durable;
    result.events.reserve(o.last - o.first);
    for (std::size_t k = o.first; k < o.last; ++k) {
      result.events.push_back(std::move(records_[k].event));
    }
    if (!batch[i].done) continue;
    // A completion only posts to an io thread; if even that fails, the caller's reply is
    // lost but the state is durable and consistent, so the sequencer carries on.
    try {
      batch[i].done(std::move(result));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "slotd: completion of request %llu failed: %s\n",
                   static_cast<unsigned long long>(batch[i].request_id), e.what());
    }
  }
}

}  // namespace slotd
