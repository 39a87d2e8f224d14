#include "journal/background_priority.hpp"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <system_error>

#include <rocksdb/db.h>
#include <rocksdb/listener.h>

namespace slotd {
namespace {

// RocksDB names its pools' threads "rocksdb:high" (flushes), "rocksdb:low" (compactions)
// and "rocksdb:bottom" (bottommost compactions).
bool is_pool_thread(std::string_view name) {
  return name == "rocksdb:high" || name == "rocksdb:low" || name == "rocksdb:bottom";
}

void set_policy(int tid, int policy) {
  const sched_param param{};
  (void)::sched_setscheduler(tid, policy, &param);  // tid 0: the calling thread
}

// Sets the policy of every pool thread of this process.
void set_pool_threads_policy(int policy) {
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", error)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name) && is_pool_thread(name)) {
      set_policy(std::stoi(task.path().filename().string()), policy);
    }
  }
}

class StallSet {
 public:
  void changed(const void* watcher, bool stalled) {
    std::lock_guard lock(mutex_);
    if (stalled) {
      stalled_.insert(watcher);
    } else {
      stalled_.erase(watcher);
    }
    const bool raise = !stalled_.empty();
    if (raise == raised_.load(std::memory_order_relaxed)) return;
    raised_.store(raise, std::memory_order_relaxed);
    set_pool_threads_policy(raise ? SCHED_OTHER : SCHED_IDLE);
    if (raise) raises_.fetch_add(1, std::memory_order_relaxed);
  }

  // The calling thread, a pool thread about to start a job, takes the current policy.
  void enter_job() {
    char name[16] = {};
    if (::pthread_getname_np(::pthread_self(), name, sizeof name) != 0 || !is_pool_thread(name)) return;
    std::lock_guard lock(mutex_);
    set_policy(0, raised_.load(std::memory_order_relaxed) ? SCHED_OTHER : SCHED_IDLE);
  }

  bool raised() const { return raised_.load(std::memory_order_relaxed); }
  std::uint64_t raises() const { return raises_.load(std::memory_order_relaxed); }

 private:
  std::mutex mutex_;
  std::set<const void*> stalled_;  // watchers whose journal's writes are stalled
  std::atomic<bool> raised_{false};  // written under mutex_
  std::atomic<std::uint64_t> raises_{0};
};

StallSet& stall_set() {
  static StallSet* set = new StallSet();  // never destroyed: RocksDB's threads may call late
  return *set;
}

class StallWatcher : public rocksdb::EventListener {
 public:
  ~StallWatcher() override { stall_set().changed(this, false); }
  void OnStallConditionsChanged(const rocksdb::WriteStallInfo& info) override {
    if (info.condition.cur != rocksdb::WriteStallCondition::kNormal) stall_set().changed(this, true);
  }
  // Both run on the pool thread, before the job.
  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { stall_set().enter_job(); }
  void OnCompactionBegin(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override {
    stall_set().enter_job();
  }
};

}  // namespace

std::shared_ptr<rocksdb::EventListener> make_stall_watcher() {
  return std::make_shared<StallWatcher>();
}

bool background_priority_raised() { return stall_set().raised(); }

void recheck_stall(const rocksdb::EventListener* watcher, rocksdb::DB& db) {
  std::uint64_t stopped = 0, delayed_rate = 0;
  const bool known = db.GetIntProperty(rocksdb::DB::Properties::kIsWriteStopped, &stopped) &&
                     db.GetIntProperty(rocksdb::DB::Properties::kActualDelayedWriteRate, &delayed_rate);
  if (known && stopped == 0 && delayed_rate == 0) stall_set().changed(watcher, false);
}

void background_stall_changed(const void* watcher, bool stalled) {
  stall_set().changed(watcher, stalled);
}

std::uint64_t background_priority_raises() { return stall_set().raises(); }

}  // namespace slotd
