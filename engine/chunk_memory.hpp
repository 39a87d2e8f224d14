// engine/chunk_memory.hpp — where ChunkedVector and StringArena get their chunks.
//
// The engine stays standard-library only; the process may install a source that backs
// big chunks with transparent huge pages, so the fork() of a snapshot copies one
// page-table entry per 2 MiB instead of 512 (snapshots/huge_page_chunks.hpp). Each
// container remembers the source it allocated from, so installing one later is safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <new>

namespace slotd {

struct ChunkSource {
  void* (*allocate)(std::size_t bytes);  // aligned to 64 bytes at least; throws on failure
  void (*release)(void* chunk, std::size_t bytes);
};

// Chunks are big (ChunkedVector's default holds at least this many bytes): few of them,
// and each can be backed by whole huge pages. The fuzz build defines it small (4 KiB):
// small inputs then cross chunk boundaries, and the sanitizer does not spend each input
// mapping and poisoning megabytes for engines that hold a few records.
#ifdef SLOTD_CHUNK_TARGET_BYTES
inline constexpr std::size_t kChunkTargetBytes = SLOTD_CHUNK_TARGET_BYTES;
#else
inline constexpr std::size_t kChunkTargetBytes = std::size_t{2} << 20;
#endif
inline constexpr std::size_t kChunkAlignment = 64;

inline const ChunkSource kHeapChunks{
    [](std::size_t bytes) { return ::operator new(bytes, std::align_val_t{kChunkAlignment}); },
    [](void* chunk, std::size_t) { ::operator delete(chunk, std::align_val_t{kChunkAlignment}); },
};

inline std::atomic<const ChunkSource*>& installed_chunk_source() {
  static std::atomic<const ChunkSource*> source{&kHeapChunks};
  return source;
}

// The source new containers use from now on (the one passed must outlive them all).
inline void install_chunk_source(const ChunkSource& source) {
  installed_chunk_source().store(&source, std::memory_order_release);
}
inline const ChunkSource& current_chunk_source() {
  return *installed_chunk_source().load(std::memory_order_acquire);
}

}  // namespace slotd
