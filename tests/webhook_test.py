#!/usr/bin/env python3
"""Webhooks end to end: a real slotd and real HTTP(S) receivers on 127.0.0.1 (standard
library http.server in threads; TLS certificates made with the openssl command).

Every wait is bounded; no test asserts a timing. Signatures are checked with Python's hmac.
Run: webhook_test.py --slotd build/release/api/slotd [-k name]
"""

import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_util  # noqa: E402
from api_util import BASE_MS, MINUTE_MS, ServerCase, iso  # noqa: E402

SLOTD = None
ADMIN = "test-admin-token-0123456789"
FAST_RETRIES = ["--webhook-timeout", "3", "--webhook-backoff-base", "0.05",
                "--webhook-backoff-max", "0.25"]
WAIT_S = 60  # the bound of every wait for a delivery (TSan builds are slow)


def wait_until(predicate, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Receiver:
    """An HTTP(S) receiver on 127.0.0.1 that records every POST and answers from a plan:
    the statuses in `plan` first, then `status`, each after `delay_s`."""

    def __init__(self, port=0, tls_files=None):
        self.cond = threading.Condition()
        self.posts = []  # dicts: path, headers (lower-case names), body (bytes), json
        self.plan = []
        self.status = 200
        self.delay_s = 0.0
        self.tls_files = tls_files
        self.server = None
        self.port = port
        self.start()

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                post = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body, "json": json.loads(body)}
                with receiver.cond:
                    status = receiver.plan.pop(0) if receiver.plan else receiver.status
                    delay = receiver.delay_s
                    receiver.posts.append(post)
                    receiver.cond.notify_all()
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        if self.tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls_files)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self):
        """Stops listening (the port refuses connections until start())."""
        self.server.shutdown()
        self.server.server_close()

    def url(self, path="/hook"):
        scheme = "https" if self.tls_files else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def seqs(self):
        with self.cond:
            return [p["json"]["seq"] for p in self.posts]

    def wait_for_seq(self, seq, timeout=WAIT_S):
        with self.cond:
            ok = self.cond.wait_for(lambda: any(p["json"]["seq"] == seq for p in self.posts), timeout)
        assert ok, f"seq {seq} never arrived; got {self.seqs()}"

    def wait_for_count(self, n, timeout=WAIT_S):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.posts) >= n, timeout)
        assert ok, f"{n} posts never arrived; got {self.seqs()}"


def signature_ok(secret, post):
    """The check a receiver makes (README): HMAC-SHA256 of '<timestamp>.<body>' with the secret."""
    timestamp = post["headers"]["x-slotd-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + post["body"],
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, post["headers"]["x-slotd-signature"])


class WebhookCase(ServerCase):
    """Helpers shared by the webhook suites: one slotd per class (started by the class)."""

    secrets = ()  # every secret and token the class saw, for the log check

    @classmethod
    def remember_secret(cls, value):
        cls.secrets = tuple(cls.secrets) + (value,)

    def api(self, server=None):
        return (server or self.server).api

    def register(self, receiver, events, server=None, **fields):
        body = {"url": receiver.url(), "events": events, **fields}
        r = self.api(server).req("POST", "/admin/webhooks", body, admin=True)
        self.assertEqual(r.status, 201, r.describe())
        self.assertRegex(r.json["secret"], r"^[0-9a-f]{64}$")
        self.remember_secret(r.json["secret"])
        return r.json

    def doctor_with_slots(self, n, server=None, clinic_id=None):
        api = self.api(server)
        body = {"name": "Dr. Hook", "specialty": "GP"}
        if clinic_id:
            body["clinicId"] = clinic_id
        d = api.req("POST", "/doctors", body, admin=True)
        self.assertEqual(d.status, 201, d.describe())
        spans = [{"start": iso(BASE_MS + i * 30 * MINUTE_MS), "end": iso(BASE_MS + (i + 1) * 30 * MINUTE_MS)}
                 for i in range(n)]
        s = api.req("POST", "/slots", {"doctorId": d.json["id"], "slots": spans}, admin=True)
        self.assertEqual(s.status, 201, s.describe())
        return [slot["id"] for slot in s.json]

    def book(self, slot_id, name="Ann Lee", server=None):
        r = self.api(server).req("POST", "/booking", {"slotId": slot_id, "patientName": name})
        self.assertEqual(r.status, 201, r.describe())
        self.remember_secret(r.json["token"])
        return r.json

    def confirm(self, booking_id, server=None):
        r = self.api(server).req("POST", f"/booking/{booking_id}/confirm", admin=True)
        self.assertEqual(r.status, 200, r.describe())
        return r.json["seq"]

    def status(self, webhook_id, server=None):
        r = self.api(server).req("GET", f"/admin/webhooks/{webhook_id}", admin=True)
        self.assertEqual(r.status, 200, r.describe())
        return r.json["delivery"]

    def metric(self, name, webhook_id, server=None):
        text = self.api(server).req("GET", "/metrics").body.decode()
        m = re.search(rf'^slotd_webhook_{name}{{webhook="{webhook_id}"}} (\d+)$', text, re.M)
        return int(m.group(1)) if m else None

    def check_logs_hold_no_secret(self):
        """slotd's own lines (not the harness's '===== start' lines, which echo the command
        line) hold no webhook secret, booking token or admin token."""
        self.assertTrue(self.secrets, "the class saw no secret to look for")
        for server in self.servers:
            with open(server.log_path, encoding="utf-8", errors="replace") as f:
                lines = [line for line in f if not line.startswith("===== start")]
            self.assertTrue(any(line.startswith("slotd") for line in lines), "slotd wrote nothing")
            for line in lines:
                for secret in tuple(self.secrets) + (ADMIN,):
                    self.assertNotIn(secret, line, f"a secret or token in a log line of {server.log_path}")


class DeliveryTest(WebhookCase):
    """Deliveries to a receiver that answers, fails, goes away and comes back."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600, extra_args=["--allow-private-webhooks",
                                                                "--webhook-attempts", "1000"] + FAST_RETRIES)

    def test_a_confirmed_booking_is_delivered_as_exactly_one_post_whose_signature_verifies(self):
        receiver = Receiver()
        hook = self.register(receiver, ["booking.confirmed"])
        s1, s2 = self.doctor_with_slots(2)
        b1 = self.book(s1)
        first = self.confirm(b1["id"])
        b2 = self.book(s2, "Bob")
        second = self.confirm(b2["id"])
        receiver.wait_for_seq(second)
        # In seq order, one at a time: once the second arrived, the first was done with.
        self.assertEqual(receiver.seqs(), [first, second])
        post = receiver.posts[0]
        self.assertTrue(signature_ok(hook["secret"], post), post)
        self.assertFalse(signature_ok("0" * 64, post))
        body = post["json"]
        self.assertEqual(body["id"], f"evt_{first}")
        self.assertEqual(post["headers"]["x-slotd-event-id"], body["id"])
        self.assertEqual(body["type"], "booking.confirmed")
        self.assertEqual(body["seq"], first)
        self.assertRegex(body["occurredAt"], api_util.ISO_RE)
        data = body["data"]
        self.assertEqual(data["bookingId"], b1["id"])
        self.assertEqual(data["slotId"], s1)
        self.assertEqual(data["clinicId"], 1)
        self.assertEqual(data["status"], "CONFIRMED")
        self.assertEqual(data["start"], iso(BASE_MS))
        self.assertNotIn("patientName", data)
        self.assertEqual(post["path"], "/hook")
        self.assertEqual(post["headers"]["content-type"], "application/json")
        self.assertLess(abs(int(post["headers"]["x-slotd-timestamp"]) - time.time()), 3600)
        wait_until(lambda: self.status(hook["id"])["delivered"] == 2, "two delivered events")
        delivery = self.status(hook["id"])
        self.assertEqual(delivery["state"], "active")
        self.assertEqual(delivery["cursor"], second + 1)
        self.assertEqual(self.metric("deliveries_total", hook["id"]), 2)

    def test_a_receiver_answering_500_twice_then_200_gets_the_event_after_retries_and_the_rest_in_order(self):
        receiver = Receiver()
        receiver.plan = [500, 500]
        hook = self.register(receiver, ["booking.held"])
        slots = self.doctor_with_slots(3)
        seqs = [self.book(s)["seq"] for s in slots]
        receiver.wait_for_seq(seqs[-1])
        self.assertEqual(receiver.seqs(), [seqs[0]] * 3 + seqs[1:])
        for post in receiver.posts:
            self.assertTrue(signature_ok(hook["secret"], post))
        # Each retry is signed afresh, for the same event id.
        self.assertEqual({p["json"]["id"] for p in receiver.posts[:3]}, {f"evt_{seqs[0]}"})
        wait_until(lambda: self.status(hook["id"])["delivered"] == 3, "three delivered events")
        delivery = self.status(hook["id"])
        self.assertEqual(delivery["attempts"], 0)
        self.assertEqual(delivery["state"], "active")
        self.assertEqual(delivery["lastError"], "HTTP 500")
        self.assertEqual(self.metric("failures_total", hook["id"]), 2)
        self.assertEqual(self.metric("retries_total", hook["id"]), 2)

    def test_100_bookings_made_while_the_receiver_is_down_all_arrive_in_seq_order_when_it_is_back(self):
        receiver = Receiver()
        hook = self.register(receiver, ["booking.held"])
        slots = self.doctor_with_slots(101)
        first = self.book(slots[0])["seq"]
        receiver.wait_for_seq(first)
        receiver.stop()
        seqs = [self.book(s)["seq"] for s in slots[1:]]
        wait_until(lambda: self.status(hook["id"])["attempts"] >= 2, "failed attempts while down")
        delivery = self.status(hook["id"])
        self.assertEqual(delivery["state"], "retrying")
        self.assertIn("connect failed", delivery["lastError"])
        self.assertEqual(delivery["cursor"], seqs[0])
        self.assertGreaterEqual(self.metric("lag_events", hook["id"]), 100)
        receiver.start()  # the same port
        receiver.wait_for_seq(seqs[-1])
        self.assertEqual(receiver.seqs(), [first] + seqs)
        wait_until(lambda: self.status(hook["id"])["lag"] == 0, "lag 0")

    def test_a_clinic_filter_and_include_patient_pick_the_events_and_the_fields(self):
        receiver = Receiver()
        c = self.api().req("POST", "/clinics", {"name": "Second Clinic"}, admin=True)
        self.assertEqual(c.status, 201, c.describe())
        clinic = c.json["id"]
        hook = self.register(receiver, ["booking.held", "booking.cancelled", "slot.closed"],
                             clinicId=clinic, includePatient=True)
        self.assertEqual(hook["clinicId"], clinic)
        self.assertTrue(hook["includePatient"])
        other = self.doctor_with_slots(2)
        mine = self.doctor_with_slots(3, clinic_id=clinic)
        self.book(other[0], "Other Clinic Patient")
        held = self.book(mine[0], "Zoë O'Brien")
        cancel = self.api().req("POST", f"/booking/{held['id']}/cancel", admin=True)
        self.assertEqual(cancel.status, 200, cancel.describe())
        closed = self.api().req("DELETE", f"/slots/{mine[1]}", admin=True)
        self.assertEqual(closed.status, 200, closed.describe())
        receiver.wait_for_seq(closed.json["seq"])
        posts = receiver.posts
        self.assertEqual([p["json"]["type"] for p in posts],
                         ["booking.held", "booking.cancelled", "slot.closed"])
        self.assertEqual([p["json"]["seq"] for p in posts], [held["seq"], cancel.json["seq"], closed.json["seq"]])
        self.assertEqual(posts[0]["json"]["data"]["patientName"], "Zoë O'Brien")
        self.assertEqual(posts[1]["json"]["data"]["status"], "CANCELLED")
        self.assertEqual(posts[2]["json"]["data"], {
            "slotId": mine[1], "doctorId": posts[2]["json"]["data"]["doctorId"], "clinicId": clinic,
            "status": "CLOSED", "start": iso(BASE_MS + 30 * MINUTE_MS), "end": iso(BASE_MS + 60 * MINUTE_MS)})
        self.assertNotIn("patientName", posts[2]["json"]["data"])

    def test_the_secret_is_shown_once_never_by_get_or_in_the_events_audit(self):
        receiver = Receiver()
        hook = self.register(receiver, ["slot.created"])
        listing = self.api().req("GET", "/admin/webhooks", admin=True)
        self.assertEqual(listing.status, 200)
        mine = [w for w in listing.json["webhooks"] if w["id"] == hook["id"]]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["url"], receiver.url())
        self.assertEqual(mine[0]["events"], ["slot.created"])
        self.assertNotIn("secret", mine[0])
        one = self.api().req("GET", f"/admin/webhooks/{hook['id']}", admin=True)
        events = self.api().req("GET", f"/events?fromSeq={hook['seq']}&limit=1", admin=True)
        self.assertEqual(events.json["events"][0]["type"], "WebhookRegistered")
        self.assertEqual(events.json["events"][0]["data"]["webhookId"], hook["id"])
        for r in (listing, one, events):
            self.assertNotIn(hook["secret"].encode(), r.body)

    def test_a_deleted_webhook_is_gone_and_gets_no_later_event(self):
        gone, kept = Receiver(), Receiver()
        hook = self.register(gone, ["booking.held"])
        witness = self.register(kept, ["booking.held"])
        d = self.api().req("DELETE", f"/admin/webhooks/{hook['id']}", admin=True)
        self.assertEqual(d.status, 200, d.describe())
        self.assertEqual(d.json["status"], "DELETED")
        self.assertEqual(self.api().req("GET", f"/admin/webhooks/{hook['id']}", admin=True).status, 404)
        self.assertEqual(self.api().req("DELETE", f"/admin/webhooks/{hook['id']}", admin=True).status, 404)
        self.assertEqual(self.api().req("POST", f"/admin/webhooks/{hook['id']}/redeliver", {}, admin=True).status, 404)
        seq = self.book(self.doctor_with_slots(1)[0])["seq"]
        kept.wait_for_seq(seq)
        self.assertEqual(gone.seqs(), [])
        self.assertIsNone(self.metric("deliveries_total", hook["id"]))
        self.assertIsNotNone(self.metric("deliveries_total", witness["id"]))

    def test_admin_routes_need_the_admin_token_and_bad_requests_get_a_clear_400(self):
        api = self.api()
        for method, path in [("POST", "/admin/webhooks"), ("GET", "/admin/webhooks"),
                             ("GET", "/admin/webhooks/1"), ("DELETE", "/admin/webhooks/1"),
                             ("POST", "/admin/webhooks/1/redeliver")]:
            r = api.req(method, path, {})
            self.assertEqual(r.status, 401, r.describe())
        url = "http://127.0.0.1:9/x"
        cases = [
            ({"events": ["booking.held"]}, "missing_field"),
            ({"url": url}, "missing_field"),
            ({"url": url, "events": []}, "invalid_field"),
            ({"url": url, "events": "booking.held"}, "invalid_field"),
            ({"url": url, "events": ["booking.sneezed"]}, "invalid_field"),
            ({"url": url, "events": ["booking.held", "booking.held"]}, "invalid_field"),
            ({"url": url, "events": ["booking.held"], "includePatient": "yes"}, "invalid_field"),
            ({"url": "ftp://127.0.0.1/x", "events": ["booking.held"]}, "invalid_webhook_url"),
            ({"url": "http://user:secret@127.0.0.1/x", "events": ["booking.held"]}, "invalid_webhook_url"),
            ({"url": "http://127.0.0.1/x#frag", "events": ["booking.held"]}, "invalid_webhook_url"),
            ({"url": "http://" + "a" * 2050 + ".example/", "events": ["booking.held"]}, "invalid_webhook_url"),
        ]
        for body, code in cases:
            r = api.req("POST", "/admin/webhooks", body, admin=True)
            self.assertEqual((r.status, r.json["error"]["code"]), (400, code), r.describe())
        r = api.req("POST", "/admin/webhooks", {"url": url, "events": ["booking.held"], "clinicId": 999}, admin=True)
        self.assertEqual((r.status, r.json["error"]["code"]), (404, "clinic_not_found"), r.describe())
        hook = self.register(Receiver(), ["slot.closed"])
        last = api.healthz().json["seq"]
        for body in ({"fromSeq": 0}, {"fromSeq": last + 2}, {"fromSeq": "x"}):
            r = api.req("POST", f"/admin/webhooks/{hook['id']}/redeliver", body, admin=True)
            self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(api.req("GET", "/admin/webhooks/999", admin=True).status, 404)

    def test_the_openapi_document_describes_every_webhook_route(self):
        doc = self.api().req("GET", "/openapi.json").json
        paths = doc["paths"]
        self.assertEqual(sorted(paths["/admin/webhooks"]), ["get", "post"])
        self.assertEqual(sorted(paths["/admin/webhooks/{id}"]), ["delete", "get"])
        self.assertEqual(sorted(paths["/admin/webhooks/{id}/redeliver"]), ["post"])
        self.assertEqual(doc["components"]["schemas"]["WebhookEventType"]["enum"],
                         ["booking.held", "booking.confirmed", "booking.failed", "booking.cancelled",
                          "slot.created", "slot.closed"])

    def test_z_no_secret_or_token_appears_in_the_log(self):
        self.check_logs_hold_no_secret()


class DeadLetterTest(WebhookCase):
    """An endpoint that fails every attempt is marked failing, stays so across a restart,
    and redeliver resumes it."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600, extra_args=["--allow-private-webhooks",
                                                                "--webhook-attempts", "3"] + FAST_RETRIES)

    def test_after_the_last_attempt_the_endpoint_is_failing_until_redelivered_even_across_a_restart(self):
        receiver = Receiver()
        receiver.status = 503
        hook = self.register(receiver, ["booking.held"])
        slots = self.doctor_with_slots(3)
        first = self.book(slots[0])["seq"]
        wait_until(lambda: self.status(hook["id"])["state"] == "failing", "the failing state")
        second = self.book(slots[1])["seq"]
        delivery = self.status(hook["id"])
        self.assertEqual(delivery["attempts"], 3)
        self.assertEqual(delivery["lastError"], "HTTP 503")
        self.assertEqual(delivery["cursor"], first)  # stopped at the event it could not deliver
        self.assertEqual(receiver.seqs(), [first] * 3)
        self.assertEqual(self.metric("failing", hook["id"]), 1)

        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        self.assertEqual(self.status(hook["id"])["state"], "failing")
        self.assertEqual(self.status(hook["id"])["cursor"], first)

        receiver.status = 200
        r = self.api().req("POST", f"/admin/webhooks/{hook['id']}/redeliver", admin=True)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.json, {"id": hook["id"], "cursor": first, "state": "active"})
        receiver.wait_for_seq(second)
        self.assertEqual(receiver.seqs(), [first] * 4 + [second])

        # Redelivery from an earlier seq sends those events again, in order.
        r = self.api().req("POST", f"/admin/webhooks/{hook['id']}/redeliver", {"fromSeq": first}, admin=True)
        self.assertEqual(r.status, 200, r.describe())
        third = self.book(slots[2])["seq"]
        receiver.wait_for_seq(third)
        self.assertEqual(receiver.seqs(), [first] * 4 + [second, first, second, third])
        for post in receiver.posts:
            self.assertTrue(signature_ok(hook["secret"], post))  # the same secret after the restart

    def test_z_no_secret_or_token_appears_in_the_log(self):
        self.check_logs_hold_no_secret()


class CrashTest(WebhookCase):
    """kill -9 while deliveries are in flight: after the restart the rest arrives."""

    def test_kill_9_mid_delivery_then_restart_delivers_every_remaining_event_with_at_most_one_repeat(self):
        self.server = self.start_server(hold_ttl=600, extra_args=["--allow-private-webhooks",
                                                                  "--webhook-attempts", "1000"] + FAST_RETRIES)
        receiver = Receiver()
        receiver.delay_s = 0.02
        hook = self.register(receiver, ["booking.held"])
        seqs = [self.book(s)["seq"] for s in self.doctor_with_slots(60)]
        receiver.wait_for_count(10)
        self.server.kill()
        got_before = receiver.seqs()
        self.assertLess(len(got_before), 60, "every event arrived before the kill: the test proved nothing")
        self.server.start()
        receiver.wait_for_seq(seqs[-1])
        got = receiver.seqs()
        self.assertEqual(sorted(set(got)), seqs)
        first_arrivals = list(dict.fromkeys(got))
        self.assertEqual(first_arrivals, seqs)
        self.assertLessEqual(len(got) - len(seqs), 1, f"more repeats than the one in flight: {got}")
        for post in receiver.posts:
            self.assertTrue(signature_ok(hook["secret"], post))

    def test_z_no_secret_or_token_appears_in_the_log(self):
        self.check_logs_hold_no_secret()


class PrivateDestinationTest(WebhookCase):
    """Without --allow-private-webhooks: private destinations are refused at registration
    and, for a registration made with the flag, at delivery time."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(extra_args=FAST_RETRIES)

    def test_loopback_private_link_local_and_mapped_destinations_are_refused_with_400(self):
        for url, kind in [("http://127.0.0.1:8080/hook", "loopback"),
                          ("http://localhost:8080/hook", "loopback"),
                          ("http://10.1.2.3/hook", "private"),
                          ("http://192.168.0.10/hook", "private"),
                          ("http://169.254.169.254/latest/meta-data", "link-local"),
                          ("http://0.0.0.0/hook", "unspecified"),
                          ("http://[::1]/hook", "loopback"),
                          ("http://[fd00::1]/hook", "private"),
                          ("http://[::ffff:127.0.0.1]/hook", "loopback"),
                          ("https://[fe80::1]/hook", "link-local"),
                          ("http://2130706433/hook", "loopback")]:  # 127.0.0.1 as one number
            r = self.api().req("POST", "/admin/webhooks", {"url": url, "events": ["booking.held"]}, admin=True)
            self.assertEqual((r.status, r.json["error"]["code"]), (400, "webhook_destination_refused"), r.describe())
            self.assertIn(kind, r.json["error"]["message"], r.describe())
        listing = self.api().req("GET", "/admin/webhooks", admin=True)
        self.assertEqual(listing.json["webhooks"], [])

    def test_a_public_address_is_accepted(self):
        # An event type this server never produces and deleted at once: nothing is ever sent.
        r = self.api().req("POST", "/admin/webhooks", {"url": "https://93.184.216.34/hook", "events": ["slot.closed"]},
                           admin=True)
        self.assertEqual(r.status, 201, r.describe())
        self.remember_secret(r.json["secret"])
        self.assertEqual(self.api().req("DELETE", f"/admin/webhooks/{r.json['id']}", admin=True).status, 200)

    def test_a_registration_made_with_the_flag_is_refused_at_delivery_time_without_it(self):
        data_dir = tempfile.mkdtemp(prefix="slotd-webhook-data-")
        try:
            receiver = Receiver()
            with_flag = self.start_server(data_dir=data_dir, extra_args=["--allow-private-webhooks"] + FAST_RETRIES)
            hook = self.register(receiver, ["booking.held"], server=with_flag)
            slot = self.doctor_with_slots(1, server=with_flag)[0]
            self.assertEqual(with_flag.stop(), 0)
            without = self.start_server(data_dir=data_dir, extra_args=FAST_RETRIES)
            self.book(slot, server=without)
            wait_until(lambda: self.status(hook["id"], server=without)["attempts"] >= 1, "a refused attempt")
            delivery = self.status(hook["id"], server=without)
            self.assertIn("destination refused", delivery["lastError"])
            self.assertIn("loopback", delivery["lastError"])
            self.assertEqual(receiver.seqs(), [])  # no connection was made
            self.assertEqual(without.stop(), 0)
        finally:
            for server in self.servers:
                if server.data_dir == data_dir and server.running():
                    server.kill()
            shutil.rmtree(data_dir, ignore_errors=True)

    def test_z_no_secret_or_token_appears_in_the_log(self):
        self.check_logs_hold_no_secret()


def make_certificate(directory, name, subject_alt_name):
    key, cert = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={subject_alt_name}"],
                   check=True, capture_output=True, timeout=60)
    return key, cert


class TlsTest(WebhookCase):
    """https:// receivers: the peer's certificate must chain to a trusted CA (slotd uses the
    system store; SSL_CERT_FILE points it at the test's) and name the host."""

    @classmethod
    def setUpClass(cls):
        cls.cert_dir = tempfile.mkdtemp(prefix="slotd-webhook-tls-")
        cls.good = make_certificate(cls.cert_dir, "good", "IP:127.0.0.1")
        cls.wrong_name = make_certificate(cls.cert_dir, "wrongname", "DNS:other.example")
        cls.untrusted = make_certificate(cls.cert_dir, "untrusted", "IP:127.0.0.1")
        trusted = os.path.join(cls.cert_dir, "trusted.pem")
        with open(trusted, "w") as out:
            for _, cert in (cls.good, cls.wrong_name):
                out.write(open(cert).read())
        cls.server = cls.start_server(env={"SSL_CERT_FILE": trusted, "SSL_CERT_DIR": cls.cert_dir + "/none"},
                                      extra_args=["--allow-private-webhooks", "--webhook-attempts", "1000"] + FAST_RETRIES)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.cert_dir, ignore_errors=True)

    def test_a_trusted_certificate_for_the_host_gets_the_event_an_untrusted_or_misnamed_one_does_not(self):
        good = Receiver(tls_files=(self.good[1], self.good[0]))
        wrong_name = Receiver(tls_files=(self.wrong_name[1], self.wrong_name[0]))
        untrusted = Receiver(tls_files=(self.untrusted[1], self.untrusted[0]))
        hooks = {name: self.register(r, ["booking.held"])
                 for name, r in (("good", good), ("wrong_name", wrong_name), ("untrusted", untrusted))}
        seq = self.book(self.doctor_with_slots(1)[0])["seq"]
        good.wait_for_seq(seq)
        self.assertTrue(signature_ok(hooks["good"]["secret"], good.posts[0]))
        for name in ("wrong_name", "untrusted"):
            wait_until(lambda: self.status(hooks[name]["id"])["attempts"] >= 1, f"a failed TLS attempt ({name})")
            error = self.status(hooks[name]["id"])["lastError"]
            self.assertIn("TLS handshake failed", error, name)
        self.assertEqual(wrong_name.seqs(), [])
        self.assertEqual(untrusted.seqs(), [])

    def test_z_no_secret_or_token_appears_in_the_log(self):
        self.check_logs_hold_no_secret()


if __name__ == "__main__":
    sys.exit(api_util.run_main(sys.modules[__name__], "webhook"))
