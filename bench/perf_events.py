"""perf_events.py — what the perf-based probes (block_stalls.py, sync_wait.py) share:
recording tracepoints on every CPU for a while, and the block layer's request fields."""
import os
import re
import subprocess
import tempfile

# The part of a block:block_rq_issue / block_rq_complete trace after "event: ": the device
# (major,minor), the request's flags (W: a write, F: a flush, S: sync, M: metadata), the
# byte count on issue only, then the sector and the number of sectors.
BLOCK_RQ = r"(\S+) (\S+) (?:\d+ )?\(\) (\d+) \+ (\d+)"


def record(events, seconds, fields):
    """Records EVENTS on every CPU for SECONDS (perf, root; CLOCK_MONOTONIC timestamps) and
    returns perf script's text with FIELDS (e.g. "time,event,trace")."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        cmd = ["perf", "record", "-q", "-k", "CLOCK_MONOTONIC", "-a", "-o", data]
        for event in events:
            cmd += ["-e", event]
        subprocess.run(cmd + ["--", "sleep", str(seconds)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return subprocess.run(["perf", "script", "-i", data, "-F", fields], check=True, capture_output=True,
                              text=True).stdout
