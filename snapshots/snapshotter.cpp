#include "snapshots/snapshotter.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <time.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace slotd {
namespace {

constexpr std::size_t kPipeChunk = 1 << 20;

// The child's sink: blocking writes to the pipe; a dead reader ends the child.
class PipeSink : public StateSink {
 public:
  explicit PipeSink(int fd) : fd_(fd) {}
  bool write(const char* data, std::size_t size) override {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }

 private:
  int fd_;
};

// In the child: only async-signal-safe calls before encoding, and an encoding that allocates
// nothing (`scratch` was made before the fork); never returns.
[[noreturn]] void run_child(int write_fd, const Engine& engine, std::uint64_t seq,
                            TimeMs time_floor_ms, pid_t parent, EncodeScratch& scratch) {
  // Never outlive slotd: a child stuck on a lock some other thread held at fork() (the
  // sanitizers' allocators are not fork-safe) would otherwise stay forever after a kill -9.
  // The signal comes when the forking (decide) thread ends; its stop() cancels us anyway.
  (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(4);  // died before prctl took effect
  // The parent's signal handlers would report our signals as its own.
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGHUP, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  // Keep only stdio and the pipe: an inherited listening socket or database file must not
  // outlive the parent in us.
  if (write_fd != 3) {
    if (::dup2(write_fd, 3) < 0) ::_exit(3);
  }
  ::close_range(4, ~0U, 0);
  PipeSink sink(3);
  ::_exit(write_snapshot(engine, seq, time_floor_ms, sink, &scratch) ? 0 : 1);
}

std::uint64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

void store_max(std::atomic<std::uint64_t>& max, std::uint64_t v) {
  std::uint64_t seen = max.load(std::memory_order_relaxed);
  while (v > seen && !max.compare_exchange_weak(seen, v)) {
  }
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return fmt::format("exit code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("signal {}", WTERMSIG(status));
  return fmt::format("status {}", status);
}

}  // namespace

Snapshotter::Snapshotter(SnapshotStore& store, std::size_t keep,
                         std::function<bool(std::uint64_t)> wait_durable,
                         std::function<void(const std::string&)> log)
    : store_(store), keep_(keep), wait_durable_(std::move(wait_durable)), log_(std::move(log)) {}

Snapshotter::~Snapshotter() { cancel(); }

void Snapshotter::record_fork(std::chrono::nanoseconds pause) {
  const auto ns = static_cast<std::uint64_t>(pause.count());
  stats_.last_fork_ns.store(ns, std::memory_order_relaxed);
  store_max(stats_.max_fork_ns, ns);
}

std::optional<std::chrono::nanoseconds> Snapshotter::start(const Engine& engine,
                                                           std::uint64_t seq,
                                                           TimeMs time_floor_ms) {
  if (busy()) return std::nullopt;
  if (thread_.joinable()) thread_.join();  // the previous one has finished
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    log_(fmt::format("snapshot at seq {} not started: pipe: {}", seq, std::strerror(errno)));
    return std::nullopt;
  }
  // Larger pipe buffer: fewer wake-ups while copying (best effort).
  (void)::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(kPipeChunk));
  cancelled_.store(false);
  // Made here so that the child allocates nothing (engine/state_codec.hpp): reserved, not
  // touched, so it costs the parent one allocation and the child its own pages.
  EncodeScratch scratch;
  scratch.reserve_for(engine);
  const std::uint64_t cpu_before = thread_cpu_ns();
  const auto started = std::chrono::steady_clock::now();
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) run_child(fds[1], engine, seq, time_floor_ms, parent, scratch);
  const auto pause = std::chrono::steady_clock::now() - started;
  store_max(stats_.max_fork_cpu_ns, thread_cpu_ns() - cpu_before);
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    stats_.failed.fetch_add(1, std::memory_order_relaxed);
    log_(fmt::format("snapshot at seq {} not started: fork: {}", seq, std::strerror(errno)));
    return std::nullopt;
  }
  record_fork(std::chrono::duration_cast<std::chrono::nanoseconds>(pause));
  {
    std::lock_guard lock(child_mutex_);
    child_ = pid;
  }
  busy_.store(true, std::memory_order_release);
  thread_ = std::thread([this, pid, fd = fds[0], seq, started] {
    // Its own name, not the sequencer's it would inherit (top -H, perf, /proc).
    (void)pthread_setname_np(pthread_self(), "slotd-snapshot");
    finish_in_background(pid, fd, seq, started);
  });
  return std::chrono::duration_cast<std::chrono::nanoseconds>(pause);
}

void Snapshotter::finish_in_background(pid_t child, int read_fd, std::uint64_t seq,
                                       std::chrono::steady_clock::time_point started) {
  std::string error;
  std::unique_ptr<SnapshotStore::Writer> writer;
  SnapshotHeader header;
  if (SnapshotStatus s = store_.begin(seq, writer); !s) error = s.message;
  // Copy the child's bytes into the temp file; keep the header to check and log it.
  std::vector<char> buffer(kPipeChunk);
  std::string head;
  std::uint64_t copied = 0;
  for (;;) {
    const ssize_t n = ::read(read_fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (error.empty()) error = fmt::format("reading the child's pipe: {}", std::strerror(errno));
      break;
    }
    if (n == 0) break;
    if (head.size() < kSnapshotHeaderBytes) {
      head.append(buffer.data(), std::min<std::size_t>(n, kSnapshotHeaderBytes - head.size()));
    }
    copied += static_cast<std::uint64_t>(n);
    if (error.empty() && !writer->write(buffer.data(), static_cast<std::size_t>(n))) {
      error = "cannot write the temp file";
      break;  // closing the pipe ends the child (EPIPE)
    }
  }
  ::close(read_fd);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard lock(child_mutex_);
    child_ = -1;
  }
  if (error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    error = cancelled_.load() ? "cancelled" : "the snapshot process ended with " + describe_exit(status);
  }
  if (error.empty()) {
    if (SnapshotStatus s = parse_snapshot_header(head, header); !s) {
      error = s.message;
    } else if (header.seq != seq ||
               copied != kSnapshotHeaderBytes + header.engine_bytes + kSnapshotTrailerBytes) {
      error = fmt::format("the snapshot process wrote {} bytes for seq {}", copied, header.seq);
    }
  }
  if (error.empty()) {
    if (SnapshotStatus s = writer->finish(); !s) error = s.message;
  }
  writer.reset();
  if (error.empty() && !wait_durable_(seq)) error = "its seq never became durable";
  if (error.empty()) {
    if (SnapshotStatus s = store_.publish(seq); !s) error = s.message;
  }
  if (!error.empty()) {
    store_.discard(seq);
    if (cancelled_.load()) {
      // Not a failure: stop() gave it up for the final snapshot.
      log_(fmt::format("snapshot at seq {} given up (stopping)", seq));
      busy_.store(false, std::memory_order_release);
      return;
    }
    stats_.failed.fetch_add(1, std::memory_order_relaxed);
    log_(fmt::format("snapshot at seq {} failed: {}", seq, error));
    busy_.store(false, std::memory_order_release);
    return;
  }
  std::vector<std::string> removed;
  if (SnapshotStatus s = store_.retain(keep_, &removed); !s) {
    log_(fmt::format("snapshot retention: {}", s.message));
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  stats_.written.fetch_add(1, std::memory_order_relaxed);
  stats_.last_seq.store(seq, std::memory_order_relaxed);
  stats_.last_bytes.store(copied, std::memory_order_relaxed);
  stats_.last_write_ms.store(static_cast<std::uint64_t>(ms), std::memory_order_relaxed);
  log_(fmt::format("snapshot at seq {}, state hash {:016x}, {} bytes in {} ms (writer paused {} us for fork): {}",
                   seq, header.state_hash, copied, ms,
                   stats_.last_fork_ns.load(std::memory_order_relaxed) / 1000, store_.path_of(seq)));
  busy_.store(false, std::memory_order_release);
}

SnapshotStatus Snapshotter::take_now(const Engine& engine, std::uint64_t seq,
                                     TimeMs time_floor_ms) {
  cancel();
  const auto started = std::chrono::steady_clock::now();
  SnapshotStatus s = store_.write_now(engine, seq, time_floor_ms, keep_);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  if (!s) {
    stats_.failed.fetch_add(1, std::memory_order_relaxed);
    log_(fmt::format("snapshot at seq {} failed: {}", seq, s.message));
    return s;
  }
  stats_.written.fetch_add(1, std::memory_order_relaxed);
  stats_.last_seq.store(seq, std::memory_order_relaxed);
  stats_.last_write_ms.store(static_cast<std::uint64_t>(ms), std::memory_order_relaxed);
  log_(fmt::format("snapshot at seq {}, state hash {:016x}, written in {} ms: {}", seq,
                   engine.state_hash(), ms, store_.path_of(seq)));
  return s;
}

void Snapshotter::cancel() {
  {
    std::lock_guard lock(child_mutex_);
    if (child_ > 0) {
      cancelled_.store(true);
      ::kill(child_, SIGKILL);  // our own child, by its pid, not yet reaped
    }
  }
  wait();
}

void Snapshotter::wait() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace slotd
