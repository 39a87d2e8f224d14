#!/usr/bin/env python3
"""cpu_gaps.py — how long this machine's CPUs stop running a busy thread: one process per
CPU, pinned to it, reads the monotonic clock in a tight loop for SECONDS and counts the
gaps between two reads longer than 0.5 ms (time the thread did not run: the host took the
virtual CPU, an interrupt or a kernel thread ran). Prints per CPU the gaps over 0.5, 2 and
5 ms, the longest, and the total. With nothing else running, a gap is the machine's own.
Usage: bench/cpu_gaps.py [SECONDS=5]"""
import multiprocessing
import os
import sys
import time


def spin(cpu, seconds, out):
    os.sched_setaffinity(0, {cpu})
    gaps = []
    clock = time.perf_counter
    start = prev = clock()
    end = start + seconds  # bounded in time
    while prev < end:
        t = clock()
        if t - prev > 0.0005:
            gaps.append(t - prev)
        prev = t
    out.put((cpu, gaps))


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    out = multiprocessing.Queue()
    cpus = sorted(os.sched_getaffinity(0))
    procs = [multiprocessing.Process(target=spin, args=(c, seconds, out)) for c in cpus]
    for p in procs:
        p.start()
    results = dict(out.get() for _ in procs)
    for p in procs:
        p.join()
    for cpu in cpus:
        g = [x * 1e3 for x in results[cpu]]
        print(f"cpu_gaps: CPU {cpu}, {seconds:.0f} s: {len(g)} gaps over 0.5 ms, "
              f"{sum(x > 2 for x in g)} over 2 ms, {sum(x > 5 for x in g)} over 5 ms, "
              f"longest {max(g, default=0):.2f} ms, {sum(g):.1f} ms in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
