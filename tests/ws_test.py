#!/usr/bin/env python3
"""The WebSocket feed `GET /ws` of slotd, tested against the real binary on a loopback port.

Run: python3 tests/ws_test.py --slotd build/release/api/slotd [-k pattern]
Each test class starts its own slotd in a fresh temp data dir (removed afterwards).
The WebSocket client is a minimal RFC 6455 one written here (masked client frames,
text/continuation/ping/pong/close). Prints `ws: N passed, M failed` last and exits
non-zero on any failure. Standard library only; every wait is bounded in time.
"""

import base64
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_util import BASE_MS, MINUTE_MS, TOKEN_RE, Server, ServerCase, iso, run_main  # noqa: E402

SLOTD = None  # set from --slotd

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SLOT_KEYS = {"id", "doctorId", "start", "end", "status"}
BOOKING_KEYS = {"id", "slotId", "status"}
SLOT_EVENT_KEYS = {"type", "seq", "event", "slot"}
BOOKING_EVENT_KEYS = {"type", "seq", "event", "booking", "slot"}
SNAPSHOT_KEYS = {"type", "asOfSeq", "slots"}
ERROR_KEYS = {"type", "code", "message"}
SLOT_EVENTS = ("SlotCreated", "SlotClosed")
BOOKING_EVENTS = ("SlotHeld", "BookingConfirmed", "BookingExpired", "BookingCancelled")

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

WAIT = 5.0  # seconds to wait for one expected message


def slot_times(i, minutes=30, base_ms=BASE_MS):
    start = base_ms + i * minutes * MINUTE_MS
    return iso(start), iso(start + minutes * MINUTE_MS)


# =============================================================================
# A minimal RFC 6455 client.

class WsTimeout(AssertionError):
    pass


class WsClosed(AssertionError):
    """The TCP connection ended (EOF or reset) without a close frame."""


class Ws:
    """One WebSocket connection to 127.0.0.1:port. After construction, .status is the
    HTTP status of the handshake answer (101 on success), .headers and .body its parts."""

    def __init__(self, port, path="/ws", origin=None, host=None, extra_headers=None,
                 timeout=WAIT, rcvbuf=None, source=None):
        self.port = port
        self.buf = bytearray()
        self.transcript = []  # ("<" server / ">" client, description), for failure messages
        self.pongs = []
        self.pings_answered = 0
        self.close_sent = False
        self.close_received = None  # (code, reason) once the server's close frame arrived
        self.eof = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:  # another loopback peer address: another client identity
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1",
                 f"Host: {host if host is not None else f'127.0.0.1:{port}'}",
                 "Upgrade: websocket",
                 "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {self.key}",
                 "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        for k, v in (extra_headers or {}).items():
            lines.append(f"{k}: {v}")
        self.request_head = "\r\n".join(lines) + "\r\n\r\n"
        self.sock.sendall(self.request_head.encode("latin-1"))
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise AssertionError(f"handshake answer head longer than 64 KiB: {bytes(self.buf[:500])!r}")
            self._recv_some(deadline)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise AssertionError(f"bad status line in the handshake answer: {lines[0]!r}")
        self.status = int(parts[1])
        self.headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.head = head.decode("latin-1")
        self.body = b""
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((self.key + WS_GUID).encode()).digest()).decode()
            got = self.headers.get("sec-websocket-accept")
            if got != want:
                raise AssertionError(f"Sec-WebSocket-Accept is {got!r}, want {want!r}\n{self.head}")
            if self.headers.get("upgrade", "").lower() != "websocket":
                raise AssertionError(f"101 without Upgrade: websocket\n{self.head}")
        else:
            n = int(self.headers.get("content-length", "0") or 0)
            try:
                while len(self.buf) < n:
                    self._recv_some(deadline)
            except WsClosed:
                pass
            self.body = bytes(self.buf[:n])
            self.buf = bytearray(self.buf[n:])

    # --- raw I/O ---------------------------------------------------------------

    def _recv_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WsTimeout("timed out waiting for data from slotd" + self.tail())
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise WsTimeout("timed out waiting for data from slotd" + self.tail()) from None
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = True
            raise WsClosed(f"connection reset by slotd ({e!r})" + self.tail()) from None
        if not chunk:
            self.eof = True
            raise WsClosed("slotd closed the TCP connection (EOF)" + self.tail())
        self.buf += chunk

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            self._recv_some(deadline)

    def tail(self, n=25):
        if not self.transcript:
            return "\n  (no frames yet)"
        lines = [f"  {d} {t}" for d, t in self.transcript[-n:]]
        return "\n  last frames (< from slotd, > to slotd):\n" + "\n".join(lines)

    def _note(self, direction, text):
        if len(text) > 600:
            text = text[:600] + f"...({len(text)} chars)"
        self.transcript.append((direction, text))
        if len(self.transcript) > 400:
            del self.transcript[:200]

    def send_frame(self, opcode, payload=b"", fin=True, mask=True):
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            body = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
            data = head + key + body
        else:
            data = head + payload
        self._note(">", f"op={opcode:#x} fin={int(fin)} {payload[:300]!r}")
        self.sock.settimeout(WAIT)
        self.sock.sendall(data)

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_close(self, code=1000, reason=""):
        self.close_sent = True
        self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))

    def recv_frame(self, timeout=WAIT):
        """(fin, opcode, payload) of the next frame; asserts it is unmasked and RSV-free."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
        masked, n = bool(b1 & 0x80), b1 & 0x7F
        hdr = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            hdr = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            hdr = 10
        if masked:
            raise AssertionError("slotd sent a masked frame (RFC 6455 5.1: server frames are never masked)"
                                 + self.tail())
        if rsv:
            raise AssertionError(f"slotd sent a frame with RSV bits {rsv:#x} without an extension" + self.tail())
        self._fill(hdr + n, deadline)
        payload = bytes(self.buf[hdr:hdr + n])
        del self.buf[:hdr + n]
        return fin, opcode, payload

    def recv_message(self, timeout=WAIT):
        """The next data message as ("text", str) / ("binary", bytes), or ("close", code, reason).
        Answers pings with pongs, records pongs, reassembles fragments."""
        deadline = time.monotonic() + timeout
        parts, first_op = [], None
        for _ in range(1_000_000):
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op == OP_PING:
                self._note("<", f"ping {payload!r}")
                if not self.close_sent:
                    self.send_frame(OP_PONG, payload)
                    self.pings_answered += 1
                continue
            if op == OP_PONG:
                self._note("<", f"pong {payload!r}")
                self.pongs.append(payload)
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                self._note("<", f"close code={code} reason={reason!r}")
                self.close_received = (code, reason)
                if not self.close_sent:
                    try:
                        self.send_close(code if code not in (None, 1005, 1006) else 1000)
                    except OSError:
                        pass
                return ("close", code, reason)
            if op in (OP_TEXT, OP_BINARY):
                if first_op is not None:
                    raise AssertionError("slotd started a new data frame inside a fragmented message"
                                         + self.tail())
                first_op = op
                parts = [payload]
            elif op == OP_CONT:
                if first_op is None:
                    raise AssertionError("slotd sent a continuation frame with no message to continue"
                                         + self.tail())
                parts.append(payload)
            else:
                raise AssertionError(f"slotd sent a frame with reserved opcode {op:#x}" + self.tail())
            if fin:
                data = b"".join(parts)
                if first_op == OP_TEXT:
                    text = data.decode("utf-8")
                    self._note("<", text)
                    return ("text", text)
                self._note("<", f"binary {data[:200]!r}")
                return ("binary", data)
        raise AssertionError("too many frames")

    def recv_json(self, timeout=WAIT, what="a message"):
        """The next text message, parsed. Fails on close, EOF, timeout, binary or bad JSON."""
        try:
            m = self.recv_message(timeout)
        except WsTimeout:
            raise WsTimeout(f"no message within {timeout}s, waiting for {what}" + self.tail()) from None
        except WsClosed as e:
            raise WsClosed(f"connection ended while waiting for {what}: {e}") from None
        if m[0] == "close":
            raise AssertionError(f"slotd sent a close frame (code={m[1]}, reason={m[2]!r}) while waiting for "
                                 f"{what}" + self.tail())
        if m[0] != "text":
            raise AssertionError(f"want a text frame with JSON for {what}, got {m[0]}" + self.tail())
        try:
            return json.loads(m[1])
        except ValueError:
            raise AssertionError(f"slotd sent a text frame that is not JSON: {m[1][:500]!r}" + self.tail()) from None

    def close(self):
        try:
            if not self.close_sent and not self.eof and self.close_received is None:
                self.send_close(1000)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


# =============================================================================
class WsCase(ServerCase):
    """Shared helpers. Subclasses start their server(s) in setUpClass."""

    maxDiff = 6000

    def setUp(self):
        self._sockets = []

    def tearDown(self):
        for w in self._sockets:
            w.close()

    @property
    def api(self):
        return self.server.api

    # --- HTTP helpers (each asserts success and returns the JSON) --------------

    def ok(self, r, status):
        self.assertEqual(r.status, status, f"want {status}{r.describe()}")
        self.assertIsNotNone(r.json, f"want a JSON body{r.describe()}")
        return r.json

    def clinic(self, name="Clinic"):
        return self.ok(self.api.req("POST", "/clinics", {"name": name}, admin=True), 201)

    def doctor(self, name="Dr. Ws", clinic_id=None):
        body = {"name": name, "specialty": "GP"}
        if clinic_id is not None:
            body["clinicId"] = clinic_id
        return self.ok(self.api.req("POST", "/doctors", body, admin=True), 201)

    def slot(self, doctor_id, i, minutes=30):
        start, end = slot_times(i, minutes)
        s = self.ok(self.api.req("POST", "/slots", {"doctorId": doctor_id, "start": start, "end": end},
                                 admin=True), 201)
        self.assertEqual((s["doctorId"], s["start"], s["end"], s["status"]), (doctor_id, start, end, "AVAILABLE"))
        return s

    def slots(self, doctor_id, first, n, minutes=30, timeout=10):
        body = {"doctorId": doctor_id,
                "slots": [dict(zip(("start", "end"), slot_times(first + k, minutes))) for k in range(n)]}
        arr = self.ok(self.api.req("POST", "/slots", body, admin=True, timeout=timeout), 201)
        self.assertEqual(len(arr), n)
        return arr

    def book(self, slot_id, patient="Patient Zed"):
        b = self.ok(self.api.req("POST", "/booking", {"slotId": slot_id, "patientName": patient}), 201)
        self.assertTrue(TOKEN_RE.match(b["token"]))
        return b

    def confirm(self, b):
        return self.ok(self.api.req("POST", f"/booking/{b['id']}/confirm", token=b["token"]), 200)

    def cancel(self, b):
        return self.ok(self.api.req("POST", f"/booking/{b['id']}/cancel", token=b["token"]), 200)

    def close_slot(self, slot_id):
        return self.ok(self.api.req("DELETE", f"/slots/{slot_id}", admin=True), 200)

    def current_seq(self):
        return self.ok(self.api.healthz(), 200)["seq"]

    def metric(self, name):
        r = self.api.req("GET", "/metrics")
        self.assertEqual(r.status, 200, r.describe())
        for line in r.body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail(f"no {name} in /metrics")

    # --- WebSocket helpers -----------------------------------------------------

    def ws(self, server=None, **kw):
        w = Ws((server or self.server).port, **kw)
        self._sockets.append(w)
        return w

    def open_ws(self, server=None, **kw):
        w = self.ws(server, **kw)
        self.assertEqual(w.status, 101, f"GET /ws must upgrade (101); got:\n{w.head}\n{w.body[:500]!r}")
        return w

    def subscribe(self, w, **kw):
        msg = {"op": "subscribe"}
        msg.update(kw)
        w.send_json(msg)

    def expect_snapshot(self, w, expected_slots=None, min_as_of=None, max_as_of=None):
        m = w.recv_json(what="a snapshot")
        self.assertIsInstance(m, dict, w.tail())
        self.assertEqual(m.get("type"), "snapshot", f"want a snapshot message{w.tail()}")
        self.assertEqual(set(m), SNAPSHOT_KEYS, f"snapshot fields{w.tail()}")
        self.assertTrue(isinstance(m["asOfSeq"], int) and not isinstance(m["asOfSeq"], bool), w.tail())
        self.assertIsInstance(m["slots"], list, w.tail())
        for s in m["slots"]:
            self.assertEqual(set(s), SLOT_KEYS, f"snapshot slot fields of {s}{w.tail()}")
        if min_as_of is not None:
            self.assertGreaterEqual(m["asOfSeq"], min_as_of,
                                    f"asOfSeq must cover every write answered before the subscribe{w.tail()}")
        if max_as_of is not None:
            self.assertLessEqual(m["asOfSeq"], max_as_of, f"asOfSeq beyond the server's seq{w.tail()}")
        if expected_slots is not None:
            self.assertEqual(m["slots"], expected_slots,
                             f"snapshot slots (ordered by doctorId then start){w.tail()}")
        return m

    def expect_error(self, w, code):
        m = w.recv_json(what=f"an error {code}")
        self.assertEqual(m.get("type"), "error", f"want an error message{w.tail()}")
        self.assertEqual(set(m), ERROR_KEYS, f"error message fields{w.tail()}")
        self.assertEqual(m["code"], code, w.tail())
        self.assertTrue(isinstance(m["message"], str) and m["message"].strip(), f"want a message{w.tail()}")
        return m

    def check_event(self, m, w, seq, event, slot, booking=None):
        """m must be exactly the event `event` with `seq`, the slot (dict with SLOT_KEYS) and,
        for booking events, the booking {"id","slotId","status"}."""
        self.assertIsInstance(m, dict, w.tail())
        if event in SLOT_EVENTS:
            self.assertEqual(m.get("type"), "slot", f"want a slot event {event} seq {seq}{w.tail()}")
            self.assertEqual(set(m), SLOT_EVENT_KEYS, f"slot event fields{w.tail()}")
        else:
            self.assertEqual(m.get("type"), "booking", f"want a booking event {event} seq {seq}{w.tail()}")
            self.assertEqual(set(m), BOOKING_EVENT_KEYS, f"booking event fields{w.tail()}")
            self.assertEqual(set(m["booking"]), BOOKING_KEYS, f"booking fields in the feed{w.tail()}")
            self.assertEqual(m["booking"], booking, f"booking of {event} seq {seq}{w.tail()}")
        self.assertEqual((m["seq"], m["event"]), (seq, event), f"want {event} with seq {seq}{w.tail()}")
        self.assertEqual(set(m["slot"]), SLOT_KEYS, f"slot fields in the feed{w.tail()}")
        self.assertEqual(m["slot"], slot, f"slot of {event} seq {seq}{w.tail()}")

    def expect_events(self, w, expected):
        """Read len(expected) messages; each must be the given (seq, event, slot, booking) in order."""
        got = []
        for seq, event, slot, booking in expected:
            m = w.recv_json(what=f"{event} seq {seq}")
            got.append(m)
            self.check_event(m, w, seq, event, slot, booking)
        return got


def sv(s, status):
    """The feed's view of slot s with the given status."""
    return {"id": s["id"], "doctorId": s["doctorId"], "start": s["start"], "end": s["end"], "status": status}


def bv(b, status):
    return {"id": b["id"], "slotId": b["slotId"], "status": status}


# =============================================================================
class FeedTest(WsCase):
    """Snapshot, live events, catch-up, resync, messages and origins on one slotd (hold TTL 600 s)."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600)

    def make_history(self, doctor_id, first=0):
        """Slots of doctor_id in every status, created out of start order. Returns the expected
        snapshot entries ordered by start."""
        s_late = self.slot(doctor_id, first + 5)
        s_early = self.slot(doctor_id, first + 0)
        s_held = self.slot(doctor_id, first + 3)
        s_booked = self.slot(doctor_id, first + 1)
        s_closed = self.slot(doctor_id, first + 4)
        s_cancelled = self.slot(doctor_id, first + 2)
        self.book(s_held["id"])
        self.confirm(self.book(s_booked["id"]))
        self.close_slot(s_closed["id"])
        self.cancel(self.book(s_cancelled["id"]))
        return [sv(s_early, "AVAILABLE"), sv(s_booked, "BOOKED"), sv(s_cancelled, "AVAILABLE"),
                sv(s_held, "HELD"), sv(s_closed, "CLOSED"), sv(s_late, "AVAILABLE")]

    # --- snapshots ---------------------------------------------------------------

    def test_subscribe_by_doctor_ids_sends_a_snapshot_of_exactly_those_doctors_slots_ordered_by_doctor_then_start(self):
        a = self.doctor("Dr. SnapA")
        b = self.doctor("Dr. SnapB")
        other = self.doctor("Dr. SnapOther")
        exp_a = self.make_history(a["id"])
        exp_b = self.make_history(b["id"])
        self.slot(other["id"], 0)
        before = self.current_seq()
        w = self.open_ws()
        self.subscribe(w, doctorIds=[b["id"], a["id"]])
        snap = self.expect_snapshot(w, exp_a + exp_b, min_as_of=before, max_as_of=self.current_seq())
        # the snapshot agrees with GET /slots for the non-closed slots
        listed = [s for d in (a, b) for s in self.ok(self.api.req("GET", f"/slots/{d['id']}"), 200)]
        self.assertEqual([s for s in snap["slots"] if s["status"] != "CLOSED"],
                         [s for s in listed if s["status"] != "CLOSED"], "snapshot vs GET /slots")
        # a live event after the snapshot has seq > asOfSeq
        s = self.slot(a["id"], 20)
        self.assertGreater(s["seq"], snap["asOfSeq"])
        self.expect_events(w, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None)])

    def test_subscribe_by_doctor_ids_of_a_doctor_without_slots_sends_an_empty_snapshot(self):
        a = self.doctor("Dr. Empty")
        w = self.open_ws()
        self.subscribe(w, doctorIds=[a["id"]])
        self.expect_snapshot(w, [], min_as_of=a["seq"])

    def test_subscribe_by_clinic_id_sends_a_snapshot_of_only_that_clinics_doctors_and_only_their_events(self):
        k = self.clinic("Ws Clinic")
        d1 = self.doctor("Dr. K1", clinic_id=k["id"])
        outsider = self.doctor("Dr. Clinic1")  # clinic 1
        d2 = self.doctor("Dr. K2", clinic_id=k["id"])
        exp2 = self.make_history(d2["id"])
        self.make_history(outsider["id"])
        exp1 = self.make_history(d1["id"], first=10)
        before = self.current_seq()
        w = self.open_ws()
        self.subscribe(w, clinicId=k["id"])
        self.expect_snapshot(w, exp1 + exp2, min_as_of=before, max_as_of=self.current_seq())
        # live: the outsider's events are not sent, the clinic's doctors' are
        s_out = self.slot(outsider["id"], 30)
        s2 = self.slot(d2["id"], 30)
        b2 = self.book(s2["id"])
        self.book(s_out["id"])
        s1 = self.slot(d1["id"], 30)
        self.expect_events(w, [(s2["seq"], "SlotCreated", sv(s2, "AVAILABLE"), None),
                               (b2["seq"], "SlotHeld", sv(s2, "HELD"), bv(b2, "PENDING")),
                               (s1["seq"], "SlotCreated", sv(s1, "AVAILABLE"), None)])

    # --- live events ---------------------------------------------------------------

    def test_booking_confirm_cancel_close_push_slot_and_booking_events_with_the_http_seqs_and_nothing_for_other_doctors(self):
        a = self.doctor("Dr. LiveA")
        b = self.doctor("Dr. LiveB")
        w = self.open_ws()
        self.subscribe(w, doctorIds=[a["id"]])
        snap = self.expect_snapshot(w, [])
        patient = "Zebulon Quixotic-Patient"
        s = self.slot(a["id"], 0)
        sb = self.slot(b["id"], 0)
        bk = self.book(s["id"], patient)
        self.book(sb["id"], patient)  # another doctor: no event
        c = self.confirm(bk)
        x = self.cancel(bk)
        cl = self.close_slot(s["id"])
        sentinel = self.slot(a["id"], 1)
        seqs = [s["seq"], bk["seq"], c["seq"], x["seq"], cl["seq"], sentinel["seq"]]
        self.assertEqual(seqs, sorted(seqs))
        self.assertGreater(s["seq"], snap["asOfSeq"])
        got = self.expect_events(w, [
            (s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None),
            (bk["seq"], "SlotHeld", sv(s, "HELD"), bv(bk, "PENDING")),
            (c["seq"], "BookingConfirmed", sv(s, "BOOKED"), bv(bk, "CONFIRMED")),
            (x["seq"], "BookingCancelled", sv(s, "AVAILABLE"), bv(bk, "CANCELLED")),
            (cl["seq"], "SlotClosed", sv(s, "CLOSED"), None),
            (sentinel["seq"], "SlotCreated", sv(sentinel, "AVAILABLE"), None),
        ])
        raw = "\n".join(t for d, t in w.transcript if d == "<")
        self.assertNotIn(patient, raw, "the feed must never carry a patientName")
        self.assertNotIn(bk["token"], raw, "the feed must never carry a booking token")
        for m in got:
            self.assertNotIn("patientName", json.dumps(m))
            self.assertNotIn("token", json.dumps(m))

    def test_two_concurrent_subscribers_both_get_every_event_in_the_same_order(self):
        k = self.clinic("Ws Twin Clinic")
        a = self.doctor("Dr. Twin", clinic_id=k["id"])
        w1 = self.open_ws()
        w2 = self.open_ws()
        self.subscribe(w1, doctorIds=[a["id"]])
        self.subscribe(w2, clinicId=k["id"])
        self.expect_snapshot(w1, [])
        self.expect_snapshot(w2, [])
        expected = []
        for i in range(5):
            s = self.slot(a["id"], i)
            expected.append((s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None))
            bk = self.book(s["id"])
            expected.append((bk["seq"], "SlotHeld", sv(s, "HELD"), bv(bk, "PENDING")))
            if i % 2 == 0:
                c = self.confirm(bk)
                expected.append((c["seq"], "BookingConfirmed", sv(s, "BOOKED"), bv(bk, "CONFIRMED")))
            else:
                x = self.cancel(bk)
                expected.append((x["seq"], "BookingCancelled", sv(s, "AVAILABLE"), bv(bk, "CANCELLED")))
        got1 = self.expect_events(w1, expected)
        got2 = self.expect_events(w2, expected)
        self.assertEqual(got1, got2)

    # --- catch-up and resync ---------------------------------------------------------

    def test_from_seq_after_a_disconnect_sends_exactly_the_missed_events_then_live_ones(self):
        a = self.doctor("Dr. Catch")
        b = self.doctor("Dr. CatchOther")
        s0 = self.slot(a["id"], 0)
        w = self.open_ws()
        self.subscribe(w, doctorIds=[a["id"]])
        snap = self.expect_snapshot(w, [sv(s0, "AVAILABLE")], min_as_of=s0["seq"])
        w.close()
        # writes while disconnected
        s1 = self.slot(a["id"], 1)
        bk1 = self.book(s1["id"])
        c1 = self.confirm(bk1)
        sb = self.slot(b["id"], 0)
        self.book(sb["id"])
        s2 = self.slot(a["id"], 2)
        bk2 = self.book(s2["id"])
        x2 = self.cancel(bk2)
        cl2 = self.close_slot(s2["id"])
        bk0 = self.book(s0["id"])
        missed = [(s1["seq"], "SlotCreated", sv(s1, "AVAILABLE"), None),
                  (bk1["seq"], "SlotHeld", sv(s1, "HELD"), bv(bk1, "PENDING")),
                  (c1["seq"], "BookingConfirmed", sv(s1, "BOOKED"), bv(bk1, "CONFIRMED")),
                  (s2["seq"], "SlotCreated", sv(s2, "AVAILABLE"), None),
                  (bk2["seq"], "SlotHeld", sv(s2, "HELD"), bv(bk2, "PENDING")),
                  (x2["seq"], "BookingCancelled", sv(s2, "AVAILABLE"), bv(bk2, "CANCELLED")),
                  (cl2["seq"], "SlotClosed", sv(s2, "CLOSED"), None),
                  (bk0["seq"], "SlotHeld", sv(s0, "HELD"), bv(bk0, "PENDING"))]
        w2 = self.open_ws()
        self.subscribe(w2, doctorIds=[a["id"]], fromSeq=snap["asOfSeq"] + 1)
        got = self.expect_events(w2, missed)
        self.assertEqual({m["seq"] for m in got}, {e[0] for e in missed},
                         "catch-up must be exactly the missed events of the subscription")
        live = self.slot(a["id"], 3)
        self.expect_events(w2, [(live["seq"], "SlotCreated", sv(live, "AVAILABLE"), None)])

        # fromSeq in the middle: from that event on (inclusive)
        w3 = self.open_ws()
        self.subscribe(w3, doctorIds=[a["id"]], fromSeq=c1["seq"])
        self.expect_events(w3, missed[2:] + [(live["seq"], "SlotCreated", sv(live, "AVAILABLE"), None)])

        # fromSeq 1: the whole history of the doctor, from the journal
        w4 = self.open_ws()
        self.subscribe(w4, doctorIds=[a["id"]], fromSeq=1)
        self.expect_events(w4, [(s0["seq"], "SlotCreated", sv(s0, "AVAILABLE"), None)] + missed
                           + [(live["seq"], "SlotCreated", sv(live, "AVAILABLE"), None)])

        # fromSeq = current seq + 1: nothing to catch up, then live ones
        w5 = self.open_ws()
        self.subscribe(w5, doctorIds=[a["id"]], fromSeq=self.current_seq() + 1)
        live2 = self.slot(a["id"], 4)
        self.expect_events(w5, [(live2["seq"], "SlotCreated", sv(live2, "AVAILABLE"), None)])
        for ww in (w2, w3, w4):
            self.expect_events(ww, [(live2["seq"], "SlotCreated", sv(live2, "AVAILABLE"), None)])

    def test_from_seq_catch_up_by_clinic_skips_other_clinics_events(self):
        k = self.clinic("Ws Catch Clinic")
        d = self.doctor("Dr. CatchK", clinic_id=k["id"])
        outsider = self.doctor("Dr. CatchOut")
        start = self.current_seq() + 1
        so = self.slot(outsider["id"], 0)
        s = self.slot(d["id"], 0)
        self.book(so["id"])
        bk = self.book(s["id"])
        w = self.open_ws()
        self.subscribe(w, clinicId=k["id"], fromSeq=start)
        self.expect_events(w, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None),
                               (bk["seq"], "SlotHeld", sv(s, "HELD"), bv(bk, "PENDING"))])
        live = self.slot(d["id"], 1)
        self.expect_events(w, [(live["seq"], "SlotCreated", sv(live, "AVAILABLE"), None)])

    def test_from_seq_0_or_beyond_the_current_seq_gives_resync_required_then_a_snapshot(self):
        a = self.doctor("Dr. Resync")
        exp = self.make_history(a["id"])
        for from_seq in (0, "next+1", "next+1000"):
            with self.subTest(fromSeq=from_seq):
                cur = self.current_seq()
                fs = from_seq if isinstance(from_seq, int) else cur + int(from_seq.split("+")[1]) + 1
                w = self.open_ws()
                self.subscribe(w, doctorIds=[a["id"]], fromSeq=fs)
                m = w.recv_json(what="resync_required")
                self.assertEqual(m.get("type"), "resync_required", f"fromSeq={fs} (current seq {cur}){w.tail()}")
                self.assertEqual(set(m), {"type", "reason"}, w.tail())
                self.assertTrue(isinstance(m["reason"], str) and m["reason"].strip(), w.tail())
                snap = self.expect_snapshot(w, exp, min_as_of=cur, max_as_of=self.current_seq())
                s = self.slot(a["id"], 40 + len(exp))
                exp.append(sv(s, "AVAILABLE"))
                self.assertGreater(s["seq"], snap["asOfSeq"])
                self.expect_events(w, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None)])

    # --- client messages ---------------------------------------------------------------

    def test_invalid_messages_get_an_invalid_message_error_and_the_connection_keeps_working(self):
        a = self.doctor("Dr. Invalid")
        w = self.open_ws()
        for bad in ("{not json", "[1,2]", "42", '"subscribe"', "{}", '{"op":"dance"}', '{"op":42}',
                    '{"op":"subscribe","doctorIds":"abc"}'):
            with self.subTest(message=bad):
                w.send_text(bad)
                self.expect_error(w, "invalid_message")
        self.subscribe(w, doctorIds=[a["id"]])
        self.expect_snapshot(w, [])
        self.subscribe(w, doctorIds=[a["id"]])
        self.expect_error(w, "already_subscribed")
        w.send_text('{"op":"dance"}')
        self.expect_error(w, "invalid_message")
        w.send_text("{not json")
        self.expect_error(w, "invalid_message")
        s = self.slot(a["id"], 0)
        self.expect_events(w, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None)])

    def test_a_second_subscribe_gets_already_subscribed_and_does_not_change_the_subscription(self):
        a = self.doctor("Dr. First")
        b = self.doctor("Dr. Second")
        w = self.open_ws()
        self.subscribe(w, doctorIds=[a["id"]])
        self.expect_snapshot(w, [])
        self.subscribe(w, doctorIds=[b["id"]])
        self.expect_error(w, "already_subscribed")
        sb = self.slot(b["id"], 0)
        sa = self.slot(a["id"], 0)
        self.assertLess(sb["seq"], sa["seq"])
        # the next message is a's event: b's (earlier seq) was not sent
        self.expect_events(w, [(sa["seq"], "SlotCreated", sv(sa, "AVAILABLE"), None)])

    def test_a_ping_gets_a_pong_with_the_same_payload(self):
        w = self.open_ws()
        w.send_frame(OP_PING, b"are-you-there-42")
        deadline = time.monotonic() + WAIT
        while not w.pongs and time.monotonic() < deadline:
            fin, op, payload = w.recv_frame(max(0.0, deadline - time.monotonic()))
            w._note("<", f"op={op:#x} {payload[:200]!r}")
            if op == OP_PONG:
                w.pongs.append(payload)
            else:
                self.fail(f"want a pong, got opcode {op:#x}{w.tail()}")
        self.assertEqual(w.pongs, [b"are-you-there-42"], w.tail())
        a = self.doctor("Dr. Ping")
        self.subscribe(w, doctorIds=[a["id"]])
        self.expect_snapshot(w, [])

    def test_a_subscribe_fragmented_into_text_and_continuation_frames_with_a_ping_between_is_understood(self):
        a = self.doctor("Dr. Fragment")
        s = self.slot(a["id"], 0)
        w = self.open_ws()
        text = json.dumps({"op": "subscribe", "doctorIds": [a["id"]]})
        w.send_frame(OP_TEXT, text[:5], fin=False)
        w.send_frame(OP_CONT, text[5:12], fin=False)
        w.send_frame(OP_PING, b"mid")
        w.send_frame(OP_CONT, text[12:], fin=True)
        self.expect_snapshot(w, [sv(s, "AVAILABLE")])
        self.assertEqual(w.pongs, [b"mid"], f"the ping between fragments must be answered{w.tail()}")

    def test_a_client_close_frame_gets_a_close_frame_back_and_the_connection_ends(self):
        w = self.open_ws()
        w.send_close(1000, "bye")
        m = w.recv_message()
        self.assertEqual(m[0], "close", f"want a close frame back{w.tail()}")
        self.assertIn(m[1], (1000, None), f"close code of the answer{w.tail()}")
        with self.assertRaises(WsClosed, msg="the TCP connection must end after the close handshake"):
            w.recv_frame(WAIT)

    # --- origin --------------------------------------------------------------------

    def test_no_origin_header_is_allowed(self):
        w = self.ws()
        self.assertEqual(w.status, 101, w.head)

    def test_a_foreign_origin_is_403_forbidden_origin_without_upgrade(self):
        p = self.server.port
        for origin in ("http://evil.example", "null", f"https://127.0.0.1:{p}.evil.example",
                       f"http://127.0.0.1.evil.example:{p}", "ftp://127.0.0.1", f"http://[::2]:{p}"):
            with self.subTest(origin=origin):
                w = self.ws(origin=origin)
                self.assertEqual(w.status, 403, f"Origin {origin!r}, Host 127.0.0.1:{p}:\n{w.head}\n{w.body!r}")
                self.assertNotIn("sec-websocket-accept", w.headers, w.head)
                self.assertIn("application/json", w.headers.get("content-type", ""), w.head)
                body = json.loads(w.body.decode("utf-8"))
                self.assertEqual(body["error"]["code"], "forbidden_origin", w.body)
                self.assertTrue(isinstance(body["error"].get("message"), str) and body["error"]["message"].strip(),
                                w.body)

    def test_a_rebound_name_is_refused_even_when_origin_and_host_agree(self):
        # DNS rebinding: evil.example resolves to 127.0.0.1, so the browser sends
        # Host: evil.example:P and Origin: http://evil.example:P — "same origin", not loopback.
        p = self.server.port
        w = self.ws(origin=f"http://evil.example:{p}", host=f"evil.example:{p}")
        self.assertEqual(w.status, 403, f"{w.head}\n{w.body!r}")
        self.assertEqual(json.loads(w.body.decode("utf-8"))["error"]["code"], "forbidden_origin")

    def test_loopback_origins_are_allowed_without_allowed_origins(self):
        p = self.server.port
        for host, origin in ((f"127.0.0.1:{p}", f"http://127.0.0.1:{p}"), (f"localhost:{p}", f"http://localhost:{p}"),
                             (f"127.0.0.1:{p}", "http://localhost:3000"), (f"[::1]:{p}", f"http://[::1]:{p}"),
                             (f"127.0.0.1:{p}", f"https://127.0.0.1:{p}")):
            with self.subTest(host=host, origin=origin):
                w = self.ws(origin=origin, host=host)
                self.assertEqual(w.status, 101, f"Origin {origin!r}, Host {host!r}:\n{w.head}\n{w.body!r}")
                a = self.doctor("Dr. Loopback")
                self.subscribe(w, doctorIds=[a["id"]])
                self.expect_snapshot(w, [])


class AllowedOriginsTest(WsCase):
    """--allowed-origins: exactly the listed Origins upgrade."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(extra_args=["--allowed-origins", "http://localhost:3000,https://app.example"])

    def test_a_listed_origin_upgrades_with_101_and_subscribes(self):
        for origin in ("http://localhost:3000", "https://app.example"):
            with self.subTest(origin=origin):
                w = self.ws(origin=origin)
                self.assertEqual(w.status, 101, f"Origin {origin!r}:\n{w.head}\n{w.body!r}")
                a = self.doctor("Dr. Allowed")
                self.subscribe(w, doctorIds=[a["id"]])
                self.expect_snapshot(w, [])

    def test_an_unlisted_origin_is_403_forbidden_origin(self):
        p = self.server.port
        for origin in ("http://localhost:3001", "http://localhost:3000.evil.example", "https://localhost:3000",
                       "http://evil.example", f"http://127.0.0.1:{p}", "http://app.example"):
            with self.subTest(origin=origin):
                w = self.ws(origin=origin)
                self.assertEqual(w.status, 403, f"Origin {origin!r} with --allowed-origins set "
                                                f"(loopback counts only when the flag is empty; the scheme "
                                                f"must match too):\n{w.head}\n{w.body!r}")
                self.assertEqual(json.loads(w.body.decode("utf-8"))["error"]["code"], "forbidden_origin", w.body)

    def test_no_origin_header_is_still_allowed(self):
        self.assertEqual(self.ws().status, 101)


class FeedConnectionCapTest(WsCase):
    """--max-feed-connections-per-client 2: a client (peer address) may have 2 feeds open; a
    third is 429 too_many_feed_connections without an upgrade; others are not affected; a
    closed feed frees its place. /metrics shows the open feeds."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(extra_args=["--max-feed-connections-per-client", "2"])

    def test_a_third_feed_of_one_client_is_429_until_one_closes(self):
        a = self.doctor("Dr. Capped")
        first = self.open_ws(source="127.0.0.2")
        second = self.open_ws(source="127.0.0.2")
        self.assertEqual(self.metric("slotd_ws_connections"), 2)
        third = self.ws(source="127.0.0.2", extra_headers={"X-Client-Key": "someone-else"})
        self.assertEqual(third.status, 429, f"{third.head}\n{third.body!r}")
        self.assertNotIn("sec-websocket-accept", third.headers, third.head)
        self.assertEqual(json.loads(third.body)["error"]["code"], "too_many_feed_connections")
        other = self.open_ws(source="127.0.0.3")  # another client
        self.subscribe(other, doctorIds=[a["id"]])
        self.expect_snapshot(other, [])
        self.assertEqual(self.metric("slotd_ws_connections"), 3)
        first.close()
        deadline = time.monotonic() + 10
        while True:
            w = self.ws(source="127.0.0.2")
            if w.status == 101:
                break
            self.assertEqual(w.status, 429, w.head)
            self.assertLess(time.monotonic(), deadline, "a closed feed did not free its place within 10 s")
            time.sleep(0.1)
        self.subscribe(w, doctorIds=[a["id"]])
        self.expect_snapshot(w, [])
        s = self.slot(a["id"], 0)
        for ww in (w, other):
            self.expect_events(ww, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None)])
        second.close()


class WriteCoalescingTest(WsCase):
    """A batch's messages for one subscriber leave in one socket write, not one write each
    (slotd_ws_writes_total against slotd_ws_messages_total); the raw client checks every
    frame of the shared buffer."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server()

    def wait_metric(self, name, want):
        deadline = time.monotonic() + 10
        while (got := self.metric(name)) < want:
            self.assertLess(time.monotonic(), deadline, f"{name} stayed at {got}, want {want}")
            time.sleep(0.05)
        return got

    def test_the_twenty_events_of_one_bulk_create_reach_a_subscriber_in_one_socket_write(self):
        a = self.doctor("Dr. Coalesced")
        w = self.open_ws()
        self.subscribe(w, doctorIds=[a["id"]])
        self.expect_snapshot(w, [])
        self.assertEqual(self.wait_metric("slotd_ws_messages_total", 1), 1)
        writes = self.metric("slotd_ws_writes_total")
        created = self.slots(a["id"], 0, 20)  # one command: 20 SlotCreated in one durable batch
        self.expect_events(w, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None) for s in created])
        self.assertEqual(self.wait_metric("slotd_ws_messages_total", 21), 21)
        self.assertEqual(self.metric("slotd_ws_writes_total") - writes, 1,
                         "the 20 messages of one batch must go out in one socket write")


class ExpiryTest(WsCase):
    """--hold-ttl 1: an unconfirmed hold expires and the feed says so."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=1)

    def test_an_expired_hold_pushes_booking_expired_with_the_journal_seq(self):
        a = self.doctor("Dr. Expire")
        s = self.slot(a["id"], 0)
        w = self.open_ws()
        self.subscribe(w, doctorIds=[a["id"]])
        self.expect_snapshot(w, [sv(s, "AVAILABLE")])
        bk = self.book(s["id"])
        self.expect_events(w, [(bk["seq"], "SlotHeld", sv(s, "HELD"), bv(bk, "PENDING"))])
        m = w.recv_json(timeout=8, what="BookingExpired (hold TTL 1 s)")
        self.assertGreater(m.get("seq", 0), bk["seq"], w.tail())
        self.check_event(m, w, m["seq"], "BookingExpired", sv(s, "AVAILABLE"), bv(bk, "FAILED"))
        ev = self.ok(self.api.req("GET", f"/events?fromSeq={m['seq']}&limit=1", admin=True), 200)["events"]
        self.assertEqual([(e["seq"], e["type"]) for e in ev], [(m["seq"], "BookingExpired")],
                         "the feed's seq must be the journal's seq of the BookingExpired event")
        view = self.ok(self.api.req("GET", f"/booking/{bk['id']}"), 200)
        self.assertEqual(view["status"], "FAILED")


class SlowConsumerTest(WsCase):
    """--ws-queue-bytes 65536: a client that stops reading is closed (1008), the others go on.

    The flood comes in small writes (6 slots per POST, ~1 KB of events each), so that the
    slow client overflows because it does not read, not because one write is larger than
    the limit: ~48,000 events (~7.5 MB) is well beyond what the kernel's socket buffers
    hold on loopback plus the 64 KiB queue."""

    PER_POST = 6
    POSTS = 8000
    FLOOD_SECONDS = 12  # bound on the flood, whatever the machine's speed

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(extra_args=["--ws-queue-bytes", "65536"])

    def test_a_client_that_stops_reading_is_closed_with_1008_while_another_subscriber_keeps_receiving(self):
        flood = self.doctor("Dr. Flood")
        calm = self.doctor("Dr. Calm")
        slow = self.open_ws(rcvbuf=4096)
        self.subscribe(slow, doctorIds=[flood["id"]])
        self.expect_snapshot(slow, [])
        calm_ws = self.open_ws()
        self.subscribe(calm_ws, doctorIds=[calm["id"]])
        self.expect_snapshot(calm_ws, [])

        flood_seqs = []
        conn = self.api.connect(timeout=10)
        t0 = time.monotonic()
        try:
            for k in range(self.POSTS):
                if time.monotonic() - t0 > self.FLOOD_SECONDS and len(flood_seqs) > 30000:
                    break
                body = {"doctorId": flood["id"],
                        "slots": [dict(zip(("start", "end"), slot_times(k * self.PER_POST + j, 5)))
                                  for j in range(self.PER_POST)]}
                arr = self.ok(self.api.req("POST", "/slots", body, admin=True, conn=conn), 201)
                flood_seqs.extend(s["seq"] for s in arr)
                if k % 2000 == 0:  # meanwhile another doctor's subscriber gets its events
                    s = self.slot(calm["id"], k // 2000)
                    self.expect_events(calm_ws, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None)])
        finally:
            conn.close()
        flood_s = time.monotonic() - t0
        self.assertEqual(self.ok(self.api.healthz(), 200)["status"], "ok")

        # now read the slow one: events (in seq order), then a close frame 1008 "slow..." or the end
        n, prev, outcome = 0, 0, None
        deadline = time.monotonic() + 20
        while outcome is None:
            if time.monotonic() > deadline:
                self.fail(f"still reading the slow client after 20 s ({n} events){slow.tail(5)}")
            try:
                m = slow.recv_message(timeout=5)
            except WsTimeout:
                self.fail(f"the slow client was not closed: after {n} events (last seq {prev}, the flood's last "
                          f"{flood_seqs[-1]}) nothing for 5 s and no close frame{slow.tail(5)}")
            except WsClosed:
                outcome = ("eof",)
                break
            if m[0] == "close":
                outcome = m
                break
            self.assertEqual(m[0], "text", slow.tail(5))
            ev = json.loads(m[1])
            self.assertEqual(ev.get("type"), "slot", slow.tail(5))
            self.assertGreater(ev["seq"], prev, f"events must come in seq order{slow.tail(5)}")
            prev = ev["seq"]
            n += 1
        self.assertLess(prev, flood_seqs[-1],
                        f"the slow client got every event ({n}, up to seq {prev}): it was never closed")
        if outcome[0] == "close":
            self.assertEqual(outcome[1], 1008, f"close code for a slow consumer{slow.tail(5)}")
            self.assertIn("slow", outcome[2].lower(), f"close reason for a slow consumer{slow.tail(5)}")
            try:
                slow.recv_frame(WAIT)
                self.fail(f"a frame after the close frame{slow.tail(5)}")
            except WsClosed:
                pass
        print(f"\n  flood: {len(flood_seqs)} events in {flood_s:.1f}s; slow client: {n} events read, then "
              f"{outcome}", flush=True)

        # the server and the other clients keep working
        s = self.slot(calm["id"], 100)
        self.expect_events(calm_ws, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None)])
        fresh = self.open_ws()
        self.subscribe(fresh, doctorIds=[calm["id"]], fromSeq=s["seq"])
        self.expect_events(fresh, [(s["seq"], "SlotCreated", sv(s, "AVAILABLE"), None)])
        s2 = self.slot(calm["id"], 101)
        for w in (calm_ws, fresh):
            self.expect_events(w, [(s2["seq"], "SlotCreated", sv(s2, "AVAILABLE"), None)])
        self.assertEqual(self.ok(self.api.healthz(), 200)["status"], "ok")


# =============================================================================
FEED_STATUS_AFTER = {"SlotCreated": ("AVAILABLE", None), "SlotClosed": ("CLOSED", None),
                     "SlotHeld": ("HELD", "PENDING"), "BookingConfirmed": ("BOOKED", "CONFIRMED"),
                     "BookingExpired": ("AVAILABLE", "FAILED"), "BookingCancelled": ("AVAILABLE", "CANCELLED")}


class CatchUpRaceTest(WsCase):
    """fromSeq resumes racing a booking flood (--ws-queue-bytes 4096, so that hand-overs to
    live overflow and re-read the journal, and slow readers are closed and resume): every
    client sees every event of its subscription exactly once, in seq order, without gaps,
    each as the journal has it."""

    FLOOD_S = 8            # bound on the write load
    FLOOD_THREADS = 4
    RESUMERS = 8

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(hold_ttl=600, extra_args=["--ws-queue-bytes", "4096"])

    def journal(self):
        events, from_seq = [], 1
        for _ in range(1000):
            js = self.ok(self.api.req("GET", f"/events?fromSeq={from_seq}&limit=10000", admin=True), 200)
            events += js["events"]
            if not js["events"] or js["nextSeq"] > js["lastSeq"]:
                return events
            from_seq = js["nextSeq"]
        self.fail("the journal did not end within 1,000 pages")

    def expected_feed(self, events):
        """[(seq, event, slot id, doctor id, clinic id, booking id, slot status, booking status)]."""
        doctor_clinic, slot_doctor, out = {}, {}, []
        for e in events:
            t, d = e["type"], e["data"]
            if t == "DoctorAdded":
                doctor_clinic[d["doctorId"]] = d["clinicId"]
            if t == "SlotCreated":
                slot_doctor[d["slotId"]] = d["doctorId"]
            if t in FEED_STATUS_AFTER:
                doc = slot_doctor[d["slotId"]]
                slot_status, booking_status = FEED_STATUS_AFTER[t]
                out.append((e["seq"], t, d["slotId"], doc, doctor_clinic[doc], d.get("bookingId"), slot_status,
                            booking_status))
        return out

    @staticmethod
    def as_feed(m):
        b = m.get("booking")
        return (m["seq"], m["event"], m["slot"]["id"], m["slot"]["doctorId"], None, b["id"] if b else None,
                m["slot"]["status"], b["status"] if b else None)

    def test_many_from_seq_resumes_during_a_booking_flood_see_every_event_exactly_once_in_order(self):
        k2 = self.clinic("Race Clinic")
        a = self.doctor("Dr. Race A", clinic_id=k2["id"])
        b = self.doctor("Dr. Race B", clinic_id=k2["id"])
        x = self.doctor("Dr. Race X")
        slots = {d["id"]: [s["id"] for s in self.slots(d["id"], 0, 400, minutes=15)] for d in (a, b, x)}
        start_seq = self.current_seq() + 1
        subscriptions = [({"doctorIds": [a["id"]]}, lambda e: e[3] == a["id"]),
                         ({"doctorIds": [b["id"]]}, lambda e: e[3] == b["id"]),
                         ({"doctorIds": [a["id"], b["id"]]}, lambda e: e[3] in (a["id"], b["id"])),
                         ({"clinicId": k2["id"]}, lambda e: e[4] == k2["id"]),
                         ({"clinicId": 1}, lambda e: e[4] == 1),
                         ({"doctorIds": [x["id"]]}, lambda e: e[3] == x["id"]),
                         ({"doctorIds": [a["id"], x["id"]]}, lambda e: e[3] in (a["id"], x["id"])),
                         ({"clinicId": k2["id"]}, lambda e: e[4] == k2["id"])]
        flood_done = threading.Event()
        problems = []
        lock = threading.Lock()

        def flood(t):
            rnd = random.Random(t)
            conn = self.api.connect(timeout=30)
            mine = [s for d in (a, b, x) for s in slots[d["id"]][t::self.FLOOD_THREADS]]
            rnd.shuffle(mine)
            t_end = time.monotonic() + self.FLOOD_S
            try:
                for slot in mine:
                    if time.monotonic() > t_end:
                        return
                    r = self.api.req("POST", "/booking", {"slotId": slot, "patientName": f"Race {t}"}, conn=conn)
                    if r.status != 201:
                        with lock:
                            problems.append(f"flood {t}: {r.describe()}")
                        return
                    bk = r.json
                    what = rnd.random()
                    if what < 0.4:
                        r = self.api.req("POST", f"/booking/{bk['id']}/confirm", token=bk["token"], conn=conn)
                    elif what < 0.7:
                        r = self.api.req("POST", f"/booking/{bk['id']}/cancel", token=bk["token"], conn=conn)
                    if r.status not in (200, 201):
                        with lock:
                            problems.append(f"flood {t}: {r.describe()}")
                        return
            finally:
                conn.close()

        received = [[] for _ in subscriptions]
        resumes = [0] * len(subscriptions)
        slow_closes = [0] * len(subscriptions)

        def resumer(i):
            rnd = random.Random(100 + i)
            sub, _ = subscriptions[i]
            next_seq = start_seq
            t_end = time.monotonic() + self.FLOOD_S + 30
            for _round in range(10_000):
                if time.monotonic() > t_end or flood_done.is_set():
                    return
                w = None
                try:
                    w = Ws(self.server.port, timeout=10, rcvbuf=4096 if i % 2 else None)
                    if w.status != 101:
                        with lock:
                            problems.append(f"resumer {i}: handshake {w.status}")
                        return
                    w.send_json(dict(sub, op="subscribe", fromSeq=next_seq))
                    resumes[i] += 1
                    # Even ones read a few events and go. Odd ones read their catch-up slowly (the
                    # round lasts while batches keep arriving, so the hand-over overflows and
                    # re-reads) and then stay on well into live events.
                    count = rnd.randrange(1, 80) if i % 2 == 0 else 100_000
                    stay_until = time.monotonic() + rnd.uniform(1.5, 3.0)
                    for n in range(count):
                        if i % 2 and n < 60:
                            time.sleep(0.01)
                        if i % 2 and time.monotonic() > stay_until:
                            break
                        m = w.recv_message(timeout=2 if flood_done.is_set() else 10)
                        if m[0] == "close":
                            slow_closes[i] += 1
                            break
                        msg = json.loads(m[1])
                        if msg.get("type") not in ("slot", "booking"):
                            with lock:
                                problems.append(f"resumer {i}: unexpected {m[1][:200]}")
                            return
                        received[i].append(self.as_feed(msg))
                        next_seq = msg["seq"] + 1
                except WsTimeout:
                    pass  # nothing more for now: resume later
                except WsClosed:
                    slow_closes[i] += 1
                finally:
                    if w is not None:
                        w.close()
                time.sleep(rnd.random() * 0.5)  # away for a while: fall behind

        snapshots = []  # (asOfSeq, the events read after it) of clients that start with a snapshot

        def snapshotter():
            rnd = random.Random(7)
            for _round in range(200):
                if flood_done.is_set():
                    return
                w = None
                try:
                    w = Ws(self.server.port, timeout=10)
                    w.send_json({"op": "subscribe", "clinicId": k2["id"]})
                    snap = json.loads(w.recv_message(timeout=10)[1])
                    events = []
                    for _ in range(rnd.randrange(1, 40)):
                        m = w.recv_message(timeout=3)
                        if m[0] != "text":
                            break
                        events.append(self.as_feed(json.loads(m[1])))
                    with lock:
                        snapshots.append((snap["asOfSeq"], events))
                except (WsTimeout, WsClosed):
                    pass
                finally:
                    if w is not None:
                        w.close()

        def bulk_creator():
            # 20 events per request, so that batches arrive faster than a slow reader's
            # catch-up round reads them (the hand-over then overflows and re-reads)
            conn = self.api.connect(timeout=30)
            t_end = time.monotonic() + self.FLOOD_S
            try:
                for k in range(1000):
                    if time.monotonic() > t_end:
                        return
                    d = (a, b, x)[k % 3]
                    body = {"doctorId": d["id"], "slots": [dict(zip(("start", "end"), slot_times(1000 + k * 20 + j, 15)))
                                                            for j in range(20)]}
                    r = self.api.req("POST", "/slots", body, admin=True, conn=conn)
                    if r.status != 201:
                        with lock:
                            problems.append(f"bulk: {r.describe()}")
                        return
            finally:
                conn.close()

        floods = [threading.Thread(target=flood, args=(t,), daemon=True) for t in range(self.FLOOD_THREADS)]
        floods.append(threading.Thread(target=bulk_creator, daemon=True))
        others = [threading.Thread(target=snapshotter, daemon=True)]
        readers = [threading.Thread(target=resumer, args=(i,), daemon=True) for i in range(len(subscriptions))]
        for t in floods + others + readers:
            t.start()
        for t in floods:
            t.join(self.FLOOD_S + 60)
        flood_done.set()
        for t in others + readers:
            t.join(60)
        self.assertFalse([t for t in floods + others + readers if t.is_alive()], "threads hung")
        self.assertEqual(problems, [])
        # one last resume each, up to the end of the journal
        expected_all = [e for e in self.expected_feed(self.journal()) if e[0] >= start_seq]

        def strip(e):  # the feed does not name the clinic
            return e[:4] + e[5:]

        for i, (sub, wanted) in enumerate(subscriptions):
            expected = [strip(e) for e in expected_all if wanted(e)]
            got = [strip(e) for e in received[i]]
            if expected and (not got or got[-1][0] < expected[-1][0]):
                w = self.open_ws()
                self.subscribe(w, **sub, fromSeq=got[-1][0] + 1 if got else start_seq)
                for _ in range(len(expected) + 1):
                    got.append(strip(self.as_feed(w.recv_json(timeout=10, what=f"resumer {i}: the rest"))))
                    if got[-1][0] >= expected[-1][0]:
                        break
            first_diff = next((k for k, (g, e) in enumerate(zip(got, expected)) if g != e), min(len(got), len(expected)))
            self.assertTrue(got == expected,
                             f"resumer {i} {sub} ({resumes[i]} resumes, {slow_closes[i]} closed by slotd): "
                             f"{len(got)} events, want {len(expected)}; first difference at {first_diff}: "
                             f"got {got[first_diff:first_diff + 3]} want {expected[first_diff:first_diff + 3]}")
        for i, (as_of, events) in enumerate(snapshots):
            expected = [strip(e) for e in expected_all if e[0] > as_of and e[4] == k2["id"]][:len(events)]
            self.assertTrue([strip(e) for e in events] == expected,
                            f"snapshot client {i}: the events after asOfSeq {as_of}: got {events[:3]}..., "
                            f"want {expected[:3]}...")
        print(f"\n  {len(expected_all)} feed events; resumes per client {resumes}; closed by slotd {slow_closes}; "
              f"{len(snapshots)} snapshots", flush=True)


# =============================================================================
def main():
    return run_main(sys.modules[__name__], "ws")


if __name__ == "__main__":
    sys.exit(main())
