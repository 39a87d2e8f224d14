#include "snapshots/huge_page_chunks.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>

namespace slotd {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::size_t page_rounded(std::size_t bytes) {
  return round_up(bytes, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)));
}

void* allocate_chunk(std::size_t bytes) {
  if (bytes < kHugePage) return kHeapChunks.allocate(bytes);
  const std::size_t length = page_rounded(bytes);
  // Over-map by one huge page, then unmap what lies outside the aligned range.
  void* raw = ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t end = start + length + kHugePage;
  if (end > aligned + length) ::munmap(reinterpret_cast<void*>(aligned + length), end - aligned - length);
  // Best effort: without THP the chunk is ordinary 4 KiB pages.
  (void)::madvise(reinterpret_cast<void*>(aligned), length, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

void release_chunk(void* chunk, std::size_t bytes) {
  if (bytes < kHugePage) return kHeapChunks.release(chunk, bytes);
  ::munmap(chunk, page_rounded(bytes));
}

const ChunkSource kHugePageChunks{allocate_chunk, release_chunk};

}  // namespace

const ChunkSource& huge_page_chunks() { return kHugePageChunks; }

void use_huge_page_chunks() { install_chunk_source(kHugePageChunks); }

}  // namespace slotd
