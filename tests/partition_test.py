#!/usr/bin/env python3
"""Partitions against two real slotd processes on loopback ports, each serving one
partition of one map file: ids carry their partition (partition << 40 | engine id), a
request naming another partition's id gets 421 wrong_node with the owner's URL (and a
Location on a GET, which the client can follow; an `error` message on the feed), a
refused request changes nothing on either node, a data dir keeps the partition it was
created for, and the audit tools show the ids the API shows.

Run: python3 tests/partition_test.py --slotd build/release/api/slotd [-k NAME]
Prints `partition: N passed, M failed` last. Standard library only; loopback only.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_util import BASE_MS, MINUTE_MS, Server, ServerCase, child_env, free_port, iso, run_main  # noqa: E402
from webhook_test import Receiver  # noqa: E402
from ws_test import Ws  # noqa: E402

SLOTD = None
SHIFT = 40


def partition_of(i):
    return i >> SHIFT


def seed_clinic(case, api, slots, clinics_path="/clinics"):
    """POST clinics_path → a clinic, then a doctor of it with `slots` slots; returns
    (clinic, doctor, slot ids). The doctor and slots go where the clinic's id says."""
    def created(r):
        return case.ok(r, 201)
    clinic = created(api.req("POST", clinics_path, {"name": "North", "timeZone": "UTC"}, admin=True))
    doctor = created(api.req("POST", "/doctors", {"name": "Dr. P", "specialty": "GP", "clinicId": clinic["id"]},
                             admin=True))
    spans = [{"start": iso(BASE_MS + i * 30 * MINUTE_MS), "end": iso(BASE_MS + i * 30 * MINUTE_MS + 20 * MINUTE_MS)}
             for i in range(slots)]
    listed = created(api.req("POST", "/slots", {"doctorId": doctor["id"], "slots": spans}, admin=True))
    return clinic, doctor, [s["id"] for s in listed]


class TwoNodesOneMap(ServerCase):
    """Node A and node B on fixed ports, started with --partition A_PARTITIONS and
    B_PARTITIONS and one map file, whose text map_text(url_a, url_b) gives."""

    A_PARTITIONS = B_PARTITIONS = None
    A_ARGS = []  # more flags for node A
    maxDiff = 4000

    @classmethod
    def map_text(cls, url_a, url_b):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.map_dir = tempfile.mkdtemp(prefix="slotd-partition-map-")
        port_a, port_b = free_port(), free_port()
        while port_b == port_a:
            port_b = free_port()
        cls.url_a, cls.url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        cls.map_path = os.path.join(cls.map_dir, "partitions")
        with open(cls.map_path, "w") as f:
            f.write(cls.map_text(cls.url_a, cls.url_b))
        cls.a = cls.start_server(port=port_a, hold_ttl=60,
                                 extra_args=["--partition", cls.A_PARTITIONS, "--partition-map", cls.map_path,
                                             *cls.A_ARGS])
        cls.b = cls.start_server(port=port_b, hold_ttl=60,
                                 extra_args=["--partition", cls.B_PARTITIONS, "--partition-map", cls.map_path])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        import shutil
        shutil.rmtree(cls.map_dir, ignore_errors=True)

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r.describe())
        return r.json


class TwoPartitions(TwoNodesOneMap):
    """Partition 1 on node A, partition 2 on node B; the map also names partition 7, which
    no process serves (its ids are still sent to its owner, never answered as unknown)."""

    A_PARTITIONS, B_PARTITIONS = "1", "2"
    url_7 = "http://127.0.0.1:9"

    @classmethod
    def map_text(cls, url_a, url_b):
        return f"# partition  owner\n1 {url_a}\n2 {url_b}/\n7 {cls.url_7}\n"

    def wrong_node(self, r, owner, location=None):
        self.assertEqual(r.status, 421, r.describe())
        self.assertEqual(r.json["error"]["code"], "wrong_node", r.describe())
        self.assertEqual(r.json["error"]["owner"], owner, r.describe())
        self.assertEqual(r.headers.get("location"), location, r.describe())

    def seed(self, node, slots=3):
        """A clinic, a doctor and slots on `node`; returns (clinic, doctor, slot ids)."""
        return seed_clinic(self, node.api, slots)

    def test_every_id_a_node_hands_out_carries_its_partition(self):
        self.assertEqual(self.ok(self.a.api.healthz())["partition"], 1)
        self.assertEqual(self.ok(self.b.api.healthz())["partition"], 2)
        clinic, doctor, slots = self.seed(self.b)
        self.assertGreaterEqual(clinic["id"] & ((1 << SHIFT) - 1), 2)  # clinic 1 is there from the start
        for i in [clinic["id"], doctor["id"], doctor["clinicId"], *slots]:
            self.assertEqual(partition_of(i), 2, i)
        self.assertLess(max(slots), 1 << 53)
        b = self.ok(self.b.api.req("POST", "/booking", {"slotId": slots[0], "patientName": "Ann"}), 201)
        self.assertEqual(partition_of(b["id"]), 2)
        self.assertEqual(b["slotId"], slots[0])
        got = self.ok(self.b.api.req("GET", f"/booking/{b['id']}?include=slot", token=b["token"]))
        self.assertEqual((got["id"], got["slotId"], got["doctorId"], got["clinicId"]),
                         (b["id"], slots[0], doctor["id"], clinic["id"]))
        # The journal, the admin list and the slot list show the same ids.
        events = self.ok(self.b.api.req("GET", f"/events?fromSeq={b['seq']}&limit=1", admin=True))["events"]
        self.assertEqual((events[0]["data"]["bookingId"], events[0]["data"]["slotId"]), (b["id"], slots[0]))
        listed = self.ok(self.b.api.req("GET", f"/admin/bookings?doctorId={doctor['id']}", admin=True))
        self.assertEqual([(x["id"], x["slotId"], x["clinicId"]) for x in listed["bookings"]],
                         [(b["id"], slots[0], clinic["id"])])
        listed_slots = self.ok(self.b.api.req("GET", f"/slots/{doctor['id']}"))
        self.assertEqual([s["id"] for s in listed_slots], slots)
        self.assertEqual({s["doctorId"] for s in listed_slots}, {doctor["id"]})
        # A node lists only the doctors of its own partition.
        on_a = self.ok(self.a.api.req("GET", "/doctors"))
        self.assertNotIn(doctor["id"], [d["id"] for d in on_a])
        self.assertTrue(all(partition_of(d["id"]) == 1 for d in on_a), on_a)

    def test_a_read_of_another_partition_is_sent_to_its_owner_with_a_location_to_follow(self):
        clinic, doctor, slots = self.seed(self.b)
        path = f"/slots/{doctor['id']}?status=AVAILABLE"
        r = self.a.api.req("GET", path)
        self.wrong_node(r, self.url_b, self.url_b + path)
        # The client follows the Location: the owner answers.
        followed = self.b.api.req("GET", r.headers["location"][len(self.url_b):])
        self.assertEqual([s["id"] for s in self.ok(followed)], slots)
        r = self.a.api.req("GET", f"/doctors?clinicId={clinic['id']}")
        self.wrong_node(r, self.url_b, f"{self.url_b}/doctors?clinicId={clinic['id']}")
        r = self.a.api.req("HEAD", f"/slots/{doctor['id']}")
        self.assertEqual((r.status, r.headers.get("location")), (421, f"{self.url_b}/slots/{doctor['id']}"))
        # Partition 7 is in the map but served by nobody here: still its owner's, not "unknown".
        seven = (7 << SHIFT) | 1
        self.wrong_node(self.a.api.req("GET", f"/slots/{seven}"), self.url_7, f"{self.url_7}/slots/{seven}")

    def test_a_write_naming_another_partition_is_refused_on_both_nodes_and_changes_nothing(self):
        clinic, doctor, slots = self.seed(self.b)
        seq_a = self.ok(self.a.api.healthz())["seq"]
        seq_b = self.ok(self.b.api.healthz())["seq"]
        # Body ids and path ids, with and without the admin token: 421, no Location (not a GET).
        self.wrong_node(self.a.api.req("POST", "/booking", {"slotId": slots[1], "patientName": "Bob"}), self.url_b)
        self.wrong_node(self.a.api.req("POST", "/slots", {"doctorId": doctor["id"], "start": iso(BASE_MS),
                                                          "end": iso(BASE_MS + MINUTE_MS)}, admin=True), self.url_b)
        self.wrong_node(self.a.api.req("POST", "/doctors", {"name": "Dr. X", "specialty": "",
                                                            "clinicId": clinic["id"]}, admin=True), self.url_b)
        self.wrong_node(self.a.api.req("POST", "/waitlist", {"doctorId": doctor["id"], "patientName": "W",
                                                             "from": iso(BASE_MS), "to": iso(BASE_MS + 60 * MINUTE_MS)}),
                        self.url_b)
        self.wrong_node(self.a.api.req("DELETE", f"/slots/{slots[1]}", admin=True), self.url_b)
        self.wrong_node(self.a.api.req("PATCH", f"/clinics/{clinic['id']}", {"name": "Moved"}, admin=True), self.url_b)
        b = self.ok(self.b.api.req("POST", "/booking", {"slotId": slots[2], "patientName": "Cy"}), 201)
        self.wrong_node(self.a.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"]), self.url_b)
        self.wrong_node(self.a.api.req("GET", f"/booking/{b['id']}", token=b["token"]), self.url_b,
                        f"{self.url_b}/booking/{b['id']}")
        # Nothing happened on A, and on B only the one booking.
        self.assertEqual(self.ok(self.a.api.healthz())["seq"], seq_a)
        self.assertEqual(self.ok(self.b.api.healthz())["seq"], b["seq"])
        self.assertEqual(b["seq"], seq_b + 1)
        statuses = {s["id"]: s["status"] for s in self.ok(self.b.api.req("GET", f"/slots/{doctor['id']}"))}
        self.assertEqual(statuses, {slots[0]: "AVAILABLE", slots[1]: "AVAILABLE", slots[2]: "HELD"})
        # The owner takes the confirm; a move to another partition's slot is a 400 there.
        self.assertEqual(self.ok(self.b.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"]))["status"],
                         "CONFIRMED")
        _c, _d, slots_a = self.seed(self.a, 1)
        r = self.b.api.req("POST", f"/booking/{b['id']}/reschedule", {"slotId": slots_a[0]}, token=b["token"])
        self.assertEqual((r.status, r.json["error"]["code"]), (400, "invalid_field"), r.describe())

    def test_a_feed_subscription_to_another_partitions_doctor_is_an_error_naming_the_owner(self):
        _clinic, doctor, slots = self.seed(self.b)
        _clinic_a, doctor_a, _slots_a = self.seed(self.a, 1)
        w = Ws(self.a.port)
        self.addCleanup(w.close)
        self.assertEqual(w.status, 101)
        w.send_json({"op": "subscribe", "doctorIds": [doctor_a["id"], doctor["id"]]})
        m = w.recv_json(timeout=10, what="the error")
        self.assertEqual((m["type"], m["code"]), ("error", "wrong_node"), m)
        self.assertIn(self.url_b, m["message"])
        # On the owner the same subscription works, with the owner's ids.
        w2 = Ws(self.b.port)
        self.addCleanup(w2.close)
        w2.send_json({"op": "subscribe", "doctorIds": [doctor["id"]]})
        snap = w2.recv_json(timeout=10, what="the snapshot")
        self.assertEqual(snap["type"], "snapshot", snap)
        self.assertEqual([s["id"] for s in snap["slots"]], slots)

    def test_a_partition_query_for_another_partition_is_never_answered_with_this_ones_data(self):
        self.seed(self.a, 1)
        own = self.ok(self.a.api.req("GET", "/events?partition=1&limit=5", admin=True))
        self.assertTrue(own["events"], own)
        r = self.a.api.req("GET", "/events?partition=2&limit=5", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"], r.headers.get("location")),
                         (421, "wrong_node", f"{self.url_b}/events?partition=2&limit=5"), r.describe())
        r = self.a.api.req("GET", "/admin/stats?partition=5", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "not_found"), r.describe())
        r = self.a.api.req("POST", "/clinics?partition=2", {"name": "Not here", "timeZone": "UTC"}, admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (421, "wrong_node"), r.describe())

    def test_an_id_of_a_partition_outside_the_map_is_not_found(self):
        stray = (5 << SHIFT) | 1
        r = self.a.api.req("GET", f"/booking/{stray}", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "booking_not_found"), r.describe())
        r = self.a.api.req("POST", "/booking", {"slotId": stray, "patientName": "Dee"})
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "slot_not_found"), r.describe())


class SeveralPartitionsInOneProcess(TwoNodesOneMap):
    """Node A serves partitions 1 (its home, in DATA_DIR) and 4 (in DATA_DIR/p4) in one
    process; node B serves partition 2. Each partition keeps its own engine, journal and
    seqs; a request goes to the partition of the id it names; the lists merge."""

    A_PARTITIONS, B_PARTITIONS = "1,4", "2"
    A_ARGS = ["--allow-private-webhooks"]

    @classmethod
    def map_text(cls, url_a, url_b):
        return f"1 {url_a}\n4 {url_a}\n2 {url_b}\n"

    def seeds(self, partition=None, slots=2):
        """A clinic (in `partition`, default the home one), a doctor and slots on node A."""
        path = "/clinics" if partition is None else f"/clinics?partition={partition}"
        return seed_clinic(self, self.a.api, slots, path)

    def seqs(self):
        health = self.ok(self.a.api.healthz())
        return {p["partition"]: p["seq"] for p in health["partitions"]}

    def test_each_partition_keeps_its_own_ids_seqs_and_data_dir_through_a_restart(self):
        home_clinic, home_doctor, home_slots = self.seeds()
        clinic, doctor, slots = self.seeds(4)
        self.assertEqual({partition_of(i) for i in [home_clinic["id"], home_doctor["id"], *home_slots]}, {1})
        self.assertEqual({partition_of(i) for i in [clinic["id"], doctor["id"], doctor["clinicId"], *slots]}, {4})
        before = self.seqs()
        b = self.ok(self.a.api.req("POST", "/booking", {"slotId": slots[0], "patientName": "Ann"}), 201)
        self.assertEqual((partition_of(b["id"]), b["slotId"]), (4, slots[0]))
        # Partition 4's seq moved by one; the home partition's did not.
        after = self.seqs()
        self.assertEqual((after[4], after[1]), (before[4] + 1, before[1]))
        self.assertEqual(b["seq"], after[4])
        self.assertEqual(self.ok(self.a.api.healthz())["partition"], 1)
        confirmed = self.ok(self.a.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"]))
        self.assertEqual(confirmed["status"], "CONFIRMED")
        # The journal of partition 4 holds it, with its ids; the home journal does not.
        events = self.ok(self.a.api.req("GET", f"/events?partition=4&fromSeq={b['seq']}&limit=1", admin=True))["events"]
        self.assertEqual((events[0]["type"], events[0]["data"]["bookingId"], events[0]["data"]["slotId"]),
                         ("SlotHeld", b["id"], slots[0]))
        home_events = self.ok(self.a.api.req("GET", "/events?limit=10000", admin=True))["events"]
        self.assertFalse([e for e in home_events if slots[0] in (e["data"].get("slotId"), e["data"].get("bookingId"))])
        self.assertEqual({partition_of(e["data"]["clinicId"]) for e in home_events if "clinicId" in e["data"]}, {1})
        # The lists show both partitions; a clinic's doctors come from its own partition.
        clinics = [c["id"] for c in self.ok(self.a.api.req("GET", "/clinics"))]
        self.assertIn(home_clinic["id"], clinics)
        self.assertIn(clinic["id"], clinics)
        self.assertIn((4 << SHIFT) | 1, clinics)  # partition 4's own first clinic
        only_4 = [c["id"] for c in self.ok(self.a.api.req("GET", "/clinics?partition=4"))]
        self.assertEqual(only_4, [c for c in clinics if partition_of(c) == 4])
        self.assertIn(clinic["id"], only_4)
        doctors = [d["id"] for d in self.ok(self.a.api.req("GET", "/doctors"))]
        self.assertIn(home_doctor["id"], doctors)
        self.assertIn(doctor["id"], doctors)
        self.assertEqual([d["id"] for d in self.ok(self.a.api.req("GET", f"/doctors?clinicId={clinic['id']}"))],
                         [doctor["id"]])
        # The merged list has an ETag that any partition's change moves.
        listed = self.a.api.req("GET", "/doctors")
        etag = listed.headers.get("etag")
        self.assertTrue(etag, listed.describe())
        self.assertEqual(self.a.api.req("GET", "/doctors", headers={"If-None-Match": etag}).status, 304)
        added = self.ok(self.a.api.req("POST", "/doctors", {"name": "Dr. Later", "specialty": "GP",
                                                            "clinicId": clinic["id"]}, admin=True), 201)
        again = self.a.api.req("GET", "/doctors", headers={"If-None-Match": etag})
        self.assertEqual(again.status, 200, again.describe())
        self.assertNotEqual(again.headers.get("etag"), etag)
        self.assertIn(added["id"], [d["id"] for d in again.json])
        # The stats cover both partitions: the sums of ?partition=1 and ?partition=4.
        stats = self.ok(self.a.api.req("GET", "/admin/stats", admin=True))
        only = {p: self.ok(self.a.api.req("GET", f"/admin/stats?partition={p}", admin=True)) for p in (1, 4)}
        self.assertEqual(stats["partitions"], [{"partition": p, "asOfSeq": only[p]["asOfSeq"]} for p in (1, 4)])
        for key in ("clinics", "doctors", "expiries"):
            self.assertEqual(stats[key], only[1][key] + only[4][key], key)
        for group in ("slots", "bookings"):
            for key, value in stats[group].items():
                self.assertEqual(value, only[1][group][key] + only[4][group][key], (group, key))
        self.assertEqual([c["clinicId"] for c in stats["perClinic"]],
                         [c["clinicId"] for c in only[1]["perClinic"] + only[4]["perClinic"]])
        self.assertEqual({partition_of(c["clinicId"]) for c in only[4]["perClinic"]}, {4})
        self.assertIn(clinic["id"], [c["clinicId"] for c in only[4]["perClinic"]])
        self.assertIn(home_clinic["id"], [c["clinicId"] for c in only[1]["perClinic"]])
        self.assertEqual([d["doctorId"] for d in stats["perDoctor"]],
                         [d["doctorId"] for d in only[1]["perDoctor"] + only[4]["perDoctor"]])
        self.assertNotIn("partitions", only[4])
        # /metrics labels every partition's seqs.
        metrics = self.a.api.req("GET", "/metrics").body.decode()
        for p in (1, 4):
            self.assertIn(f'slotd_partition_read_seq{{partition="{p}"}} {only[p]["asOfSeq"]}\n', metrics)
        # Partition 4's data dir is bound to it.
        with open(os.path.join(self.a.data_dir, "p4", "partition")) as f:
            self.assertEqual(f.read(), "4\n")
        # Killed and restarted: both partitions recover what was acknowledged.
        self.a.kill()
        self.a.start()
        self.assertEqual(self.seqs(), {1: after[1], 4: after[4] + 2})  # + the confirm and Dr. Later
        got = self.ok(self.a.api.req("GET", f"/booking/{b['id']}", token=b["token"]))
        self.assertEqual((got["status"], got["slotId"]), ("CONFIRMED", slots[0]))
        statuses = {s["id"]: s["status"] for s in self.ok(self.a.api.req("GET", f"/slots/{doctor['id']}"))}
        self.assertEqual(statuses, {slots[0]: "BOOKED", slots[1]: "AVAILABLE"})
        self.assertEqual(len(self.ok(self.a.api.req("GET", "/slots/" + str(home_doctor["id"])))), 2)

    def test_the_admin_bookings_pages_run_through_every_partition_highest_first(self):
        _c1, _d1, slots_1 = self.seeds(slots=3)
        _c4, _d4, slots_4 = self.seeds(4, slots=2)
        for s in slots_1 + slots_4:
            self.ok(self.a.api.req("POST", "/booking", {"slotId": s, "patientName": "Pat"}), 201)

        def pages(query):
            ids, after = [], None
            for _ in range(1000):  # bounded: every page moves the cursor down
                page = self.ok(self.a.api.req("GET", f"/admin/bookings?limit=2{query}"
                                              + (f"&after={after}" if after else ""), admin=True))
                ids += [b["id"] for b in page["bookings"]]
                if page["next"] is None:
                    return ids
                self.assertTrue(after is None or page["next"] < after, page)
                after = page["next"]
            self.fail("the pages did not end")

        every = pages("")
        self.assertEqual(every, pages("&partition=4") + pages("&partition=1"))
        self.assertEqual(every, sorted(every, reverse=True))
        self.assertEqual(len(every), len(set(every)))
        self.assertEqual({partition_of(i) for i in every}, {1, 4})

    def test_a_webhook_of_a_partition_4_clinic_gets_partition_4s_events_in_its_ids(self):
        receiver = Receiver()
        self.addCleanup(receiver.stop)
        clinic, doctor, slots = self.seeds(4)
        _c1, _d1, slots_1 = self.seeds()
        hook = self.ok(self.a.api.req("POST", "/admin/webhooks", {"url": receiver.url(), "clinicId": clinic["id"],
                                                                 "events": ["booking.held"]}, admin=True), 201)
        self.assertEqual(partition_of(hook["id"]), 4)
        self.assertEqual(self.ok(self.a.api.req("GET", f"/admin/webhooks/{hook['id']}", admin=True))["id"], hook["id"])
        self.ok(self.a.api.req("POST", "/booking", {"slotId": slots_1[0], "patientName": "Home"}), 201)
        b = self.ok(self.a.api.req("POST", "/booking", {"slotId": slots[0], "patientName": "Four"}), 201)
        receiver.wait_for_count(1)
        time.sleep(0.3)  # a second post would be the home partition's booking: there must be none
        self.assertEqual(len(receiver.posts), 1, [p["json"] for p in receiver.posts])
        event = receiver.posts[0]["json"]
        self.assertEqual(event["id"], f"evt_p4_{b['seq']}")
        self.assertEqual((event["data"]["bookingId"], event["data"]["slotId"], event["data"]["doctorId"],
                          event["data"]["clinicId"]), (b["id"], slots[0], doctor["id"], clinic["id"]), event)
        # The home partition's list of webhooks does not have it; partition 4's does.
        def listed(query):
            return [w["id"] for w in self.ok(self.a.api.req("GET", f"/admin/webhooks{query}", admin=True))["webhooks"]]
        self.assertNotIn(hook["id"], listed(""))
        self.assertIn(hook["id"], listed("?partition=4"))

    def test_a_request_that_names_two_partitions_is_refused_and_changes_nothing(self):
        _c1, doctor_1, slots_1 = self.seeds()
        _c4, doctor_4, slots_4 = self.seeds(4)
        b = self.ok(self.a.api.req("POST", "/booking", {"slotId": slots_4[0], "patientName": "Bo"}), 201)
        before = self.seqs()
        r = self.a.api.req("POST", f"/booking/{b['id']}/reschedule", {"slotId": slots_1[0]}, token=b["token"])
        self.assertEqual((r.status, r.json["error"]["code"]), (400, "invalid_field"), r.describe())
        r = self.a.api.req("GET", f"/admin/bookings?clinicId={_c4['id']}&doctorId={doctor_1['id']}", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (400, "cross_partition"), r.describe())
        self.assertEqual(self.seqs(), before)
        w = Ws(self.a.port)
        self.addCleanup(w.close)
        w.send_json({"op": "subscribe", "doctorIds": [doctor_4["id"], doctor_1["id"]]})
        m = w.recv_json(timeout=10, what="the error")
        self.assertEqual((m["type"], m["code"]), ("error", "cross_partition"), m)
        statuses = {s["id"]: s["status"] for s in self.ok(self.a.api.req("GET", f"/slots/{doctor_1['id']}"))}
        self.assertEqual(statuses, {slots_1[0]: "AVAILABLE", slots_1[1]: "AVAILABLE"})

    def test_a_partition_served_elsewhere_or_nowhere_is_not_answered_here(self):
        two = (2 << SHIFT) | 1
        r = self.a.api.req("GET", f"/slots/{two}")
        self.assertEqual((r.status, r.json["error"]["owner"], r.headers.get("location")),
                         (421, self.url_b, f"{self.url_b}/slots/{two}"), r.describe())
        r = self.a.api.req("GET", "/events?partition=2", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"], r.headers.get("location")),
                         (421, "wrong_node", f"{self.url_b}/events?partition=2"), r.describe())
        r = self.a.api.req("POST", "/clinics?partition=2", {"name": "Elsewhere", "timeZone": "UTC"}, admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (421, "wrong_node"), r.describe())
        r = self.a.api.req("GET", "/admin/stats?partition=9", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "not_found"), r.describe())
        r = self.a.api.req("GET", "/admin/stats?partition=x", admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (400, "invalid_query"), r.describe())
        # Node B, serving partition 2 alone, sends partition 4's ids to A.
        four = (4 << SHIFT) | 1
        r = self.b.api.req("GET", f"/slots/{four}")
        self.assertEqual((r.status, r.json["error"]["owner"]), (421, self.url_a), r.describe())

    def test_the_feed_follows_the_partition_of_its_subscription_with_that_partitions_seqs(self):
        _c1, _d1, slots_1 = self.seeds()
        _c4, doctor_4, slots_4 = self.seeds(4)
        w = Ws(self.a.port)
        self.addCleanup(w.close)
        w.send_json({"op": "subscribe", "doctorIds": [doctor_4["id"]]})
        snap = w.recv_json(timeout=10, what="the snapshot")
        self.assertEqual(snap["type"], "snapshot", snap)
        self.assertEqual([s["id"] for s in snap["slots"]], slots_4)
        # A booking in the home partition first: not this subscription's, never sent.
        self.ok(self.a.api.req("POST", "/booking", {"slotId": slots_1[0], "patientName": "Home"}), 201)
        b = self.ok(self.a.api.req("POST", "/booking", {"slotId": slots_4[1], "patientName": "Four"}), 201)
        m = w.recv_json(timeout=10, what="the live event")
        self.assertEqual((m["seq"], m["slot"]["id"], m["slot"]["status"]), (b["seq"], slots_4[1], "HELD"), m)
        self.assertEqual(m["slot"]["doctorId"], doctor_4["id"])
        # Resuming from a seq reads partition 4's journal.
        w2 = Ws(self.a.port)
        self.addCleanup(w2.close)
        w2.send_json({"op": "subscribe", "doctorIds": [doctor_4["id"]], "fromSeq": b["seq"]})
        m2 = w2.recv_json(timeout=10, what="the caught-up event")
        self.assertEqual((m2["seq"], m2["slot"]["id"]), (b["seq"], slots_4[1]), m2)


class DataDirPartition(ServerCase):
    def test_a_data_dir_keeps_its_partition_and_the_tools_show_its_ids(self):
        s = Server(ServerCase.slotd, extra_args=["--partition", "3"])
        self.servers = (s,)
        try:
            s.start()
            doctor = s.api.req("POST", "/doctors", {"name": "Dr. Q", "specialty": ""}, admin=True).json
            slot = s.api.req("POST", "/slots", {"doctorId": doctor["id"], "start": iso(BASE_MS),
                                                "end": iso(BASE_MS + 20 * MINUTE_MS)}, admin=True).json
            b = s.api.req("POST", "/booking", {"slotId": slot["id"], "patientName": "Eve"}).json
            self.assertEqual([partition_of(i) for i in (doctor["id"], slot["id"], b["id"])], [3, 3, 3])
            self.assertEqual(s.stop(), 0)
            with open(os.path.join(s.data_dir, "partition")) as f:
                self.assertEqual(f.read(), "3\n")
            # The tools read the data dir's partition: the ids the API showed.
            p = subprocess.run([SLOTD, "export", "--data-dir", s.data_dir], capture_output=True, text=True,
                               timeout=60, env=child_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            held = [json.loads(line) for line in p.stdout.splitlines() if '"SlotHeld"' in line]
            self.assertEqual([(e["data"]["bookingId"], e["data"]["slotId"]) for e in held], [(b["id"], slot["id"])])
            p = subprocess.run([SLOTD, "replay", "--data-dir", s.data_dir, "--until-seq", str(b["seq"])],
                               capture_output=True, text=True, timeout=60, env=child_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            state = json.loads(p.stdout)["state"]
            self.assertEqual([(x["id"], x["slotId"]) for x in state["bookings"]], [(b["id"], slot["id"])])
            # Started as another partition (or none), it refuses: every id clients hold would change.
            for args in (["--partition", "4"], []):
                s.extra_args = args
                p = subprocess.run(s.args(), capture_output=True, text=True, timeout=30, env=child_env())
                self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
                self.assertIn("holds partition 3", p.stderr)
            # Its own partition again: the same ids.
            s.extra_args = ["--partition", "3"]
            s.start()
            got = s.api.req("GET", f"/booking/{b['id']}", token=b["token"])
            self.assertEqual((got.status, got.json["slotId"]), (200, slot["id"]), got.describe())
            self.assertEqual(s.stop(), 0)
        finally:
            s.cleanup()

    def test_a_data_dir_with_a_journal_from_before_partitions_stays_partition_0(self):
        s = Server(ServerCase.slotd)
        self.servers = (s,)
        try:
            s.start()
            self.assertEqual(s.api.req("POST", "/doctors", {"name": "Dr. R", "specialty": ""}, admin=True).json["id"], 1)
            self.assertEqual(s.stop(), 0)
            self.assertFalse(os.path.exists(os.path.join(s.data_dir, "partition")))
            s.extra_args = ["--partition", "5"]
            p = subprocess.run(s.args(), capture_output=True, text=True, timeout=30, env=child_env())
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn("holds partition 0", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(s.data_dir, "partition")))
        finally:
            s.cleanup()

    def test_a_map_that_does_not_name_this_node_is_refused_at_start(self):
        with tempfile.NamedTemporaryFile("w", suffix=".map", delete=False) as f:
            f.write("0 http://127.0.0.1:1\n")
        s = Server(ServerCase.slotd, extra_args=["--partition", "1", "--partition-map", f.name])
        try:
            s.port = free_port()
            p = subprocess.run(s.args(), capture_output=True, text=True, timeout=30, env=child_env())
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn("does not name this node's partition 1", p.stderr)
        finally:
            os.unlink(f.name)
            s.cleanup()


def main():
    deadline = time.monotonic() + 240  # every wait in here is bounded; this bounds the whole
    code = run_main(sys.modules[__name__], "partition")
    if time.monotonic() > deadline:
        print("partition: took longer than 240 s")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
