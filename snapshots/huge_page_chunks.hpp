// snapshots/huge_page_chunks — backs the engine's big chunks with transparent huge pages.
//
// A snapshot's fork() copies the page tables of every touched anonymous page: 512 entries
// per 2 MiB of state with 4 KiB pages, one with a huge page. This ChunkSource maps each
// chunk of 2 MiB or more on its own 2 MiB boundary and advises MADV_HUGEPAGE (honoured
// when /sys/kernel/mm/transparent_hugepage/enabled is `madvise` or `always`; otherwise it
// is ordinary memory). Smaller chunks come from the heap.
//
// The first write to fresh memory costs the writing thread the kernel's zeroing of it (a
// third of engine_bench's fresh-booking samples), and that thread is the sequencer. So
// for every big chunk size asked for, one more chunk of that size is kept ready, its pages
// faulted in by a thread of its own; taking it asks for the next one.
#pragma once

#include "engine/chunk_memory.hpp"

namespace slotd {

// The source, for containers that ask for it explicitly.
const ChunkSource& huge_page_chunks();

// Installs it for every container made from now on (idempotent, thread-safe).
void use_huge_page_chunks();

// Whether a prepared chunk of `bytes` (rounded up to whole pages) is waiting (for tests).
bool spare_chunk_ready(std::size_t bytes);

}  // namespace slotd
