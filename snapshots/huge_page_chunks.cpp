#include "snapshots/huge_page_chunks.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace slotd {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::size_t page_rounded(std::size_t bytes) {
  return round_up(bytes, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)));
}

// A fresh 2 MiB-aligned mapping of `length` bytes (a multiple of the page size), advised
// for huge pages; nothing in it is touched yet.
void* map_chunk(std::size_t length) {
  // Over-map by one huge page, then unmap what lies outside the aligned range.
  void* raw = ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t end = start + length + kHugePage;
  if (end > aligned + length) ::munmap(reinterpret_cast<void*>(aligned + length), end - aligned - length);
  // Best effort: without THP the chunk is ordinary 4 KiB pages.
  (void)::madvise(reinterpret_cast<void*>(aligned), length, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

// The first write to a page of fresh anonymous memory makes the kernel find and zero it
// (2 MiB at once on a huge page): in engine_bench's fresh bookings about a third of the
// samples, paid by the thread that grows a container. That thread is the sequencer, so
// one chunk of every size asked for is kept ready, its pages already faulted in by a
// thread of its own. A chunk handed out is replaced at once; a size asked for before it
// is ready is mapped on the spot, as before. The pool lives for the whole process (never
// destroyed: its thread may still wait at exit). A fork()ed snapshot child never
// allocates chunks, so a lock held by that thread at the fork does not matter.
class SparePool {
 public:
  bool has_ready(std::size_t length) {
    std::lock_guard lock(mutex_);
    const Spare* spare = entry(length);
    return spare && spare->chunk;
  }

  // A ready chunk of exactly `length` bytes, or nullptr; either way one is then prepared.
  void* take(std::size_t length) {
    void* chunk = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (!thread_.joinable()) {
        thread_ = std::thread([this] { run(); });
        // Named here, before the creator goes on: until it is named, the new thread
        // carries its creator's name (often "slotd-decide"), and anyone listing threads
        // by name (top -H, the sequencer test) would count it as that one.
        (void)pthread_setname_np(thread_.native_handle(), "slotd-chunks");
      }
      Spare* spare = entry(length);
      if (!spare) {
        ready_.push_back({length, nullptr});
      } else {
        chunk = std::exchange(spare->chunk, nullptr);
      }
      wanted_ = true;
    }
    wake_.notify_one();
    return chunk;
  }

 private:
  struct Spare {
    std::size_t length;
    void* chunk;  // nullptr: to be prepared
  };

  // The entry for `length`, or nullptr; under mutex_.
  Spare* entry(std::size_t length) {
    auto it = std::find_if(ready_.begin(), ready_.end(),
                           [length](const Spare& s) { return s.length == length; });
    return it == ready_.end() ? nullptr : &*it;
  }

  void run() {
    // SCHED_IDLE (a new thread would inherit its creator's policy, often the decide
    // thread's): faulting in a chunk is one long madvise, and under SCHED_BATCH it held
    // the core for a whole 4 ms tick at a time while the journal and io threads waited (seen
    // in `perf sched timehist` of a pinned booking run). Under SCHED_IDLE any waking thread
    // of the process preempts it at once; if the core never idles, the spare is not ready
    // and a chunk is mapped on the spot, as without this pool. (take() has named it already.)
    sched_param param{};
    (void)sched_setscheduler(0, SCHED_IDLE, &param);
    for (;;) {
      std::size_t length = 0;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return wanted_; });
        wanted_ = false;
        for (const Spare& spare : ready_) {
          if (!spare.chunk) {
            length = spare.length;
            wanted_ = true;  // look again after this one
            break;
          }
        }
      }
      if (length == 0) continue;
      void* chunk = map_chunk(length);
      if (chunk && ::madvise(chunk, length, MADV_POPULATE_WRITE) != 0) {
        // Kernels before 5.14: a write per page faults it in (reading would map the zero page).
        for (std::size_t at = 0; at < length; at += 4096) static_cast<volatile char*>(chunk)[at] = 0;
      }
      std::lock_guard lock(mutex_);
      Spare* spare = entry(length);  // entries are never removed
      if (spare->chunk == nullptr) {
        spare->chunk = chunk;
      } else if (chunk) {
        ::munmap(chunk, length);
      }
      if (!chunk) return;  // out of memory: stop preparing; allocations map on the spot
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::thread thread_;
  std::vector<Spare> ready_;  // one entry per length ever asked for
  bool wanted_ = false;
};

SparePool& spare_pool() {
  static SparePool* pool = new SparePool();  // never destroyed (see SparePool)
  return *pool;
}

void* allocate_chunk(std::size_t bytes) {
  if (bytes < kHugePage) return kHeapChunks.allocate(bytes);
  const std::size_t length = page_rounded(bytes);
  if (void* ready = spare_pool().take(length)) return ready;
  void* chunk = map_chunk(length);
  if (!chunk) throw std::bad_alloc();
  return chunk;
}

void release_chunk(void* chunk, std::size_t bytes) {
  if (bytes < kHugePage) return kHeapChunks.release(chunk, bytes);
  ::munmap(chunk, page_rounded(bytes));
}

const ChunkSource kHugePageChunks{allocate_chunk, release_chunk};

}  // namespace

const ChunkSource& huge_page_chunks() { return kHugePageChunks; }

void use_huge_page_chunks() { install_chunk_source(kHugePageChunks); }

void reexec_with_huge_page_heap(char** argv) {
  constexpr std::string_view kTunable = "glibc.malloc.hugetlb=";
  const char* set = std::getenv("GLIBC_TUNABLES");
  const std::optional<std::string> before = set ? std::optional<std::string>(set) : std::nullopt;
  if (before && before->find(kTunable) != std::string::npos) return;
  std::ifstream mode("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  if (!std::getline(mode, modes) || modes.find("[never]") != std::string::npos) return;
  std::string value = before && !before->empty() ? *before + ":" : std::string();
  value += kTunable;
  value += '1';
  if (::setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0) return;
  // The path this process was started by, so that the new one keeps its name in ps and top
  // (one started as /proc/self/exe is named "exe"); /proc/self/exe if that path now names
  // another file.
  const auto* as_started = reinterpret_cast<const char*>(::getauxval(AT_EXECFN));
  struct stat started {}, running {};
  const bool same_file = as_started && ::stat(as_started, &started) == 0 &&
                         ::stat("/proc/self/exe", &running) == 0 &&
                         started.st_dev == running.st_dev && started.st_ino == running.st_ino;
  ::execv(same_file ? as_started : "/proc/self/exe", argv);
  // Still here: run as started, with the environment as it was.
  if (before) {
    (void)::setenv("GLIBC_TUNABLES", before->c_str(), 1);
  } else {
    (void)::unsetenv("GLIBC_TUNABLES");
  }
}

bool spare_chunk_ready(std::size_t bytes) {
  return bytes >= kHugePage && spare_pool().has_ready(page_rounded(bytes));
}

}  // namespace slotd
