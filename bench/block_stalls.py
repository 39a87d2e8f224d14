#!/usr/bin/env python3
"""block_stalls.py — the device's own latency for writes, from the block layer: records
block:block_rq_issue and block:block_rq_complete on every CPU for SECONDS with perf, pairs
each write's issue with its completion (by sector; cache flushes, which have none, are
left out), and prints the write latency percentiles, how many writes took longer than 1, 2
and 5 ms, and where in a 100 ms period the slow ones completed (ten 10 ms bins: a device
whose stalls end at one phase of a period shows one full bin). Run it while a load runs,
e.g. in a second shell during bench/booking_ab.sh. Needs perf and root.
Usage: bench/block_stalls.py [SECONDS=3] [DEVICE_FILTER, e.g. 254,0]"""
import collections
import re
import sys

from perf_events import BLOCK_RQ, record

LINE = re.compile(r"\s*([\d.]+):\s+block:block_rq_(issue|complete): " + BLOCK_RQ)


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3
    device = sys.argv[2] if len(sys.argv) > 2 else None
    text = record(["block:block_rq_issue", "block:block_rq_complete"], seconds, "time,event,trace")
    issued = {}
    done = []  # (completed at, latency s)
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or "W" not in m[4] or (device and m[3] != device):
            continue
        t, key = float(m[1]), (m[3], m[5])
        if m[2] == "issue":
            issued[key] = t
        elif key in issued:
            done.append((t, t - issued.pop(key)))
    if not done:
        print("block_stalls: no writes seen")
        return 1
    lat = sorted(d * 1e3 for _, d in done)
    n = len(lat)
    print(f"block_stalls: {n} writes in {seconds:.0f} s: p50 {lat[n // 2]:.3f} ms, p99 {lat[min(n - 1, int(n * .99))]:.3f} ms, "
          f"max {lat[-1]:.2f} ms; over 1 ms: {sum(x > 1 for x in lat)}, over 2 ms: {sum(x > 2 for x in lat)}, "
          f"over 5 ms: {sum(x > 5 for x in lat)}")
    bins = collections.Counter(int((t * 1e3) % 100 // 10) for t, d in done if d > 0.002)
    print("block_stalls: completions of writes over 2 ms by phase in a 100 ms period (10 ms bins): "
          + " ".join(str(bins.get(i, 0)) for i in range(10)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
