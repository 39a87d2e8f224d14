#!/usr/bin/env python3
"""sync_wait.py — where the time of slotd's journal syncs goes: records, on every CPU for
SECONDS with perf, the journal thread's fdatasync calls, the scheduler's wake-ups and
switches, and the block layer's requests; then prints, per fdatasync of the thread named
slotd-journal, the percentiles and the mean of its wall time, of the part in which the
thread was woken but waiting for a CPU (from sched_wakeup to the switch to it), and of the
time in which the device had a request in flight (a write or a cache flush, issued by
anyone: the journal's own or another writer's). What is left over is the kernel's own path
(issuing, interrupts, the file system) and the thread's own CPU time. Run it while a
booking load runs, e.g. in a second shell during bench/booking_ab.sh. Needs perf and root.
Usage: bench/sync_wait.py [SECONDS=1] [THREAD=slotd-journal]"""
import re
import sys

from perf_events import BLOCK_RQ, record

# perf script -F comm,tid,time,event,trace
HEAD = re.compile(r"\s*(.+?)\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)")
BLOCK = re.compile(BLOCK_RQ)


def percentiles(values):
    v = sorted(values)
    n = len(v)
    at = lambda p: v[min(n - 1, int(n * p))] * 1e3  # noqa: E731
    return f"p50 {at(.5):.3f} ms, p90 {at(.9):.3f} ms, p99 {at(.99):.3f} ms, mean {sum(v) / n * 1e3:.3f} ms"


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1
    thread = sys.argv[2] if len(sys.argv) > 2 else "slotd-journal"
    events = ["syscalls:sys_enter_fdatasync", "syscalls:sys_exit_fdatasync", "sched:sched_wakeup",
              "sched:sched_switch", "block:block_rq_issue", "block:block_rq_complete"]
    text = record(events, seconds, "comm,tid,time,event,trace")
    tid = None
    wall, waiting, device = [], [], []
    start = woke = None
    wait = busy = 0.0
    inflight = set()  # (device, sector, or "flush") of requests issued and not completed
    last = 0.0  # the time of the last block event

    def advance(t):  # adds the time since the last block event in which a request was in flight
        nonlocal busy, last
        if start is not None and inflight:
            busy += t - max(last, start)
        last = t

    for line in text.splitlines():
        m = HEAD.match(line)
        if not m:
            continue
        comm, who, t, event, rest = m[1], m[2], float(m[3]), m[4], m[5]
        if event.startswith("block:block_rq_"):
            b = BLOCK.match(rest)
            if not b:
                continue
            advance(t)
            key = (b[1], "flush") if "F" in b[2] and b[4] == "0" else (b[1], b[3])
            if event.endswith("issue"):
                inflight.add(key)
            else:
                inflight.discard(key)
        elif event == "syscalls:sys_enter_fdatasync" and comm == thread:
            tid = who
            start, woke, wait, busy, last = t, None, 0.0, 0.0, t
        elif start is None:
            continue
        elif event == "syscalls:sys_exit_fdatasync" and who == tid:
            advance(t)
            wall.append(t - start)
            waiting.append(wait)
            device.append(busy)
            start = None
        elif event == "sched:sched_wakeup" and f"pid={tid} " in rest + " ":
            woke = t
        elif event == "sched:sched_switch" and f"next_pid={tid} " in rest + " " and woke is not None:
            wait += t - woke
            woke = None
    if not wall:
        print(f"sync_wait: no fdatasync of a thread named {thread} seen in {seconds:g} s")
        return 1
    print(f"sync_wait: {len(wall)} fdatasync calls of {thread} in {seconds:g} s")
    print(f"  wall time:                         {percentiles(wall)}")
    print(f"  woken, waiting for a CPU:          {percentiles(waiting)}")
    print(f"  device busy (a request in flight): {percentiles(device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
