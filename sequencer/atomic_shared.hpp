// sequencer/atomic_shared — a shared_ptr that threads load and replace: the read side's
// published views (readers take a reference; the sequencer's journal thread publishes).
//
// What std::atomic<std::shared_ptr<T>> is in libstdc++ 12 — a lock held only while the
// pointer is copied or swapped — except that load() releases that lock with release order.
// libstdc++ 12's load() releases it with relaxed order, so its read of the pointer is not
// ordered before the next store's write: ThreadSanitizer reports that as a data race (and
// the C++ memory model agrees). The lock is a spin on one atomic flag, held for a
// reference-count increment at most; the old value is released after the lock.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <utility>

namespace slotd {

template <class T>
class AtomicShared {
 public:
  AtomicShared() = default;
  AtomicShared(const AtomicShared&) = delete;
  AtomicShared& operator=(const AtomicShared&) = delete;

  std::shared_ptr<T> load() const {
    lock();
    std::shared_ptr<T> copy = ptr_;
    unlock();
    return copy;
  }

  void store(std::shared_ptr<T> value) {
    lock();
    ptr_.swap(value);
    unlock();
  }  // the previous value, now in `value`, is released here

  // As std::atomic's: replaces the value with `desired` if it still is `expected` (the same
  // pointer and owner); otherwise loads the current value into `expected`.
  bool compare_exchange(std::shared_ptr<T>& expected, std::shared_ptr<T> desired) {
    lock();
    const bool same = ptr_ == expected && !ptr_.owner_before(expected) && !expected.owner_before(ptr_);
    if (same) {
      ptr_.swap(desired);
    } else {
      expected = ptr_;
    }
    unlock();
    return same;
  }

 private:
  void lock() const {
    for (int spins = 0; busy_.exchange(true, std::memory_order_acquire);) {
      // The holder copies a pointer and touches a count: wait, yielding if it was preempted.
      while (busy_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
      }
    }
  }
  void unlock() const { busy_.store(false, std::memory_order_release); }

  mutable std::atomic<bool> busy_{false};
  std::shared_ptr<T> ptr_;
};

}  // namespace slotd
