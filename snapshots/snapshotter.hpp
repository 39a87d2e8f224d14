// snapshots/snapshotter — takes snapshots of a running engine without stalling its writer.
//
// start() is called by the engine's only writer thread at a batch boundary. It fork()s: the
// child holds a copy-on-write image of the engine at that seq, serialises it into a pipe
// and _exits (it touches no lock, no RocksDB, no file: only the pipe). A thread of this
// process copies the pipe into the snapshot's temp file, fsyncs it, waits for the child's
// exit status, waits until the seq is durable in the journal (the engine runs ahead of
// the disk: a snapshot must never be trusted before its seq is), then renames the file
// into place, fsyncs the directory and removes snapshots beyond `keep`. The writer's pause
// is the fork() call itself (page tables are copied, memory is not).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "snapshots/snapshot_store.hpp"

namespace slotd {

struct SnapshotterStats {
  std::atomic<std::uint64_t> written{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> last_seq{0};
  std::atomic<std::uint64_t> last_bytes{0};
  std::atomic<std::uint64_t> last_fork_ns{0};  // the writer's pause for the last snapshot
  std::atomic<std::uint64_t> max_fork_ns{0};
  // CPU time the writer thread spent in fork() (the pause without time lost to other
  // processes on a busy machine).
  std::atomic<std::uint64_t> max_fork_cpu_ns{0};
  std::atomic<std::uint64_t> last_write_ms{0};  // fork to published
};

class Snapshotter {
 public:
  // wait_durable(seq) blocks until seq is durable (true) or never will be (false).
  Snapshotter(SnapshotStore& store, std::size_t keep,
              std::function<bool(std::uint64_t)> wait_durable,
              std::function<void(const std::string&)> log);
  ~Snapshotter();
  Snapshotter(const Snapshotter&) = delete;
  Snapshotter& operator=(const Snapshotter&) = delete;

  // True while a snapshot is being taken.
  bool busy() const { return busy_.load(std::memory_order_acquire); }

  // On the engine's writer thread, with `engine` at `seq`: forks and returns the pause, or
  // nothing if a snapshot is still running or fork failed (logged; retried later).
  std::optional<std::chrono::nanoseconds> start(const Engine& engine, std::uint64_t seq,
                                                TimeMs time_floor_ms);

  // In this thread, with nothing running concurrently on `engine` (e.g. at shutdown).
  [[nodiscard]] SnapshotStatus take_now(const Engine& engine, std::uint64_t seq,
                                        TimeMs time_floor_ms);

  // Stops a running snapshot (kills its child, removes its temp file) and waits for it.
  void cancel();
  // Waits for a running snapshot to finish (tests, benches).
  void wait();

  const SnapshotterStats& stats() const { return stats_; }

 private:
  void finish_in_background(pid_t child, int read_fd, std::uint64_t seq,
                            std::chrono::steady_clock::time_point started);
  void record_fork(std::chrono::nanoseconds pause);

  SnapshotStore& store_;
  std::size_t keep_;
  std::function<bool(std::uint64_t)> wait_durable_;
  std::function<void(const std::string&)> log_;
  SnapshotterStats stats_;

  std::atomic<bool> busy_{false};
  std::atomic<bool> cancelled_{false};
  std::mutex child_mutex_;
  pid_t child_ = -1;  // a child not yet reaped; guarded by child_mutex_
  std::thread thread_;
};

}  // namespace slotd
