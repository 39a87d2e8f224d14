#!/usr/bin/env python3
"""sync_probe.py — the data directory's device without slotd: appends BYTES to a fresh file
and fdatasync()s it, RATE times a second for SECONDS (as a journal's group commits do),
then prints the sync latency percentiles and how many syncs took longer than 2 and 5 ms.
Usage: bench/sync_probe.py DIR [SECONDS=5] [RATE=1250] [BYTES=6144]"""
import os
import sys
import time


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip())
        return 2
    where = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 1250
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 6144
    path = os.path.join(where, f"sync_probe.{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    buf = b"x" * size
    latencies = []
    start = time.perf_counter()
    try:
        for i in range(int(seconds * rate)):  # bounded in count and (below) in time
            due = start + i / rate
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            if now - start > seconds * 2:
                break
            os.write(fd, buf)
            t0 = time.perf_counter_ns()
            os.fdatasync(fd)
            latencies.append(time.perf_counter_ns() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    n = len(latencies)

    def q(p):
        return latencies[min(n - 1, int(p * n))] / 1e6

    print(f"sync_probe: {n} syncs of {size}-byte appends in {time.perf_counter() - start:.1f} s "
          f"(asked {rate:.0f}/s): p50 {q(0.5):.3f} ms, p99 {q(0.99):.3f} ms, p99.9 {q(0.999):.3f} ms, "
          f"max {latencies[-1] / 1e6:.3f} ms; over 2 ms: {sum(x > 2e6 for x in latencies)}, "
          f"over 5 ms: {sum(x > 5e6 for x in latencies)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
