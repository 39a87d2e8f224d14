#!/usr/bin/env python3
"""Cluster mode (NATS JetStream) against real processes: 3 nats-server nodes and 3 slotd
nodes on loopback ports, started and stopped by each test (temp dirs, removed after).
Run: python3 tests/cluster_test.py --slotd build/release/api/slotd [-k pattern]
Needs nats-server on PATH (Debian package nats-server). Prints `cluster: N passed, M
failed` last. Standard library only; every wait and every load loop is bounded.
"""
import http.client
import os
import random
import re
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_util import NatsCluster, cluster_node, free_port, run_main, slot_body_times  # noqa: E402
from webhook_test import Receiver  # noqa: E402
from ws_test import Ws  # noqa: E402

SLOTD = None  # set from --slotd
LEASE_TTL = 1.5


class ClusterCase(unittest.TestCase):
    """Each test gets a fresh 3-server NATS cluster and `nodes` slotd nodes."""
    nodes_count = 3
    replicas = 3
    node_args = ()
    lease_ttl = LEASE_TTL

    def setUp(self):
        self.nats = NatsCluster(3)
        self.addCleanup(self.nats.cleanup)
        self.nats.start()
        self.nodes = []
        for i in range(self.nodes_count):
            n = cluster_node(SLOTD, self.nats, f"n{i}", lease_ttl=self.lease_ttl, replicas=self.replicas,
                             extra_args=self.node_args)
            self.addCleanup(n.cleanup)
            n.start(ready_timeout=30)
            self.nodes.append(n)
        self.servers = self.nodes  # their logs are printed on a failure

    def _outcome_logs(self):
        return "\n".join(n.log_tail(3000) for n in self.nodes) + "\n" + self.nats.log_tail()

    # ---- cluster helpers ------------------------------------------------------------

    def health(self, node):
        try:
            r = node.api.healthz(timeout=2)
            return r.json if r.status == 200 else None
        except OSError:
            return None

    def wait_leader(self, among=None, timeout=20.0, not_node=None):
        """The one running node that says it leads (exactly one may)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = []
            for n in (among or self.nodes):
                if n is not_node or not n.running():
                    continue
                h = self.health(n)
                if h and h["cluster"]["role"] == "leader":
                    leaders.append(n)
            self.assertLessEqual(len(leaders), 1, "two nodes lead at once")
            if leaders:
                return leaders[0]
            time.sleep(0.05)
        self.fail(f"no leader within {timeout}s\n{self._outcome_logs()}")

    def node_at(self, url):
        for n in self.nodes:
            if n.running() and url == f"http://127.0.0.1:{n.port}":
                return n
        return None

    def write(self, method, path, body=None, admin=False, timeout=20.0, headers=None):
        """Sends a write to whoever leads, following 421 wrong_node and waiting out 503 and
        a dead leader; the first answer that is neither is returned."""
        deadline = time.monotonic() + timeout
        target = self.wait_leader(timeout=timeout)
        while time.monotonic() < deadline:
            try:
                r = target.api.req(method, path, body, admin=admin, timeout=5, headers=headers)
            except (OSError, http.client.HTTPException):
                r = None
            if r is not None and r.status == 421 and self.node_at(r.json["error"]["leader"]):
                target = self.node_at(r.json["error"]["leader"])
                continue
            if r is not None and r.status not in (421, 503):
                return r
            time.sleep(0.1)
            target = self.wait_leader(timeout=max(0.1, deadline - time.monotonic()))
        self.fail(f"{method} {path}: no answer from a leader within {timeout}s")

    def setup_slots(self, n_slots):
        d = self.write("POST", "/doctors", {"name": "Dr. Cluster", "specialty": "GP"}, admin=True)
        self.assertEqual(d.status, 201, d.describe())
        doctor = d.json
        body = {"doctorId": doctor["id"], "slots": [slot_body_times(k) for k in range(n_slots)]}
        r = self.write("POST", "/slots", body, admin=True)
        self.assertEqual(r.status, 201, r.describe())
        return doctor, r.json

    def events(self, node, from_seq=1):
        """The whole journal of one node, as GET /events shows it."""
        out = []
        while True:
            r = node.api.req("GET", f"/events?fromSeq={from_seq}&limit=10000", admin=True, timeout=10)
            self.assertEqual(r.status, 200, r.describe())
            page = r.json
            out += page["events"]
            if not page["events"] or page["nextSeq"] > page["lastSeq"]:
                return out
            from_seq = page["nextSeq"]

    def wait_caught_up(self, nodes, seq, timeout=20.0):
        deadline = time.monotonic() + timeout
        for n in nodes:
            while True:
                h = self.health(n)
                if h and h["asOfSeq"] >= seq:
                    break
                if time.monotonic() > deadline:
                    self.fail(f"node {n.port} did not reach seq {seq} within {timeout}s: {h}")
                time.sleep(0.05)

    def assert_one_gap_free_history(self, leader, nodes):
        """The leader's journal has seqs 1..N with no gap, every SlotHeld names a slot no
        earlier SlotHeld holds (nothing frees a slot in these tests), and every other node
        shows exactly the same records."""
        leader_events = self.events(leader)
        self.assertEqual([e["seq"] for e in leader_events], list(range(1, len(leader_events) + 1)))
        held = [e["data"]["slotId"] for e in leader_events if e["type"] == "SlotHeld"]
        self.assertEqual(len(held), len(set(held)), "a slot was held twice")
        self.wait_caught_up(nodes, len(leader_events))
        for n in nodes:
            self.assertEqual(self.events(n), leader_events, f"node {n.port} differs from the leader")
        return leader_events

    def start_and_expect_events_gone(self, node):
        """Starts a node that cannot catch up from the stream: it exits 70 with the message an
        operator acts on. Returns the log of that start."""
        try:
            node.start(ready_timeout=30)
        except AssertionError:
            pass  # it may stop before it answers /healthz
        node.proc.wait(timeout=30)
        self.assertEqual(node.proc.returncode, 70, node.log_tail())
        log = node.log_of_last_start()
        self.assertIn("the stream no longer holds the events in between", log)
        return log

    def book(self, target, slot_id, patient="P"):
        return target.api.req("POST", "/booking", {"slotId": slot_id, "patientName": patient}, timeout=5)


class LeaderFailover(ClusterCase):
    def test_a_leader_killed_with_sigkill_during_booking_load_is_replaced_and_every_acknowledged_booking_survives(self):
        leader = self.wait_leader()
        doctor, slots = self.setup_slots(300)
        slot_ids = [s["id"] for s in slots]
        acked, lock = [], threading.Lock()
        acked_after_kill = []
        killed = threading.Event()
        stop_at = time.monotonic() + 40

        def client(seed):
            rnd = random.Random(seed)
            target = leader
            for _ in range(400):  # bounded in count and in time
                if time.monotonic() > stop_at or (killed.is_set() and len(acked_after_kill) >= 40):
                    return
                slot = rnd.choice(slot_ids)
                try:
                    r = self.book(target, slot, f"P{seed}")
                except (OSError, http.client.HTTPException):  # the leader died mid-request
                    r = None
                if r is not None and r.status == 201:
                    b = r.json
                    with lock:
                        acked.append((b["id"], slot, b["token"], b["seq"]))
                        if killed.is_set():
                            acked_after_kill.append(b["id"])
                elif r is not None and r.status == 421 and self.node_at(r.json["error"]["leader"]):
                    target = self.node_at(r.json["error"]["leader"])
                elif r is not None and r.status == 409:
                    pass
                else:  # 503, a dead leader named by 421 or gone itself: ask the nodes alive
                    time.sleep(0.05)
                    alive = [n for n in self.nodes if n.running()]
                    target = alive[rnd.randrange(len(alive))]

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreaterEqual(len(acked), 40, "no booking load on the first leader")
        leader.kill()
        killed.set()
        t_kill = time.monotonic()
        for t in threads:
            t.join(60)
        new_leader = self.wait_leader(not_node=leader)
        self.assertIsNot(new_leader, leader)
        self.assertFalse(any(t.is_alive() for t in threads), "a load thread did not end")
        self.assertGreater(len(acked_after_kill), 0,
                           f"no booking was acknowledged after the failover ({len(acked)} before)")
        print(f"  failover: {len(acked)} bookings acknowledged, {len(acked_after_kill)} after the kill "
              f"({time.monotonic() - t_kill:.1f}s of load after it)")

        alive = [n for n in self.nodes if n.running()]
        events = self.assert_one_gap_free_history(new_leader, alive)
        held = {e["data"]["bookingId"]: e["data"]["slotId"] for e in events if e["type"] == "SlotHeld"}
        for booking_id, slot, token, seq in acked:
            self.assertEqual(held.get(booking_id), slot, f"acknowledged booking {booking_id} (seq {seq}) is lost")
            r = new_leader.api.req("GET", f"/booking/{booking_id}", token=token)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.json["slotId"], slot)
        self.assertEqual(len({slot for _, slot, _, _ in acked}), len(acked), "two acknowledged bookings share a slot")

        # The killed node comes back as a follower and catches up from the stream, from
        # after the last message its own journal holds (found by a search, not a scan).
        leader.start(ready_timeout=30)
        self.wait_caught_up([leader], len(events))
        self.assertEqual(self.health(leader)["cluster"]["role"], "follower")
        self.assertEqual(self.events(leader), self.events(new_leader)[: len(events)])
        resumed = re.search(r"the local journal ends at event (\d+): following the stream after seq (\d+) "
                            r"\(event seq (\d+), found in (\d+) reads of (\d+) messages\)",
                            leader.log_of_last_start())
        self.assertIsNotNone(resumed, leader.log_tail())
        local, stream_seq, event_seq, reads, messages = map(int, resumed.groups())
        print(f"  restart: local journal at event {local}, resumed after stream seq {stream_seq} of {messages} "
              f"(event {event_seq}) in {reads} reads")
        self.assertGreater(stream_seq, 0)
        self.assertGreater(event_seq, 0)
        self.assertLessEqual(event_seq, local)
        self.assertLessEqual(reads, messages.bit_length() + 1)


class NatsServerLoss(ClusterCase):
    def test_writes_continue_when_one_nats_server_is_killed(self):
        self.wait_leader()
        _, slots = self.setup_slots(60)
        before = self.write("POST", "/booking", {"slotId": slots[0]["id"], "patientName": "Before"})
        self.assertEqual(before.status, 201, before.describe())
        self.nats.kill(0)
        for k in range(1, 31):
            # A reply lost to the failover is retried with the same key: answered, not redone.
            key = {"Idempotency-Key": f"nats-loss-booking-{k:04d}"}
            r = self.write("POST", "/booking", {"slotId": slots[k]["id"], "patientName": f"After {k}"},
                           timeout=30, headers=key)
            self.assertEqual(r.status, 201, r.describe())
        leader = self.wait_leader()
        self.assert_one_gap_free_history(leader, [n for n in self.nodes if n.running()])


class DeposedLeader(ClusterCase):
    def test_a_deposed_leader_that_comes_back_cannot_write_and_follows_the_new_leader(self):
        old = self.wait_leader()
        _, slots = self.setup_slots(10)
        os.kill(old.proc.pid, signal.SIGSTOP)
        try:
            new = self.wait_leader(not_node=old, timeout=20)
            r = self.book(new, slots[0]["id"], "New leader")
            self.assertEqual(r.status, 201, r.describe())
        finally:
            os.kill(old.proc.pid, signal.SIGCONT)
        # At once after it wakes up, before or after it notices the lost lease: never 201.
        outcomes = []
        for k in range(1, 6):
            try:
                r = self.book(old, slots[k]["id"], "Old leader")
                outcomes.append(r.status)
                self.assertIn(r.status, (421, 503), r.describe())
            except (OSError, http.client.HTTPException) as e:  # a fenced leader exits (75) unanswered
                outcomes.append(repr(e))
        print(f"  the deposed leader answered: {outcomes}")
        for k in range(1, 6):
            r = new.api.req("GET", f"/slots/{slots[k]['doctorId']}")
            self.assertEqual(r.status, 200)
            status = {s["id"]: s["status"] for s in r.json}
            self.assertEqual(status[slots[k]["id"]], "AVAILABLE", "a deposed leader's write reached the cluster")
        # Either it follows, or it was fenced and exits 75 (perhaps still exiting now: a
        # process that no longer answers /healthz must end, and with 75).
        h, deadline = None, time.monotonic() + 10
        while old.running() and time.monotonic() < deadline:
            h = self.health(old)
            if h is not None:
                break
            time.sleep(0.1)
        if h is not None:
            self.assertEqual(h["cluster"]["role"], "follower")
        else:
            old.proc.wait(timeout=30)
            self.assertEqual(old.proc.returncode, 75, old.log_tail())
            old.start(ready_timeout=30)
        self.assert_one_gap_free_history(new, [n for n in self.nodes if n.running()])


class LapsedLease(ClusterCase):
    nodes_count = 0

    def test_two_nodes_that_both_believe_they_lead_cannot_both_append_the_stream_fences_the_stale_one(self):
        # A creates the lease bucket (TTL 1.5 s). B renews only every 10 s (its --lease-ttl
        # is 40): once it leads, its lease lapses unnoticed, as for a paused or cut-off node.
        a = cluster_node(SLOTD, self.nats, "a", lease_ttl=LEASE_TTL)
        b = cluster_node(SLOTD, self.nats, "b", lease_ttl=40)
        for n in (a, b):
            self.addCleanup(n.cleanup)
        self.nodes = self.servers = [a, b]
        a.start(ready_timeout=30)
        self.assertIs(self.wait_leader(), a)
        b.start(ready_timeout=30)
        _, slots = self.setup_slots(4)
        self.assertEqual(a.stop(), 0)  # gives the lease up; B takes it at its next tick
        self.assertIs(self.wait_leader(timeout=20), b)
        r = self.book(b, slots[0]["id"], "While B leads")
        self.assertEqual(r.status, 201, r.describe())
        a.start(ready_timeout=30)  # takes the lapsed lease and leads, B still believes it leads
        deadline = time.monotonic() + 10
        while self.health(a)["cluster"]["role"] != "leader":
            self.assertLess(time.monotonic(), deadline, "A did not take the lapsed lease")
            time.sleep(0.05)
        self.assertEqual(self.health(b)["cluster"]["role"], "leader", "B noticed too early: nothing to fence")
        r = self.book(a, slots[1]["id"], "New leader A")
        self.assertEqual(r.status, 201, r.describe())
        try:
            stale = self.book(b, slots[2]["id"], "Stale leader B")
            answer = stale.status
        except (OSError, http.client.HTTPException) as e:
            answer = repr(e)
        self.assertNotEqual(answer, 201, "the stale leader acknowledged a write")
        b.proc.wait(20)
        self.assertEqual(b.proc.returncode, 75, b.log_tail())
        self.assertIn("fenced", b.log_of_last_start())
        status = {s["id"]: s["status"] for s in a.api.req("GET", f"/slots/{slots[2]['doctorId']}").json}
        self.assertEqual([status[s["id"]] for s in slots], ["HELD", "HELD", "AVAILABLE", "AVAILABLE"])
        # Restarted, B follows the stream again and agrees with A.
        b.start(ready_timeout=30)
        self.assert_one_gap_free_history(a, [b])


class FollowerFeed(ClusterCase):
    nodes_count = 2

    def test_a_followers_feed_matches_the_leaders_event_for_event(self):
        leader = self.wait_leader()
        follower = next(n for n in self.nodes if n is not leader)
        doctor, slots = self.setup_slots(40)
        feeds = [Ws(n.port) for n in (leader, follower)]
        for w in feeds:
            self.addCleanup(w.close)
            self.assertEqual(w.status, 101)
            # From seq 1: the missed events (read from each node's own journal), then live ones.
            w.send_json({"op": "subscribe", "doctorIds": [doctor["id"]], "fromSeq": 1})
        last_seq = 0
        for k in range(20):
            r = self.book(leader, slots[k]["id"], f"Feed {k}")
            self.assertEqual(r.status, 201, r.describe())
            b = r.json
            last_seq = b["seq"]
            if k % 3 == 0:
                c = leader.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"])
                self.assertEqual(c.status, 200, c.describe())
                last_seq = max(last_seq, c.json.get("seq", last_seq))
        got = []
        for w in feeds:
            messages = []
            while not messages or messages[-1]["seq"] < last_seq:
                m = w.recv_json(timeout=10, what=f"events up to seq {last_seq}")
                self.assertIn(m["type"], ("slot", "booking"), m)
                messages.append(m)
            got.append(messages)
        self.assertGreaterEqual(len(got[0]), 40 + 20)  # the slots, then each booking's events
        self.assertEqual(got[1], got[0])


class LeaderOnlyWebhooks(ClusterCase):
    # Loopback receiver; failed attempts are retried within a second, not minutes.
    node_args = ("--allow-private-webhooks", "--webhook-timeout", "3", "--webhook-backoff-base", "0.05",
                 "--webhook-backoff-max", "0.25")
    EVENTS_BEFORE_KILL = 40  # 20 bookings, each held and confirmed
    # A longer lease than the other tests: on a slow (TSan) build a 1.5 s lease can lapse
    # under load, and a leader change is a place where at-least-once may repeat an event.
    lease_ttl = 3.0

    def terms(self):
        """How many times any node has taken the lead so far (its log says so each time)."""
        return sum(n.log_of_last_start().count("slotd: cluster: leading from") for n in self.nodes)

    def metric(self, node, name, webhook_id=None, family="webhook"):
        text = node.api.req("GET", "/metrics", timeout=5).body.decode()
        label = f'{{webhook="{webhook_id}"}}' if webhook_id is not None else ""
        m = re.search(rf"^slotd_{family}_{name}{re.escape(label)} (\d+)$", text, re.M)
        return int(m.group(1)) if m else None

    def book_and_confirm(self, slot_id, patient):
        """One booking.held and one booking.confirmed event; their seqs."""
        b = self.write("POST", "/booking", {"slotId": slot_id, "patientName": patient},
                       headers={"Idempotency-Key": f"cluster-hook-booking-{slot_id:06d}"})
        self.assertEqual(b.status, 201, b.describe())
        c = self.write("POST", f"/booking/{b.json['id']}/confirm", admin=True)
        self.assertEqual(c.status, 200, c.describe())
        return [b.json["seq"], c.json["seq"]]

    def wait_for_ids(self, receiver, ids, timeout=60.0):
        with receiver.cond:
            ok = receiver.cond.wait_for(
                lambda: ids <= {p["json"]["id"] for p in receiver.posts}, timeout)
            got = [p["json"]["id"] for p in receiver.posts]
        self.assertTrue(ok, f"missing {sorted(ids - set(got))}; got {got}\n{self._outcome_logs()}")
        return got

    def test_only_the_leader_delivers_and_a_new_leader_resumes_from_the_shared_cursor_not_its_own(self):
        leader = self.wait_leader()
        followers = [n for n in self.nodes if n is not leader]
        receiver = Receiver()
        self.addCleanup(receiver.stop)
        _, slots = self.setup_slots(40)
        r = self.write("POST", "/admin/webhooks", {"url": receiver.url(), "events": ["booking.held", "booking.confirmed"]},
                       admin=True)
        self.assertEqual(r.status, 201, r.describe())
        hook = r.json["id"]
        before = set()
        for k in range(self.EVENTS_BEFORE_KILL // 2):
            before |= {f"evt_{seq}" for seq in self.book_and_confirm(slots[k]["id"], f"Hook {k}")}
        got = self.wait_for_ids(receiver, before)
        self.wait_caught_up(followers, self.health(leader)["asOfSeq"])
        # Only if the lease lapsed (a very slow machine) may the next leader repeat the event
        # that was in flight; the rest of the test checks the same either way.
        stable = self.terms() == 1 and self.wait_leader() is leader
        print(f"  webhooks: {'one leader' if stable else 'the lead changed'} before the kill")
        if stable:
            # The leader alone delivered, each event once; the followers attempted nothing.
            self.assertEqual(sorted(got), sorted(before), "an event arrived twice while the leader was stable")
            leader_terms = 1
        else:
            leader = self.wait_leader()
            followers = [n for n in self.nodes if n is not leader]
            leader_terms = self.terms()
        self.assertEqual(self.metric(leader, "delivering"), 1)
        for f in followers:
            self.assertEqual(self.metric(f, "delivering"), 0)
            if stable:
                self.assertEqual(self.metric(f, "deliveries_total", hook), 0)
                self.assertEqual(self.metric(f, "failures_total", hook), 0)
            r = f.api.req("GET", f"/admin/webhooks/{hook}", admin=True)
            self.assertEqual(r.status, 200, r.describe())
            self.assertEqual(r.json["delivery"]["state"], "standby")
            # Redelivery is a write: only the leader takes it. A node that has just lost the
            # lead may not know the new leader yet: that is a 503 no_leader ("retry shortly"),
            # which it may answer for a bounded time, never a success.
            deadline = time.monotonic() + 4 * self.lease_ttl
            while True:
                r = f.api.req("POST", f"/admin/webhooks/{hook}/redeliver", {}, admin=True)
                no_leader = r.status == 503 and (r.json or {}).get("error", {}).get("code") == "no_leader"
                if stable or not no_leader or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(r.status, 421, r.describe())
        if stable:
            # The receiver records a post before it answers, and the leader counts the delivery
            # once the answer is read: under a sanitizer the last count can trail the receipt.
            deadline = time.monotonic() + 10
            while (self.metric(leader, "deliveries_total", hook) or 0) < self.EVENTS_BEFORE_KILL \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(self.metric(leader, "deliveries_total", hook), self.EVENTS_BEFORE_KILL)
        # The leader's cursor is past the last event, and JetStream has acknowledged that
        # value in the shared bucket (written at most 100 ms after it was stored).
        cursor = max(int(i[len("evt_"):]) for i in before) + 1
        deadline = time.monotonic() + 30
        while self.metric(leader, "webhook_cursor_shared", hook, family="cluster") != cursor:
            self.assertLess(time.monotonic(), deadline, f"cursor {cursor} was never shared\n{self._outcome_logs()}")
            time.sleep(0.02)
        r = leader.api.req("GET", f"/admin/webhooks/{hook}", admin=True)
        self.assertEqual((r.json["delivery"]["state"], r.json["delivery"]["cursor"]), ("active", cursor))

        leader.kill()
        new_leader = self.wait_leader(not_node=leader)
        after = set()
        for k in range(self.EVENTS_BEFORE_KILL // 2, self.EVENTS_BEFORE_KILL // 2 + 10):
            after |= {f"evt_{seq}" for seq in self.book_and_confirm(slots[k]["id"], f"Hook {k}")}
        got = self.wait_for_ids(receiver, before | after)
        repeated = len(got) - len(set(got))
        repeated_before = sum(1 for i in set(got) if i in before and got.count(i) > 1)
        print(f"  webhooks: {len(before)} events before the kill, {len(after)} after; "
              f"{repeated} posts repeated an event ({repeated_before} of the events from before the kill)")
        # It resumed from the shared cursor: nothing from before the kill again (resuming from
        # its own follower cursor, it would send all of `before` again), nothing after it twice.
        self.assertLess(repeated_before, len(before), "the new leader re-delivered everything since registration")
        if stable and self.terms() == leader_terms + 1:
            self.assertEqual(repeated_before, 0, "the new leader re-delivered events the old one had delivered")
            self.assertEqual(repeated, 0)
        self.assertEqual(self.metric(new_leader, "delivering"), 1)
        for f in self.nodes:
            if f is not new_leader and f.running():
                self.assertEqual(self.metric(f, "delivering"), 0)
                if stable:
                    self.assertEqual(self.metric(f, "deliveries_total", hook), 0)
        # A clean stop (the leader writes its queued cursors, then gives the lease up): exit 0.
        for n in [n for n in self.nodes if n.running() and n is not new_leader] + [new_leader]:
            self.assertEqual(n.stop(timeout=30), 0, n.log_tail())


class TwoPartitions(ClusterCase):
    """Partition 1 (two nodes) and partition 2 (one node) on one NATS cluster: each has its
    own stream, lease and seqs; another partition's id is sent to its owner; losing
    partition 1's leader does not touch partition 2."""
    nodes_count = 0

    def setUp(self):
        super().setUp()
        import tempfile
        ports = []
        while len(ports) < 3:
            p = free_port()
            if p not in ports:
                ports.append(p)
        self.url_1, self.url_2 = f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[2]}"
        fd, map_path = tempfile.mkstemp(prefix="slotd-partitions-")
        with os.fdopen(fd, "w") as f:
            f.write(f"1 {self.url_1}\n2 {self.url_2}\n")
        self.addCleanup(os.unlink, map_path)
        for i, (partition, port) in enumerate(((1, ports[0]), (1, ports[1]), (2, ports[2]))):
            n = cluster_node(SLOTD, self.nats, f"n{i}", lease_ttl=self.lease_ttl, replicas=self.replicas, port=port,
                             extra_args=["--partition", str(partition), "--partition-map", map_path])
            self.addCleanup(n.cleanup)
            n.start(ready_timeout=30)
            self.nodes.append(n)
        self.p1, self.p2 = self.nodes[:2], self.nodes[2:]

    def seed(self, leader, n_slots):
        d = leader.api.req("POST", "/doctors", {"name": "Dr. Part", "specialty": "GP"}, admin=True, timeout=10)
        self.assertEqual(d.status, 201, d.describe())
        r = leader.api.req("POST", "/slots", {"doctorId": d.json["id"],
                                              "slots": [slot_body_times(k) for k in range(n_slots)]},
                           admin=True, timeout=10)
        self.assertEqual(r.status, 201, r.describe())
        return d.json, [s["id"] for s in r.json]

    def test_two_partitions_share_a_nats_cluster_but_not_streams_leaders_or_ids(self):
        leader_1 = self.wait_leader(among=self.p1)
        leader_2 = self.wait_leader(among=self.p2)
        doctor_1, slots_1 = self.seed(leader_1, 10)
        doctor_2, slots_2 = self.seed(leader_2, 10)
        self.assertEqual({i >> 40 for i in [doctor_1["id"], *slots_1]}, {1})
        self.assertEqual({i >> 40 for i in [doctor_2["id"], *slots_2]}, {2})
        # Another partition's slot: its owner, named by partition 1's leader. A follower names
        # its leader for any write with a body (it does not read bodies), but an id in the
        # path goes straight to the owner.
        follower = next(n for n in self.p1 if n is not leader_1)
        r = self.book(leader_1, slots_2[0])
        self.assertEqual((r.status, r.json["error"]["code"], r.json["error"].get("owner")),
                         (421, "wrong_node", self.url_2), r.describe())
        r = self.book(follower, slots_2[0])
        self.assertEqual((r.status, r.json["error"].get("leader")), (421, f"http://127.0.0.1:{leader_1.port}"),
                         r.describe())
        for n in self.p1:
            r = n.api.req("DELETE", f"/slots/{slots_2[0]}", admin=True)
            self.assertEqual((r.status, r.json["error"].get("owner")), (421, self.url_2), r.describe())
        booked = [self.book(leader_2, s, "Two").json for s in slots_2[:3]]
        self.assertEqual([b["id"] >> 40 for b in booked], [2, 2, 2])
        for s in slots_1[:5]:
            self.assertEqual(self.book(leader_1, s, "One").status, 201)
        # Each partition's journal is its own: seqs from 1, only its own ids, the same on its follower.
        events_1 = self.assert_one_gap_free_history(leader_1, self.p1)
        events_2 = self.assert_one_gap_free_history(leader_2, self.p2)
        def held(events):
            return [e["data"]["slotId"] for e in events if e["type"] == "SlotHeld"]
        self.assertEqual(held(events_1), slots_1[:5])
        self.assertEqual(held(events_2), slots_2[:3])
        self.assertFalse({e["data"].get("slotId") for e in events_1} & set(slots_2))
        # Partition 1 loses its leader: its follower takes over; partition 2 never notices.
        leader_1.kill()
        follower_1 = next(n for n in self.p1 if n is not leader_1)
        self.assertIs(self.wait_leader(among=[follower_1], timeout=20), follower_1)
        r = self.book(follower_1, slots_1[5], "After")
        self.assertEqual(r.status, 201, r.describe())
        self.assertEqual(self.health(leader_2)["cluster"]["role"], "leader")
        self.assertEqual(len(self.events(leader_2)), len(events_2))
        r = self.book(leader_2, slots_2[3], "Still")
        self.assertEqual((r.status, r.json["seq"]), (201, len(events_2) + 1), r.describe())


class PartitionsSharingANode(ClusterCase):
    """Two nodes, each serving partitions 1 and 4 (home 1): each partition elects its own
    leader through its own lease; the survivor of a kill -9 leads both, with every
    acknowledged booking of each."""
    nodes_count = 0

    def setUp(self):
        super().setUp()
        for i in range(2):
            n = cluster_node(SLOTD, self.nats, f"n{i}", lease_ttl=self.lease_ttl, replicas=self.replicas,
                             port=free_port(), extra_args=["--partition", "1,4"])
            self.addCleanup(n.cleanup)
            n.start(ready_timeout=30)
            self.nodes.append(n)

    def roles(self, node):
        h = self.health(node)
        return {p["partition"]: p.get("role") for p in h["partitions"]} if h else {}

    def leader_of(self, partition, among=None, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = [n for n in (among or self.nodes) if n.running() and self.roles(n).get(partition) == "leader"]
            self.assertLessEqual(len(leaders), 1, f"two nodes lead partition {partition} at once")
            if leaders:
                return leaders[0]
            time.sleep(0.05)
        self.fail(f"no leader of partition {partition} within {timeout}s\n{self._outcome_logs()}")

    def seqs(self, node):
        h = self.health(node)
        return {p["partition"]: p["asOfSeq"] for p in h["partitions"]}

    def test_each_partition_of_a_shared_node_has_its_own_leader_and_the_survivor_of_a_kill_leads_both(self):
        leader_1, leader_4 = self.leader_of(1), self.leader_of(4)
        # Partition 1: a doctor of its first clinic; partition 4: a clinic created there.
        d1 = leader_1.api.req("POST", "/doctors", {"name": "Dr. One", "specialty": "GP"}, admin=True, timeout=10)
        self.assertEqual(d1.status, 201, d1.describe())
        c4 = leader_4.api.req("POST", "/clinics?partition=4", {"name": "Four", "timeZone": "UTC"}, admin=True, timeout=10)
        self.assertEqual(c4.status, 201, c4.describe())
        d4 = leader_4.api.req("POST", "/doctors", {"name": "Dr. Four", "specialty": "GP", "clinicId": c4.json["id"]},
                              admin=True, timeout=10)
        self.assertEqual(d4.status, 201, d4.describe())
        slots = {}
        for partition, leader, doctor in ((1, leader_1, d1.json), (4, leader_4, d4.json)):
            r = leader.api.req("POST", "/slots", {"doctorId": doctor["id"],
                                                  "slots": [slot_body_times(k) for k in range(8)]},
                               admin=True, timeout=10)
            self.assertEqual(r.status, 201, r.describe())
            slots[partition] = [x["id"] for x in r.json]
            self.assertEqual({i >> 40 for i in slots[partition]}, {partition})
        booked = {1: [], 4: []}
        for partition, leader in ((1, leader_1), (4, leader_4)):
            for s in slots[partition][:4]:
                r = self.book(leader, s)
                self.assertEqual(r.status, 201, r.describe())
                booked[partition].append(r.json)
        # A node that does not lead a partition names that partition's leader for its writes.
        for partition, leader in ((1, leader_1), (4, leader_4)):
            other = next(n for n in self.nodes if n is not leader)
            r = self.book(other, slots[partition][4])
            self.assertEqual((r.status, r.json["error"].get("leader")), (421, f"http://127.0.0.1:{leader.port}"),
                             r.describe())
        # Every node holds both partitions, each with its own seqs.
        want = {p: booked[p][-1]["seq"] for p in (1, 4)}
        deadline = time.monotonic() + 20
        for n in self.nodes:
            while any(self.seqs(n)[p] < want[p] for p in want):
                self.assertLess(time.monotonic(), deadline, f"node {n.port} did not catch up: {self.seqs(n)}")
                time.sleep(0.05)
            for p, doctor in ((1, d1.json), (4, d4.json)):
                statuses = {x["id"]: x["status"] for x in n.api.req("GET", f"/slots/{doctor['id']}").json}
                self.assertEqual([statuses[s] for s in slots[p]], ["HELD"] * 4 + ["AVAILABLE"] * 4, (n.port, p))
        # The node leading partition 4 dies; the other leads both and has every booking.
        leader_4.kill()
        survivor = next(n for n in self.nodes if n is not leader_4)
        self.assertIs(self.leader_of(4, among=[survivor], timeout=20), survivor)
        self.assertIs(self.leader_of(1, among=[survivor], timeout=20), survivor)
        for p, doctor in ((1, d1.json), (4, d4.json)):
            for b in booked[p]:
                got = survivor.api.req("GET", f"/booking/{b['id']}", token=b["token"])
                self.assertEqual((got.status, got.json["status"]), (200, "PENDING"), got.describe())
            r = self.book(survivor, slots[p][5])
            self.assertEqual((r.status, r.json["seq"], r.json["id"] >> 40), (201, booked[p][-1]["seq"] + 1, p),
                             r.describe())
            r = self.book(survivor, slots[p][0])
            self.assertEqual((r.status, r.json["error"]["code"]), (409, "slot_unavailable"), r.describe())


class StreamRetention(ClusterCase):
    """--stream-keep-batches 10: JetStream keeps the newest 10 batches. A follower that
    keeps up loses nothing; one stopped for longer stops with a clear error instead of
    following with a gap; started from a copy of a stopped node's data dir, it catches up."""
    nodes_count = 2
    node_args = ("--stream-keep-batches", "10")

    def wait_first_seq_above(self, node, seq, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.health(node)
            if h and h["cluster"]["streamFirstSeq"] > seq:
                return h["cluster"]["streamFirstSeq"]
            time.sleep(0.05)
        self.fail(f"the stream still starts at or before seq {seq}: {self.health(node)}")

    def test_the_stream_keeps_the_newest_batches_a_node_behind_them_stops_and_a_copied_data_dir_catches_up(self):
        import shutil
        leader = self.wait_leader()
        follower = next(n for n in self.nodes if n is not leader)
        _, slots = self.setup_slots(60)
        booked = []
        for k in range(25):  # one batch each: every request waits for the one before
            r = self.book(leader, slots[k]["id"], f"Kept {k}")
            self.assertEqual(r.status, 201, r.describe())
            booked.append(r.json)
            if k % 5 == 4:  # a follower that keeps up: never 10 batches behind, even under ASan
                self.wait_caught_up([follower], self.health(leader)["asOfSeq"])
        # 27 batches so far (the doctor, the slots, 25 bookings): the first 17 are gone (the
        # figure is as of the node's last lease tick, so wait for it).
        first = self.wait_first_seq_above(leader, 17)
        self.assertEqual(first, 18, "exactly the newest 10 are kept")
        metrics = leader.api.req("GET", "/metrics", timeout=5).body.decode()
        kept = int(re.search(r"^slotd_cluster_stream_first_seq (\d+)$", metrics, re.M).group(1))
        self.assertGreaterEqual(kept, first)
        self.assert_one_gap_free_history(leader, [follower])  # it kept up: nothing missing
        # Stopped while 15 more batches go in, the follower is behind what the stream keeps.
        self.assertEqual(follower.stop(), 0)
        for k in range(25, 40):
            r = self.book(leader, slots[k]["id"], f"Missed {k}")
            self.assertEqual(r.status, 201, r.describe())
            booked.append(r.json)
        self.wait_first_seq_above(leader, 28)
        self.start_and_expect_events_gone(follower)
        # What an operator does: start it from a copy of a stopped node's data dir.
        self.assertEqual(leader.stop(), 0)
        shutil.rmtree(follower.data_dir)
        shutil.copytree(leader.data_dir, follower.data_dir)
        follower.start(ready_timeout=30)
        self.assertIs(self.wait_leader(among=[follower], timeout=20), follower)
        leader.start(ready_timeout=30)
        for b in booked:
            r = follower.api.req("GET", f"/booking/{b['id']}", timeout=5)
            self.assertEqual((r.status, r.json["slotId"]), (200, b["slotId"]), r.describe())
        r = self.book(follower, slots[40]["id"], "After the copy")
        self.assertEqual(r.status, 201, r.describe())
        self.assert_one_gap_free_history(follower, [leader])


class DeletedStreamMessage(ClusterCase):
    """A message deleted from the middle of the stream (an operator's `nats stream rmm`): a
    follower that still needs it stops with the same clear error as one behind the
    stream's retention, instead of following with a gap or looping on it."""
    nodes_count = 2

    def test_a_follower_that_needs_a_message_deleted_from_the_middle_of_the_stream_stops(self):
        leader = self.wait_leader()
        follower = next(n for n in self.nodes if n is not leader)
        _, slots = self.setup_slots(10)
        for k in range(3):
            self.assertEqual(self.book(leader, slots[k]["id"], f"Before {k}").status, 201)
        self.assert_one_gap_free_history(leader, [follower])
        self.assertEqual(follower.stop(), 0)
        for k in range(3, 6):
            self.assertEqual(self.book(leader, slots[k]["id"], f"While stopped {k}").status, 201)
        info = self.nats.request("$JS.API.STREAM.INFO.SLOTD_p0", {})
        last = info["state"]["last_seq"]
        # The middle one of the three batches the stopped follower has not seen.
        deleted = self.nats.request("$JS.API.STREAM.MSG.DELETE.SLOTD_p0", {"seq": last - 1})
        self.assertEqual(deleted, {"type": "io.nats.jetstream.api.v1.stream_msg_delete_response", "success": True})
        log = self.start_and_expect_events_gone(follower)
        self.assertIn(f"stream seq {last} starts at event", log)
        self.assertNotIn("subscribing again", log)
        # The leader goes on.
        self.assertEqual(self.book(leader, slots[6]["id"], "After").status, 201)


if __name__ == "__main__":
    sys.exit(run_main(sys.modules[__name__], "cluster"))
