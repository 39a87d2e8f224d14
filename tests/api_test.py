#!/usr/bin/env python3
"""The HTTP contract of slotd, tested against the real binary on a loopback port.

Run: python3 tests/api_test.py --slotd build/release/api/slotd [-k pattern]
Each test class starts its own slotd in a fresh temp data dir (removed afterwards).
Prints `api: N passed, M failed` last and exits non-zero on any failure.
Standard library only; every loop is bounded in count and time.
"""

import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_util import ServerCase, run_main  # noqa: E402
from api_util import (BASE_MS, ISO_RE, MINUTE_MS, TOKEN_RE, Server, child_env, iso, parse_iso,  # noqa: E402
                      read_raw_response)

SLOTD = None  # set from --slotd

DOCTOR_KEYS = {"id", "name", "specialty", "clinicId"}
SLOT_KEYS = {"id", "doctorId", "start", "end", "status"}
BOOKING_CREATED_KEYS = {"id", "slotId", "patientName", "status", "createdAt", "expiresAt", "token", "seq"}
BOOKING_VIEW_KEYS = {"id", "slotId", "status", "createdAt", "expiresAt", "confirmedAt"}


def slot_times(i, minutes=30, base_ms=BASE_MS):
    """The i-th back-to-back slot of `minutes` length from 2031-01-06T08:00Z."""
    start = base_ms + i * minutes * MINUTE_MS
    return iso(start), iso(start + minutes * MINUTE_MS)


class ApiCase(ServerCase):
    """Assertion helpers shared by all API tests. Subclasses set cls.server."""

    maxDiff = 4000

    @property
    def api(self):
        return self.server.api

    # --- response assertions -------------------------------------------------

    def expect(self, r, status):
        """Assert the status and a JSON body; return the parsed body."""
        self.assertEqual(r.status, status, f"want {status}{r.describe()}")
        self.assertIn("application/json", r.content_type, f"want a JSON content-type{r.describe()}")
        self.assertIsNotNone(r.json, f"want a JSON body{r.describe()}")
        return r.json

    def expect_error(self, r, status, codes):
        """Assert an error response: status and {"error":{"code","message"}}."""
        if isinstance(codes, str):
            codes = (codes,)
        body = self.expect(r, status)
        self.assertIsInstance(body, dict, f"error body must be an object{r.describe()}")
        self.assertIsInstance(body.get("error"), dict, f"want {{\"error\":{{...}}}}{r.describe()}")
        self.assertIn(body["error"].get("code"), codes, f"want error code in {codes}{r.describe()}")
        msg = body["error"].get("message")
        self.assertTrue(isinstance(msg, str) and msg.strip(), f"want a non-empty message{r.describe()}")
        return body["error"]["code"]

    def expect_seq(self, obj, r, strictly_new=True):
        """Assert obj["seq"] is a positive int; if strictly_new, greater than every seq seen."""
        seq = obj.get("seq") if isinstance(obj, dict) else None
        self.assertTrue(isinstance(seq, int) and not isinstance(seq, bool) and seq > 0,
                        f"want a positive integer seq{r.describe()}")
        if strictly_new:
            self.assertGreater(seq, self.api.last_seq,
                               f"seq must strictly increase across writes (last was {self.api.last_seq}){r.describe()}")
        self.api.last_seq = max(self.api.last_seq, seq)
        return seq

    def expect_iso(self, value, r, what):
        self.assertTrue(isinstance(value, str) and ISO_RE.match(value),
                        f"{what} must look like 2031-01-06T08:00:00.000Z, got {value!r}{r.describe()}")

    def expect_slot(self, s, r, keys=SLOT_KEYS):
        self.assertIsInstance(s, dict, r.describe())
        self.assertEqual(set(s), keys, f"slot fields{r.describe()}")
        self.assertIsInstance(s["id"], int, r.describe())
        self.assertIsInstance(s["doctorId"], int, r.describe())
        self.expect_iso(s["start"], r, "start")
        self.expect_iso(s["end"], r, "end")
        self.assertIn(s["status"], ("AVAILABLE", "HELD", "BOOKED", "CLOSED"), r.describe())

    # --- domain helpers (each asserts success) -------------------------------

    def new_doctor(self, name="Dr. Test", specialty="GP", clinic_id=None):
        body = {"name": name, "specialty": specialty}
        if clinic_id is not None:
            body["clinicId"] = clinic_id
        r = self.api.req("POST", "/doctors", body, admin=True)
        d = self.expect(r, 201)
        self.assertEqual(set(d), DOCTOR_KEYS | {"seq"}, f"doctor fields{r.describe()}")
        self.expect_seq(d, r)
        self.assertIsInstance(d["id"], int, r.describe())
        return d

    def new_slot(self, doctor_id, i=0, minutes=30):
        start, end = slot_times(i, minutes)
        r = self.api.req("POST", "/slots", {"doctorId": doctor_id, "start": start, "end": end}, admin=True)
        s = self.expect(r, 201)
        self.expect_slot(s, r, SLOT_KEYS | {"seq"})
        self.expect_seq(s, r)
        self.assertEqual((s["doctorId"], s["start"], s["end"], s["status"]),
                         (doctor_id, start, end, "AVAILABLE"), r.describe())
        return s

    def new_slots(self, doctor_id, n, first=0, minutes=30):
        body = {"doctorId": doctor_id, "slots": [dict(zip(("start", "end"), slot_times(first + k, minutes)))
                                                  for k in range(n)]}
        r = self.api.req("POST", "/slots", body, admin=True)
        arr = self.expect(r, 201)
        self.assertIsInstance(arr, list, r.describe())
        self.assertEqual(len(arr), n, r.describe())
        for s in arr:
            self.expect_slot(s, r, SLOT_KEYS | {"seq"})
            self.expect_seq(s, r)
            self.assertEqual(s["status"], "AVAILABLE", r.describe())
        return arr

    def book(self, slot_id, patient="Ada Lovelace", headers=None):
        r = self.api.req("POST", "/booking", {"slotId": slot_id, "patientName": patient}, headers=headers)
        b = self.expect(r, 201)
        self.assertEqual(set(b), BOOKING_CREATED_KEYS, f"booking fields{r.describe()}")
        self.expect_seq(b, r)
        self.assertEqual((b["slotId"], b["patientName"], b["status"]), (slot_id, patient, "PENDING"), r.describe())
        self.assertTrue(TOKEN_RE.match(b["token"]), f"token must be 32 lowercase hex chars{r.describe()}")
        self.expect_iso(b["createdAt"], r, "createdAt")
        self.expect_iso(b["expiresAt"], r, "expiresAt")
        return b

    def slots_of(self, doctor_id, query=""):
        r = self.api.req("GET", f"/slots/{doctor_id}{query}")
        arr = self.expect(r, 200)
        self.assertIsInstance(arr, list, r.describe())
        for s in arr:
            self.expect_slot(s, r)
        return arr

    def slot_status(self, doctor_id, slot_id):
        found = [s for s in self.slots_of(doctor_id) if s["id"] == slot_id]
        self.assertEqual(len(found), 1, f"slot {slot_id} must be listed once in GET /slots/{doctor_id}")
        return found[0]["status"]

    def get_booking(self, booking_id, **kw):
        r = self.api.req("GET", f"/booking/{booking_id}", **kw)
        return r, self.expect(r, 200)

    def doctors(self, query=""):
        r = self.api.req("GET", f"/doctors{query}")
        arr = self.expect(r, 200)
        self.assertIsInstance(arr, list, r.describe())
        return arr


# =============================================================================
class ContractTest(ApiCase):
    """Every row of the HTTP contract on one server (hold TTL 600 s)."""

    TTL_S = 600  # long enough that nothing expires during the class

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=cls.TTL_S)

    # --- doctors -------------------------------------------------------------

    def test_post_doctors_creates_a_doctor_in_clinic_1_by_default(self):
        d = self.new_doctor("Dr. Default", "Cardiology")
        self.assertEqual((d["name"], d["specialty"], d["clinicId"]), ("Dr. Default", "Cardiology", 1))
        listed = [x for x in self.doctors() if x["id"] == d["id"]]
        self.assertEqual(listed, [{"id": d["id"], "name": "Dr. Default", "specialty": "Cardiology", "clinicId": 1}])

    def test_get_doctors_lists_doctors_ordered_by_id_with_exactly_the_contract_fields(self):
        made = [self.new_doctor(f"Dr. Order {k}") for k in range(3)]
        arr = self.doctors()
        ids = [x["id"] for x in arr]
        self.assertEqual(ids, sorted(ids), "GET /doctors must be ordered by id")
        self.assertEqual(len(ids), len(set(ids)), "GET /doctors must list each doctor once")
        for m in made:
            self.assertIn(m["id"], ids)
        for x in arr:
            self.assertEqual(set(x), DOCTOR_KEYS, f"doctor fields in GET /doctors: {x}")

    def test_post_doctors_accepts_an_explicit_clinic_and_get_doctors_filters_by_clinic_id(self):
        r = self.api.req("POST", "/clinics", {"name": "Filter Clinic"}, admin=True)
        c = self.expect(r, 201)
        self.expect_seq(c, r)
        d = self.new_doctor("Dr. Elsewhere", "Derm", clinic_id=c["id"])
        self.assertEqual(d["clinicId"], c["id"])
        in_c = self.doctors(f"?clinicId={c['id']}")
        self.assertEqual(in_c, [{"id": d["id"], "name": "Dr. Elsewhere", "specialty": "Derm", "clinicId": c["id"]}])
        in_1 = self.doctors("?clinicId=1")
        self.assertNotIn(d["id"], [x["id"] for x in in_1])
        self.assertTrue(all(x["clinicId"] == 1 for x in in_1), in_1)

    def test_get_doctors_with_a_non_numeric_clinic_id_is_400_invalid_query(self):
        for q in ("?clinicId=abc", "?clinicId=1x", "?clinicId=-1.5"):
            with self.subTest(q=q):
                self.expect_error(self.api.req("GET", f"/doctors{q}"), 400, "invalid_query")

    def test_get_doctors_of_an_unknown_clinic_is_an_empty_list(self):
        self.assertEqual(self.doctors("?clinicId=987654"), [])

    def test_post_doctors_without_or_with_a_wrong_admin_token_is_401_unauthorized(self):
        before = len(self.doctors())
        body = {"name": "Dr. Nope", "specialty": "GP"}
        for hdrs in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": self.api.admin_token},
                     {"Authorization": "Basic " + self.api.admin_token}, {"Authorization": "Bearer "}):
            with self.subTest(headers=hdrs):
                self.expect_error(self.api.req("POST", "/doctors", body, headers=hdrs), 401, "unauthorized")
        self.assertEqual(len(self.doctors()), before, "a refused POST /doctors must create nothing")

    def test_post_doctors_in_an_unknown_clinic_is_404_clinic_not_found(self):
        r = self.api.req("POST", "/doctors", {"name": "Dr. X", "specialty": "GP", "clinicId": 987654}, admin=True)
        self.expect_error(r, 404, "clinic_not_found")

    def test_post_doctors_without_a_name_is_400_missing_field(self):
        self.expect_error(self.api.req("POST", "/doctors", {"specialty": "GP"}, admin=True), 400, "missing_field")
        self.expect_error(self.api.req("POST", "/doctors", {}, admin=True), 400, "missing_field")

    def test_post_doctors_with_wrongly_typed_fields_is_400_invalid_field(self):
        for body in ({"name": 42, "specialty": "GP"}, {"name": ["a"], "specialty": "GP"},
                     {"name": "Dr. T", "specialty": "GP", "clinicId": "abc"},
                     {"name": "Dr. T", "specialty": "GP", "clinicId": True}):
            with self.subTest(body=body):
                self.expect_error(self.api.req("POST", "/doctors", body, admin=True), 400, "invalid_field")

    def test_post_doctors_with_malformed_json_is_400_invalid_json(self):
        for raw in ('{"name": "Dr. X", "specialty": "GP"', "{name: 1}", "", "not json"):
            with self.subTest(raw=raw):
                self.expect_error(self.api.req("POST", "/doctors", raw=raw, admin=True), 400, "invalid_json")

    # --- clinics -------------------------------------------------------------

    def test_post_clinics_creates_a_clinic_and_get_clinics_lists_it_after_clinic_1(self):
        r = self.api.req("POST", "/clinics", {"name": "South Clinic"}, admin=True)
        c = self.expect(r, 201)
        self.assertEqual(set(c), {"id", "name", "timeZone", "seq"}, r.describe())
        self.expect_seq(c, r)
        self.assertEqual(c["name"], "South Clinic")
        self.assertEqual(c["timeZone"], "UTC", "without timeZone a clinic gets --default-time-zone (UTC)")
        r = self.api.req("GET", "/clinics")
        arr = self.expect(r, 200)
        self.assertIsInstance(arr, list, r.describe())
        ids = [x["id"] for x in arr]
        self.assertIn(1, ids, f"clinic 1 always exists{r.describe()}")
        self.assertIn({"id": c["id"], "name": "South Clinic", "timeZone": "UTC"}, arr, r.describe())
        for x in arr:
            self.assertEqual(set(x), {"id", "name", "timeZone"}, r.describe())

    def test_a_clinic_takes_an_iana_time_zone_and_refuses_an_unknown_one(self):
        r = self.api.req("POST", "/clinics", {"name": "Berlin Clinic", "timeZone": "Europe/Berlin"}, admin=True)
        c = self.expect(r, 201)
        self.assertEqual(c["timeZone"], "Europe/Berlin", r.describe())
        self.assertIn({"id": c["id"], "name": "Berlin Clinic", "timeZone": "Europe/Berlin"},
                      self.expect(self.api.req("GET", "/clinics"), 200))
        for zone in ("Mars/Olympus", "", "../../etc/passwd", 5):
            with self.subTest(zone=zone):
                self.expect_error(self.api.req("POST", "/clinics", {"name": "X", "timeZone": zone}, admin=True),
                                  400, "invalid_field")

    def test_patch_clinics_renames_a_clinic_and_moves_it_to_another_time_zone(self):
        c = self.expect(self.api.req("POST", "/clinics", {"name": "Old Name"}, admin=True), 201)
        r = self.api.req("PATCH", f"/clinics/{c['id']}", {"timeZone": "America/New_York"}, admin=True)
        moved = self.expect(r, 200)
        self.expect_seq(moved, r)
        self.assertEqual((moved["name"], moved["timeZone"]), ("Old Name", "America/New_York"))
        r = self.api.req("PATCH", f"/clinics/{c['id']}", {"name": "New Name"}, admin=True)
        self.assertEqual(self.expect(r, 200)["name"], "New Name")
        self.assertIn({"id": c["id"], "name": "New Name", "timeZone": "America/New_York"},
                      self.expect(self.api.req("GET", "/clinics"), 200))
        self.expect_error(self.api.req("PATCH", "/clinics/9999", {"name": "N"}, admin=True), 404, "clinic_not_found")
        self.expect_error(self.api.req("PATCH", f"/clinics/{c['id']}", {}, admin=True), 400, "missing_field")
        self.expect_error(self.api.req("PATCH", f"/clinics/{c['id']}", {"name": "N"}), 401, "unauthorized")

    def test_listing_clinics_is_public_and_creating_one_needs_the_admin_token(self):
        self.expect(self.api.req("GET", "/clinics"), 200)
        self.expect_error(self.api.req("POST", "/clinics", {"name": "Sneaky"}), 401, "unauthorized")
        self.expect_error(self.api.req("POST", "/clinics", {"name": "Sneaky"},
                                       headers={"Authorization": "Bearer x"}), 401, "unauthorized")
        r = self.api.req("GET", "/clinics")
        self.assertNotIn("Sneaky", [x["name"] for x in self.expect(r, 200)])

    def test_post_clinics_without_a_name_is_400(self):
        self.expect_error(self.api.req("POST", "/clinics", {}, admin=True), 400, ("missing_field",))

    # --- slots ---------------------------------------------------------------

    def test_post_slots_creates_one_available_slot(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"], 0)
        self.assertEqual(self.slots_of(d["id"]),
                         [{"id": s["id"], "doctorId": d["id"], "start": s["start"], "end": s["end"],
                           "status": "AVAILABLE"}])

    def test_post_slots_bulk_creates_an_array_of_available_slots_each_with_its_own_seq(self):
        d = self.new_doctor()
        arr = self.new_slots(d["id"], 5)
        self.assertEqual(len({s["id"] for s in arr}), 5, "bulk slots must have distinct ids")
        self.assertEqual(len({s["seq"] for s in arr}), 5, "each bulk slot has its own seq")
        for k, s in enumerate(arr):
            self.assertEqual((s["start"], s["end"], s["doctorId"]), slot_times(k) + (d["id"],))
        self.assertEqual([s["id"] for s in self.slots_of(d["id"])], [s["id"] for s in arr])

    def test_post_slots_accepts_digit_string_ids(self):
        d = self.new_doctor()
        start, end = slot_times(0)
        r = self.api.req("POST", "/slots", {"doctorId": str(d["id"]), "start": start, "end": end}, admin=True)
        s = self.expect(r, 201)
        self.expect_seq(s, r)
        self.assertEqual(s["doctorId"], d["id"], "doctorId is a JSON integer in responses")

    def test_post_slots_without_the_admin_token_is_401_unauthorized(self):
        d = self.new_doctor()
        start, end = slot_times(0)
        for hdrs in ({}, {"Authorization": "Bearer wrong"}):
            r = self.api.req("POST", "/slots", {"doctorId": d["id"], "start": start, "end": end}, headers=hdrs)
            self.expect_error(r, 401, "unauthorized")
        self.assertEqual(self.slots_of(d["id"]), [])

    def test_post_slots_for_an_unknown_doctor_is_404_doctor_not_found(self):
        start, end = slot_times(0)
        r = self.api.req("POST", "/slots", {"doctorId": 987654, "start": start, "end": end}, admin=True)
        self.expect_error(r, 404, "doctor_not_found")
        r = self.api.req("POST", "/slots", {"doctorId": 987654, "slots": [{"start": start, "end": end}]}, admin=True)
        self.expect_error(r, 404, "doctor_not_found")

    def test_post_slots_overlapping_an_existing_slot_is_409_slot_overlap(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"], 2)  # 09:00-09:30
        a = parse_iso(s["start"])
        b = parse_iso(s["end"])
        m = MINUTE_MS
        for start, end in ((a, b), (a - 10 * m, a + m), (b - m, b + 10 * m), (a - m, b + m), (a + m, b - m)):
            with self.subTest(start=iso(start), end=iso(end)):
                r = self.api.req("POST", "/slots", {"doctorId": d["id"], "start": iso(start), "end": iso(end)},
                                 admin=True)
                self.expect_error(r, 409, "slot_overlap")
        r = self.api.req("POST", "/slots", {"doctorId": d["id"], "slots": [
            {"start": iso(b + 60 * m), "end": iso(b + 90 * m)},
            {"start": iso(a - m), "end": iso(a + m)}]}, admin=True)
        self.expect_error(r, 409, "slot_overlap")
        self.assertEqual([x["id"] for x in self.slots_of(d["id"])], [s["id"]],
                         "a refused (bulk) request must create nothing")

    def test_post_slots_that_only_touch_do_not_overlap(self):
        d = self.new_doctor()
        mid = self.new_slot(d["id"], 1)
        before = self.new_slot(d["id"], 0)
        after = self.new_slot(d["id"], 2)
        self.assertEqual(before["end"], mid["start"])
        self.assertEqual(after["start"], mid["end"])
        bulk = self.new_slots(d["id"], 3, first=3)  # touching each other inside one request
        self.assertEqual(len(self.slots_of(d["id"])), 6)
        self.assertEqual(bulk[0]["start"], after["end"])

    def test_a_bulk_request_whose_slots_overlap_each_other_is_409_and_creates_nothing(self):
        d = self.new_doctor()
        s0, e0 = slot_times(0)
        s5, e5 = slot_times(5)
        body = {"doctorId": d["id"], "slots": [{"start": s5, "end": e5}, {"start": s0, "end": e0},
                                               {"start": iso(parse_iso(s0) + 10 * MINUTE_MS), "end": e0}]}
        self.expect_error(self.api.req("POST", "/slots", body, admin=True), 409, "slot_overlap")
        body = {"doctorId": d["id"], "slots": [{"start": s0, "end": e0}, {"start": s0, "end": e0}]}
        self.expect_error(self.api.req("POST", "/slots", body, admin=True), 409, "slot_overlap")
        self.assertEqual(self.slots_of(d["id"]), [])

    def test_post_slots_with_end_not_after_start_is_400_invalid_time_range(self):
        d = self.new_doctor()
        s0, e0 = slot_times(0)
        for start, end in ((s0, s0), (e0, s0)):
            with self.subTest(start=start, end=end):
                r = self.api.req("POST", "/slots", {"doctorId": d["id"], "start": start, "end": end}, admin=True)
                self.expect_error(r, 400, "invalid_time_range")
        s3, e3 = slot_times(3)
        r = self.api.req("POST", "/slots", {"doctorId": d["id"], "slots": [{"start": s3, "end": e3},
                                                                         {"start": e0, "end": s0}]}, admin=True)
        self.expect_error(r, 400, "invalid_time_range")
        self.assertEqual(self.slots_of(d["id"]), [], "a refused bulk request must create nothing")

    def test_post_slots_with_an_unparseable_instant_is_400_invalid_field(self):
        d = self.new_doctor()
        s0, e0 = slot_times(0)
        for bad in ("tomorrow", "", "2031-13-01T08:00:00.000Z", "2031-01-06 08:00", "2031-01-32T08:00:00.000Z",
                    "2031-01-06T25:00:00.000Z", 1924934400000, None, True):
            codes = ("invalid_field", "missing_field") if bad is None else "invalid_field"
            with self.subTest(bad=bad):
                r = self.api.req("POST", "/slots", {"doctorId": d["id"], "start": bad, "end": e0}, admin=True)
                self.expect_error(r, 400, codes)
                r = self.api.req("POST", "/slots", {"doctorId": d["id"], "slots": [{"start": s0, "end": bad}]},
                                 admin=True)
                self.expect_error(r, 400, codes)
        self.assertEqual(self.slots_of(d["id"]), [])

    def test_post_slots_without_required_fields_is_400_missing_field(self):
        d = self.new_doctor()
        s0, e0 = slot_times(0)
        for body in ({"start": s0, "end": e0}, {"doctorId": d["id"], "end": e0}, {"doctorId": d["id"], "start": s0},
                     {"doctorId": d["id"], "slots": [{"start": s0}]}):
            with self.subTest(body=body):
                self.expect_error(self.api.req("POST", "/slots", body, admin=True), 400, "missing_field")

    def test_a_bulk_request_with_no_slots_is_400_empty_request(self):
        d = self.new_doctor()
        r = self.api.req("POST", "/slots", {"doctorId": d["id"], "slots": []}, admin=True)
        self.expect_error(r, 400, "empty_request")

    def test_a_bulk_of_10000_slots_is_accepted_and_10001_is_413_too_many_slots(self):
        d = self.new_doctor()
        body = {"doctorId": d["id"], "slots": [dict(zip(("start", "end"), slot_times(k, 15))) for k in range(10001)]}
        r = self.api.req("POST", "/slots", body, admin=True, timeout=60)
        self.expect_error(r, 413, "too_many_slots")
        self.assertEqual(self.slots_of(d["id"]), [])
        body["slots"].pop()
        r = self.api.req("POST", "/slots", body, admin=True, timeout=60)
        arr = self.expect(r, 201)
        self.assertEqual(len(arr), 10000, "201 must list all 10,000 slots")
        self.assertEqual(len({s["id"] for s in arr}), 10000)
        for s in arr:
            self.expect_seq(s, r)
        listed = self.slots_of(d["id"])
        self.assertEqual(len(listed), 10000)
        self.assertEqual(listed[-1]["end"], slot_times(9999, 15)[1])

    def test_get_slots_is_ordered_by_start_and_filters_by_from_to_and_status(self):
        d = self.new_doctor()
        # created out of order: 3, 0, 2, 1
        body = {"doctorId": d["id"], "slots": [dict(zip(("start", "end"), slot_times(k))) for k in (3, 0, 2, 1)]}
        r = self.api.req("POST", "/slots", body, admin=True)
        created = self.expect(r, 201)
        for s in created:
            self.expect_seq(s, r)
        by_start = sorted(created, key=lambda s: s["start"])
        arr = self.slots_of(d["id"])
        self.assertEqual([s["id"] for s in arr], [s["id"] for s in by_start], "GET /slots is ordered by start")
        # from <= start < to
        f, _ = slot_times(1)
        t, _ = slot_times(3)
        q = "?" + urllib.parse.urlencode({"from": f, "to": t})
        self.assertEqual([s["start"] for s in self.slots_of(d["id"], q)], [slot_times(1)[0], slot_times(2)[0]])
        q = f"?from={f}&to={t}"  # unencoded colons work too
        self.assertEqual([s["start"] for s in self.slots_of(d["id"], q)], [slot_times(1)[0], slot_times(2)[0]])
        self.assertEqual(len(self.slots_of(d["id"], "?" + urllib.parse.urlencode({"from": f}))), 3)
        self.assertEqual(len(self.slots_of(d["id"], "?" + urllib.parse.urlencode({"to": t}))), 3)
        # a `from` in the middle of a slot excludes it (start < from)
        mid = iso(parse_iso(slot_times(1)[0]) + MINUTE_MS)
        self.assertEqual([s["start"] for s in self.slots_of(d["id"], "?" + urllib.parse.urlencode({"from": mid}))],
                         [slot_times(2)[0], slot_times(3)[0]])
        # status
        b = self.book(by_start[1]["id"])
        self.assertEqual([s["id"] for s in self.slots_of(d["id"], "?status=HELD")], [by_start[1]["id"]])
        self.assertEqual([s["id"] for s in self.slots_of(d["id"], "?status=AVAILABLE")],
                         [by_start[k]["id"] for k in (0, 2, 3)])
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        self.expect_seq(self.expect(r, 200), r)
        self.assertEqual([s["id"] for s in self.slots_of(d["id"], "?status=BOOKED")], [by_start[1]["id"]])
        r = self.api.req("DELETE", f"/slots/{by_start[3]['id']}", admin=True)
        self.expect_seq(self.expect(r, 200), r)
        self.assertEqual([s["id"] for s in self.slots_of(d["id"], "?status=CLOSED")], [by_start[3]["id"]])
        self.assertEqual(self.slots_of(d["id"], "?status=HELD"), [])

    def test_get_slots_with_a_non_numeric_doctor_id_is_400_invalid_path(self):
        for p in ("/slots/abc", "/slots/1x", "/slots/1.5"):
            with self.subTest(path=p):
                self.expect_error(self.api.req("GET", p), 400, "invalid_path")

    def test_get_slots_with_a_bad_query_value_is_400_invalid_query(self):
        d = self.new_doctor()
        for q in ("?from=yesterday", "?to=2031-99-01T00:00:00.000Z", "?status=FOO", "?from=2031-01-06"):
            with self.subTest(q=q):
                self.expect_error(self.api.req("GET", f"/slots/{d['id']}{q}"), 400, "invalid_query")

    def test_get_slots_of_an_unknown_doctor_is_an_empty_list(self):
        self.assertEqual(self.slots_of(987654), [])

    # --- booking -------------------------------------------------------------

    def test_post_booking_holds_the_slot_and_returns_a_pending_booking_with_a_token(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        now_ms = int(time.time() * 1000)
        b = self.book(s["id"], "Grace Hopper")
        created, expires = parse_iso(b["createdAt"]), parse_iso(b["expiresAt"])
        self.assertEqual(expires - created, self.TTL_S * 1000, "expiresAt = createdAt + hold TTL")
        self.assertLess(abs(created - now_ms), 60_000, "createdAt is the server's current time")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "HELD")
        r, v = self.get_booking(b["id"])
        self.assertEqual(v, {"id": b["id"], "slotId": s["id"], "status": "PENDING", "createdAt": b["createdAt"],
                             "expiresAt": b["expiresAt"], "confirmedAt": None}, r.describe())
        b2 = self.book(self.new_slot(d["id"], 1)["id"])
        self.assertNotEqual(b["token"], b2["token"], "tokens are random per booking")
        self.assertNotEqual(b["id"], b2["id"])

    def test_post_booking_accepts_a_digit_string_slot_id(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        r = self.api.req("POST", "/booking", {"slotId": str(s["id"]), "patientName": "P"})
        b = self.expect(r, 201)
        self.expect_seq(b, r)
        self.assertEqual(b["slotId"], s["id"], f"slotId is a JSON integer in responses{r.describe()}")

    def test_post_booking_with_missing_fields_is_400_missing_field(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        for body in ({}, {"patientName": "P"}, {"slotId": s["id"]}):
            with self.subTest(body=body):
                self.expect_error(self.api.req("POST", "/booking", body), 400, "missing_field")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")

    def test_post_booking_with_wrongly_typed_fields_is_400_invalid_field(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        for body in ({"slotId": "abc", "patientName": "P"}, {"slotId": s["id"], "patientName": 5},
                     {"slotId": True, "patientName": "P"}, {"slotId": 1.5, "patientName": "P"},
                     {"slotId": {}, "patientName": "P"}, {"slotId": [s["id"]], "patientName": "P"},
                     {"slotId": s["id"], "patientName": ["P"]}, {"slotId": "", "patientName": "P"},
                     {"slotId": f" {s['id']}", "patientName": "P"}):
            with self.subTest(body=body):
                self.expect_error(self.api.req("POST", "/booking", body), 400, "invalid_field")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")

    def test_post_booking_with_malformed_json_is_400_invalid_json(self):
        for raw in ('{"slotId": 1, "patientName": "x"', '{"slotId": 1,, }', "", "{'slotId': 1}", "nul"):
            with self.subTest(raw=raw):
                self.expect_error(self.api.req("POST", "/booking", raw=raw), 400, "invalid_json")

    def test_post_booking_on_an_unknown_slot_is_404_slot_not_found(self):
        r = self.api.req("POST", "/booking", {"slotId": 987654, "patientName": "P"})
        self.expect_error(r, 404, "slot_not_found")

    def test_post_booking_on_a_held_booked_or_closed_slot_is_409_slot_unavailable_and_changes_nothing(self):
        d = self.new_doctor()
        held, booked, closed = (self.new_slot(d["id"], k) for k in range(3))
        b1 = self.book(held["id"], "First")
        b2 = self.book(booked["id"], "Second")
        r = self.api.req("POST", f"/booking/{b2['id']}/confirm", token=b2["token"])
        self.expect_seq(self.expect(r, 200), r)
        r = self.api.req("DELETE", f"/slots/{closed['id']}", admin=True)
        self.expect_seq(self.expect(r, 200), r)
        before = self.slots_of(d["id"])
        for s in (held, booked, closed):
            with self.subTest(slot=s["id"]):
                r = self.api.req("POST", "/booking", {"slotId": s["id"], "patientName": "Intruder"})
                self.expect_error(r, 409, "slot_unavailable")
        self.assertEqual(self.slots_of(d["id"]), before)
        _, v = self.get_booking(b1["id"], token=b1["token"])
        self.assertEqual((v["status"], v["patientName"]), ("PENDING", "First"))

    def test_get_booking_shows_patient_name_only_with_the_booking_token_or_admin(self):
        d = self.new_doctor()
        b = self.book(self.new_slot(d["id"])["id"], "Secret Name")
        other = self.book(self.new_slot(d["id"], 1)["id"], "Other")
        full = {"id": b["id"], "slotId": b["slotId"], "status": "PENDING", "createdAt": b["createdAt"],
                "expiresAt": b["expiresAt"], "confirmedAt": None}
        cases = [
            ("no token", {}, None),
            ("wrong token", {"token": "0" * 32}, None),
            ("another booking's token", {"token": other["token"]}, None),
            ("X-Booking-Token", {"token": b["token"]}, "Secret Name"),
            ("admin", {"admin": True}, "Secret Name"),
        ]
        for label, kw, name in cases:
            with self.subTest(label):
                r, v = self.get_booking(b["id"], **kw)
                want = dict(full, patientName=name) if name else full
                self.assertEqual(v, want, r.describe())
        r, v = self.get_booking(f"{b['id']}?token={b['token']}")
        self.assertEqual(v, dict(full, patientName="Secret Name"), r.describe())
        r, v = self.get_booking(f"{b['id']}?token={'f' * 32}")
        self.assertEqual(v, full, r.describe())

    def test_get_booking_with_include_slot_adds_doctor_clinic_start_and_end(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"], 3)
        b = self.book(s["id"])
        r = self.api.req("GET", f"/booking/{b['id']}?include=slot")
        v = self.expect(r, 200)
        self.assertEqual(set(v), BOOKING_VIEW_KEYS | {"doctorId", "clinicId", "start", "end"}, r.describe())
        self.assertEqual((v["doctorId"], v["clinicId"], v["start"], v["end"]),
                         (d["id"], d["clinicId"], s["start"], s["end"]))
        self.expect_error(self.api.req("GET", f"/booking/{b['id']}?include=everything"), 400, "invalid_query")

    def test_get_booking_of_an_unknown_id_is_404_booking_not_found(self):
        self.expect_error(self.api.req("GET", "/booking/987654"), 404, "booking_not_found")

    def test_confirm_with_the_booking_token_confirms_and_repeating_it_is_200(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        c = self.expect(r, 200)
        self.assertEqual(set(c), {"id", "status", "seq"}, r.describe())
        self.assertEqual((c["id"], c["status"]), (b["id"], "CONFIRMED"), r.describe())
        self.expect_seq(c, r)
        self.assertEqual(self.slot_status(d["id"], s["id"]), "BOOKED")
        r, v = self.get_booking(b["id"])
        self.assertEqual(v["status"], "CONFIRMED", r.describe())
        self.expect_iso(v["confirmedAt"], r, "confirmedAt")
        self.assertGreaterEqual(parse_iso(v["confirmedAt"]), parse_iso(b["createdAt"]))
        r2 = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        c2 = self.expect(r2, 200)
        self.assertEqual((c2["id"], c2["status"]), (b["id"], "CONFIRMED"), r2.describe())
        self.expect_seq(c2, r2, strictly_new=False)
        r, v2 = self.get_booking(b["id"])
        self.assertEqual(v2, v, "a repeated confirm changes nothing")

    def test_confirm_by_admin_confirms(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", admin=True)
        c = self.expect(r, 200)
        self.expect_seq(c, r)
        self.assertEqual(c["status"], "CONFIRMED")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "BOOKED")

    def test_confirm_without_or_with_a_wrong_token_is_403_forbidden_and_changes_nothing(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        other = self.book(self.new_slot(d["id"], 1)["id"])
        for kw in ({}, {"token": "0" * 32}, {"token": other["token"]}, {"token": b["token"][:-1]},
                   {"token": b["token"] + "0"}, {"token": "g" * 32}, {"headers": {"Authorization": "Bearer nope"}},
                   {"headers": {"Authorization": f"Bearer {b['token']}"}}):
            with self.subTest(kw=kw):
                self.expect_error(self.api.req("POST", f"/booking/{b['id']}/confirm", **kw), 403, "forbidden")
        r, v = self.get_booking(b["id"])
        self.assertEqual(v["status"], "PENDING", r.describe())
        self.assertEqual(self.slot_status(d["id"], s["id"]), "HELD")

    def test_a_booking_token_must_match_exactly_so_its_upper_case_form_is_403(self):
        # the token is 32 lowercase hex chars; another spelling is another string, not the capability
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"], "Case Sensitive")
        upper = b["token"].upper()
        r, v = self.get_booking(b["id"], token=upper)
        self.assertNotIn("patientName", v, f"an upper-cased token must not reveal patient data{r.describe()}")
        self.expect_error(self.api.req("POST", f"/booking/{b['id']}/confirm", token=upper), 403, "forbidden")
        self.expect_error(self.api.req("POST", f"/booking/{b['id']}/cancel", token=upper), 403, "forbidden")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "HELD")

    def test_confirm_of_an_unknown_booking_is_404_even_without_a_token(self):
        self.expect_error(self.api.req("POST", "/booking/987654/confirm"), 404, "booking_not_found")
        self.expect_error(self.api.req("POST", "/booking/987654/confirm", token="0" * 32), 404, "booking_not_found")

    def test_cancel_with_the_booking_token_frees_the_slot_and_repeating_it_is_200(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        r = self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"])
        c = self.expect(r, 200)
        self.assertEqual(set(c), {"id", "status", "seq"}, r.describe())
        self.assertEqual((c["id"], c["status"]), (b["id"], "CANCELLED"), r.describe())
        self.expect_seq(c, r)
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")
        r, v = self.get_booking(b["id"])
        self.assertEqual(v["status"], "CANCELLED", r.describe())
        r2 = self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"])
        c2 = self.expect(r2, 200)
        self.assertEqual((c2["id"], c2["status"]), (b["id"], "CANCELLED"), r2.describe())
        self.expect_seq(c2, r2, strictly_new=False)
        b2 = self.book(s["id"], "Next Patient")
        self.assertNotEqual(b2["id"], b["id"])
        self.assertEqual(self.slot_status(d["id"], s["id"]), "HELD")
        r, v = self.get_booking(b["id"])
        self.assertEqual(v["status"], "CANCELLED", "the old booking stays CANCELLED")

    def test_cancel_of_a_confirmed_booking_by_admin_frees_the_slot(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        self.expect_seq(self.expect(r, 200), r)
        r = self.api.req("POST", f"/booking/{b['id']}/cancel", admin=True)
        c = self.expect(r, 200)
        self.expect_seq(c, r)
        self.assertEqual(c["status"], "CANCELLED")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")

    def test_cancel_without_or_with_a_wrong_token_is_403_and_of_an_unknown_booking_404(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        for kw in ({}, {"token": "0" * 32}, {"headers": {"Authorization": "Bearer nope"}}):
            with self.subTest(kw=kw):
                self.expect_error(self.api.req("POST", f"/booking/{b['id']}/cancel", **kw), 403, "forbidden")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "HELD")
        self.expect_error(self.api.req("POST", "/booking/987654/cancel"), 404, "booking_not_found")
        self.expect_error(self.api.req("POST", "/booking/987654/cancel", admin=True), 404, "booking_not_found")

    def test_confirm_after_cancel_is_409_booking_cancelled(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        r = self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"])
        self.expect_seq(self.expect(r, 200), r)
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        self.expect_error(r, 409, "booking_cancelled")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")

    def test_delete_slot_closes_an_available_slot(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        r = self.api.req("DELETE", f"/slots/{s['id']}", admin=True)
        c = self.expect(r, 200)
        self.assertEqual(set(c), {"id", "status", "seq"}, r.describe())
        self.assertEqual((c["id"], c["status"]), (s["id"], "CLOSED"), r.describe())
        self.expect_seq(c, r)
        self.assertEqual(self.slot_status(d["id"], s["id"]), "CLOSED")

    def test_delete_slot_of_a_held_or_booked_slot_is_409_slot_booked(self):
        d = self.new_doctor()
        held, booked = self.new_slot(d["id"], 0), self.new_slot(d["id"], 1)
        self.book(held["id"])
        b = self.book(booked["id"])
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        self.expect_seq(self.expect(r, 200), r)
        for s in (held, booked):
            self.expect_error(self.api.req("DELETE", f"/slots/{s['id']}", admin=True), 409, "slot_booked")
        self.assertEqual([x["status"] for x in self.slots_of(d["id"])], ["HELD", "BOOKED"])

    def test_delete_slot_needs_the_admin_token_and_an_existing_slot(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        self.expect_error(self.api.req("DELETE", f"/slots/{s['id']}"), 401, "unauthorized")
        self.expect_error(self.api.req("DELETE", f"/slots/{s['id']}", headers={"Authorization": "Bearer x"}),
                          401, "unauthorized")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")
        self.expect_error(self.api.req("DELETE", "/slots/987654", admin=True), 404, "slot_not_found")

    # --- service endpoints, routing, connections ------------------------------

    def test_healthz_reports_ok_and_a_seq_at_least_the_last_write(self):
        d = self.new_doctor()
        r = self.api.req("GET", "/healthz")
        h = self.expect(r, 200)
        self.assertEqual(h.get("status"), "ok", r.describe())
        self.assertIsInstance(h.get("seq"), int, r.describe())
        self.assertGreaterEqual(h["seq"], d["seq"], f"healthz seq must cover the last durable write{r.describe()}")

    def test_metrics_is_prometheus_text(self):
        r = self.api.req("GET", "/metrics")
        self.assertEqual(r.status, 200, r.describe())
        self.assertIn("text/plain", r.content_type, r.describe())
        text = r.body.decode("utf-8")
        self.assertIn("slotd_", text, r.describe())
        samples = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        self.assertTrue(samples, "metrics must contain samples")
        for ln in samples:
            name, _, value = ln.rpartition(" ")
            self.assertTrue(name, f"bad metrics line {ln!r}")
            float(value)  # each sample ends with a number

    def test_unknown_route_is_404_not_found(self):
        for method, path in (("GET", "/nope"), ("GET", "/"), ("POST", "/doctorz"), ("GET", "/booking/1/extra/x"),
                             ("GET", "/slots/1/2/3")):
            with self.subTest(path=path):
                r = self.api.req(method, path, body={} if method == "POST" else None)
                if path == "/" and r.status == 200:
                    continue  # "/" may serve the web UI
                self.expect_error(r, 404, "not_found")

    def test_known_path_with_wrong_method_is_405_method_not_allowed(self):
        for method, path in (("DELETE", "/doctors"), ("PUT", "/doctors"), ("GET", "/booking"),
                             ("GET", "/booking/1/confirm"), ("DELETE", "/booking/1"), ("POST", "/healthz"),
                             ("PATCH", "/slots/1"), ("GET", "/slots")):
            with self.subTest(method=method, path=path):
                self.expect_error(self.api.req(method, path, admin=True), 405, "method_not_allowed")

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        conn = self.api.connect()
        try:
            conn.connect()
            sock = conn.sock
            for k in range(20):
                path = ("/healthz", "/doctors", "/nope", "/slots/987654")[k % 4]
                r = self.api.req("GET", path, conn=conn)
                self.assertIn(r.status, (200, 404), r.describe())
                self.assertIs(conn.sock, sock, f"request {k} needed a new connection (server closed keep-alive)")
        finally:
            conn.close()

    def test_pipelined_requests_get_their_responses_in_order(self):
        body = json.dumps({"slotId": 987654, "patientName": "P"}).encode()
        reqs = [
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /doctors?clinicId=abc HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
            b"POST /booking HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body,
            b"GET /booking/987654 HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /doctors?clinicId=987654 HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        ]
        want = [(200, None), (400, "invalid_query"), (404, "not_found"), (404, "slot_not_found"),
                (404, "booking_not_found"), (200, []), (200, None)]
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as s:
            s.sendall(b"".join(reqs))
            f = s.makefile("rb")
            got = []
            for _ in reqs:
                resp = read_raw_response(f)
                self.assertIsNotNone(resp, f"connection closed after {len(got)} of {len(reqs)} responses: {got}")
                got.append(resp)
        for k, ((status, headers, body), (wstatus, wbody)) in enumerate(zip(got, want)):
            parsed = json.loads(body) if body else None
            self.assertEqual(status, wstatus, f"pipelined response {k}: {status} {body!r}")
            if wbody is None and wstatus == 200:
                self.assertEqual(parsed.get("status"), "ok", f"pipelined response {k}: {body!r}")
            elif isinstance(wbody, str):
                self.assertEqual(parsed["error"]["code"], wbody, f"pipelined response {k}: {body!r}")
            else:
                self.assertEqual(parsed, wbody, f"pipelined response {k}: {body!r}")

    def test_seq_strictly_increases_across_a_mix_of_writes(self):
        seqs = []
        d = self.new_doctor()
        seqs.append(d["seq"])
        arr = self.new_slots(d["id"], 3)
        seqs += [s["seq"] for s in arr]
        b = self.book(arr[0]["id"])
        seqs.append(b["seq"])
        for method, path, kw in (("POST", f"/booking/{b['id']}/confirm", {"token": b["token"]}),
                                 ("DELETE", f"/slots/{arr[1]['id']}", {"admin": True}),
                                 ("POST", f"/booking/{b['id']}/cancel", {"token": b["token"]})):
            r = self.api.req(method, path, **kw)
            seqs.append(self.expect_seq(self.expect(r, 200), r))
        r = self.api.req("POST", "/clinics", {"name": "Seq Clinic"}, admin=True)
        seqs.append(self.expect_seq(self.expect(r, 201), r))
        self.assertEqual(seqs, sorted(set(seqs)), f"seqs of successive writes: {seqs}")
        h = self.expect(self.api.healthz(), 200)
        self.assertGreaterEqual(h["seq"], seqs[-1])

    def test_a_refused_write_does_not_consume_a_seq_visible_in_healthz(self):
        # a rejection writes no event: healthz seq stays put across refused requests
        h1 = self.expect(self.api.healthz(), 200)["seq"]
        self.expect_error(self.api.req("POST", "/booking", {"slotId": 987654, "patientName": "P"}), 404,
                          "slot_not_found")
        self.expect_error(self.api.req("POST", "/doctors", {"name": "x", "specialty": "y", "clinicId": 987654},
                                       admin=True), 404, "clinic_not_found")
        h2 = self.expect(self.api.healthz(), 200)["seq"]
        self.assertEqual(h1, h2, "refused requests must not append events")


# =============================================================================
class RobustnessTest(ApiCase):
    """Malformed input never crashes the server or yields a 5xx."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=60)

    def assert_alive(self):
        r = self.api.healthz(timeout=5)
        self.assertEqual(r.status, 200, f"server must stay up{r.describe()}")

    def test_malformed_json_variants_are_400_and_the_server_stays_up(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        cases = [
            ('{"slotId": ', ("invalid_json",)),
            ('{"slotId": 1, "patientName": "x"}}', ("invalid_json",)),
            ('{"slotId": 1 "patientName": "x"}', ("invalid_json",)),
            ('{"slotId": 01, "patientName": "x"}', ("invalid_json",)),
            ('{"slotId": NaN, "patientName": "x"}', ("invalid_json",)),
            ('\xef\xbb\xbf{"slotId"', ("invalid_json",)),
            ("[" * 100000 + "]" * 100000, ("invalid_json", "invalid_field")),
            ('{"a":' * 50000 + "1" + "}" * 50000, ("invalid_json", "invalid_field", "missing_field")),
            ("[1, 2, 3]", ("invalid_json", "invalid_field")),
            ('"just a string"', ("invalid_json", "invalid_field")),
            ("42", ("invalid_json", "invalid_field")),
            ("null", ("invalid_json", "invalid_field")),
            ("true", ("invalid_json", "invalid_field")),
        ]
        for raw, codes in cases:
            with self.subTest(raw=raw[:40]):
                self.expect_error(self.api.req("POST", "/booking", raw=raw, timeout=20), 400, codes)
                self.assert_alive()
        bad_utf8 = b'{"slotId": ' + str(s["id"]).encode() + b', "patientName": "\xff\xfe"}'
        self.expect_error(self.api.req("POST", "/booking", raw=bad_utf8), 400, ("invalid_json", "invalid_field"))
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")
        self.assert_alive()

    def test_wrong_types_huge_numbers_and_negative_ids_are_refused_cleanly(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        # a 26-digit integer literal is valid JSON, but some parsers refuse it outright
        self.expect_error(self.api.req("POST", "/booking", raw='{"slotId": 99999999999999999999999999, "patientName": "x"}'),
                          400, ("invalid_field", "invalid_json"))
        invalid = [
            '{"slotId": 1e30, "patientName": "x"}',
            '{"slotId": 1.0e2, "patientName": "x"}',
            '{"slotId": "99999999999999999999999999", "patientName": "x"}',
            '{"slotId": "-1", "patientName": "x"}',
            '{"slotId": "0x10", "patientName": "x"}',
            '{"slotId": "1e3", "patientName": "x"}',
            '{"slotId": null, "patientName": "x"}',
        ]
        for raw in invalid:
            with self.subTest(raw=raw):
                self.expect_error(self.api.req("POST", "/booking", raw=raw), 400, ("invalid_field", "missing_field"))
        for raw in ('{"slotId": -1, "patientName": "x"}', '{"slotId": 0, "patientName": "x"}',
                    '{"slotId": 18446744073709551615, "patientName": "x"}',
                    '{"slotId": 9223372036854775808, "patientName": "x"}'):
            with self.subTest(raw=raw):
                r = self.api.req("POST", "/booking", raw=raw)
                self.expect_error(r, 400 if r.status == 400 else 404,
                                  "invalid_field" if r.status == 400 else "slot_not_found")
        for path in ("/booking/-1", "/booking/99999999999999999999999", "/booking/0", "/slots/-1",
                     "/slots/99999999999999999999999", "/booking/%00", "/booking/1%20"):
            with self.subTest(path=path):
                r = self.api.req("GET", path)
                self.assertIn(r.status, (200, 400, 404), r.describe())
                if r.status != 200:
                    self.expect_error(r, r.status, ("invalid_path", "booking_not_found", "not_found"))
        r = self.api.req("POST", "/doctors", raw='{"name": "Dr. Big", "specialty": "X", "clinicId": 1e400}',
                         admin=True)
        self.expect_error(r, 400, ("invalid_field", "invalid_json"))
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")
        self.assert_alive()

    def test_a_digit_string_id_is_accepted_everywhere_an_id_is(self):
        r = self.api.req("POST", "/doctors", {"name": "Dr. Str", "specialty": "X", "clinicId": "1"}, admin=True)
        d = self.expect(r, 201)
        self.expect_seq(d, r)
        self.assertEqual(d["clinicId"], 1)
        s0, e0 = slot_times(0)
        r = self.api.req("POST", "/slots", {"doctorId": str(d["id"]), "slots": [{"start": s0, "end": e0}]},
                         admin=True)
        arr = self.expect(r, 201)
        r = self.api.req("POST", "/booking", {"slotId": str(arr[0]["id"]), "patientName": "Str"})
        b = self.expect(r, 201)
        self.expect_seq(b, r)
        self.assertEqual(b["slotId"], arr[0]["id"])

    def test_a_2_mib_body_is_413_body_too_large(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        name = "x" * (2 * 1024 * 1024)
        body = json.dumps({"slotId": s["id"], "patientName": name}).encode()
        head = (f"POST /booking HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        resp = None
        send_error = None
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sk:
            try:
                sk.sendall(head)
                for off in range(0, len(body), 65536):
                    sk.sendall(body[off:off + 65536])
            except OSError as e:  # the server may answer and stop reading early
                send_error = e
            try:
                resp = read_raw_response(sk.makefile("rb"))
            except OSError as e:
                send_error = send_error or e
        self.assertIsNotNone(resp, f"no response to a 2 MiB body (send/recv error: {send_error!r})")
        status, _, rbody = resp
        self.assertEqual(status, 413, rbody[:300])
        self.assertEqual(json.loads(rbody)["error"]["code"], "body_too_large", rbody[:300])
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")
        # via http.client too, on the admin bulk endpoint
        try:
            r = self.api.req("POST", "/slots", raw=b'{"doctorId":1,"slots":[' + b" " * (2 * 1024 * 1024) + b"]}",
                             admin=True)
            self.expect_error(r, 413, "body_too_large")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed while we were still sending; the raw-socket case above checks the 413
        self.assert_alive()

    def raw_exchange(self, data, timeout=5):
        """Send raw bytes; return the first response line, b'' on close/reset; fail on silence."""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout) as sk:
            try:
                sk.sendall(data)
            except OSError:
                return b""
            try:
                buf = b""
                deadline = time.monotonic() + timeout
                while b"\r\n" not in buf and time.monotonic() < deadline:
                    chunk = sk.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                return buf
            except ConnectionResetError:
                return b""
            except socket.timeout:
                self.fail(f"server neither answered nor closed within {timeout}s after {data[:60]!r}")

    def test_garbage_bytes_get_a_400_or_a_close_and_the_server_stays_up(self):
        rnd = random.Random(1234)
        payloads = [
            b"\x00\xff\xfe\xfd garbage \x01\x02\r\n\r\n",
            b"HELLO\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"POST /booking HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
            b"POST /booking HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n",
            bytes(rnd.randrange(256) for _ in range(4096)) + b"\r\n\r\n",
        ]
        for p in payloads:
            with self.subTest(payload=p[:40]):
                first = self.raw_exchange(p)
                if first:
                    line = first.split(b"\r\n", 1)[0]
                    self.assertRegex(line, rb"^HTTP/1\.[01] (400|413|431|505) ",
                                     f"garbage {p[:40]!r} must get a 4xx/505 or a close, got {first[:200]!r}")
                self.assert_alive()
        # a half-sent request then a close must not hurt either
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as sk:
            sk.sendall(b"POST /booking HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"slotId\"")
        self.assert_alive()


# =============================================================================
class HoldExpiryTest(ApiCase):
    """With --hold-ttl 1 an unconfirmed hold fails and frees its slot."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=1)

    def wait_status(self, booking_id, status, deadline_s):
        end = time.monotonic() + deadline_s
        last = None
        while time.monotonic() < end:
            r, v = self.get_booking(booking_id)
            last = v
            if v["status"] == status:
                return v
            time.sleep(0.05)
        self.fail(f"booking {booking_id} not {status} within {deadline_s}s; last view {last}")

    def test_a_pending_hold_fails_after_the_ttl_and_its_slot_can_be_booked_again(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        self.assertEqual(parse_iso(b["expiresAt"]) - parse_iso(b["createdAt"]), 1000)
        v = self.wait_status(b["id"], "FAILED", 2.5)
        self.assertIsNone(v["confirmedAt"])
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")
        b2 = self.book(s["id"], "Second Try")
        self.assertNotEqual(b2["id"], b["id"])
        self.assertEqual(self.slot_status(d["id"], s["id"]), "HELD")
        _, v = self.get_booking(b["id"])
        self.assertEqual(v["status"], "FAILED", "the failed booking stays FAILED")

    def test_a_hold_past_its_expires_at_cannot_be_confirmed(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        time.sleep(1.05)  # just past expiresAt, maybe before the expiry tick
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        self.expect_error(r, 409, ("booking_expired", "booking_failed"))
        self.wait_status(b["id"], "FAILED", 2.0)
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        self.expect_error(r, 409, ("booking_expired", "booking_failed"))
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")

    def test_cancelling_a_failed_booking_is_409_booking_failed(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        self.wait_status(b["id"], "FAILED", 2.5)
        self.expect_error(self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"]), 409,
                          "booking_failed")
        self.expect_error(self.api.req("POST", f"/booking/{b['id']}/cancel", admin=True), 409, "booking_failed")

    def test_a_confirmed_booking_does_not_expire(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        r = self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"])
        self.expect_seq(self.expect(r, 200), r)
        time.sleep(2.0)
        _, v = self.get_booking(b["id"])
        self.assertEqual(v["status"], "CONFIRMED")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "BOOKED")

    def test_holds_that_expire_across_restarts_end_failed_and_free_their_slots(self):
        own = self.start_server(hold_ttl=1)
        try:
            api = own.api
            d = self.expect(api.req("POST", "/doctors", {"name": "Dr. Restart", "specialty": "X"}, admin=True), 201)
            slots = self.expect(api.req("POST", "/slots", {"doctorId": d["id"], "slots": [
                dict(zip(("start", "end"), slot_times(k))) for k in range(2)]}, admin=True), 201)
            # 1: expires while the server runs, then survives a SIGTERM restart as FAILED
            b1 = self.expect(api.req("POST", "/booking", {"slotId": slots[0]["id"], "patientName": "P1"}), 201)
            end = time.monotonic() + 2.5
            while time.monotonic() < end and self.expect(api.req("GET", f"/booking/{b1['id']}"), 200)["status"] != "FAILED":
                time.sleep(0.05)
            # 2: still PENDING when the server is killed; its expiresAt passes while the server is down
            b2 = self.expect(api.req("POST", "/booking", {"slotId": slots[1]["id"], "patientName": "P2"}), 201)
            self.assertEqual(own.kill(), -9)
            time.sleep(1.2)
            own.start()
            api = own.api
            r = api.req("GET", f"/booking/{b1['id']}")
            self.assertEqual(self.expect(r, 200)["status"], "FAILED", r.describe())
            r = api.req("POST", f"/booking/{b2['id']}/confirm", token=b2["token"])
            self.expect_error(r, 409, ("booking_expired", "booking_failed"))
            end = time.monotonic() + 2.5
            status = None
            while time.monotonic() < end:
                status = self.expect(api.req("GET", f"/booking/{b2['id']}"), 200)["status"]
                if status == "FAILED":
                    break
                time.sleep(0.05)
            self.assertEqual(status, "FAILED", "a hold that expired while the server was down must fail after restart")
            listed = self.expect(api.req("GET", f"/slots/{d['id']}"), 200)
            self.assertEqual([s["status"] for s in listed], ["AVAILABLE", "AVAILABLE"])
            self.expect(api.req("POST", "/booking", {"slotId": slots[1]["id"], "patientName": "P3"}), 201)
        finally:
            rc = own.stop()
            own.cleanup()
        self.assertEqual(rc, 0)

    def test_a_fractional_hold_ttl_of_half_a_second_is_honoured(self):
        half = self.start_server(hold_ttl=0.5)
        try:
            api = half.api
            r = api.req("POST", "/doctors", {"name": "Dr. Half", "specialty": "X"}, admin=True)
            d = self.expect(r, 201)
            s0, e0 = slot_times(0)
            r = api.req("POST", "/slots", {"doctorId": d["id"], "start": s0, "end": e0}, admin=True)
            s = self.expect(r, 201)
            r = api.req("POST", "/booking", {"slotId": s["id"], "patientName": "P"})
            b = self.expect(r, 201)
            self.assertEqual(parse_iso(b["expiresAt"]) - parse_iso(b["createdAt"]), 500, r.describe())
            end = time.monotonic() + 2.0
            status = None
            while time.monotonic() < end:
                status = self.expect(api.req("GET", f"/booking/{b['id']}"), 200)["status"]
                if status == "FAILED":
                    break
                time.sleep(0.05)
            self.assertEqual(status, "FAILED", "a 0.5 s hold must have failed within 2 s")
        finally:
            rc = half.stop()
            half.cleanup()
            self.assertEqual(rc, 0)


# =============================================================================
class HoldCapTest(ApiCase):
    """--max-holds-per-client 2: a third PENDING hold by the same client is 429. The client
    is the peer address; X-Client-Key / X-Forwarded-For count only from --trusted-proxies."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=60, max_holds=2)

    def test_a_client_with_2_pending_holds_gets_429_until_one_is_confirmed_or_cancelled(self):
        d = self.new_doctor()
        slots = self.new_slots(d["id"], 8)
        a1 = self.book(slots[0]["id"])
        a2 = self.book(slots[1]["id"])
        r = self.api.req("POST", "/booking", {"slotId": slots[2]["id"], "patientName": "A3"})
        self.expect_error(r, 429, "too_many_holds")
        self.assertIn("2", r.json["error"]["message"], "the 429 says how many holds are allowed")
        self.assertEqual(self.slot_status(d["id"], slots[2]["id"]), "AVAILABLE", "a 429 must change nothing")
        # a confirmed hold is no longer PENDING and frees a place
        r = self.api.req("POST", f"/booking/{a1['id']}/confirm", token=a1["token"])
        self.expect_seq(self.expect(r, 200), r)
        a3 = self.book(slots[3]["id"])
        self.expect_error(self.api.req("POST", "/booking", {"slotId": slots[4]["id"], "patientName": "A"}),
                          429, "too_many_holds")
        # so does a cancelled one
        r = self.api.req("POST", f"/booking/{a2['id']}/cancel", token=a2["token"])
        self.expect_seq(self.expect(r, 200), r)
        a4 = self.book(slots[4]["id"])
        self.expect_error(self.api.req("POST", "/booking", {"slotId": slots[5]["id"], "patientName": "A"}),
                          429, "too_many_holds")
        # Leave no hold behind: the next test is the same peer.
        for b in (a3, a4):
            self.expect(self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"]), 200)

    def test_a_client_cannot_escape_the_cap_by_sending_its_own_client_key_or_forwarded_for(self):
        d = self.new_doctor()
        slots = self.new_slots(d["id"], 6)
        # Fill this peer's cap, whatever earlier tests left: cancel our holds at the end.
        made = []
        for i in range(6):
            headers = {"X-Client-Key": f"rotating-{i}", "X-Forwarded-For": f"10.0.0.{i}"}
            r = self.api.req("POST", "/booking", {"slotId": slots[i]["id"], "patientName": f"R{i}"}, headers=headers)
            if r.status == 201:
                made.append(r.json)
            else:
                self.expect_error(r, 429, "too_many_holds")
        self.assertLessEqual(len(made), 2, "rotating X-Client-Key / X-Forwarded-For from an untrusted peer "
                                           "must not get past --max-holds-per-client 2")
        for b in made:
            self.expect(self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"]), 200)


class TrustedProxyTest(ApiCase):
    """With --trusted-proxies 127.0.0.0/8, the proxy's X-Client-Key (else the rightmost
    untrusted X-Forwarded-For address) is the client."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=60, max_holds=1, extra_args=["--trusted-proxies", "127.0.0.0/8"])

    def test_each_forwarded_client_has_its_own_cap(self):
        d = self.new_doctor()
        slots = self.new_slots(d["id"], 5)
        alice = {"X-Client-Key": "alice"}
        self.book(slots[0]["id"], headers=alice)
        self.expect_error(self.api.req("POST", "/booking", {"slotId": slots[1]["id"], "patientName": "A"},
                                       headers=alice), 429, "too_many_holds")
        self.book(slots[1]["id"], headers={"X-Client-Key": "bob"})
        carol = {"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}
        self.book(slots[2]["id"], headers=carol)
        self.expect_error(self.api.req("POST", "/booking", {"slotId": slots[3]["id"], "patientName": "C"},
                                       headers={"X-Forwarded-For": "203.0.113.7"}), 429, "too_many_holds")
        self.book(slots[3]["id"], headers={"X-Forwarded-For": "198.51.100.2"})


# =============================================================================
class ContentionTest(ApiCase):
    """1,000 concurrent booking requests on 10 slots: exactly one winner per slot."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=300)

    def test_1000_concurrent_bookings_on_10_slots_give_exactly_10_holds_and_990_conflicts(self):
        d = self.new_doctor()
        slots = [s["id"] for s in self.new_slots(d["id"], 10)]
        n_threads, per_thread = 100, 10
        results = []
        errors = []
        reconnects = [0]
        lock = threading.Lock()
        barrier = threading.Barrier(n_threads, timeout=30)
        port = self.server.port

        def worker(t):
            rnd = random.Random(t)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine = []
            try:
                conn.connect()
                sock = conn.sock
                barrier.wait()
                for i in range(per_thread):
                    slot = slots[(t + i) % 10] if t % 2 == 0 else rnd.choice(slots)
                    body = json.dumps({"slotId": slot, "patientName": f"P{t}-{i}"})
                    conn.request("POST", "/booking", body=body, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    if conn.sock is not sock and conn.sock is not None:
                        with lock:
                            reconnects[0] += 1
                        sock = conn.sock
                    mine.append((slot, resp.status, data))
                    if resp.will_close:
                        with lock:
                            reconnects[0] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(f"thread {t}: {e!r}")
            finally:
                conn.close()
                with lock:
                    results.extend(mine)

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(90)
        self.assertFalse([th for th in threads if th.is_alive()], "worker threads hung")
        self.assertEqual(errors, [], "client errors")
        self.assertEqual(len(results), n_threads * per_thread)

        wins = [(slot, json.loads(body)) for slot, status, body in results if status == 201]
        losses = [(status, body) for _, status, body in results if status != 201]
        bad = [(st, b[:200]) for st, b in losses if st != 409 or json.loads(b)["error"]["code"] != "slot_unavailable"]
        self.assertEqual(bad[:5], [], f"{len(bad)} responses were neither 201 nor 409 slot_unavailable")
        self.assertEqual(len(wins), 10, f"want exactly 10 x 201, got {len(wins)}")
        self.assertEqual(len(losses), 990)
        self.assertEqual(sorted(b["slotId"] for _, b in wins), sorted(slots), "one winner per slot")
        for slot, b in wins:
            self.assertEqual(b["slotId"], slot)
        self.assertEqual(len({b["id"] for _, b in wins}), 10)
        self.assertEqual(len({b["seq"] for _, b in wins}), 10, "each hold has its own seq")
        self.assertEqual([s["status"] for s in self.slots_of(d["id"])], ["HELD"] * 10)
        for _, b in wins:
            r, v = self.get_booking(b["id"], token=b["token"])
            self.assertEqual((v["status"], v["slotId"], v["patientName"]), ("PENDING", b["slotId"], b["patientName"]),
                             r.describe())
        self.assertEqual(reconnects[0], 0, "keep-alive connections were closed by the server under load")


# =============================================================================
class DurabilityTest(ApiCase):
    """What got a 2xx survives SIGTERM and SIGKILL restarts on the same data dir."""

    def state(self, api, doctor_ids, booking_ids):
        st = {"clinics": self.expect(api.req("GET", "/clinics", admin=True), 200),
              "doctors": self.expect(api.req("GET", "/doctors"), 200), "slots": {}, "bookings": {}}
        for d in doctor_ids:
            st["slots"][d] = self.expect(api.req("GET", f"/slots/{d}"), 200)
        for b in booking_ids:
            st["bookings"][b] = self.expect(api.req("GET", f"/booking/{b}", admin=True), 200)
        return st

    def populate(self):
        """Doctors in two clinics, slots in every state, bookings in every non-expired state."""
        r = self.api.req("POST", "/clinics", {"name": "Durable Clinic"}, admin=True)
        c = self.expect(r, 201)
        self.expect_seq(c, r)
        d1 = self.new_doctor("Dr. One", "GP")
        d2 = self.new_doctor("Dr. Two", "ENT", clinic_id=c["id"])
        s1 = self.new_slots(d1["id"], 6)
        s2 = [self.new_slot(d2["id"], 0), self.new_slot(d2["id"], 1)]
        pending = self.book(s1[0]["id"], "Pending Patient")
        confirmed = self.book(s1[1]["id"], "Confirmed Patient")
        cancelled = self.book(s1[2]["id"], "Cancelled Patient")
        admin_confirmed = self.book(s2[0]["id"], "Admin Confirmed")
        for path, kw in ((f"/booking/{confirmed['id']}/confirm", {"token": confirmed["token"]}),
                         (f"/booking/{cancelled['id']}/cancel", {"token": cancelled["token"]}),
                         (f"/booking/{admin_confirmed['id']}/confirm", {"admin": True})):
            r = self.api.req("POST", path, **kw)
            self.expect_seq(self.expect(r, 200), r)
        r = self.api.req("DELETE", f"/slots/{s1[3]['id']}", admin=True)
        self.expect_seq(self.expect(r, 200), r)
        expected_statuses = ["HELD", "BOOKED", "AVAILABLE", "CLOSED", "AVAILABLE", "AVAILABLE"]
        self.assertEqual([s["status"] for s in self.slots_of(d1["id"])], expected_statuses)
        return {"doctors": [d1["id"], d2["id"]], "d1": d1, "s1": s1, "pending": pending,
                "bookings": [pending["id"], confirmed["id"], cancelled["id"], admin_confirmed["id"]]}

    def check_writes_continue(self, ctx, last_seq):
        h = self.expect(self.api.healthz(), 200)
        self.assertGreaterEqual(h["seq"], last_seq, "healthz seq after restart must cover every acknowledged write")
        self.api.last_seq = last_seq
        p = ctx["pending"]
        r, v = self.get_booking(p["id"], token=p["token"])
        self.assertEqual(v.get("patientName"), "Pending Patient", f"the booking token works after restart{r.describe()}")
        r = self.api.req("POST", f"/booking/{p['id']}/confirm", token=p["token"])
        self.expect_seq(self.expect(r, 200), r)
        r = self.api.req("POST", "/booking", {"slotId": ctx["s1"][1]["id"], "patientName": "Late"})
        self.expect_error(r, 409, "slot_unavailable")
        s0, e0 = slot_times(1)
        r = self.api.req("POST", "/slots", {"doctorId": ctx["d1"]["id"], "start": s0, "end": e0}, admin=True)
        self.expect_error(r, 409, "slot_overlap")
        d = self.new_doctor("Dr. After Restart")
        self.assertGreater(d["id"], max(ctx["doctors"]), "ids are not reused after restart")
        b = self.book(ctx["s1"][4]["id"], "After Restart")
        self.assertNotIn(b["id"], ctx["bookings"], "booking ids are not reused after restart")
        return d, b

    def test_everything_survives_a_sigterm_restart_and_writes_continue_with_higher_seq(self):
        self.server = self.start_server(hold_ttl=60)
        ctx = self.populate()
        before = self.state(self.api, ctx["doctors"], ctx["bookings"])
        last_seq = self.api.last_seq
        rc = self.server.stop()
        self.assertEqual(rc, 0, f"SIGTERM must exit 0\n{self.server.log_tail()}")
        self.server.start()
        after = self.state(self.api, ctx["doctors"], ctx["bookings"])
        self.assertEqual(after, before, "state after a SIGTERM restart")
        d, b = self.check_writes_continue(ctx, last_seq)
        # restart once more: the writes made after the first restart survive as well
        before2 = self.state(self.api, ctx["doctors"] + [d["id"]], ctx["bookings"] + [b["id"]])
        last_seq2 = self.api.last_seq
        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        self.assertEqual(self.state(self.api, ctx["doctors"] + [d["id"]], ctx["bookings"] + [b["id"]]), before2)
        self.assertGreaterEqual(self.expect(self.api.healthz(), 200)["seq"], last_seq2)
        self.api.last_seq = last_seq2
        self.new_doctor("Dr. Third Life")

    def test_every_acknowledged_write_survives_a_sigkill(self):
        self.server = self.start_server(hold_ttl=60)
        ctx = self.populate()
        d2 = self.new_doctor("Dr. Busy")
        before = self.state(self.api, ctx["doctors"], ctx["bookings"])
        port = self.server.port
        acked_slots, acked_bookings, acked_confirms, stop = [], [], [], threading.Event()
        lock = threading.Lock()

        def writer(t):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                for i in range(300):
                    if stop.is_set():
                        return
                    start, end = slot_times(t * 1000 + i, 10)
                    conn.request("POST", "/slots", body=json.dumps({"doctorId": d2["id"], "start": start, "end": end}),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {self.server.admin_token}"})
                    resp = conn.getresponse()
                    data = resp.read()
                    if resp.status != 201:
                        return
                    slot = json.loads(data)
                    with lock:
                        acked_slots.append(slot)
                    if i % 2 == 0:
                        conn.request("POST", "/booking", body=json.dumps({"slotId": slot["id"], "patientName": f"K{t}-{i}"}),
                                     headers={"Content-Type": "application/json"})
                        resp = conn.getresponse()
                        data = resp.read()
                        if resp.status != 201:
                            return
                        booking = json.loads(data)
                        with lock:
                            acked_bookings.append(booking)
                        if i % 4 == 0:
                            conn.request("POST", f"/booking/{booking['id']}/confirm",
                                         headers={"X-Booking-Token": booking["token"]})
                            resp = conn.getresponse()
                            data = resp.read()
                            if resp.status != 200:
                                return
                            with lock:
                                acked_confirms.append(json.loads(data))
            except (OSError, http.client.HTTPException, ValueError):
                return  # the server died under us: expected
            finally:
                conn.close()

        threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(4)]
        for th in threads:
            th.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                if len(acked_slots) >= 40:
                    break
            time.sleep(0.01)
        rc = self.server.kill()
        stop.set()
        for th in threads:
            th.join(20)
        self.assertEqual(rc, -9, "slotd must have been killed by SIGKILL")
        with lock:
            slots_acked, bookings_acked, confirms_acked = list(acked_slots), list(acked_bookings), list(acked_confirms)
        self.assertGreater(len(slots_acked), 0, "no write was acknowledged before the kill")
        self.assertGreater(len(confirms_acked), 0, "no confirm was acknowledged before the kill")
        max_seq = max([self.api.last_seq] + [x["seq"] for x in slots_acked + bookings_acked + confirms_acked])

        self.server.start()
        after = self.state(self.api, ctx["doctors"], ctx["bookings"])
        self.assertEqual(after, before, "state written before the concurrent phase, after SIGKILL")
        listed = {s["id"]: s for s in self.slots_of(d2["id"])}
        confirmed = {c["id"] for c in confirms_acked}
        held = {b["slotId"] for b in bookings_acked}
        booked = {b["slotId"] for b in bookings_acked if b["id"] in confirmed}
        for s in slots_acked:
            got = listed.get(s["id"])
            self.assertIsNotNone(got, f"acknowledged slot {s} lost by SIGKILL")
            self.assertEqual((got["start"], got["end"]), (s["start"], s["end"]))
            if s["id"] in booked:
                self.assertEqual(got["status"], "BOOKED", f"acknowledged confirm on slot {s['id']} lost")
            elif s["id"] in held:
                self.assertIn(got["status"], ("HELD", "BOOKED"), f"acknowledged hold on slot {s['id']} lost")
            else:
                self.assertIn(got["status"], ("AVAILABLE", "HELD", "BOOKED"))
        for b in bookings_acked:
            r, v = self.get_booking(b["id"], admin=True)
            want = ("CONFIRMED",) if b["id"] in confirmed else ("PENDING", "CONFIRMED")
            self.assertIn(v["status"], want, f"acknowledged booking {b['id']} after SIGKILL{r.describe()}")
            self.assertEqual((v["slotId"], v["patientName"], v["createdAt"], v["expiresAt"]),
                             (b["slotId"], b["patientName"], b["createdAt"], b["expiresAt"]), r.describe())
        self.assertGreaterEqual(self.expect(self.api.healthz(), 200)["seq"], max_seq)
        self.api.last_seq = max_seq
        self.check_writes_continue(ctx, max_seq)


# =============================================================================
class LimitsTest(ApiCase):
    """Timeouts, size and connection limits, Expect: 100-continue, SIGTERM under load, the CLI
    and the admin token file. Each test starts its own slotd with the flags it is about."""

    # --- raw socket helpers --------------------------------------------------

    def connect_raw(self, timeout=5):
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)

    def read_until_close(self, sk, within):
        """Read until the server closes (or resets) the connection, at most `within` seconds.
        Returns (bytes received, how it ended: "closed" | "reset" | "silent", seconds taken)."""
        t0 = time.monotonic()
        deadline = t0 + within
        data = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return data, "silent", time.monotonic() - t0
            sk.settimeout(left)
            try:
                chunk = sk.recv(65536)
            except socket.timeout:
                return data, "silent", time.monotonic() - t0
            except (ConnectionResetError, ConnectionAbortedError):
                return data, "reset", time.monotonic() - t0
            if not chunk:
                return data, "closed", time.monotonic() - t0
            data += chunk

    def read_one_response(self, sk, within):
        """Read exactly one Content-Length-framed response (and whatever arrived with it)."""
        deadline = time.monotonic() + within
        data = b""
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
                if m and len(rest) >= int(m.group(1)):
                    return data
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"no complete response within {within} s, got {data[:300]!r}")
            sk.settimeout(left)
            try:
                chunk = sk.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                self.fail(f"connection closed before a complete response, got {data[:300]!r}")
            data += chunk

    def parse_raw(self, data, what):
        """Exactly one complete HTTP response in data -> (status, headers, body, json)."""
        f = io.BytesIO(data)
        try:
            resp = read_raw_response(f)
        except ValueError as e:
            self.fail(f"{what}: not an HTTP response ({e}): {data[:300]!r}")
        self.assertIsNotNone(resp, f"{what}: no response at all")
        status, headers, body = resp
        self.assertIn("content-length", headers, f"{what}: want a Content-Length: {data[:300]!r}")
        self.assertEqual(len(body), int(headers["content-length"]), f"{what}: truncated body: {data[:300]!r}")
        rest = f.read()
        self.assertEqual(rest, b"", f"{what}: bytes after the response: {data[:300]!r}")
        try:
            js = json.loads(body)
        except ValueError:
            js = None
        return status, headers, body, js

    def expect_raw_error(self, data, status, code, what):
        st, headers, body, js = self.parse_raw(data, what)
        self.assertEqual(st, status, f"{what}: want {status} {code}, got {data[:300]!r}")
        self.assertIn("application/json", headers.get("content-type", ""), f"{what}: {data[:300]!r}")
        self.assertTrue(isinstance(js, dict) and isinstance(js.get("error"), dict),
                        f"{what}: want {{\"error\":{{...}}}}, got {data[:300]!r}")
        self.assertEqual(js["error"].get("code"), code, f"{what}: {data[:300]!r}")
        msg = js["error"].get("message")
        self.assertTrue(isinstance(msg, str) and msg.strip(), f"{what}: want a non-empty message: {data[:300]!r}")
        return headers

    def assert_alive(self, server=None):
        r = (server or self.server).api.healthz(timeout=5)
        self.assertEqual(r.status, 200, f"server must stay up{r.describe()}")

    # --- 1, 2: request timeout -----------------------------------------------

    def test_a_client_that_sends_half_a_header_and_then_nothing_gets_408_request_timeout_and_a_close(self):
        # Only --request-timeout is short: the idle timeout (default 60 s) must not apply to a
        # connection on which a request has begun to arrive.
        self.server = self.start_server(extra_args=["--request-timeout", "1"])
        partial = b"POST /booking HTTP/1.1\r\nHost: x\r\nContent-Le"
        with self.connect_raw() as sk:
            sk.sendall(partial)
            data, how, took = self.read_until_close(sk, 3.5)
        self.assertNotEqual(how, "silent",
                            f"after {partial!r} and silence, want 408 and a close within ~3 s with "
                            f"--request-timeout 1; got {data[:300]!r} and no close after {took:.1f} s")
        self.assertTrue(data, f"want a 408 response before the close, got none ({how} after {took:.2f} s)")
        self.expect_raw_error(data, 408, "request_timeout", f"half a header then silence ({how} after {took:.2f} s)")
        self.assertGreaterEqual(took, 0.5, f"the 408 came after {took:.2f} s, before the 1 s request timeout")
        self.assert_alive()

    def test_a_client_that_sends_10_of_100_announced_body_bytes_gets_408_request_timeout(self):
        self.server = self.start_server(extra_args=["--request-timeout", "1"])
        head = b"POST /booking HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        with self.connect_raw() as sk:
            sk.sendall(head + b'{"slotId":')
            data, how, took = self.read_until_close(sk, 3.5)
        self.assertNotEqual(how, "silent", f"want 408 and a close within ~3 s, got {data[:300]!r} after {took:.1f} s")
        self.assertTrue(data, f"want a 408 response before the close, got none ({how} after {took:.2f} s)")
        self.expect_raw_error(data, 408, "request_timeout", f"10 of 100 body bytes ({how} after {took:.2f} s)")
        self.assertGreaterEqual(took, 0.5, f"the 408 came after {took:.2f} s, before the 1 s request timeout")
        self.assert_alive()

    # --- 3: idle timeout -----------------------------------------------------

    def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_without_a_response(self):
        self.server = self.start_server(extra_args=["--idle-timeout", "1"])
        with self.connect_raw() as sk:
            sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = self.read_one_response(sk, 5)
            status, headers, _, _ = self.parse_raw(first, "GET /healthz")
            self.assertEqual(status, 200, first[:300])
            self.assertNotEqual(headers.get("connection", "").lower(), "close",
                                f"GET /healthz on HTTP/1.1 must keep the connection alive: {first[:300]!r}")
            data, how, took = self.read_until_close(sk, 3.5)
        self.assertNotEqual(how, "silent", f"an idle connection must be closed within ~3 s with --idle-timeout 1 "
                                           f"(still open after {took:.1f} s)")
        self.assertEqual(data, b"", f"an idle connection must be closed without any response bytes, got {data[:300]!r}")
        self.assertEqual(how, "closed", "an idle connection must be closed cleanly (FIN), not reset")
        self.assertGreaterEqual(took, 0.5, f"closed after {took:.2f} s, before the 1 s idle timeout")
        self.assert_alive()

    # --- 4: header limit -----------------------------------------------------

    def test_a_64_kib_header_gets_431_header_too_large_or_a_close_and_the_server_stays_up(self):
        self.server = self.start_server()
        # a header well under the default 16 KiB limit is fine
        r = self.api.req("GET", "/healthz", headers={"X-Pad": "a" * 8192})
        self.expect(r, 200)
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (64 * 1024) + b"\r\n\r\n"
        with self.connect_raw() as sk:
            try:
                sk.sendall(req)
            except OSError:
                pass  # the server may have answered and closed while we were still sending
            data, how, took = self.read_until_close(sk, 5)
        self.assertNotEqual(how, "silent", f"a 64 KiB header must get a 431 or a close within 5 s, got {data[:300]!r}")
        if data:
            self.expect_raw_error(data, 431, "header_too_large", f"a 64 KiB header ({how})")
        self.assert_alive()
        self.expect(self.api.req("GET", "/healthz", headers={"X-Pad": "a" * 8192}), 200)

    # --- 5: connection limit -------------------------------------------------

    def test_beyond_max_connections_a_new_connection_gets_503_too_many_connections_until_one_closes(self):
        self.server = self.start_server(extra_args=["--max-connections", "5"])
        conns = []
        try:
            for k in range(5):
                # the readiness probes of start() may take a moment to be counted as closed
                deadline = time.monotonic() + 3
                while True:
                    c = self.api.connect(timeout=5)
                    try:
                        r = self.api.req("GET", "/healthz", conn=c)
                    except (OSError, http.client.HTTPException):
                        r = None
                    if r is not None and r.status == 200:
                        conns.append(c)
                        break
                    c.close()
                    self.assertLess(time.monotonic(), deadline,
                                    f"connection {k + 1} of 5 refused with --max-connections 5: "
                                    f"{r.describe() if r else 'no response'}")
                    time.sleep(0.05)
            with self.connect_raw() as sk:
                sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                data, how, took = self.read_until_close(sk, 5)
            self.assertNotEqual(how, "silent", f"the 6th connection got {data[:300]!r} and no close within 5 s")
            self.assertTrue(data, f"the 6th connection got no response at all ({how}); want 503 too_many_connections")
            self.expect_raw_error(data, 503, "too_many_connections", f"the 6th connection ({how})")
            # the refusal does not disturb the 5 open connections
            for c in conns:
                self.expect(self.api.req("GET", "/healthz", conn=c), 200)
        finally:
            for c in conns:
                c.close()
        deadline = time.monotonic() + 3
        while True:
            try:
                r = self.api.healthz(timeout=2)
            except (OSError, http.client.HTTPException):
                r = None
            if r is not None and r.status == 200:
                break
            self.assertLess(time.monotonic(), deadline,
                            f"after closing the 5 connections a new one is still refused after 3 s: "
                            f"{r.describe() if r else 'no response'}")
            time.sleep(0.05)

    # --- 6: body limit -------------------------------------------------------

    def raw_booking(self, body, timeout=5):
        head = (f"POST /booking HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        with self.connect_raw(timeout) as sk:
            try:
                sk.sendall(head + body)
            except OSError:
                pass
            data, how, took = self.read_until_close(sk, timeout)
        self.assertNotEqual(how, "silent", f"POST /booking with a {len(body)}-byte body: no close within {timeout} s, "
                                           f"got {data[:300]!r}")
        self.assertTrue(data, f"POST /booking with a {len(body)}-byte body: no response ({how})")
        return data

    def padded_booking(self, size, slot_id=987654321):
        """A valid POST /booking body of exactly `size` bytes (JSON whitespace as padding)."""
        b = json.dumps({"slotId": slot_id, "patientName": "Pat Padded"}).encode()
        b = b[:-1] + b" " * (size - len(b)) + b"}"
        self.assertEqual(len(b), size)
        return b

    def test_max_body_bytes_refuses_a_larger_body_with_413_and_processes_a_smaller_one(self):
        self.server = self.start_server(extra_args=["--max-body-bytes", "1000"])
        for size in (2000, 1001):
            with self.subTest(size=size):
                data = self.raw_booking(self.padded_booking(size))
                self.expect_raw_error(data, 413, "body_too_large", f"a {size}-byte body with --max-body-bytes 1000")
        for size in (500, 1000):
            with self.subTest(size=size):
                data = self.raw_booking(self.padded_booking(size))
                self.expect_raw_error(data, 404, "slot_not_found", f"a {size}-byte body with --max-body-bytes 1000")
        # and through http.client, with a real slot
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        r = self.api.req("POST", "/booking", raw=self.padded_booking(500, s["id"]))
        b = self.expect(r, 201)
        self.assertEqual((b["slotId"], b["status"]), (s["id"], "PENDING"), r.describe())
        self.assert_alive()

    # --- 7: Expect: 100-continue ---------------------------------------------

    def test_expect_100_continue_gets_100_continue_before_the_body_and_then_201(self):
        self.server = self.start_server()
        body = json.dumps({"name": "Dr. Continue", "specialty": "GP"}).encode()
        head = (f"POST /doctors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.server.admin_token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Expect: 100-continue\r\n\r\n").encode()
        with self.connect_raw(timeout=5) as sk:
            sk.sendall(head)
            f = sk.makefile("rb")
            try:
                first = read_raw_response(f)
            except socket.timeout:
                self.fail("no 100 Continue within 5 s of a header with Expect: 100-continue")
            self.assertIsNotNone(first, "the connection closed instead of 100 Continue")
            self.assertEqual(first[0], 100, f"want HTTP/1.1 100 Continue before the body, got {first}")
            sk.sendall(body)
            try:
                final = read_raw_response(f)
            except socket.timeout:
                self.fail("no final response within 5 s after the body")
        self.assertIsNotNone(final, "the connection closed instead of the 201")
        status, headers, rbody = final
        self.assertEqual(status, 201, final)
        d = json.loads(rbody)
        self.assertEqual(set(d), DOCTOR_KEYS | {"seq"}, rbody)
        self.assertEqual((d["name"], d["specialty"]), ("Dr. Continue", "GP"), rbody)
        self.assertIn(d["id"], [x["id"] for x in self.doctors()])

    # --- 8: SIGTERM under load -----------------------------------------------

    def sigterm_under_load(self, n_threads=8, per_thread=250, term_after=200):
        """n_threads keep-alive clients book distinct fresh slots in a loop (at most 2 s and
        n_threads * per_thread requests); SIGTERM once term_after bookings succeeded (at most 1 s
        in). Asserts exit 0 within 10 s and that no response was malformed, restarts on the same
        data dir and returns what happened."""
        self.server = self.start_server(hold_ttl=600)
        port = self.server.port
        d = self.new_doctor("Dr. Busy")
        slots = [s["id"] for s in self.new_slots(d["id"], n_threads * per_thread, minutes=10)]
        lock = threading.Lock()
        created = []      # (slot id, booking) answered 201
        refused = []      # (slot id, status, body) answered 503 overloaded after SIGTERM
        bad = []          # anything else that is not a connection error
        conn_errors = []  # (slot id, error, seconds after SIGTERM or None if before)
        term_at = [None]
        go = threading.Event()
        t_end = [0.0]

        def since_term():
            return None if term_at[0] is None else round(time.monotonic() - term_at[0], 3)

        def worker(t):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            go.wait(5)
            try:
                for i in range(per_thread):
                    if time.monotonic() > t_end[0]:
                        return
                    slot = slots[t * per_thread + i]
                    name = f"T{t}-{i}"
                    try:
                        conn.request("POST", "/booking", body=json.dumps({"slotId": slot, "patientName": name}),
                                     headers={"Content-Type": "application/json"})
                        resp = conn.getresponse()
                        data = resp.read()
                    except (ConnectionError, http.client.RemoteDisconnected, socket.timeout) as e:
                        with lock:
                            conn_errors.append((slot, repr(e), since_term()))
                        return
                    except (http.client.HTTPException, OSError) as e:  # e.g. IncompleteRead, BadStatusLine
                        with lock:
                            bad.append((slot, "malformed", repr(e), since_term()))
                        return
                    try:
                        js = json.loads(data)
                    except ValueError:
                        js = None
                    with lock:
                        if resp.status == 201 and isinstance(js, dict) and js.get("slotId") == slot \
                                and js.get("patientName") == name and isinstance(js.get("id"), int):
                            created.append((slot, js))
                        elif resp.status == 503 and term_at[0] is not None and isinstance(js, dict) \
                                and isinstance(js.get("error"), dict) and js["error"].get("code") == "overloaded":
                            refused.append((slot, resp.status, data))
                        else:
                            bad.append((slot, resp.status, data[:300], since_term()))
                    if resp.will_close:
                        return
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(n_threads)]
        for th in threads:
            th.start()
        t_end[0] = time.monotonic() + 2.0
        go.set()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with lock:
                if len(created) >= term_after:
                    break
            time.sleep(0.005)
        with lock:
            before_term = len(created)
            term_at[0] = time.monotonic()
        self.server.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.server.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.fail(f"slotd did not exit within 10 s of SIGTERM under load\n{self.server.log_tail()}")
        exit_after = time.monotonic() - term_at[0]
        for th in threads:
            th.join(10)
        self.assertFalse([th for th in threads if th.is_alive()], "worker threads hung")
        self.assertEqual(rc, 0, f"SIGTERM under load must exit 0\n{self.server.log_tail()}")
        with lock:
            out = {"created": list(created), "refused": list(refused), "bad": list(bad),
                   "conn_errors": list(conn_errors), "before_term": before_term, "exit_after": exit_after}
        summary = (f"{len(out['created'])} x 201 ({before_term} before SIGTERM), {len(out['refused'])} x 503 "
                   f"overloaded, {len(out['conn_errors'])} connection errors, exit {exit_after:.3f} s after SIGTERM")
        out["summary"] = summary
        self.assertGreater(before_term, 0, "no booking succeeded before SIGTERM: the load never started")
        self.assertFalse(out["bad"], f"{len(out['bad'])} requests got a malformed or unexpected response ({summary}); "
                                     f"(slot, status/kind, body/error, seconds after SIGTERM): {out['bad'][:10]!r}")
        self.assertIn("stopped cleanly", self.server.log_of_last_start(), self.server.log_tail())
        self.server.start()
        self.server.api.last_seq = 0
        out["listed"] = {s["id"]: s["status"] for s in self.slots_of(d["id"])}
        return out

    def test_sigterm_under_load_exits_0_and_loses_no_acknowledged_booking(self):
        out = self.sigterm_under_load()
        created, listed = out["created"], out["listed"]
        lost = []
        for slot, b in created:
            r = self.api.req("GET", f"/booking/{b['id']}", admin=True)
            if r.status != 200 or not isinstance(r.json, dict):
                lost.append(f"booking {b['id']}: {r.describe()}")
                continue
            v = r.json
            if (v.get("slotId"), v.get("status"), v.get("patientName"), v.get("createdAt"), v.get("expiresAt")) != \
                    (slot, "PENDING", b["patientName"], b["createdAt"], b["expiresAt"]):
                lost.append(f"booking {b['id']} acknowledged as {b} but after restart is {v}")
            if listed.get(slot) != "HELD":
                lost.append(f"slot {slot} of acknowledged booking {b['id']} is {listed.get(slot)} after restart")
        self.assertFalse(lost, f"{len(lost)} of {len(created)} acknowledged bookings lost or changed "
                               f"({out['summary']}): {lost[:10]!r}")
        self.assertGreaterEqual(sum(1 for st in listed.values() if st == "HELD"), len(created))
        max_seq = max(b["seq"] for _, b in created)
        self.assertGreaterEqual(self.expect(self.api.healthz(), 200)["seq"], max_seq,
                                "healthz seq after restart must cover every acknowledged booking")

    def test_sigterm_under_load_replies_to_every_booking_it_made_durable(self):
        # README: on SIGTERM slotd finishes every queued command, *sends their replies*, exits 0.
        # So a booking that a client never heard about (its connection dropped without a
        # response) must not have been made: its slot is still AVAILABLE after the restart.
        # Whether a request is in flight at the signal is luck, so: 8 clients once, then a few
        # rounds of 1 client (the likeliest to have its only request in flight).
        rounds = [(8, 250, 200)] + [(1, 300, 30)] * 4
        for k, (n_threads, per_thread, term_after) in enumerate(rounds):
            out = self.sigterm_under_load(n_threads, per_thread, term_after)
            silent = [(slot, err, after, out["listed"].get(slot)) for slot, err, after in out["conn_errors"]
                      if out["listed"].get(slot) != "AVAILABLE"]
            self.assertFalse(silent, f"round {k + 1} ({n_threads} clients): {len(silent)} bookings were made "
                                     f"durable (slot not AVAILABLE after restart) but their client got no reply: "
                                     f"{out['summary']}; (slot, error, seconds after SIGTERM, status after "
                                     f"restart): {silent[:10]!r}")
            self.assertEqual(self.server.stop(), 0)
            self.server.cleanup()

    # --- 9: CLI --------------------------------------------------------------

    def run_slotd(self, args, env=None, timeout=10):
        cwd = tempfile.mkdtemp(prefix="slotd-api-cwd-")  # so a started slotd would not touch ./data
        try:
            try:
                return subprocess.run([SLOTD] + args, cwd=cwd, env=child_env(env), stdin=subprocess.DEVNULL,
                                      capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                self.fail(f"slotd {' '.join(args)} did not exit within {timeout} s "
                          f"(stdout={e.stdout!r} stderr={e.stderr!r})")
        finally:
            shutil.rmtree(cwd, ignore_errors=True)

    def test_help_prints_usage_and_bad_flags_exit_2_with_a_message_on_stderr(self):
        p = self.run_slotd(["--help"])
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, f"slotd --help: exit {p.returncode}, stderr={p.stderr!r}")
        for flag in ("--hold-ttl", "--data-dir", "--request-timeout", "--max-connections", "--journal-background"):
            self.assertIn(flag, out, f"slotd --help must mention {flag}: {out!r}")
        for args, what in ((["--no-such-flag"], "no-such-flag"), (["--port", "notanumber"], "notanumber"),
                           (["--hold-ttl"], "hold-ttl"), (["--journal-background", "low"], "low")):
            with self.subTest(args=args):
                p = self.run_slotd(args)
                err = p.stderr.decode("utf-8", "replace")
                self.assertEqual(p.returncode, 2, f"slotd {' '.join(args)}: exit {p.returncode}, want 2; "
                                                  f"stdout={p.stdout!r} stderr={p.stderr!r}")
                self.assertIn(what, err, f"slotd {' '.join(args)} must say what is wrong on stderr: {err!r}")
        p = self.run_slotd([], env={"SLOTD_PORT": "notanumber", "SLOTD_HOST": "127.0.0.1"}, timeout=3)
        self.assertEqual(p.returncode, 2, f"a bad SLOTD_PORT must exit 2; stdout={p.stdout!r} stderr={p.stderr!r}")
        self.assertIn("SLOTD_PORT", p.stderr.decode("utf-8", "replace"))

    def hold_ms(self):
        d = self.new_doctor()
        s = self.new_slot(d["id"])
        b = self.book(s["id"])
        return parse_iso(b["expiresAt"]) - parse_iso(b["createdAt"])

    def test_slotd_hold_ttl_in_the_environment_sets_the_hold_ttl_and_the_flag_wins_over_it(self):
        self.server = self.start_server(env={"SLOTD_HOLD_TTL": "1"})
        self.assertEqual(self.hold_ms(), 1000, "SLOTD_HOLD_TTL=1 without --hold-ttl")
        self.assertEqual(self.server.stop(), 0)
        self.server = self.start_server(hold_ttl=5, env={"SLOTD_HOLD_TTL": "1"})
        self.assertEqual(self.hold_ms(), 5000, "--hold-ttl 5 must win over SLOTD_HOLD_TTL=1")

    # --- 10: admin token file ------------------------------------------------

    def admin_token_line(self):
        lines = re.findall(r"^admin token: (.*)$", self.server.log_of_last_start(), re.M)
        self.assertEqual(len(lines), 1, f"want one 'admin token: …' line on stdout\n{self.server.log_tail()}")
        return lines[0]

    def test_without_an_admin_token_slotd_creates_a_0600_token_file_that_works_and_survives_a_restart(self):
        self.server = self.start_server(admin_token=None, env={"SLOTD_ADMIN_TOKEN": None})
        path = os.path.join(self.server.data_dir, "admin-token")
        self.assertTrue(os.path.isfile(path), f"slotd must create {path}")
        mode = stat.S_IMODE(os.stat(path).st_mode)
        self.assertEqual(mode, 0o600, f"{path} has mode {oct(mode)}, want 0o600")
        with open(path) as f:
            token = f.read().strip()
        self.assertGreaterEqual(len(token), 16, f"a generated admin token must not be short: {token!r}")
        self.assertEqual(self.admin_token_line(), "in " + path, "stdout names the token's file")
        self.assertNotIn(token, self.server.log_of_last_start(), "the admin token must not be printed")
        self.server.api.admin_token = token
        self.new_doctor("Dr. File Token")
        self.expect_error(self.api.req("POST", "/doctors", {"name": "Dr. No", "specialty": "GP"},
                                       headers={"Authorization": "Bearer " + token[:-1]}), 401, "unauthorized")
        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        with open(path) as f:
            self.assertEqual(f.read().strip(), token, "a restart must keep the admin token file")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertNotIn(token, self.server.log_of_last_start(), "the admin token must not be printed")
        self.server.api.admin_token = token
        self.new_doctor("Dr. Same Token")


# =============================================================================
class AuditAndStatsTest(ApiCase):
    """GET /admin/stats (live counts) and GET /events (the journal, for audit)."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def test_admin_stats_and_events_need_the_admin_token(self):
        for path in ("/admin/stats", "/events"):
            self.expect_error(self.api.req("GET", path), 401, "unauthorized")
            self.expect_error(self.api.req("GET", path, headers={"Authorization": "Bearer nope"}),
                              401, "unauthorized")

    def test_admin_stats_counts_follow_holds_confirmations_cancellations_and_closures(self):
        def stats():
            r = self.api.req("GET", "/admin/stats", admin=True)
            return r, self.expect(r, 200)

        _, before = stats()
        d = self.new_doctor("Dr. Stats")
        s = self.new_slots(d["id"], 4, first=500)
        b0 = self.book(s[0]["id"])
        self.book(s[1]["id"])
        b2 = self.book(s[2]["id"])
        self.expect(self.api.req("POST", f"/booking/{b0['id']}/confirm",
                                 headers={"X-Booking-Token": b0["token"]}), 200)
        self.expect(self.api.req("POST", f"/booking/{b2['id']}/cancel",
                                 headers={"X-Booking-Token": b2["token"]}), 200)
        self.expect(self.api.req("DELETE", f"/slots/{s[3]['id']}", admin=True), 200)
        r, after = stats()

        def delta(group, key):
            return after[group][key] - before[group][key]

        self.assertEqual([delta("slots", k) for k in ("total", "available", "held", "booked", "closed")],
                         [4, 1, 1, 1, 1], r.describe())
        self.assertEqual([delta("bookings", k) for k in ("total", "pending", "confirmed", "failed", "cancelled")],
                         [3, 1, 1, 0, 1], r.describe())
        self.assertEqual(after["doctors"] - before["doctors"], 1, r.describe())
        slots = after["slots"]
        open_slots = slots["available"] + slots["held"] + slots["booked"]
        self.assertAlmostEqual(after["fillRate"], (slots["held"] + slots["booked"]) / open_slots, places=3)
        b = after["bookings"]
        self.assertAlmostEqual(after["conversion"], b["confirmed"] / (b["confirmed"] + b["failed"]), places=3)
        health = self.expect(self.api.req("GET", "/healthz"), 200)
        self.assertEqual(after["asOfSeq"], health["seq"], r.describe())

    def test_events_replays_the_journal_in_seq_order_without_gaps_and_without_tokens(self):
        d = self.new_doctor("Dr. Audit")
        s = self.new_slot(d["id"], 900)
        b = self.book(s["id"], patient="Grace Hopper")
        self.expect(self.api.req("POST", f"/booking/{b['id']}/confirm",
                                 headers={"X-Booking-Token": b["token"]}), 200)
        r = self.api.req("GET", "/events?limit=10000", admin=True)
        body = self.expect(r, 200)
        events = body["events"]
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)), "gap-free from 1")
        self.assertEqual(body["lastSeq"], events[-1]["seq"], r.describe())
        self.assertEqual(body["nextSeq"], events[-1]["seq"] + 1, r.describe())
        self.assertNotIn(b["token"], r.body.decode(), "the booking token must never be in the audit log")
        tail = events[-4:]
        self.assertEqual([e["type"] for e in tail], ["DoctorAdded", "SlotCreated", "SlotHeld", "BookingConfirmed"])
        self.assertEqual(tail[0]["data"]["doctorId"], d["id"])
        self.assertEqual((tail[1]["data"]["slotId"], tail[1]["data"]["start"]), (s["id"], s["start"]))
        self.assertEqual((tail[2]["data"]["bookingId"], tail[2]["data"]["patientName"]), (b["id"], "Grace Hopper"))
        self.assertEqual(tail[3]["data"]["bookingId"], b["id"])
        self.assertEqual([e["actor"] for e in tail], ["admin", "admin", "patient", "patient"])
        self.assertEqual(tail[2]["seq"], b["seq"], "the booking's seq names its SlotHeld event")
        for e in tail:
            self.expect_iso(e["at"], r, "at")

    def test_events_pages_by_from_seq_and_limit_and_refuses_bad_values(self):
        for i in range(3):
            self.new_doctor(f"Dr. Page {i}")
        r = self.api.req("GET", "/events?fromSeq=2&limit=2", admin=True)
        body = self.expect(r, 200)
        self.assertEqual([e["seq"] for e in body["events"]], [2, 3], r.describe())
        self.assertEqual(body["nextSeq"], 4, r.describe())
        r = self.api.req("GET", f"/events?fromSeq={body['lastSeq'] + 1}", admin=True)
        self.assertEqual(self.expect(r, 200)["events"], [], r.describe())
        for q in ("fromSeq=0", "fromSeq=abc", "limit=0", "limit=10001", "limit=-1"):
            self.expect_error(self.api.req("GET", f"/events?{q}", admin=True), 400, "invalid_query")



# =============================================================================
class IdempotencyTest(ApiCase):
    """Idempotency-Key on POST /booking, confirm and cancel: a retry gets the first answer."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def post(self, path, body, key, **kw):
        headers = dict(kw.pop("headers", None) or {})
        headers["Idempotency-Key"] = key
        return self.api.req("POST", path, body, headers=headers, **kw)

    def bookings_total(self):
        return self.expect(self.api.req("GET", "/admin/stats", admin=True), 200)["bookings"]["total"]

    def test_a_retried_booking_gets_the_first_answer_and_holds_nothing_more(self):
        d = self.new_doctor("Dr. Retry")
        s = self.new_slots(d["id"], 2, first=40)
        total = self.bookings_total()
        body = {"slotId": s[0]["id"], "patientName": "Retry Patient"}
        r1 = self.post("/booking", body, "key-book-1-0123456789abcdef")
        first = self.expect(r1, 201)
        self.expect_seq(first, r1)
        r2 = self.post("/booking", body, "key-book-1-0123456789abcdef")
        self.assertEqual(self.expect(r2, 201), first, f"a retry returns the first answer{r2.describe()}")
        self.assertEqual(self.bookings_total(), total + 1, "the retry made no second booking")
        # The same key for another request is refused and changes nothing.
        r3 = self.post("/booking", {"slotId": s[1]["id"], "patientName": "Retry Patient"}, "key-book-1-0123456789abcdef")
        self.expect_error(r3, 409, "idempotency_key_reused")
        self.assertEqual(self.slot_status(d["id"], s[1]["id"]), "AVAILABLE")
        # Without a key the held slot is the usual conflict.
        self.expect_error(self.api.req("POST", "/booking", body), 409, "slot_unavailable")

    def test_confirm_and_cancel_retries_get_the_first_answer(self):
        d = self.new_doctor("Dr. Confirm Retry")
        s = self.new_slots(d["id"], 2, first=60)
        b = self.book(s[0]["id"])
        r1 = self.post(f"/booking/{b['id']}/confirm", None, "key-confirm-1-0123456789abcdef", token=b["token"])
        first = self.expect(r1, 200)
        r2 = self.post(f"/booking/{b['id']}/confirm", None, "key-confirm-1-0123456789abcdef", token=b["token"])
        self.assertEqual(self.expect(r2, 200), first, r2.describe())
        # Cancel under the confirm's key: a different request → 409, the booking stays CONFIRMED.
        r3 = self.post(f"/booking/{b['id']}/cancel", None, "key-confirm-1-0123456789abcdef", token=b["token"])
        self.expect_error(r3, 409, "idempotency_key_reused")
        self.assertEqual(self.get_booking(b["id"], admin=True)[1]["status"], "CONFIRMED")
        c = self.book(s[1]["id"])
        r4 = self.post(f"/booking/{c['id']}/cancel", None, "key-cancel-1-0123456789abcdef", token=c["token"])
        first_cancel = self.expect(r4, 200)
        self.assertEqual(first_cancel["status"], "CANCELLED")
        r5 = self.post(f"/booking/{c['id']}/cancel", None, "key-cancel-1-0123456789abcdef", token=c["token"])
        self.assertEqual(self.expect(r5, 200), first_cancel, r5.describe())

    def test_a_retry_after_a_restart_still_gets_the_first_answer(self):
        server = self.start_server(hold_ttl=600)
        api = server.api
        r = api.req("POST", "/doctors", {"name": "Dr. Restart Retry", "specialty": "GP"}, admin=True)
        doctor = self.expect(r, 201)
        start, end = slot_times(0)
        slot = self.expect(api.req("POST", "/slots", {"doctorId": doctor["id"], "start": start, "end": end},
                                   admin=True), 201)
        body = {"slotId": slot["id"], "patientName": "Survivor"}
        first = self.expect(api.req("POST", "/booking", body, headers={"Idempotency-Key": "k-restart-0123456789abcdef"}), 201)
        self.assertEqual(server.stop(), 0)
        server.start()
        api = server.api
        again = api.req("POST", "/booking", body, headers={"Idempotency-Key": "k-restart-0123456789abcdef"})
        self.assertEqual(self.expect(again, 201), first, f"remembered across a restart{again.describe()}")
        other = api.req("POST", "/booking", {"slotId": slot["id"], "patientName": "Someone Else"},
                        headers={"Idempotency-Key": "k-restart-0123456789abcdef"})
        self.expect_error(other, 409, "idempotency_key_reused")

    def test_a_malformed_idempotency_key_is_400_invalid_header(self):
        for key in ("x" * 201, "has space-0123456789abcdef", "tab\tkey-0123456789abcdef", "short-key",
                    "x" * 15):
            r = self.api.req("POST", "/booking", {"slotId": 1, "patientName": "A"},
                             headers={"Idempotency-Key": key})
            self.expect_error(r, 400, "invalid_header")


class IdempotencyScopeTest(ApiCase):
    """Idempotency-Keys belong to their caller and expire after --idempotency-ttl."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600, extra_args=["--trusted-proxies", "127.0.0.0/8",
                                                                "--idempotency-ttl", "1"])

    def post_as(self, who, body, key):
        return self.api.req("POST", "/booking", body, headers={"X-Client-Key": who, "Idempotency-Key": key})

    def test_the_same_key_from_another_client_never_gets_the_first_answer(self):
        d = self.new_doctor("Dr. Scope")
        s = self.new_slots(d["id"], 2, first=80)
        key = "3f1c2a9e-7b4d-4e55-9a0b-scope000001"
        body = {"slotId": s[0]["id"], "patientName": "Alice"}
        first = self.expect(self.post_as("alice", body, key), 201)
        # Mallory replays Alice's key and body: decided afresh, so the held slot is a conflict
        # and neither Alice's token nor her name comes back.
        r = self.post_as("mallory", body, key)
        self.expect_error(r, 409, "slot_unavailable")
        self.assertNotIn(first["token"], r.body.decode(errors="replace"))
        # The key is Mallory's own for another request.
        other = self.expect(self.post_as("mallory", {"slotId": s[1]["id"], "patientName": "Mallory"}, key), 201)
        self.assertNotEqual(other["token"], first["token"])
        # Alice's retry still gets her first answer.
        self.assertEqual(self.expect(self.post_as("alice", body, key), 201), first)

    def test_client_keys_and_idempotency_keys_reach_the_disk_only_as_digests(self):
        d = self.new_doctor("Dr. Digest")
        s = self.new_slots(d["id"], 1, first=95)
        marker = os.urandom(12).hex()
        client_key, idem_key, patient = f"ck-{marker}", f"ik-{marker}", f"Pat {marker}"
        r = self.api.req("POST", "/booking", {"slotId": s[0]["id"], "patientName": patient},
                         headers={"X-Client-Key": client_key, "Idempotency-Key": idem_key})
        b = self.expect(r, 201)
        self.expect_seq(b, r)
        found = {client_key: [], idem_key: [], patient: []}
        for root, _dirs, files in os.walk(self.server.data_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                for text in found:
                    if text.encode() in data:
                        found[text].append(name)
        # the patient's name is stored as given: the search sees what the journal holds
        self.assertTrue(found[patient], "the scan of the data dir must find the journaled patient name")
        self.assertEqual(found[client_key], [], "X-Client-Key must be stored as a digest only")
        self.assertEqual(found[idem_key], [], "Idempotency-Key must be stored as a digest only")

    def test_a_key_is_forgotten_after_the_ttl_and_its_retry_is_decided_afresh(self):
        d = self.new_doctor("Dr. TTL")
        s = self.new_slots(d["id"], 1, first=90)
        key = "3f1c2a9e-7b4d-4e55-9a0b-ttl000000001"
        body = {"slotId": s[0]["id"], "patientName": "Ttl"}
        first = self.expect(self.post_as("alice", body, key), 201)
        deadline = time.monotonic() + 15
        while True:
            r = self.post_as("alice", body, key)
            if r.status == 409:
                self.expect_error(r, 409, "slot_unavailable")
                break
            self.assertEqual(self.expect(r, 201), first, "before the TTL a retry gets the first answer")
            self.assertLess(time.monotonic(), deadline, "a 1 s key was still remembered after 15 s")
            time.sleep(0.2)
        # decide ignores a key past its TTL at once; the event that forgets it comes with the
        # sequencer's next expiry round
        deadline = time.monotonic() + 15
        while True:
            events = self.expect(self.api.req("GET", "/events?limit=10000", admin=True), 200)["events"]
            if "IdempotencyKeysForgotten" in [e["type"] for e in events]:
                break
            self.assertLess(time.monotonic(), deadline, "forgetting keys is a journaled event (none within 15 s)")
            time.sleep(0.1)


# =============================================================================
def raw_conversation(port, data, within=5.0, source=None, responses=None):
    """Send raw bytes on a new connection and read until the server closes it, `responses`
    complete responses arrived, or `within` seconds pass. Returns (bytes received,
    "closed" | "reset" | "silent" | "answered")."""
    sk = socket.create_connection(("127.0.0.1", port), timeout=within,
                                  source_address=(source, 0) if source else None)
    with sk:
        try:
            sk.sendall(data)
        except OSError:
            pass  # the server may answer and close before it has read everything
        got = b""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got, "silent"
            sk.settimeout(left)
            try:
                chunk = sk.recv(65536)
            except socket.timeout:
                return got, "silent"
            except (ConnectionResetError, ConnectionAbortedError):
                return got, "reset"
            if not chunk:
                return got, "closed"
            got += chunk
            if responses is not None and len(parse_responses(got)) >= responses:
                return got, "answered"


def parse_responses(data):
    """Every complete Content-Length-framed response in data: [(status, headers, body)]."""
    f = io.BytesIO(data)
    out = []
    for _ in range(10000):
        try:
            resp = read_raw_response(f)
        except ValueError:
            break
        if resp is None or len(resp[2]) != int(resp[1].get("content-length", len(resp[2]))):
            break  # the end, or a response not complete yet
        out.append(resp)
    return out


class StrictHttpTest(ApiCase):
    """Framing that two HTTP parsers could read differently is refused with 400 and a close,
    so nothing can be smuggled behind it; bodies are strict JSON; names and instants are
    checked; every error body is valid UTF-8."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def smuggle_target(self):
        d = self.new_doctor("Dr. Smuggle")
        return d, self.new_slot(d["id"])

    def assert_refused_and_closed(self, raw, why):
        data, how = raw_conversation(self.server.port, raw)
        self.assertNotEqual(how, "silent", f"{why}: the connection must be closed, got {data[:300]!r}")
        responses = parse_responses(data)
        self.assertEqual(len(responses), 1, f"{why}: want exactly one response (400) and a close, got {data[:600]!r}")
        status, headers, body = responses[0]
        self.assertEqual(status, 400, f"{why}: {data[:400]!r}")
        self.assertEqual(headers.get("connection", "").lower(), "close", f"{why}: want Connection: close {data[:400]!r}")
        self.assertEqual(json.loads(body)["error"]["code"], "bad_request", f"{why}: {body!r}")

    def test_transfer_encoding_other_than_exactly_chunked_is_400_and_the_request_behind_it_never_runs(self):
        d, s = self.smuggle_target()
        inner = json.dumps({"slotId": s["id"], "patientName": "Smuggled"}).encode()
        smuggled = (b"POST /booking HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(inner)).encode() + b"\r\n\r\n" + inner)
        chunked_body = b"0\r\n\r\n" + smuggled
        shapes = {
            "chunked, identity": b"Transfer-Encoding: chunked, identity\r\n",
            "identity, chunked": b"Transfer-Encoding: identity, chunked\r\n",
            "xchunked": b"Transfer-Encoding: xchunked\r\n",
            "identity": b"Transfer-Encoding: identity\r\n",
            "gzip, chunked": b"Transfer-Encoding: gzip, chunked\r\n",
            "chunked twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "chunked + Content-Length": b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "Content-Length + chunked": b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "two Content-Lengths": b"Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length list": b"Content-Length: 5, 5\r\n",
            "signed Content-Length": b"Content-Length: +5\r\n",
            "space before colon": b"Transfer-Encoding : chunked\r\n",
        }
        for name, header in shapes.items():
            with self.subTest(shape=name):
                raw = b"POST /booking HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n" + chunked_body
                self.assert_refused_and_closed(raw, name)
        with self.subTest(shape="chunked in HTTP/1.0"):
            raw = b"POST /booking HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body
            self.assert_refused_and_closed(raw, "Transfer-Encoding in an HTTP/1.0 request")
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE", "a smuggled booking ran")

    def test_exactly_chunked_is_accepted_in_any_letter_case(self):
        d, s = self.smuggle_target()
        body = json.dumps({"slotId": s["id"], "patientName": "Chunky"}).encode()
        raw = (b"POST /booking HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n"
               + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        data, how = raw_conversation(self.server.port, raw)
        responses = parse_responses(data)
        self.assertEqual([r[0] for r in responses], [201], data[:400])
        self.assertEqual(self.slot_status(d["id"], s["id"]), "HELD")

    def test_http_1_1_without_exactly_one_host_is_400_and_http_1_0_needs_none(self):
        for raw, why in ((b"GET /healthz HTTP/1.1\r\n\r\n", "no Host"),
                         (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Hosts")):
            with self.subTest(why=why):
                self.assert_refused_and_closed(raw, why)
        data, how = raw_conversation(self.server.port, b"GET /healthz HTTP/1.0\r\n\r\n", responses=1)
        self.assertEqual([r[0] for r in parse_responses(data)], [200], data[:300])

    def test_an_unparsable_pipelined_request_gets_its_own_request_id(self):
        good = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for bad, why in ((b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "a bad header line"),
                         (b"POST /booking HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n\r\n",
                          "a bad chunk"),
                         (b"POST /booking HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
                          "a refused Transfer-Encoding")):
            with self.subTest(why=why):
                data, how = raw_conversation(self.server.port, good + bad, responses=2)
                responses = parse_responses(data)
                self.assertEqual([r[0] for r in responses], [200, 400], data[:600])
                ids = [r[1].get("x-request-id") for r in responses]
                self.assertTrue(all(ids), f"every response carries X-Request-Id: {data[:600]!r}")
                self.assertNotEqual(ids[0], ids[1], f"the unparsable request reused the id of the one before it: "
                                                    f"{data[:600]!r}")

    def test_duplicate_json_keys_are_400_at_any_depth_and_change_nothing(self):
        d, s = self.smuggle_target()
        other = self.new_slot(d["id"], 1)
        raw = '{"slotId": %d, "patientName": "A", "slotId": %d}' % (s["id"], other["id"])
        self.expect_error(self.api.req("POST", "/booking", raw=raw), 400, "invalid_json")
        start, end = slot_times(7)
        nested = ('{"doctorId": %d, "slots": [{"start": "%s", "end": "%s", "end": "%s"}]}'
                  % (d["id"], start, end, slot_times(9)[1]))
        self.expect_error(self.api.req("POST", "/slots", raw=nested, admin=True), 400, "invalid_json")
        self.assertEqual([x["id"] for x in self.slots_of(d["id"])], [s["id"], other["id"]])
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")
        self.assertEqual(self.slot_status(d["id"], other["id"]), "AVAILABLE")

    def test_names_empty_after_trimming_with_control_characters_or_over_200_bytes_are_400(self):
        d, s = self.smuggle_target()
        bad = [" ", " \t\r\n ", "", "a\u0000b", "bell\u0007", "del\u007f", "c1\u0085next", "esc\u001b[31m",
               "x" * 201, "é" * 100 + "x"]
        for name in bad:
            with self.subTest(name=name[:20]):
                self.expect_error(self.api.req("POST", "/booking", {"slotId": s["id"], "patientName": name}),
                                  400, ("invalid_field", "invalid_name"))
                self.expect_error(self.api.req("POST", "/doctors", {"name": name, "specialty": "GP"}, admin=True),
                                  400, ("invalid_field", "invalid_name"))
                self.expect_error(self.api.req("POST", "/clinics", {"name": name}, admin=True),
                                  400, ("invalid_field", "invalid_name"))
        self.assertEqual(self.slot_status(d["id"], s["id"]), "AVAILABLE")
        # the limits are inclusive and count bytes; the stored name is the trimmed one
        b = self.book(s["id"], patient="é" * 100)
        self.assertEqual(len(b["patientName"].encode()), 200)
        other = self.new_slot(d["id"], 1)
        r = self.api.req("POST", "/booking", {"slotId": other["id"], "patientName": "  Ann Lee \t"})
        self.assertEqual(self.expect(r, 201)["patientName"], "Ann Lee", r.describe())

    def test_instants_outside_the_years_2000_to_9999_are_400(self):
        d = self.new_doctor("Dr. Calendar")
        outside = ["1999-12-31T23:30:00.000Z", "1970-01-01T00:00:00.000Z", "0000-01-01T00:00:00.000Z",
                   "10000-01-01T00:00:00.000Z", "-2031-01-06T08:00:00.000Z"]
        for start in outside:
            with self.subTest(start=start):
                r = self.api.req("POST", "/slots", {"doctorId": d["id"], "start": start,
                                                    "end": "2000-01-01T00:30:00.000Z"}, admin=True)
                self.expect_error(r, 400, ("invalid_field", "invalid_time_range"))
                self.expect_error(self.api.req("GET", f"/slots/{d['id']}?from={urllib.parse.quote(start)}"),
                                  400, "invalid_query")
                self.expect_error(self.api.req("GET", f"/admin/bookings?to={urllib.parse.quote(start)}",
                                               admin=True), 400, "invalid_query")
        r = self.api.req("POST", "/slots", {"doctorId": d["id"], "start": "9999-12-31T23:00:00.000Z",
                                            "end": "10000-01-01T00:00:00.000Z"}, admin=True)
        self.expect_error(r, 400, ("invalid_field", "invalid_time_range"))
        self.assertEqual(self.slots_of(d["id"]), [])
        # the edges themselves are inside
        for start, end in (("2000-01-01T00:00:00.000Z", "2000-01-01T00:30:00.000Z"),
                           ("9999-12-31T23:00:00.000Z", "9999-12-31T23:59:59.999Z")):
            r = self.api.req("POST", "/slots", {"doctorId": d["id"], "start": start, "end": end}, admin=True)
            self.assertEqual(self.expect(r, 201)["start"], start, r.describe())

    def test_error_bodies_are_valid_utf8_json_whatever_bytes_the_request_carries(self):
        port = self.server.port
        bad = b"\xff\xfe\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80"
        requests = [
            b"GET /booking/" + bad + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /booking/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /slots/1?from=%ff%c3%28 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /slots/1?status=" + bad + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /" + bad + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /booking/1 HTTP/1.1\r\nHost: x\r\nX-Booking-Token: " + bad + b"\r\n\r\n",
            b"POST /booking/1/confirm HTTP/1.1\r\nHost: x\r\nX-Booking-Token: " + bad + b"\r\nContent-Length: 0\r\n\r\n",
            b"POST /booking HTTP/1.1\r\nHost: x\r\nIdempotency-Key: " + bad * 2 + b"\r\nContent-Length: 2\r\n\r\n{}",
            b"POST /doctors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + bad + b"\r\nContent-Length: 2\r\n\r\n{}",
            b"POST /booking HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n" + b'{"slotId": 1, "patientName": "' + bad[:8] + b'"}',
            b"POST /booking HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n" + b'{"' + bad + b'": 1}' + b" " * 2,
            b"\xff\xfe /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-" + bad + b": 1\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: " + bad + b"\r\nTransfer-Encoding: " + bad + b"\r\n\r\n",
        ]
        for raw in requests:
            with self.subTest(raw=raw[:50]):
                data, how = raw_conversation(port, raw, responses=1)
                responses = parse_responses(data)
                self.assertTrue(responses or how != "silent", f"no answer and no close: {data[:300]!r}")
                for status, headers, body in responses:
                    self.assertGreaterEqual(status, 400, f"{raw[:60]!r} -> {data[:300]!r}")
                    self.assertLess(status, 500, f"{raw[:60]!r} -> {data[:300]!r}")
                    try:
                        text = body.decode("utf-8", "strict")
                    except UnicodeDecodeError as e:
                        self.fail(f"error body is not valid UTF-8 ({e}): {body[:300]!r} for {raw[:60]!r}")
                    js = json.loads(text)
                    self.assertIsInstance(js.get("error"), dict, text)
        self.expect(self.api.healthz(), 200)


class PeerIdentityTest(ApiCase):
    """Without --trusted-proxies the caller is its peer address: two loopback addresses
    (127.0.0.2, 127.0.0.3) are two clients, whatever headers they send."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600, max_holds=1)

    def test_each_peer_address_has_its_own_hold_cap_and_headers_do_not_change_it(self):
        d = self.new_doctor("Dr. Peers")
        slots = self.new_slots(d["id"], 6)
        alice, bob = self.api.from_address("127.0.0.2"), self.api.from_address("127.0.0.3")
        r = alice.req("POST", "/booking", {"slotId": slots[0]["id"], "patientName": "Alice"})
        self.expect(r, 201)
        r = alice.req("POST", "/booking", {"slotId": slots[1]["id"], "patientName": "Alice"},
                      headers={"X-Client-Key": "someone-else", "X-Forwarded-For": "198.51.100.9"})
        self.expect_error(r, 429, "too_many_holds")
        r = bob.req("POST", "/booking", {"slotId": slots[1]["id"], "patientName": "Bob"},
                    headers={"X-Client-Key": "alice"})
        self.expect(r, 201)
        self.expect_error(bob.req("POST", "/booking", {"slotId": slots[2]["id"], "patientName": "Bob"}),
                          429, "too_many_holds")
        self.assertEqual([self.slot_status(d["id"], s["id"]) for s in slots[:3]], ["HELD", "HELD", "AVAILABLE"])

    def test_an_idempotency_key_of_one_peer_address_is_not_another_ones(self):
        d = self.new_doctor("Dr. Keys")
        slots = self.new_slots(d["id"], 2)
        alice, mallory = self.api.from_address("127.0.0.4"), self.api.from_address("127.0.0.5")
        key = {"Idempotency-Key": "6d0c1f3e-peer-scope-0001"}
        body = {"slotId": slots[0]["id"], "patientName": "Alice"}
        first = self.expect(alice.req("POST", "/booking", body, headers=key), 201)
        r = mallory.req("POST", "/booking", body, headers=key)
        self.expect_error(r, 409, "slot_unavailable")
        self.assertNotIn(first["token"], r.body.decode(errors="replace"))
        self.assertEqual(self.expect(alice.req("POST", "/booking", body, headers=key), 201), first)
        # the key is Mallory's own for her own request
        mine = self.expect(mallory.req("POST", "/booking", {"slotId": slots[1]["id"], "patientName": "M"},
                                       headers=key), 201)
        self.assertNotEqual(mine["token"], first["token"])


class BookingRateTest(ApiCase):
    """--booking-rate 0.2 --booking-burst 3: each client may make 3 POST /booking at once, then
    one every 5 s; beyond that 429 rate_limited with Retry-After, and the refusal changes
    nothing."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600, extra_args=["--booking-rate", "0.2", "--booking-burst", "3"])

    def test_a_client_gets_its_burst_then_429_with_retry_after_while_other_clients_keep_booking(self):
        d = self.new_doctor("Dr. Rate")
        slots = self.new_slots(d["id"], 10)
        eve, ann = self.api.from_address("127.0.0.6"), self.api.from_address("127.0.0.7")
        statuses = []
        for i in range(3):
            r = eve.req("POST", "/booking", {"slotId": slots[i]["id"], "patientName": f"Eve {i}"})
            statuses.append(r.status)
        self.assertEqual(statuses, [201, 201, 201], "the burst of 3 is allowed")
        # further requests within the same second are refused, whatever identity headers say
        refused = 0
        for i in range(3, 6):
            r = eve.req("POST", "/booking", {"slotId": slots[i]["id"], "patientName": f"Eve {i}"},
                        headers={"X-Client-Key": f"rotating-{i}", "X-Forwarded-For": f"203.0.113.{i}"})
            if r.status == 201:
                continue  # a token refilled meanwhile (a slow machine): at most one per 5 s
            self.expect_error(r, 429, "rate_limited")
            retry_after = r.headers.get("retry-after", "")
            self.assertTrue(retry_after.isdigit() and int(retry_after) >= 1, f"want Retry-After >= 1{r.describe()}")
            self.assertEqual(self.slot_status(d["id"], slots[i]["id"]), "AVAILABLE", "a 429 must change nothing")
            refused += 1
        self.assertGreaterEqual(refused, 1, "beyond the burst a client must be refused")
        # another client has its own bucket
        r = ann.req("POST", "/booking", {"slotId": slots[6]["id"], "patientName": "Ann"})
        self.expect(r, 201)
        # and after waiting, the first client books again
        deadline = time.monotonic() + 30
        while True:
            r = eve.req("POST", "/booking", {"slotId": slots[7]["id"], "patientName": "Eve later"})
            if r.status == 201:
                break
            self.expect_error(r, 429, "rate_limited")
            self.assertLess(time.monotonic(), deadline, "still rate limited 30 s later at 1 booking per 5 s")
            time.sleep(float(r.headers.get("retry-after", "1")))

    def test_confirm_and_cancel_are_not_rate_limited(self):
        d = self.new_doctor("Dr. Rate 2")
        slots = self.new_slots(d["id"], 2)
        pat = self.api.from_address("127.0.0.8")
        b = self.expect(pat.req("POST", "/booking", {"slotId": slots[0]["id"], "patientName": "Pat"}), 201)
        for _ in range(10):
            self.expect(pat.req("POST", f"/booking/{b['id']}/confirm", token=b["token"]), 200)
        self.expect(pat.req("POST", f"/booking/{b['id']}/cancel", token=b["token"]), 200)



class OpsEndpointsTest(ApiCase):
    """GET /metrics (Prometheus text) and GET /openapi.json (the committed api/openapi.json)."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def scrape(self):
        r = self.api.req("GET", "/metrics")
        self.assertEqual(r.status, 200, r.describe())
        self.assertTrue(r.content_type.startswith("text/plain"), r.describe())
        samples = {}
        for line in r.body.decode("utf-8").splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
        return samples

    def test_metrics_count_requests_by_route_and_status_with_latency_histograms_and_build_info(self):
        before = self.scrape()
        for _ in range(3):
            self.expect(self.api.healthz(), 200)
        self.expect_error(self.api.req("POST", "/booking", {"slotId": 987654, "patientName": "N"}), 404,
                          "slot_not_found")
        self.expect_error(self.api.req("GET", "/no/such/route"), 404, "not_found")
        d = self.new_doctor("Dr. Metrics")
        after = self.scrape()

        def delta(name):
            return after.get(name, 0) - before.get(name, 0)

        self.assertEqual(delta('slotd_http_requests_total{route="GET /healthz",status="200"}'), 3)
        self.assertEqual(delta('slotd_http_requests_total{route="POST /booking",status="404"}'), 1)
        self.assertEqual(delta('slotd_http_requests_total{route="POST /doctors",status="201"}'), 1)
        self.assertEqual(delta('slotd_http_requests_total{route="unrouted",status="404"}'), 1)
        # GET /metrics itself was counted once between the two scrapes
        self.assertEqual(delta('slotd_http_requests_total{route="GET /metrics",status="200"}'), 1)
        for route in ("GET /healthz", "POST /doctors"):
            buckets = sorted(((float(k.split('le="')[1].rstrip('"}')), v) for k, v in after.items()
                              if k.startswith(f'slotd_http_request_duration_seconds_bucket{{route="{route}",')),
                             key=lambda kv: kv[0])
            self.assertTrue(buckets and buckets[-1][0] == float("inf"), f"{route}: want buckets up to +Inf")
            counts = [v for _, v in buckets]
            self.assertEqual(counts, sorted(counts), f"{route}: buckets must be cumulative")
            self.assertEqual(counts[-1], after[f'slotd_http_request_duration_seconds_count{{route="{route}"}}'])
            self.assertGreater(after[f'slotd_http_request_duration_seconds_sum{{route="{route}"}}'], 0)
        info = [k for k in after if k.startswith("slotd_build_info{")]
        self.assertEqual(len(info), 1, f"one build_info sample: {info}")
        # A handful of writes on a fresh journal never fills its 64 MiB memtable: no stall.
        self.assertEqual(after.get("slotd_journal_write_stalls_total"), 0)
        self.assertRegex(info[0], r'version="[0-9]+\.[0-9]+\.[0-9]+"')
        self.assertEqual(after[info[0]], 1)
        self.assertGreaterEqual(after["slotd_durable_seq"], d["seq"])
        for gauge in ("slotd_ws_connections", "slotd_ws_queue_bytes", "slotd_connections_open",
                      "slotd_accept_errors_total", "slotd_pending_holds"):
            self.assertIn(gauge, after)

    def test_an_admin_token_given_by_flag_or_environment_is_never_printed_or_served(self):
        flagged = self.server.admin_token
        secret = "env-admin-token-" + os.urandom(12).hex()
        other = self.start_server(admin_token=None, env={"SLOTD_ADMIN_TOKEN": secret})
        other.api.admin_token = secret
        self.assertEqual(other.api.req("GET", "/admin/stats", admin=True).status, 200, "the token from the environment works")
        def printed(server):  # what slotd wrote, without the harness's line with its command
            return server.log_of_last_start().split("\n", 1)[1]

        for server, token in ((self.server, flagged), (other, secret)):
            for path in ("/metrics", "/openapi.json", "/healthz"):
                self.assertNotIn(token.encode(), server.api.req("GET", path).body, path)
            self.assertNotIn(token, printed(server), "the admin token must not be printed")
        self.assertEqual(other.stop(), 0)
        self.assertNotIn(secret, printed(other), "nor at shutdown")

    def test_openapi_json_serves_the_committed_document_and_it_matches_what_the_server_routes(self):
        r = self.api.req("GET", "/openapi.json")
        doc = self.expect(r, 200)
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api", "openapi.json")) as f:
            self.assertEqual(doc, json.load(f), "GET /openapi.json must serve api/openapi.json")
        self.assertTrue(doc["openapi"].startswith("3.1"), doc["openapi"])
        methods = ("get", "post", "put", "patch", "delete")
        for path, item in doc["paths"].items():
            concrete = path.replace("{id}", "1")
            documented = {m for m in item if m in methods}
            if path == "/ws":  # the WebSocket upgrade, served outside the route table
                self.assertEqual(documented, {"get"})
                continue
            for m in methods:
                with self.subTest(method=m, path=path):
                    r = self.api.req(m.upper(), concrete, admin=True, body={} if m in ("post", "patch") else None)
                    code = r.json["error"]["code"] if r.status >= 400 and isinstance(r.json, dict) else None
                    if m in documented:
                        self.assertNotIn(code, ("not_found", "method_not_allowed"),
                                         f"documented but not routed{r.describe()}")
                    else:
                        self.assertEqual(code, "method_not_allowed", f"routed but not documented{r.describe()}")

# =============================================================================
class DemoTest(ApiCase):
    """--demo seeds an empty data dir once."""

    def test_demo_seeds_doctors_and_slots_once(self):
        self.server = self.start_server(demo=True)
        docs = self.doctors()
        self.assertTrue(docs, "--demo must seed doctors")
        first = docs[0]["id"]
        slots = self.slots_of(first)
        self.assertTrue(slots, "--demo must seed slots for the first doctor")
        self.assertTrue(all(s["status"] == "AVAILABLE" for s in slots[:1]))
        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        self.assertEqual(self.doctors(), docs, "restarting with --demo must not seed twice")
        self.assertEqual(len(self.slots_of(first)), len(slots))


class HugePageHeapTest(ServerCase):
    """slotd starts itself again, once, with glibc's heap on transparent huge pages
    (GLIBC_TUNABLES glibc.malloc.hugetlb=1), keeping its process id, its arguments and any
    tunables already set; an operator's own glibc.malloc.hugetlb setting is left alone. The
    restarted process logs the GLIBC_TUNABLES it runs with."""

    @staticmethod
    def thp_never():
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" in f.read()

    def tunables_logged(self, server):
        self.assertEqual(server.api.healthz().status, 200)
        lines = [line for line in server.log_of_last_start().splitlines() if "GLIBC_TUNABLES=" in line]
        self.assertLessEqual(len(lines), 1, lines)
        return lines[0].split("GLIBC_TUNABLES=", 1)[1] if lines else None

    def test_slotd_restarts_itself_with_the_huge_page_heap_tunable(self):
        server = self.start_server(env={"GLIBC_TUNABLES": None})
        logged = self.tunables_logged(server)
        if self.thp_never():
            self.assertIsNone(logged, "no huge pages to ask for: nothing changes")
        else:
            self.assertEqual(logged, "glibc.malloc.hugetlb=1")
            with open(f"/proc/{server.proc.pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            self.assertIn(str(server.port).encode(), args, "the same process, with its arguments")
            with open(f"/proc/{server.proc.pid}/comm") as f:
                self.assertEqual(f.read().strip(), os.path.basename(ServerCase.slotd)[:15],
                                 "and its name (ps, top, pkill): not 'exe'")

    def test_other_tunables_are_kept_and_the_operators_own_setting_wins(self):
        want = "glibc.malloc.tcache_count=7" + ("" if self.thp_never() else ":glibc.malloc.hugetlb=1")
        kept = self.start_server(env={"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"})
        self.assertEqual(self.tunables_logged(kept), want)
        off = self.start_server(env={"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
        self.assertEqual(self.tunables_logged(off), "glibc.malloc.hugetlb=0")


# =============================================================================
def main():
    return run_main(sys.modules[__name__], "api")


if __name__ == "__main__":
    sys.exit(main())
