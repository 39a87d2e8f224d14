#!/usr/bin/env python3
"""Audit features against a real slotd on a loopback port: the history routes
(GET /booking/:id/history, GET /slots/:id/history), the tools `slotd replay | verify |
export` on a live and on a stopped data dir (read-only: the dir is unchanged), and the
state hashes logged at every snapshot, at shutdown and after recovery, which must match.

Run: python3 tests/audit_test.py --slotd build/release/api/slotd [-k NAME]
Prints `audit: N passed, M failed` last. Standard library only; loopback only.
"""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_util import BASE_MS, MINUTE_MS, ServerCase, child_env, iso, run_main  # noqa: E402

SLOTD = None
RECOVERED_RE = re.compile(r"recovered to seq (\d+) from .* \((no snapshot|snapshot at seq (\d+)), then (\d+) journal events\), state hash ([0-9a-f]{16})")
PHASES_RE = re.compile(r"recovery phases: snapshot (\d+) ms, journal tail (\d+) ms, invariants and read side (\d+) ms")
STOPPED_RE = re.compile(r"stopped cleanly at seq (\d+), state hash ([0-9a-f]{16})")
SNAPSHOT_RE = re.compile(r"snapshot at seq (\d+), state hash ([0-9a-f]{16})")


def tool(*args):
    p = subprocess.run([SLOTD, *args], capture_output=True, text=True, timeout=120, env=child_env())
    return p.returncode, p.stdout, p.stderr


def listing(root):
    """Every file and dir under root with size and mtime: what 'never writes' compares."""
    out = []
    for d, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = os.path.join(d, name)
            st = os.lstat(p)
            out.append((os.path.relpath(p, root), st.st_size, st.st_mtime_ns, st.st_mode))
    return sorted(out)


class AuditCase(ServerCase):
    maxDiff = 4000

    @property
    def api(self):
        return self.server.api

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r.describe())
        return r.json

    def seed(self, slots=6):
        """A doctor with slots; returns their ids."""
        doc = self.ok(self.api.req("POST", "/doctors", {"name": "Dr. Audit", "specialty": "GP"}, admin=True), 201)
        spans = [{"start": iso(BASE_MS + i * 30 * MINUTE_MS), "end": iso(BASE_MS + i * 30 * MINUTE_MS + 20 * MINUTE_MS)}
                 for i in range(slots)]
        arr = self.ok(self.api.req("POST", "/slots", {"doctorId": doc["id"], "slots": spans}, admin=True), 201)
        return [s["id"] for s in arr]

    def book(self, slot, name="Ann"):
        return self.ok(self.api.req("POST", "/booking", {"slotId": slot, "patientName": name}), 201)


class HistoryTest(AuditCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=60)

    def test_a_booking_history_is_its_events_in_seq_order_for_its_token_or_the_admin(self):
        slot = self.seed(2)[0]
        b = self.book(slot)
        c = self.ok(self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"]))
        x = self.ok(self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"]))
        other = self.book(slot, "Bob")  # the slot is free again: another booking, not in this history
        h = self.ok(self.api.req("GET", f"/booking/{b['id']}/history", token=b["token"]))
        self.assertEqual(h["bookingId"], b["id"])
        self.assertEqual([(e["seq"], e["type"]) for e in h["events"]],
                         [(b["seq"], "SlotHeld"), (c["seq"], "BookingConfirmed"), (x["seq"], "BookingCancelled")])
        self.assertIsNone(h["nextSeq"])
        self.assertEqual(h["events"][0]["data"]["patientName"], "Ann")
        self.assertNotIn("token", json.dumps(h))
        # The same events as the journal (GET /events) shows them.
        ev = self.ok(self.api.req("GET", f"/events?fromSeq={b['seq']}&limit=1", admin=True))["events"][0]
        self.assertEqual(h["events"][0], ev)
        self.assertEqual(self.ok(self.api.req("GET", f"/booking/{b['id']}/history", admin=True)), h)
        self.assertEqual(self.ok(self.api.req("GET", f"/booking/{b['id']}/history?token={b['token']}")), h)
        self.assertEqual(self.api.req("GET", f"/booking/{b['id']}/history").status, 403)
        self.assertEqual(self.api.req("GET", f"/booking/{b['id']}/history", token=other["token"]).status, 403)
        r = self.api.req("GET", "/booking/999999/history", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "booking_not_found"))

    def test_a_slot_history_is_every_event_of_the_slot_for_the_admin_paged_by_seq(self):
        slot = self.seed(1)[0]
        seqs = []
        for i in range(3):
            b = self.book(slot, f"P{i}")
            seqs.append(b["seq"])
            seqs.append(self.ok(self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"]))["seq"])
        closed = self.ok(self.api.req("DELETE", f"/slots/{slot}", admin=True))
        h = self.ok(self.api.req("GET", f"/slots/{slot}/history", admin=True))
        self.assertEqual(h["slotId"], slot)
        types = [e["type"] for e in h["events"]]
        self.assertEqual(types, ["SlotCreated"] + ["SlotHeld", "BookingCancelled"] * 3 + ["SlotClosed"])
        got = [e["seq"] for e in h["events"]]
        self.assertEqual(got[1:], seqs + [closed["seq"]])
        self.assertEqual(got, sorted(got))
        page1 = self.ok(self.api.req("GET", f"/slots/{slot}/history?limit=3", admin=True))
        self.assertEqual([e["seq"] for e in page1["events"]], got[:3])
        self.assertEqual(page1["nextSeq"], got[2] + 1)
        page2 = self.ok(self.api.req("GET", f"/slots/{slot}/history?limit=3&fromSeq={page1['nextSeq']}", admin=True))
        self.assertEqual([e["seq"] for e in page2["events"]], got[3:6])
        self.assertEqual(self.api.req("GET", f"/slots/{slot}/history").status, 401)
        self.assertEqual(self.api.req("GET", f"/slots/{slot}/history?limit=0", admin=True).status, 400)
        r = self.api.req("GET", "/slots/999999/history", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "slot_not_found"))

    def test_history_survives_a_restart_and_the_routes_are_in_openapi(self):
        slot = self.seed(1)[0]
        b = self.book(slot)
        before = self.ok(self.api.req("GET", f"/booking/{b['id']}/history", token=b["token"]))
        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        self.assertEqual(self.ok(self.api.req("GET", f"/booking/{b['id']}/history", token=b["token"])), before)
        paths = self.ok(self.api.req("GET", "/openapi.json"))["paths"]
        self.assertIn("/booking/{id}/history", paths)
        self.assertIn("/slots/{id}/history", paths)


class ToolsTest(AuditCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=60, extra_args=["--snapshot-every", "5"])

    def workload(self):
        ids = self.seed(8)
        for i, slot in enumerate(ids[:6]):
            b = self.book(slot, f"Pat {i}")
            op = "confirm" if i % 2 else "cancel"
            self.ok(self.api.req("POST", f"/booking/{b['id']}/{op}", token=b["token"]))
        return ids

    def test_tools_run_beside_a_live_slotd_and_agree_with_it(self):
        self.workload()
        last = self.api.healthz().json["seq"]
        rc, out, err = tool("verify", "--data-dir", self.server.data_dir)
        self.assertEqual(rc, 0, err)
        self.assertIn("gap-free", out)
        rc, out, err = tool("replay", "--data-dir", self.server.data_dir)
        self.assertEqual(rc, 0, err)
        rep = json.loads(out)
        self.assertEqual(rep["lastSeq"], last)
        stats = self.ok(self.api.req("GET", "/admin/stats", admin=True))
        for k in ("total", "available", "held", "booked", "closed"):
            self.assertEqual(rep["slots"][k], stats["slots"][k], k)
        for k in ("total", "pending", "confirmed", "failed", "cancelled"):
            self.assertEqual(rep["bookings"][k], stats["bookings"][k], k)
        rc, out, err = tool("export", "--data-dir", self.server.data_dir)
        self.assertEqual(rc, 0, err)
        lines = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([e["seq"] for e in lines], list(range(1, last + 1)))
        events = self.ok(self.api.req("GET", f"/events?fromSeq=1&limit={last}", admin=True))["events"]
        self.assertEqual(lines, events)
        self.assertNotIn("token", out)
        rc, out, err = tool("export", "--data-dir", self.server.data_dir, "--from-seq", "3", "--until-seq", "5")
        self.assertEqual([json.loads(line)["seq"] for line in out.splitlines()], [3, 4, 5])

    def test_replay_until_a_seq_shows_the_state_as_of_that_seq_without_tokens(self):
        ids = self.workload()
        b = self.book(ids[7], "Late")
        rc, out, err = tool("replay", "--data-dir", self.server.data_dir, "--until-seq", str(b["seq"] - 1))
        self.assertEqual(rc, 0, err)
        before = json.loads(out)
        self.assertEqual(before["lastSeq"], b["seq"] - 1)
        slots = {s["id"]: s for s in before["state"]["slots"]}
        self.assertEqual(slots[ids[7]]["status"], "AVAILABLE")
        self.assertNotIn(b["id"], [x["id"] for x in before["state"]["bookings"]])
        rc, out, err = tool("replay", "--data-dir", self.server.data_dir, "--until-seq", str(b["seq"]))
        after = json.loads(out)
        booking = {x["id"]: x for x in after["state"]["bookings"]}[b["id"]]
        self.assertEqual((booking["slotId"], booking["status"], booking["patientName"]), (ids[7], "PENDING", "Late"))
        self.assertNotEqual(before["stateHash"], after["stateHash"])
        self.assertNotIn("token", out)
        self.assertNotIn(b["token"], out)

    def test_the_tools_never_write_to_the_data_dir(self):
        self.workload()
        self.assertEqual(self.server.stop(), 0)
        try:
            before = listing(self.server.data_dir)
            for args in (["replay"], ["replay", "--until-seq", "3"], ["verify"], ["export"]):
                rc, _out, err = tool(*args, "--data-dir", self.server.data_dir)
                self.assertEqual(rc, 0, f"{args}: {err}")
            self.assertEqual(listing(self.server.data_dir), before)
        finally:
            self.server.start()

    def test_verify_names_a_corrupt_snapshot_and_exits_non_zero(self):
        self.workload()
        self.assertEqual(self.server.stop(), 0)
        snaps = sorted(os.listdir(os.path.join(self.server.data_dir, "snapshots")))
        path = os.path.join(self.server.data_dir, "snapshots", snaps[-1])
        with open(path, "r+b") as f:
            f.seek(60)
            byte = f.read(1)
            f.seek(60)
            f.write(bytes([byte[0] ^ 0xFF]))
        rc, out, err = tool("verify", "--data-dir", self.server.data_dir)
        self.assertEqual(rc, 1, out)
        self.assertIn(path, err)
        self.assertIn("checksum mismatch", err)
        # slotd itself skips it, names it, and recovers to the same state from the journal.
        self.server.start()
        log = self.server.log_of_last_start()
        self.assertIn(f"skipping snapshot {path}: checksum mismatch", log)
        os.remove(path)  # leave a consistent dir for the next test
        rc, out, err = tool("verify", "--data-dir", self.server.data_dir)
        self.assertEqual(rc, 0, err)

    def test_bad_usage_and_a_missing_data_dir_are_clear_errors(self):
        rc, _out, err = tool("replay", "--data-dir", "/nonexistent/slotd-data")
        self.assertEqual(rc, 1)
        self.assertIn("no data dir", err)
        rc, _out, err = tool("export", "--bogus", "1")
        self.assertEqual(rc, 2)
        self.assertIn("unknown flag --bogus", err)
        rc, out, _err = tool("--help")
        self.assertEqual(rc, 0)
        self.assertIn("slotd verify --data-dir D", out)
        self.assertIn("--snapshot-every", out)


class HashLinesTest(AuditCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=60, extra_args=["--snapshot-every", "4", "--snapshots-kept", "2"])

    def test_the_hashes_logged_at_snapshots_shutdown_and_recovery_match_each_other_and_a_replay(self):
        ids = self.seed(10)
        for i, slot in enumerate(ids):
            b = self.book(slot, f"H{i}")
            if i % 3 == 0:
                self.ok(self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"]))
        self.assertEqual(self.server.stop(), 0)
        log = self.server.log_of_last_start()
        stopped = STOPPED_RE.search(log)
        self.assertIsNotNone(stopped, log)
        snaps = SNAPSHOT_RE.findall(log)
        # How many forked snapshots finish before SIGTERM depends on speed; the final one is always there.
        self.assertGreaterEqual(len(snaps), 1, log)
        self.assertEqual(snaps[-1], stopped.groups(), "the final snapshot is the shutdown state")
        rc, out, err = tool("replay", "--data-dir", self.server.data_dir)
        rep = json.loads(out)
        self.assertEqual((str(rep["lastSeq"]), rep["stateHash"]), stopped.groups())
        for seq, h in snaps:
            rc, out, err = tool("replay", "--data-dir", self.server.data_dir, "--until-seq", seq)
            self.assertEqual(json.loads(out)["stateHash"], h, f"snapshot at seq {seq}")
        kept = sorted(os.listdir(os.path.join(self.server.data_dir, "snapshots")))
        self.assertEqual(len(kept), 2, kept)
        self.server.start()
        m = RECOVERED_RE.search(self.server.log_of_last_start())
        self.assertIsNotNone(m)
        self.assertEqual((m.group(1), m.group(5)), stopped.groups())
        self.assertEqual((m.group(3), m.group(4)), (stopped.group(1), "0"))
        # After a kill -9 the next start recovers from a snapshot + tail to the replay's hash.
        b = self.book(self.seed(1)[0], "Killed")
        self.server.kill()
        self.server.start()
        m = RECOVERED_RE.search(self.server.log_of_last_start())
        self.assertEqual(int(m.group(1)), b["seq"])
        # Where the start-up went, on the line after (phases in whole ms).
        self.assertIsNotNone(PHASES_RE.search(self.server.log_of_last_start()))
        rc, out, err = tool("replay", "--data-dir", self.server.data_dir, "--until-seq", m.group(1))
        self.assertEqual(json.loads(out)["stateHash"], m.group(5))


def main():
    return run_main(sys.modules[__name__], "audit")


if __name__ == "__main__":
    sys.exit(main())
