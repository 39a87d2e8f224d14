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

// glibc's malloc advises its heap for transparent huge pages only with the tunable
// glibc.malloc.hugetlb=1, and tunables are read as a process starts. The engine's big arrays
// are on huge pages already; the malloc heap (each doctor's slot index, the read side's copy
// of it, hash maps) was most of what a snapshot's fork() still copied entry by entry: at 10M
// slots, 125 MB of slotd's anonymous memory on 4 KiB pages without it, 43 MB with it. So
// slotd calls this first: it starts the same binary again, once, with the tunable added to
// GLIBC_TUNABLES. It returns without doing anything when GLIBC_TUNABLES already names
// glibc.malloc.hugetlb (set by this, or by an operator: =0 turns it off), when the kernel's
// transparent huge pages are `never`, and when the exec fails.
void reexec_with_huge_page_heap(char** argv);

// Whether a prepared chunk of `bytes` (rounded up to whole pages) is waiting (for tests).
bool spare_chunk_ready(std::size_t bytes);

}  // namespace slotd
