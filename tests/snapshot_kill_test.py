#!/usr/bin/env python3
"""Kill -9 cycles of a real slotd that takes snapshots on a small interval.

One data dir for the whole run. Each cycle starts slotd (`--snapshot-every 25
--snapshot-interval 0.05`, so a snapshot is being forked or written most of the time),
runs client threads that book random slots, confirm and cancel their bookings, and kills
slotd with SIGKILL at a random moment while they are still sending. After each restart:

- the state hash slotd logs after recovery equals the hash of `slotd replay` (the journal
  alone) at the same seq, and that seq is the journal's last;
- /admin/stats equals the replay's counts, no slot is held or booked twice, and every
  booking acknowledged or changed since the last check is there (GET /booking/:id as
  admin) on its slot, with a status its acknowledged operations allow;
- every 10th cycle, and at the end, `slotd verify` passes (every snapshot on disk equals a
  replay to its seq; gap-free journal; invariants).

The last cycle stops with SIGTERM and wants exit 0, a final snapshot, and the shutdown hash
equal to the recovery hash of one more start. Counts (cycles, kills that left a snapshot
temp file behind, recoveries from a snapshot) are printed at the end.

Run: python3 tests/snapshot_kill_test.py --slotd build/release/api/slotd [--cycles N] [--seed S]
Prints `snapshot-kill: N passed, M failed` last. Standard library only; loopback only;
every loop is bounded in count and time.
"""

import argparse
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_util import BASE_MS, MINUTE_MS, Server, child_env, iso  # noqa: E402

ADMIN = "snapshot-kill-admin-token-0123456789"
SLOTS = 400
THREADS = 4
REQ_TIMEOUT = 15
RECOVERED_RE = re.compile(r"recovered to seq (\d+) from .* \((no snapshot|snapshot at seq (\d+)), then (\d+) journal events\), state hash ([0-9a-f]{16})")
STOPPED_RE = re.compile(r"stopped cleanly at seq (\d+), state hash ([0-9a-f]{16})")
SNAPSHOT_RE = re.compile(r"snapshot at seq (\d+), state hash ([0-9a-f]{16})")


def call(port, method, path, body=None, admin=False, token=None, conn=None):
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=REQ_TIMEOUT)
    try:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if admin:
            headers["Authorization"] = f"Bearer {ADMIN}"
        if token:
            headers["X-Booking-Token"] = token
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, None
    finally:
        if own:
            c.close()


class Model:
    """What was acknowledged: bookings and the last acknowledged operation on each."""

    def __init__(self):
        self.lock = threading.Lock()
        self.bookings = {}  # id -> {"slot", "token", "status", "unknown": op or None}
        self.live = set()  # PENDING/CONFIRMED ids (at most one per slot): the clients pick from these
        self.touched = set()  # ids acknowledged or changed since the last check
        self.max_seq = 0
        self.scanned = 0  # booking ids up to this were looked at after a restart

    def ack(self, seq):
        with self.lock:
            self.max_seq = max(self.max_seq, seq or 0)


def client(port, model, rng, stop, deadline):
    """Books random slots, confirms and cancels random acknowledged bookings (a cancel frees
    its slot, so the load never runs dry)."""
    conn = None
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQ_TIMEOUT)
            r = rng.random()
            with model.lock:
                live = [bid for bid in model.live if model.bookings[bid]["unknown"] is None] if r >= 0.5 else []
                bid = rng.choice(live) if live else None
                if bid is not None:
                    b = model.bookings[bid]
                    op = "confirm" if r < 0.75 and b["status"] == "PENDING" else "cancel"
                    b["unknown"] = op
                    token = b["token"]
            if bid is None:
                slot = rng.randint(1, SLOTS)
                st, js = call(port, "POST", "/booking", {"slotId": slot, "patientName": f"p{rng.randint(0, 10**9)}"}, conn=conn)
                if st == 201:
                    with model.lock:
                        model.bookings[js["id"]] = {"slot": slot, "token": js["token"], "status": "PENDING", "unknown": None}
                        model.live.add(js["id"])
                        model.touched.add(js["id"])
                    model.ack(js["seq"])
            else:
                st, js = call(port, "POST", f"/booking/{bid}/{op}", token=token, conn=conn)
                with model.lock:
                    model.touched.add(bid)
                    if st == 200:
                        b["status"] = js["status"]
                        b["unknown"] = None
                        if b["status"] not in ("PENDING", "CONFIRMED"):
                            model.live.discard(bid)
                    elif st in (403, 404, 409):
                        b["unknown"] = None
                if st == 200:
                    model.ack(js["seq"])
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
            if stop.is_set():
                return
            time.sleep(0.01)


def allowed(b):
    k, u = b["status"], b["unknown"]
    if k == "PENDING":
        return {"PENDING", "FAILED"} | ({"CONFIRMED"} if u == "confirm" else set()) | ({"CANCELLED"} if u == "cancel" else set())
    if k == "CONFIRMED":
        return {"CONFIRMED", "CANCELLED"} if u == "cancel" else {"CONFIRMED"}
    return {k}


def run_tool(slotd, *args):
    p = subprocess.run([slotd, *args], capture_output=True, text=True, timeout=300, env=child_env())
    return p.returncode, p.stdout, p.stderr


def check_after_restart(slotd, srv, model, problems, cycle):
    log = srv.log_of_last_start()
    m = RECOVERED_RE.search(log)
    if not m:
        problems.append(f"cycle {cycle}: no recovery line in the log:\n{log[-2000:]}")
        return None
    seq, from_snapshot, hash_ = int(m.group(1)), m.group(3) is not None, m.group(5)
    if seq < model.max_seq:
        problems.append(f"cycle {cycle}: ACKNOWLEDGED WRITES LOST: recovered to seq {seq} < acknowledged {model.max_seq}")
    rc, out, err = run_tool(slotd, "replay", "--data-dir", srv.data_dir)
    if rc != 0:
        problems.append(f"cycle {cycle}: slotd replay exit {rc}: {err}")
        return from_snapshot
    rep = json.loads(out)
    if rep["lastSeq"] != seq or rep["stateHash"] != hash_:
        problems.append(f"cycle {cycle}: recovered seq {seq} hash {hash_}, but the journal replays to "
                        f"seq {rep['lastSeq']} hash {rep['stateHash']} ({m.group(0)})")
    # The server serves the recovered state, and no slot is held twice.
    st, stats = call(srv.api.port, "GET", "/admin/stats", admin=True)
    if st != 200 or stats["slots"] != {k: rep["slots"][k] for k in stats["slots"]} or \
            stats["bookings"] != {k: rep["bookings"][k] for k in stats["bookings"]}:
        problems.append(f"cycle {cycle}: /admin/stats {st} {stats} disagrees with the replay {rep}")
    if stats and (stats["bookings"]["pending"] != stats["slots"]["held"] or
                  stats["bookings"]["confirmed"] != stats["slots"]["booked"]):
        problems.append(f"cycle {cycle}: DOUBLE HOLD/BOOKING in /admin/stats {stats}")
    # Every booking acknowledged or changed since the last check is there, as allowed.
    with model.lock:
        touched, model.touched = sorted(model.touched), set()
    conn = http.client.HTTPConnection("127.0.0.1", srv.api.port, timeout=REQ_TIMEOUT)
    try:
        for bid in touched:
            st, got = call(srv.api.port, "GET", f"/booking/{bid}", admin=True, conn=conn)
            with model.lock:
                b = model.bookings[bid]
                if st != 200:
                    problems.append(f"cycle {cycle}: ACKNOWLEDGED BOOKING LOST: {bid} -> {st}")
                    continue
                if got["slotId"] != b["slot"]:
                    problems.append(f"cycle {cycle}: booking {bid} on slot {got['slotId']}, acknowledged on {b['slot']}")
                if got["status"] not in allowed(b):
                    problems.append(f"cycle {cycle}: booking {bid} is {got['status']}, acknowledged ops allow {sorted(allowed(b))}")
                b["status"], b["unknown"] = got["status"], None  # what the restart showed
                if got["status"] in ("PENDING", "CONFIRMED"):
                    model.live.add(bid)
                else:
                    model.live.discard(bid)
        # Bookings made by requests that got no reply (in flight at the kill) hold slots the
        # clients do not know: the admin cancels them, so the load never runs out of slots.
        with model.lock:
            total = stats["bookings"]["total"] if isinstance(stats, dict) else 0
            orphans = [i for i in range(model.scanned + 1, total + 1) if i not in model.bookings]
            model.scanned = max(model.scanned, total)
        for bid in orphans:
            st, got = call(srv.api.port, "GET", f"/booking/{bid}", admin=True, conn=conn)
            if st != 200:
                problems.append(f"cycle {cycle}: booking {bid} of the replay -> {st}")
                continue
            status = got["status"]
            if status in ("PENDING", "CONFIRMED"):
                st, js = call(srv.api.port, "POST", f"/booking/{bid}/cancel", admin=True, conn=conn)
                status = js["status"] if st == 200 else status
            with model.lock:
                model.bookings[bid] = {"slot": got["slotId"], "token": None, "status": status, "unknown": None}
    finally:
        conn.close()
    return from_snapshot


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slotd", required=True)
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--seed", type=int, default=20261203)
    args = ap.parse_args()
    slotd = os.path.abspath(args.slotd)
    cycles = max(2, min(args.cycles, 100000))
    rng = random.Random(args.seed)
    print(f"snapshot_kill_test: seed {args.seed}, {cycles} cycles (re-run: --seed {args.seed} --cycles {cycles})", flush=True)
    data_dir = tempfile.mkdtemp(prefix="slotd-snapkill-data-")
    srv = Server(slotd, data_dir=data_dir, hold_ttl=3600, admin_token=ADMIN,
                 extra_args=["--snapshot-every", "25", "--snapshot-interval", "0.05", "--snapshots-kept", "2"])
    model = Model()
    problems = []
    passed = 0
    counts = {"kills": 0, "temp_left": 0, "from_snapshot": 0, "verify": 0}
    t0 = time.monotonic()
    ok = False
    try:
        srv.start(ready_timeout=60)
        st, doc = call(srv.api.port, "POST", "/doctors", {"name": "Dr. Kill", "specialty": "GP"}, admin=True)
        assert st == 201, (st, doc)
        spans = [{"start": iso(BASE_MS + i * 30 * MINUTE_MS), "end": iso(BASE_MS + i * 30 * MINUTE_MS + 20 * MINUTE_MS)} for i in range(SLOTS)]
        st, arr = call(srv.api.port, "POST", "/slots", {"doctorId": doc["id"], "slots": spans}, admin=True)
        assert st == 201, st
        model.ack(arr[-1]["seq"])
        for cycle in range(cycles):
            last = cycle == cycles - 1
            stop = threading.Event()
            deadline = time.monotonic() + 30
            threads = [threading.Thread(target=client, args=(srv.api.port, model, random.Random(rng.random()), stop, deadline), daemon=True)
                       for _ in range(THREADS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.05, 0.5))
            cycle_problems = []
            if last:
                rc = srv.stop(timeout=60)
                if rc != 0:
                    cycle_problems.append(f"SIGTERM -> exit {rc}")
            else:
                if srv.kill() != -signal.SIGKILL:
                    cycle_problems.append("slotd did not die by SIGKILL")
                counts["kills"] += 1
                if glob.glob(os.path.join(data_dir, "snapshots", "*.tmp")):
                    counts["temp_left"] += 1
            stop.set()
            for t in threads:
                t.join(REQ_TIMEOUT + 5)
            if last:
                log = srv.log_of_last_start()
                stopped = STOPPED_RE.search(log)
                snaps = SNAPSHOT_RE.findall(log)
                if not stopped or not snaps or snaps[-1] != stopped.groups():
                    cycle_problems.append(f"the shutdown hash and the final snapshot's differ: {stopped and stopped.groups()} vs {snaps[-1:]}")
            srv.start(ready_timeout=60)
            from_snapshot = check_after_restart(slotd, srv, model, cycle_problems, cycle)
            counts["from_snapshot"] += bool(from_snapshot)
            if last and stopped:
                m = RECOVERED_RE.search(srv.log_of_last_start())
                if not m or (m.group(1), m.group(5)) != stopped.groups() or m.group(4) != "0":
                    cycle_problems.append(f"after SIGTERM the next start must recover from the final snapshot to the same hash: {m and m.group(0)} vs {stopped.groups()}")
            if cycle % 10 == 9 or last:
                rc, out, err = run_tool(slotd, "verify", "--data-dir", data_dir)
                counts["verify"] += 1
                if rc != 0:
                    cycle_problems.append(f"slotd verify exit {rc}: {err.strip()} {out.strip()}")
            if cycle_problems:
                problems += cycle_problems
                print(f"FAIL cycle {cycle}:\n  " + "\n  ".join(cycle_problems[:20]) + f"\n{srv.log_tail(3000)}", flush=True)
                break
            passed += 1
            if cycle % 50 == 0 or last:
                print(f"ok   cycle {cycle}: {len(model.bookings)} acknowledged bookings, seq {model.max_seq}, counts {counts} "
                      f"({time.monotonic() - t0:.0f}s)", flush=True)
        ok = not problems
    except Exception as e:  # noqa: BLE001 - report, clean up, count as a failure
        import traceback
        traceback.print_exc()
        problems.append(repr(e))
        print(srv.log_tail(3000))
    finally:
        if srv.running():
            srv.stop(timeout=60)
        srv.cleanup()
        if ok:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"data dir kept at {data_dir}")
    print(f"cycles {passed}/{cycles}: {counts['kills']} kill -9, {counts['temp_left']} left a snapshot temp file, "
          f"{counts['from_snapshot']} recoveries from a snapshot, {counts['verify']} verify runs; {time.monotonic() - t0:.0f}s")
    print(f"snapshot-kill: {passed} passed, {cycles - passed} failed")
    return 0 if ok and passed == cycles else 1


if __name__ == "__main__":
    sys.exit(main())
