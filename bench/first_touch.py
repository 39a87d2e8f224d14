#!/usr/bin/env python3
"""first_touch.py — what the first write to fresh memory costs on this machine: maps
MIB MiB of anonymous memory (advised for huge pages), faults all of it in with
MADV_POPULATE_WRITE, times that, unmaps it, and repeats ROUNDS times, then waits PAUSE
seconds and does it once more. On a virtual machine that hands freed guest memory back to
its host (free page reporting), the first round and the one after the pause can be many
times slower than the rounds in between, which reuse memory the guest just freed. The
engine's fresh bookings grow its memory at up to a few hundred MB/s (engine_bench).
Usage: bench/first_touch.py [MIB=512] [ROUNDS=4] [PAUSE=5]"""
import mmap
import sys
import time

MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux >= 5.14


def touch(size):
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        m.madvise(mmap.MADV_HUGEPAGE)
        t = time.perf_counter()
        m.madvise(MADV_POPULATE_WRITE)
        return time.perf_counter() - t
    finally:
        m.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    pause = float(sys.argv[3]) if len(sys.argv) > 3 else 5
    size = mib << 20
    for i in range(rounds + 1):
        if i == rounds:
            time.sleep(pause)
        d = touch(size)
        label = f"after a {pause:.0f} s pause" if i == rounds else f"round {i + 1}"
        print(f"first_touch: {mib} MiB, {label}: {d * 1e3:.0f} ms, {size / d / 1e9:.1f} GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
