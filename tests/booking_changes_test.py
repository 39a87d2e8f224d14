#!/usr/bin/env python3
"""Changes of plan, tested against the real slotd on a loopback port: moving a booking
(POST /booking/:id/reschedule), the waitlist (POST /waitlist, GET/DELETE /waitlist/:id, offers
of freed slots) and the calendar file (GET /booking/:id/calendar.ics).

Run: python3 tests/booking_changes_test.py --slotd build/release/api/slotd [-k pattern]
Each test class starts its own slotd in a fresh temp data dir (removed afterwards). The .ics
is parsed with Python's icalendar (Debian: python3-icalendar) and its time zone checked
against Python's own tz database (zoneinfo). Prints `booking_changes: N passed, M failed`
last. Every loop is bounded in count and time.
"""

import datetime
import http.client
import json
import os
import sys
import threading
import time
import zoneinfo

import icalendar

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_util import BASE_MS, MINUTE_MS, TOKEN_RE, iso, parse_iso, run_main  # noqa: E402
from api_test import ApiCase, slot_times  # noqa: E402
from ws_test import Ws  # noqa: E402

SLOTD = None  # set from --slotd

RESCHEDULED_KEYS = {"id", "slotId", "status", "createdAt", "expiresAt", "confirmedAt", "seq"}
ENTRY_KEYS = {"id", "doctorId", "from", "to", "patientName", "status", "createdAt", "offer"}
OFFER_KEYS = {"bookingId", "slotId", "status", "expiresAt", "token"}
DAY_MS = 24 * 60 * MINUTE_MS


def day_range(i=0):
    """[from, to) of the i-th UTC day from 2031-01-06 (the day of BASE_MS)."""
    start = BASE_MS - 8 * 60 * MINUTE_MS + i * DAY_MS
    return iso(start), iso(start + DAY_MS)


class ChangesCase(ApiCase):
    """Helpers for moves, waitlist entries and the feed."""

    def reschedule(self, booking, slot_id, token=None, **kw):
        tok = booking["token"] if token is None else token
        return self.api.req("POST", f"/booking/{booking['id']}/reschedule", {"slotId": slot_id},
                            token=tok or None, **kw)

    def confirm(self, b):
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        self.expect_seq(self.expect(r, 200), r)

    def cancel(self, b, token=None):
        r = self.api.req("POST", f"/booking/{b['id']}/cancel", token=token or b["token"])
        body = self.expect(r, 200)
        self.expect_seq(body, r)
        return body

    def join(self, doctor_id, frm, to, patient="Wendy Wait"):
        r = self.api.req("POST", "/waitlist", {"doctorId": doctor_id, "from": frm, "to": to,
                                               "patientName": patient})
        e = self.expect(r, 201)
        self.assertEqual(set(e), ENTRY_KEYS | {"token", "seq"}, f"entry fields{r.describe()}")
        self.assertTrue(TOKEN_RE.match(e["token"]), r.describe())
        self.expect_seq(e, r)
        self.expect_iso(e["createdAt"], r, "createdAt")
        self.assertEqual((e["doctorId"], e["from"], e["to"], e["patientName"]),
                         (doctor_id, frm, to, patient), r.describe())
        return e

    def entry(self, e, **kw):
        kw.setdefault("headers", {"X-Waitlist-Token": e["token"]})
        r = self.api.req("GET", f"/waitlist/{e['id']}", **kw)
        body = self.expect(r, 200)
        self.assertEqual(set(body), ENTRY_KEYS, f"entry fields{r.describe()}")
        if body["offer"] is not None:
            self.assertEqual(set(body["offer"]), OFFER_KEYS, f"offer fields{r.describe()}")
        return body

    def slot_map(self, doctor_id):
        return {s["id"]: s["status"] for s in self.slots_of(doctor_id)}

    def open_feed(self, doctor_ids, from_seq=None):
        w = Ws(self.server.port)
        self.addCleanup(w.close)
        self.assertEqual(w.status, 101)
        msg = {"op": "subscribe", "doctorIds": doctor_ids}
        if from_seq is not None:
            msg["fromSeq"] = from_seq
        w.send_json(msg)
        if from_seq is None:
            self.assertEqual(w.recv_json(what="a snapshot")["type"], "snapshot", w.tail())
        return w


# =============================================================================
class RescheduleTest(ChangesCase):
    """POST /booking/:id/reschedule on one server (hold TTL 600 s)."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def test_a_confirmed_booking_moves_stays_confirmed_and_its_old_slot_becomes_available(self):
        d = self.new_doctor("Dr. Move")
        s = self.new_slots(d["id"], 2)
        b = self.book(s[0]["id"])
        self.confirm(b)
        r = self.reschedule(b, s[1]["id"])
        moved = self.expect(r, 200)
        self.assertEqual(set(moved), RESCHEDULED_KEYS, r.describe())
        self.expect_seq(moved, r)
        self.assertEqual((moved["id"], moved["slotId"], moved["status"]), (b["id"], s[1]["id"], "CONFIRMED"))
        self.expect_iso(moved["confirmedAt"], r, "confirmedAt")
        self.assertEqual(self.slot_map(d["id"]), {s[0]["id"]: "AVAILABLE", s[1]["id"]: "BOOKED"})
        _, view = self.get_booking(b["id"], token=b["token"])
        self.assertEqual((view["slotId"], view["status"]), (s[1]["id"], "CONFIRMED"))
        # The freed slot is anyone's.
        self.book(s[0]["id"], "Next Patient")

    def test_a_pending_hold_moves_with_its_expires_at_unchanged(self):
        d = self.new_doctor("Dr. Hold Move")
        s = self.new_slots(d["id"], 2, first=10)
        b = self.book(s[0]["id"])
        r = self.reschedule(b, s[1]["id"])
        moved = self.expect(r, 200)
        self.assertEqual((moved["status"], moved["expiresAt"], moved["createdAt"], moved["confirmedAt"]),
                         ("PENDING", b["expiresAt"], b["createdAt"], None), r.describe())
        self.assertEqual(self.slot_map(d["id"]), {s[0]["id"]: "AVAILABLE", s[1]["id"]: "HELD"})

    def test_a_move_onto_a_held_booked_or_closed_slot_is_409_slot_unavailable_and_changes_nothing(self):
        d = self.new_doctor("Dr. Taken")
        s = self.new_slots(d["id"], 4, first=20)
        b = self.book(s[0]["id"])
        held = self.book(s[1]["id"], "Holder")
        booked = self.book(s[2]["id"], "Booker")
        self.confirm(booked)
        self.expect(self.api.req("DELETE", f"/slots/{s[3]['id']}", admin=True), 200)
        before = self.expect(self.api.healthz(), 200)["seq"]
        for target in (held["slotId"], booked["slotId"], s[3]["id"]):
            self.expect_error(self.reschedule(b, target), 409, "slot_unavailable")
        self.assertEqual(self.expect(self.api.healthz(), 200)["seq"], before, "a refused move writes nothing")
        self.assertEqual(self.slot_map(d["id"]),
                         {s[0]["id"]: "HELD", s[1]["id"]: "HELD", s[2]["id"]: "BOOKED", s[3]["id"]: "CLOSED"})
        self.assertEqual(self.get_booking(b["id"], admin=True)[1]["slotId"], s[0]["id"])

    def test_a_move_needs_the_booking_token_or_admin_and_unknown_ids_are_404(self):
        d = self.new_doctor("Dr. Auth Move")
        s = self.new_slots(d["id"], 3, first=30)
        b = self.book(s[0]["id"])
        other = self.book(s[1]["id"], "Other")
        self.expect_error(self.reschedule(b, s[2]["id"], token=""), 403, "forbidden")
        self.expect_error(self.reschedule(b, s[2]["id"], token=other["token"]), 403, "forbidden")
        self.expect_error(self.reschedule({"id": 999999, "token": b["token"]}, s[2]["id"]), 404, "booking_not_found")
        self.expect_error(self.reschedule(b, 999999), 404, "slot_not_found")
        self.assertEqual(self.slot_map(d["id"])[s[0]["id"]], "HELD")
        r = self.api.req("POST", f"/booking/{b['id']}/reschedule", {"slotId": s[2]["id"]}, admin=True)
        self.assertEqual(self.expect(r, 200)["slotId"], s[2]["id"])

    def test_a_bad_body_is_400_and_a_cancelled_booking_cannot_move(self):
        d = self.new_doctor("Dr. Bad Move")
        s = self.new_slots(d["id"], 2, first=40)
        b = self.book(s[0]["id"])
        path = f"/booking/{b['id']}/reschedule"
        self.expect_error(self.api.req("POST", path, {}, token=b["token"]), 400, "missing_field")
        self.expect_error(self.api.req("POST", path, {"slotId": "x"}, token=b["token"]), 400, "invalid_field")
        self.expect_error(self.api.req("POST", path, raw="{", token=b["token"]), 400, "invalid_json")
        self.cancel(b)
        self.expect_error(self.reschedule(b, s[1]["id"]), 409, "booking_cancelled")
        self.assertEqual(self.slot_map(d["id"])[s[1]["id"]], "AVAILABLE")

    def test_a_move_onto_its_own_slot_is_200_and_writes_nothing(self):
        d = self.new_doctor("Dr. Stay")
        s = self.new_slots(d["id"], 1, first=50)
        b = self.book(s[0]["id"])
        before = self.expect(self.api.healthz(), 200)["seq"]
        r = self.reschedule(b, s[0]["id"])
        self.assertEqual(self.expect(r, 200)["slotId"], s[0]["id"])
        self.assertEqual(self.expect(self.api.healthz(), 200)["seq"], before)

    def test_a_retried_move_with_the_same_idempotency_key_gets_the_first_answer_and_moves_nothing(self):
        d = self.new_doctor("Dr. Retry Move")
        s = self.new_slots(d["id"], 3, first=60)
        b = self.book(s[0]["id"])
        key = {"Idempotency-Key": "move-key-0123456789abcdef"}
        first = self.expect(self.reschedule(b, s[1]["id"], headers=key), 200)
        self.expect(self.reschedule(b, s[2]["id"]), 200)  # moved again, without a key
        again = self.reschedule(b, s[1]["id"], headers=key)
        self.assertEqual(self.expect(again, 200), first, f"a retry gets the first answer{again.describe()}")
        self.assertEqual(self.get_booking(b["id"], admin=True)[1]["slotId"], s[2]["id"], "the retry moved nothing")
        self.expect_error(self.reschedule(b, s[0]["id"], headers=key), 409, "idempotency_key_reused")

    def test_the_feed_shows_a_move_as_two_slot_events_with_the_replys_seq_live_and_on_catch_up(self):
        d = self.new_doctor("Dr. Feed Move")
        s = self.new_slots(d["id"], 2, first=70)
        b = self.book(s[0]["id"])
        self.confirm(b)
        w = self.open_feed([d["id"]])
        moved = self.expect(self.reschedule(b, s[1]["id"]), 200)
        booking = {"id": b["id"], "slotId": s[1]["id"], "status": "CONFIRMED"}
        want = [
            {"type": "booking", "seq": moved["seq"], "event": "BookingRescheduled", "booking": booking,
             "slot": dict(s[0], status="AVAILABLE")},
            {"type": "booking", "seq": moved["seq"], "event": "BookingRescheduled", "booking": booking,
             "slot": dict(s[1], status="BOOKED")},
        ]
        for m in want:
            m["slot"].pop("seq", None)
        got = [w.recv_json(what="a move's slot event") for _ in range(2)]
        self.assertEqual(got, want, w.tail())
        # A client that resumes from the move's seq gets both again, from the journal.
        w2 = self.open_feed([d["id"]], from_seq=moved["seq"])
        self.assertEqual([w2.recv_json(what="a caught-up move") for _ in range(2)], want, w2.tail())


# =============================================================================
class RescheduleRaceTest(ChangesCase):
    """100 bookings race to move onto one free slot."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def test_100_concurrent_moves_onto_one_slot_give_one_winner_and_leave_every_loser_on_its_old_slot(self):
        d = self.new_doctor("Dr. Race")
        slots = self.new_slots(d["id"], 101)
        target = slots[100]["id"]
        bookings = []
        for i, s in enumerate(slots[:100]):
            b = self.book(s["id"], f"Racer {i}")
            if i % 2:
                self.confirm(b)  # half CONFIRMED, half PENDING
            bookings.append(b)
        results = [None] * 100
        errors = []
        barrier = threading.Barrier(100, timeout=30)
        port = self.server.port

        def move(i):
            b = bookings[i]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.connect()
                barrier.wait()
                conn.request("POST", f"/booking/{b['id']}/reschedule", body=json.dumps({"slotId": target}),
                             headers={"Content-Type": "application/json", "X-Booking-Token": b["token"]})
                resp = conn.getresponse()
                results[i] = (resp.status, json.loads(resp.read()))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"mover {i}: {e!r}")
            finally:
                conn.close()

        threads = [threading.Thread(target=move, args=(i,), daemon=True) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse([t for t in threads if t.is_alive()], "movers hung")
        self.assertEqual(errors, [])
        winners = [i for i, (status, _) in enumerate(results) if status == 200]
        self.assertEqual(len(winners), 1, f"want exactly one 200, got {len(winners)}")
        losers = [i for i in range(100) if i != winners[0]]
        for i in losers:
            status, body = results[i]
            self.assertEqual((status, body.get("error", {}).get("code")), (409, "slot_unavailable"), body)
        w = winners[0]
        self.assertEqual(results[w][1]["slotId"], target)
        want = {s["id"]: ("HELD" if i % 2 == 0 else "BOOKED") for i, s in enumerate(slots[:100])}
        want[slots[w]["id"]] = "AVAILABLE"
        want[target] = "HELD" if w % 2 == 0 else "BOOKED"
        self.assertEqual(self.slot_map(d["id"]), want)
        for i in losers:
            _, view = self.get_booking(bookings[i]["id"], admin=True)
            self.assertEqual((view["slotId"], view["status"]),
                             (slots[i]["id"], "PENDING" if i % 2 == 0 else "CONFIRMED"))
        self.assertEqual(self.get_booking(bookings[w]["id"], admin=True)[1]["slotId"], target)


# =============================================================================
class WaitlistTest(ChangesCase):
    """POST /waitlist, GET/DELETE /waitlist/:id and offers, on one server (hold TTL 600 s)."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def full_day(self, name, first):
        """A doctor whose only slot (the `first`-th of 2031-01-06) is CONFIRMED by someone."""
        d = self.new_doctor(name)
        s = self.new_slots(d["id"], 1, first=first)[0]
        b = self.book(s["id"], "Early Bird")
        self.confirm(b)
        return d, s, b

    def test_joining_a_full_day_gives_201_an_entry_and_its_token_and_no_offer(self):
        d, _, _ = self.full_day("Dr. Full", 0)
        frm, to = day_range()
        e = self.join(d["id"], frm, to, "Wendy")
        self.assertEqual((e["status"], e["offer"]), ("WAITING", None))
        view = self.entry(e)
        self.assertEqual({k: view[k] for k in ENTRY_KEYS}, {k: e[k] for k in ENTRY_KEYS})

    def test_a_bad_join_is_400_or_404_and_writes_nothing(self):
        d = self.new_doctor("Dr. Bad Join")
        frm, to = day_range()
        before = self.expect(self.api.healthz(), 200)["seq"]
        cases = [
            ({"from": frm, "to": to, "patientName": "A"}, 400, "missing_field"),
            ({"doctorId": d["id"], "to": to, "patientName": "A"}, 400, "missing_field"),
            ({"doctorId": d["id"], "from": frm, "to": to}, 400, "missing_field"),
            ({"doctorId": d["id"], "from": "monday", "to": to, "patientName": "A"}, 400, "invalid_field"),
            ({"doctorId": d["id"], "from": to, "to": frm, "patientName": "A"}, 400, "invalid_field"),
            ({"doctorId": d["id"], "from": frm, "to": frm, "patientName": "A"}, 400, "invalid_field"),
            ({"doctorId": d["id"], "from": frm, "to": to, "patientName": "  "}, 400, "invalid_field"),
            ({"doctorId": d["id"], "from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z",
              "patientName": "A"}, 400, "invalid_time_range"),  # over long ago
            ({"doctorId": 999999, "from": frm, "to": to, "patientName": "A"}, 404, "doctor_not_found"),
        ]
        for body, status, code in cases:
            with self.subTest(body=body):
                self.expect_error(self.api.req("POST", "/waitlist", body), status, code)
        self.expect_error(self.api.req("POST", "/waitlist", raw="{"), 400, "invalid_json")
        self.assertEqual(self.expect(self.api.healthz(), 200)["seq"], before)

    def test_an_entry_is_seen_only_with_its_token_or_admin(self):
        d, _, b = self.full_day("Dr. Private", 2)
        frm, to = day_range()
        e = self.join(d["id"], frm, to, "Secret Sam")
        self.expect_error(self.api.req("GET", f"/waitlist/{e['id']}"), 403, "forbidden")
        self.expect_error(self.api.req("GET", f"/waitlist/{e['id']}", headers={"X-Waitlist-Token": "0" * 32}),
                          403, "forbidden")
        # A booking's token is not an entry's.
        self.expect_error(self.api.req("GET", f"/waitlist/{e['id']}", token=b["token"]), 403, "forbidden")
        self.assertEqual(self.expect(self.api.req("GET", f"/waitlist/{e['id']}?token={e['token']}"), 200)["patientName"],
                         "Secret Sam")
        self.assertEqual(self.entry(e, headers={}, admin=True)["patientName"], "Secret Sam")
        self.expect_error(self.api.req("GET", "/waitlist/999999", admin=True), 404, "waitlist_entry_not_found")
        self.expect_error(self.api.req("GET", "/waitlist/abc"), 400, "invalid_path")

    def test_a_cancelled_slot_goes_to_the_oldest_matching_entry_before_the_cancel_is_answered(self):
        d, s, b = self.full_day("Dr. Offer", 4)
        frm, to = day_range()
        other_day = self.join(d["id"], *day_range(1), "Tomorrow Tom")
        oldest = self.join(d["id"], frm, to, "Olga Oldest")
        younger = self.join(d["id"], frm, to, "Yuri Younger")
        w = self.open_feed([d["id"]])
        cancelled = self.cancel(b)
        # No waiting, no polling: the offer is part of the cancel's durable batch.
        view = self.entry(oldest)
        self.assertEqual(view["status"], "OFFERED")
        offer = view["offer"]
        self.assertEqual((offer["slotId"], offer["status"]), (s["id"], "PENDING"))
        self.assertTrue(TOKEN_RE.match(offer["token"]))
        self.assertEqual((self.entry(younger)["status"], self.entry(other_day)["status"]), ("WAITING", "WAITING"))
        self.assertEqual(self.slot_map(d["id"])[s["id"]], "HELD")
        # The journal: the cancel, then the offer's hold and WaitlistOffered, seq after seq.
        events = self.expect(self.api.req("GET", f"/events?fromSeq={cancelled['seq']}&limit=3", admin=True),
                             200)["events"]
        self.assertEqual([e["type"] for e in events], ["BookingCancelled", "SlotHeld", "WaitlistOffered"])
        self.assertEqual(events[1]["data"]["bookingId"], offer["bookingId"])
        self.assertEqual(events[2]["data"], {"entryId": oldest["id"], "bookingId": offer["bookingId"],
                                             "slotId": s["id"]})
        self.assertEqual(len({e["at"] for e in events}), 1, "one batch, one decision time")
        # The audit shows neither the entry's token nor the offer's.
        audit = self.api.req("GET", "/events?fromSeq=1&limit=10000", admin=True)
        self.assertIn(b"WaitlistJoined", audit.body)
        for secret in (oldest["token"], offer["token"]):
            self.assertNotIn(secret.encode(), audit.body)
        # The feed: the hold arrives right after the cancel.
        m1, m2 = w.recv_json(what="the cancel"), w.recv_json(what="the offer's hold")
        self.assertEqual((m1["seq"], m1["event"], m1["slot"]["status"]), (cancelled["seq"], "BookingCancelled", "AVAILABLE"))
        self.assertEqual((m2["seq"], m2["event"], m2["booking"]["id"], m2["slot"]["status"]),
                         (cancelled["seq"] + 1, "SlotHeld", offer["bookingId"], "HELD"))

    def test_an_offer_is_an_ordinary_booking_its_token_confirms_it(self):
        d, s, b = self.full_day("Dr. Ordinary", 6)
        e = self.join(d["id"], *day_range(), "Otto Offer")
        self.cancel(b)
        offer = self.entry(e)["offer"]
        _, view = self.get_booking(offer["bookingId"], token=offer["token"])
        self.assertEqual((view["status"], view["slotId"], view["patientName"]), ("PENDING", s["id"], "Otto Offer"))
        self.confirm({"id": offer["bookingId"], "token": offer["token"]})
        self.assertEqual(self.entry(e)["offer"]["status"], "CONFIRMED")
        self.assertEqual(self.slot_map(d["id"])[s["id"]], "BOOKED")

    def test_joining_while_a_slot_of_the_range_is_free_offers_the_earliest_at_once(self):
        d = self.new_doctor("Dr. Free")
        s = self.new_slots(d["id"], 3, first=8)
        self.book(s[0]["id"])
        e = self.join(d["id"], *day_range(), "Quick Quinn")
        self.assertEqual(e["status"], "OFFERED")
        self.assertEqual((e["offer"]["slotId"], e["offer"]["status"]), (s[1]["id"], "PENDING"))
        self.assertEqual(self.slot_map(d["id"]), {s[0]["id"]: "HELD", s[1]["id"]: "HELD", s[2]["id"]: "AVAILABLE"})

    def test_a_new_slot_and_a_moved_bookings_old_slot_go_to_waiting_entries(self):
        d, s, b = self.full_day("Dr. New Slot", 10)
        e1 = self.join(d["id"], *day_range(), "First In")
        e2 = self.join(d["id"], *day_range(), "Second In")
        start, end = slot_times(12)
        r = self.api.req("POST", "/slots", {"doctorId": d["id"], "start": start, "end": end}, admin=True)
        new = self.expect(r, 201)
        self.assertEqual(self.entry(e1)["offer"]["slotId"], new["id"])
        self.assertEqual(self.slot_map(d["id"])[new["id"]], "HELD")
        # The first patient moves to tomorrow: today's slot goes to e2 in the same batch.
        tomorrow = self.new_slots(d["id"], 1, first=48 + 4)[0]
        moved = self.expect(self.reschedule(b, tomorrow["id"]), 200)
        self.assertEqual(moved["slotId"], tomorrow["id"])
        offer = self.entry(e2)["offer"]
        self.assertEqual((offer["slotId"], offer["status"]), (s["id"], "PENDING"))

    def test_leaving_the_waitlist_stops_offers_and_after_an_offer_is_409(self):
        d, s, b = self.full_day("Dr. Leave", 14)
        leaver = self.join(d["id"], *day_range(), "Lea Leaver")
        stayer = self.join(d["id"], *day_range(), "Stan Stayer")
        path = f"/waitlist/{leaver['id']}"
        self.expect_error(self.api.req("DELETE", path), 403, "forbidden")
        self.expect_error(self.api.req("DELETE", "/waitlist/999999", admin=True), 404, "waitlist_entry_not_found")
        r = self.api.req("DELETE", path, headers={"X-Waitlist-Token": leaver["token"]})
        left = self.expect(r, 200)
        self.assertEqual((left["id"], left["status"]), (leaver["id"], "CANCELLED"))
        self.expect_seq(left, r)
        again = self.expect(self.api.req("DELETE", path, headers={"X-Waitlist-Token": leaver["token"]}), 200)
        self.assertEqual(again["status"], "CANCELLED")
        self.cancel(b)
        self.assertEqual(self.entry(leaver)["status"], "CANCELLED")
        self.assertEqual(self.entry(stayer)["offer"]["slotId"], s["id"])
        r = self.api.req("DELETE", f"/waitlist/{stayer['id']}", headers={"X-Waitlist-Token": stayer["token"]})
        self.expect_error(r, 409, "waitlist_entry_served")
        self.assertEqual(self.entry(stayer)["status"], "OFFERED")

    def test_entries_and_offers_survive_a_kill_and_replay_keeps_serving_in_order(self):
        server = self.start_server(hold_ttl=600)
        saved, self.server = self.server, server
        try:
            d, s, b = self.full_day("Dr. Restart", 0)
            s2 = self.new_slots(d["id"], 1, first=2)[0]
            b2 = self.book(s2["id"], "Second Bird")
            e1 = self.join(d["id"], *day_range(), "Rita Restart")
            e2 = self.join(d["id"], *day_range(), "Ron Restart")
            self.cancel(b)
            before = self.entry(e1)
            server.kill()
            server.start()
            self.assertEqual(self.entry(e1), before)
            self.assertEqual(self.entry(e2)["status"], "WAITING")
            self.cancel(b2)
            self.assertEqual(self.entry(e2)["offer"]["slotId"], s2["id"])
        finally:
            self.server = saved


    def test_a_restart_from_the_shutdown_snapshot_keeps_moves_and_the_waiting_order(self):
        server = self.start_server(hold_ttl=600)
        saved, self.server = self.server, server
        try:
            d, s, b = self.full_day("Dr. Snapshot", 0)
            s2 = self.new_slots(d["id"], 1, first=2)[0]
            b2 = self.book(s2["id"], "Second Bird")
            tomorrow = self.new_slots(d["id"], 1, first=48)[0]
            self.expect(self.reschedule(b, tomorrow["id"]), 200)  # today's slot goes to nobody yet
            self.book(s["id"], "Third Bird")
            e1 = self.join(d["id"], *day_range(), "Sid Snapshot")
            e2 = self.join(d["id"], *day_range(), "Sue Snapshot")
            ics_before = self.api.req("GET", f"/booking/{b['id']}/calendar.ics", token=b["token"])
            self.assertEqual(server.stop(), 0)
            server.start()
            # Recovered from the snapshot written at shutdown, with no journal event after it.
            self.assertRegex(server.log_of_last_start(), r"from .*\(snapshot at seq \d+, then 0 journal events\)")
            self.assertEqual(self.get_booking(b["id"], admin=True)[1]["slotId"], tomorrow["id"])
            ics_after = self.api.req("GET", f"/booking/{b['id']}/calendar.ics", token=b["token"])
            self.assertIn(b"SEQUENCE:1\r\n", ics_after.body)
            self.assertEqual(ics_before.body.split(b"DTSTAMP")[0], ics_after.body.split(b"DTSTAMP")[0])
            self.assertEqual((self.entry(e1)["status"], self.entry(e2)["status"]), ("WAITING", "WAITING"))
            self.cancel(b2)  # the oldest entry still comes first
            self.assertEqual(self.entry(e1)["offer"]["slotId"], s2["id"])
            self.assertEqual(self.entry(e2)["status"], "WAITING")
        finally:
            self.server = saved


# =============================================================================
class WaitlistExpiryTest(ChangesCase):
    """Offers that run out pass to the next entry (hold TTL 2 s)."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=2)

    def wait_for(self, what, check, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        self.fail(f"timed out after {timeout}s waiting for {what}")

    def test_an_expired_offer_goes_to_the_next_entry_and_an_entry_is_served_once(self):
        d = self.new_doctor("Dr. Chain")
        s = self.new_slots(d["id"], 1, first=0)[0]
        b = self.book(s["id"], "Slow Sally")
        e1 = self.join(d["id"], *day_range(), "Ann Chain")
        e2 = self.join(d["id"], *day_range(), "Ben Chain")
        first = self.wait_for("the first offer", lambda: self.entry(e1)["offer"])
        self.assertEqual(self.entry(e2)["status"], "WAITING")
        self.wait_for("the first offer to fail", lambda: self.entry(e1)["offer"]["status"] == "FAILED")
        second = self.wait_for("the second offer", lambda: self.entry(e2)["offer"])
        self.assertEqual(second["slotId"], s["id"])
        self.assertNotEqual(second["bookingId"], first["bookingId"])
        self.assertEqual(self.entry(e1)["offer"]["bookingId"], first["bookingId"], "served once")
        self.wait_for("the slot to be free again",
                      lambda: self.slot_map(d["id"])[s["id"]] == "AVAILABLE")
        r = self.api.req("GET", f"/booking/{b['id']}/calendar.ics", token=b["token"])
        self.expect_error(r, 409, "booking_failed")


# =============================================================================
class CalendarTest(ChangesCase):
    """GET /booking/:id/calendar.ics parsed with icalendar, for a Berlin clinic (TTL 600 s)."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def setUp(self):
        super().setUp()
        clinic = self.expect(self.api.req("POST", "/clinics", {"name": "Praxis, Mitte; Berlin",
                                                               "timeZone": "Europe/Berlin"}, admin=True), 201)
        self.doctor = self.new_doctor("Dr. Kalender", "Allgemeinmedizin", clinic_id=clinic["id"])

    def slot_at(self, start_iso, minutes=30):
        start = parse_iso(start_iso)
        r = self.api.req("POST", "/slots", {"doctorId": self.doctor["id"], "start": start_iso,
                                            "end": iso(start + minutes * MINUTE_MS)}, admin=True)
        return self.expect(r, 201)

    def ics(self, b, **kw):
        kw.setdefault("token", b["token"])
        r = self.api.req("GET", f"/booking/{b['id']}/calendar.ics", **kw)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.content_type, "text/calendar; charset=utf-8", r.describe())
        lines = r.body.split(b"\r\n")
        self.assertEqual(lines[-1], b"", "the last line ends in CRLF")
        for line in lines:
            self.assertNotIn(b"\n", line, "bare LF")
            self.assertLessEqual(len(line), 75, f"an unfolded line of {len(line)} octets: {line!r}")
        cal = icalendar.Calendar.from_ical(r.body)
        events = [c for c in cal.walk() if c.name == "VEVENT"]
        self.assertEqual(len(events), 1)
        return cal, events[0], r

    def check_zone(self, cal):
        """Every observance of the VTIMEZONE matches Python's own tz database."""
        zones = [c for c in cal.walk() if c.name == "VTIMEZONE"]
        self.assertEqual([str(z["TZID"]) for z in zones], ["Europe/Berlin"])
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
        checked = 0
        for obs in zones[0].subcomponents:
            start = obs["DTSTART"].dt  # naive local time in the offset before the change
            before, after = obs["TZOFFSETFROM"].td, obs["TZOFFSETTO"].td
            if start.year < 1900:
                continue  # the zone's first period, which no change begins
            instant = (start - before).replace(tzinfo=datetime.timezone.utc)
            self.assertEqual(instant.astimezone(berlin).utcoffset(), after, f"offset from {start}")
            self.assertEqual((instant - datetime.timedelta(seconds=1)).astimezone(berlin).utcoffset(), before)
            self.assertEqual(obs.name, "DAYLIGHT" if after > datetime.timedelta(hours=1) else "STANDARD")
            checked += 1
        self.assertGreaterEqual(checked, 2, "the zone's changes around the appointment are listed")

    def test_a_confirmed_booking_is_an_icalendar_event_at_the_clinics_local_time(self):
        s = self.slot_at("2031-03-31T07:00:00.000Z")  # summer time: 09:00 in Berlin
        b = self.book(s["id"], "Jörg Übermaß")
        self.confirm(b)
        cal, ev, _ = self.ics(b)
        self.assertEqual(str(cal["VERSION"]), "2.0")
        self.assertEqual(ev["DTSTART"].params["TZID"], "Europe/Berlin")
        self.assertEqual(ev["DTSTART"].dt.replace(tzinfo=None), datetime.datetime(2031, 3, 31, 9, 0))
        self.assertEqual(ev["DTEND"].dt.replace(tzinfo=None), datetime.datetime(2031, 3, 31, 9, 30))
        self.assertEqual(ev["DTSTART"].dt.astimezone(datetime.timezone.utc),
                         datetime.datetime(2031, 3, 31, 7, 0, tzinfo=datetime.timezone.utc))
        self.assertEqual((str(ev["STATUS"]), int(ev["SEQUENCE"])), ("CONFIRMED", 0))
        self.assertIn("Dr. Kalender", str(ev["SUMMARY"]))
        self.assertEqual(str(ev["LOCATION"]), "Praxis, Mitte; Berlin")  # escaped and unescaped
        self.assertIn("Jörg Übermaß", str(ev["DESCRIPTION"]))
        self.check_zone(cal)
        # The same file through a plain link (?token=) and for the admin.
        _, ev2, _ = self.ics(b, token=None, admin=True)
        self.assertEqual(str(ev2["UID"]), str(ev["UID"]))
        r = self.api.req("GET", f"/booking/{b['id']}/calendar.ics?token={b['token']}")
        self.assertEqual(r.status, 200, r.describe())

    def test_a_move_bumps_sequence_and_keeps_the_uid_and_a_cancel_says_cancelled(self):
        s = self.slot_at("2031-01-07T08:00:00.000Z")  # winter: 09:00 in Berlin
        t = self.slot_at("2031-01-08T13:00:00.000Z")
        b = self.book(s["id"])
        self.confirm(b)
        _, first, _ = self.ics(b)
        self.expect(self.reschedule(b, t["id"]), 200)
        _, moved, _ = self.ics(b)
        self.assertEqual(str(moved["UID"]), str(first["UID"]))
        self.assertEqual(int(moved["SEQUENCE"]), 1)
        self.assertEqual(moved["DTSTART"].dt.replace(tzinfo=None), datetime.datetime(2031, 1, 8, 14, 0))
        self.cancel(b)
        _, cancelled, _ = self.ics(b)
        self.assertEqual((str(cancelled["STATUS"]), int(cancelled["SEQUENCE"])), ("CANCELLED", 2))
        self.assertEqual(str(cancelled["UID"]), str(first["UID"]))

    def test_a_pending_booking_has_no_calendar_yet_and_others_need_the_token(self):
        s = self.slot_at("2031-01-09T08:00:00.000Z")
        b = self.book(s["id"])
        path = f"/booking/{b['id']}/calendar.ics"
        self.expect_error(self.api.req("GET", path, token=b["token"]), 409, "booking_pending")
        self.confirm(b)
        self.expect_error(self.api.req("GET", path), 403, "forbidden")
        self.expect_error(self.api.req("GET", path, token="f" * 32), 403, "forbidden")
        self.expect_error(self.api.req("GET", "/booking/999999/calendar.ics", admin=True), 404, "booking_not_found")


def main():
    return run_main(sys.modules[__name__], "booking_changes")


if __name__ == "__main__":
    sys.exit(main())
