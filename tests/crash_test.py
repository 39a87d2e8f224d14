#!/usr/bin/env python3
"""Seeded kill -9 recovery test of slotd: README guarantees 2 (no slot is ever held or booked
twice) and 3 (recovery rebuilds exactly the state that was acknowledged, after kill -9 at any
moment).

One data dir for the whole run, R rounds. Round 0 first creates doctors and slots (admin).
Every round starts slotd on that dir, runs client threads that book random slots (most
collide → 409), confirm and cancel their own bookings with the booking token, cancel
orphaned bookings with the admin token, close slots and create new ones, and kills slotd
with SIGKILL at a random moment while they are still sending. One round runs with
--hold-ttl 1 and is killed only after BookingExpired events have been seen in /events (they
must survive). The last round stops slotd with SIGTERM instead and wants exit 0; there no
request left without a reply may be in the journal (SIGTERM replies to all it executed).

After every restart the journal (GET /events) is replayed here by a model of the engine and
checked: gap-free seqs from 1, no SlotHeld on a slot that is not AVAILABLE (double hold), ids
dense, every event asked for by some request that was acknowledged or got no reply (unique
patient names and slot times make each request recognisable; a rejected request must leave
nothing), and the journal read after the previous restart is an unchanged prefix. The
server's view (/admin/stats, /slots/:doctorId for every doctor, /booking/:id for every
booking, /healthz) must equal the replay, every HELD/BOOKED slot must be referenced by
exactly one PENDING/CONFIRMED booking, and everything acknowledged must be there: bookings
with the same slot, name and times, SlotHeld at the acknowledged seq, statuses consistent
with the acknowledged confirms/cancels, closed slots CLOSED, created slots present, and
/healthz seq >= every acknowledged seq.

Run: python3 tests/crash_test.py --slotd build/release/api/slotd [--seed N] [--rounds R]
Prints `crash: N passed, M failed` last (N, M count rounds) and exits non-zero on failure.
Standard library only; every loop is bounded in count and time; only 127.0.0.1.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_util import BASE_MS, MINUTE_MS, Server, iso, parse_iso  # noqa: E402

DEFAULT_SEED = 20310106
ADMIN_TOKEN = "crash-test-admin-token-0123456789"
HOLD_TTL = 3600          # seconds; nothing expires in the middle of a normal round
SHORT_TTL = 1            # the expiry round
DOCTORS = 3
INITIAL_SLOTS = 14       # per doctor
THREADS = 7
MAX_OPS_PER_THREAD = 5000
REQ_TIMEOUT = 15         # seconds per request (ASan/TSan builds are slow)
RUN_MIN, RUN_MAX = 0.2, 1.5  # seconds of client traffic before the kill
EXPIRY_WAIT_MAX = 8.0    # seconds to wait for a BookingExpired in the expiry round
VERIFY_ATTEMPTS = 6
MAX_REPORTED = 40

PENDING, CONFIRMED, CANCELLED, FAILED = "PENDING", "CONFIRMED", "CANCELLED", "FAILED"
AVAILABLE, HELD, BOOKED, CLOSED = "AVAILABLE", "HELD", "BOOKED", "CLOSED"

# outcomes of one request
ACKED = "acked"              # 2xx: it happened and is durable
REJECTED = "rejected"        # a non-2xx reply: it did not happen
NOT_SENT = "not_sent"        # could not connect: it did not happen
UNKNOWN = "unknown"          # no reply (in flight at the kill): may or may not have happened
HAPPENED = "happened"        # was UNKNOWN; the journal after the restart has it
LOST = "lost"                # was UNKNOWN; the journal after the restart does not have it
MAY_BE_IN_JOURNAL = (ACKED, UNKNOWN, HAPPENED)


def now_ms():
    return int(time.time() * 1000)


class Booking:
    """What the test knows about one booking."""

    def __init__(self, bid, slot_id, name, token, owner, created_at, expires_at, seq, known):
        self.id = bid
        self.slot_id = slot_id
        self.name = name
        self.token = token          # None for an orphan (created by a request with no reply)
        self.owner = owner          # thread index that may confirm/cancel it
        self.created_at = created_at
        self.expires_at = expires_at
        self.expires_ms = parse_iso(expires_at)
        self.seq = seq              # the acknowledged seq of its SlotHeld, None for an orphan
        self.known = known          # the status it certainly has (acked or seen after a restart)
        self.unknown_op = None      # "confirm"/"cancel" sent without a reply since then
        self.ops = []               # [{"op", "outcome", "seq"}]
        self.dead = False           # owner stops touching it (expired, failed)


class Ctx:
    """The model: everything acknowledged, every attempt and its outcome. One lock."""

    def __init__(self, seed, rounds):
        self.seed = seed
        self.rounds = rounds
        self.lock = threading.Lock()
        self.doctors = []
        self.slots = {}             # id -> {"doctorId","start","end"} (acked or seen)
        self.slot_pool = []         # ids to pick from (not known CLOSED)
        self.closes = {}            # slot id -> [{"outcome","seq"}]
        self.creates = {}           # (doctorId, start, end) -> attempt {"outcome","spans","ids","seqs"}
        self.book_attempts = {}     # patientName -> {"outcome","slot","id","seq"}
        self.bookings = {}          # id -> Booking
        self.by_owner = {}          # client thread index -> [Booking]
        self.next_index = 1000      # slot time index for created slots (unique, never overlapping)
        self.max_acked_seq = 0
        self.journal = []           # events read after the previous restart
        self.must_keep = {}         # seq -> event seen in /events before a kill
        self.errors = []            # discrepancies seen by the clients during a round
        self.killing = threading.Event()
        self.stats = {}

    def err(self, msg):
        with self.lock:
            self.errors.append(msg)

    def count(self, key):
        self.stats[key] = self.stats.get(key, 0) + 1

    def ack_seq(self, seq):
        if isinstance(seq, int) and seq > self.max_acked_seq:
            self.max_acked_seq = seq


# ----------------------------------------------------------------------------- HTTP

def headers_for(admin=False, token=None, body=False):
    h = {}
    if body:
        h["Content-Type"] = "application/json"
    if admin:
        h["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    if token is not None:
        h["X-Booking-Token"] = token
    return h


def call(port, method, path, body=None, admin=False, timeout=REQ_TIMEOUT, conn=None):
    """One request; returns (status, parsed JSON or None, raw body)."""
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data, headers=headers_for(admin=admin, body=data is not None))
        r = c.getresponse()
        raw = r.read()
        try:
            js = json.loads(raw) if raw else None
        except ValueError:
            js = None
        return r.status, js, raw
    finally:
        if own:
            c.close()


def fetch_many(port, paths, admin=True, threads=4):
    """GET every path with a few keep-alive connections; {path: (status, json)}."""
    out = {}
    lock = threading.Lock()
    chunks = [paths[i::threads] for i in range(threads)]
    errors = []

    def run(chunk):
        conn = None
        try:
            for p in chunk:
                for _attempt in range(2):
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQ_TIMEOUT)
                    try:
                        st, js, _raw = call(port, "GET", p, admin=admin, conn=conn)
                        with lock:
                            out[p] = (st, js)
                        break
                    except (OSError, http.client.HTTPException) as e:
                        conn.close()
                        conn = None
                        if _attempt == 1:
                            with lock:
                                errors.append(f"GET {p}: {e!r}")
        finally:
            if conn is not None:
                conn.close()

    ts = [threading.Thread(target=run, args=(c,), daemon=True) for c in chunks if c]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out, errors


def slot_span(index, minutes=30):
    start = BASE_MS + index * minutes * MINUTE_MS
    return iso(start), iso(start + minutes * MINUTE_MS)


# ----------------------------------------------------------------------------- clients

class Op:
    """One request of a client and what to do with its outcome."""

    def __init__(self, method, path, body=None, admin=False, token=None):
        self.method, self.path, self.body, self.admin, self.token = method, path, body, admin, token

    def done(self, status, js, raw):  # a reply came
        raise NotImplementedError

    def no_reply(self, outcome):  # UNKNOWN or NOT_SENT
        raise NotImplementedError


def code_of(js):
    if isinstance(js, dict) and isinstance(js.get("error"), dict):
        return js["error"].get("code")
    return None


class Client:
    def __init__(self, ctx, tid, rnd, port, deadline):
        self.ctx, self.tid, self.rnd, self.port, self.deadline = ctx, tid, rnd, port, deadline
        self.rng = random.Random(f"{ctx.seed}/{rnd}/{tid}")
        self.i = 0

    def where(self, op, status=None, raw=b""):
        s = f"round {self.rnd} client {self.tid}: {op.method} {op.path} body={op.body!r}"
        if status is not None:
            s += f" -> {status} {raw[:300]!r}"
        return s

    # --- the operations -------------------------------------------------------

    def op_book(self):
        ctx = self.ctx
        with ctx.lock:
            if not ctx.slot_pool:
                return None
            slot = self.rng.choice(ctx.slot_pool)
            name = f"r{self.rnd}t{self.tid}n{self.i}"
            att = {"outcome": UNKNOWN, "slot": slot, "id": None, "seq": None}
            abandon = self.rng.random() < 0.3
            ctx.book_attempts[name] = att
        op = Op("POST", "/booking", {"slotId": slot, "patientName": name})
        client = self

        def done(status, js, raw):
            with ctx.lock:
                if status == 201:
                    ok = (isinstance(js, dict) and js.get("slotId") == slot and js.get("patientName") == name
                          and js.get("status") == PENDING and isinstance(js.get("id"), int)
                          and isinstance(js.get("seq"), int) and isinstance(js.get("token"), str))
                    if not ok:
                        ctx.errors.append("malformed 201: " + client.where(op, status, raw))
                        att["outcome"] = UNKNOWN  # treat as maybe
                        return
                    att.update(outcome=ACKED, id=js["id"], seq=js["seq"])
                    if js["id"] in ctx.bookings:
                        ctx.errors.append(f"booking id {js['id']} acknowledged twice: " + client.where(op, status, raw))
                        return
                    b = Booking(js["id"], slot, name, js["token"], client.tid, js["createdAt"], js["expiresAt"],
                                js["seq"], PENDING)
                    # the expiry round abandons some holds so that they expire
                    b.dead = client.rnd == ctx.expiry_round and abandon
                    ctx.bookings[b.id] = b
                    ctx.by_owner.setdefault(client.tid, []).append(b)
                    ctx.ack_seq(js["seq"])
                    ctx.count("booked")
                elif status == 409 and code_of(js) == "slot_unavailable" or status == 503:
                    att["outcome"] = REJECTED
                    ctx.count("book_409")
                else:
                    att["outcome"] = REJECTED
                    ctx.errors.append("unexpected reply: " + client.where(op, status, raw))

        def no_reply(outcome):
            with ctx.lock:
                att["outcome"] = outcome
                ctx.count("book_" + outcome)

        op.done, op.no_reply = done, no_reply
        return op

    def own_bookings(self, pred):
        return [b for b in self.ctx.by_owner.get(self.tid, ()) if b.unknown_op is None and not b.dead and pred(b)]

    def op_change(self, what):
        ctx = self.ctx
        with ctx.lock:
            if what == "confirm":
                cands = self.own_bookings(lambda b: b.known == PENDING and b.token is not None)
            else:
                cands = self.own_bookings(lambda b: b.known in (PENDING, CONFIRMED))
            if not cands:
                return None
            b = self.rng.choice(cands)
            rec = {"op": what, "outcome": UNKNOWN, "seq": None}
            b.ops.append(rec)
            b.unknown_op = what  # until the reply
        admin = b.token is None
        op = Op("POST", f"/booking/{b.id}/{what}", admin=admin, token=b.token)
        client = self
        want_status = CONFIRMED if what == "confirm" else CANCELLED

        def done(status, js, raw):
            t_reply = now_ms()
            with ctx.lock:
                b.unknown_op = None
                if status == 200:
                    if not (isinstance(js, dict) and js.get("id") == b.id and js.get("status") == want_status
                            and isinstance(js.get("seq"), int)):
                        ctx.errors.append("malformed 200: " + client.where(op, status, raw))
                        rec["outcome"] = UNKNOWN
                        b.unknown_op = what
                        return
                    rec.update(outcome=ACKED, seq=js["seq"])
                    b.known = want_status
                    ctx.ack_seq(js["seq"])
                    ctx.count("confirmed" if what == "confirm" else "cancelled")
                    return
                rec["outcome"] = REJECTED
                code = code_of(js)
                expired = t_reply >= b.expires_ms
                if status == 503:
                    return
                if status == 409 and code in ("booking_expired", "booking_failed") and expired:
                    b.dead = True
                    ctx.count(what + "_expired")
                    return
                ctx.errors.append(f"unexpected reply (booking known {b.known}, expiresAt {b.expires_at}): "
                                  + client.where(op, status, raw))
                b.dead = True

        def no_reply(outcome):
            with ctx.lock:
                rec["outcome"] = outcome
                b.unknown_op = what if outcome == UNKNOWN else None
                ctx.count(what + "_" + outcome)

        op.done, op.no_reply = done, no_reply
        return op

    def op_read(self):
        ctx = self.ctx
        with ctx.lock:
            cands = self.own_bookings(lambda b: b.token is not None)
            if not cands:
                return None
            b = self.rng.choice(cands)
            known = b.known
        op = Op("GET", f"/booking/{b.id}", token=b.token)
        client = self

        def done(status, js, raw):
            t_reply = now_ms()
            allowed = {known} | ({FAILED} if known == PENDING and t_reply >= b.expires_ms else set())
            if status != 200 or not isinstance(js, dict) or js.get("status") not in allowed \
                    or js.get("slotId") != b.slot_id or js.get("patientName") != b.name:
                ctx.err(f"read of an acknowledged booking (want status in {sorted(allowed)}): "
                        + client.where(op, status, raw))

        op.done, op.no_reply = done, lambda outcome: None
        return op

    def op_close(self):
        ctx = self.ctx
        with ctx.lock:
            if not ctx.slot_pool:
                return None
            slot = self.rng.choice(ctx.slot_pool)
            rec = {"outcome": UNKNOWN, "seq": None}
            ctx.closes.setdefault(slot, []).append(rec)
        op = Op("DELETE", f"/slots/{slot}", admin=True)
        client = self

        def done(status, js, raw):
            with ctx.lock:
                if status == 200 and isinstance(js, dict) and js.get("id") == slot \
                        and js.get("status") == CLOSED and isinstance(js.get("seq"), int):
                    rec.update(outcome=ACKED, seq=js["seq"])
                    ctx.ack_seq(js["seq"])
                    ctx.count("closed")
                elif status == 409 and code_of(js) == "slot_booked" or status == 503:
                    rec["outcome"] = REJECTED
                    ctx.count("close_409")
                else:
                    rec["outcome"] = REJECTED if status != 200 else UNKNOWN
                    ctx.errors.append("unexpected reply: " + client.where(op, status, raw))

        def no_reply(outcome):
            with ctx.lock:
                rec["outcome"] = outcome

        op.done, op.no_reply = done, no_reply
        return op

    def op_create(self):
        ctx = self.ctx
        n = self.rng.choice((1, 1, 1, 2, 3))
        with ctx.lock:
            doctor = self.rng.choice(ctx.doctors)
            first = ctx.next_index
            ctx.next_index += n + 1  # a gap: no two requests touch
            spans = [slot_span(first + k) for k in range(n)]
            att = {"outcome": UNKNOWN, "doctorId": doctor, "spans": spans, "ids": None, "seqs": None}
            for s, e in spans:
                ctx.creates[(doctor, s, e)] = att
        if n == 1:
            body = {"doctorId": doctor, "start": spans[0][0], "end": spans[0][1]}
        else:
            body = {"doctorId": doctor, "slots": [{"start": s, "end": e} for s, e in spans]}
        op = Op("POST", "/slots", body, admin=True)
        client = self

        def done(status, js, raw):
            with ctx.lock:
                if status == 201:
                    arr = [js] if n == 1 else js
                    ok = isinstance(arr, list) and len(arr) == n and all(
                        isinstance(x, dict) and x.get("doctorId") == doctor and (x.get("start"), x.get("end")) == sp
                        and x.get("status") == AVAILABLE and isinstance(x.get("id"), int)
                        and isinstance(x.get("seq"), int) for x, sp in zip(arr, spans))
                    if not ok:
                        ctx.errors.append("malformed 201: " + client.where(op, status, raw))
                        return
                    att.update(outcome=ACKED, ids=[x["id"] for x in arr], seqs=[x["seq"] for x in arr])
                    for x in arr:
                        ctx.slots[x["id"]] = {"doctorId": doctor, "start": x["start"], "end": x["end"]}
                        ctx.slot_pool.append(x["id"])
                        ctx.ack_seq(x["seq"])
                    ctx.count("created")
                elif status == 503:
                    att["outcome"] = REJECTED
                else:
                    att["outcome"] = REJECTED
                    ctx.errors.append("unexpected reply: " + client.where(op, status, raw))

        def no_reply(outcome):
            with ctx.lock:
                att["outcome"] = outcome

        op.done, op.no_reply = done, no_reply
        return op

    # --- the loop ---------------------------------------------------------------

    def next_op(self):
        r = self.rng.random()
        if r < 0.42:
            choice = self.op_book
        elif r < 0.62:
            choice = lambda: self.op_change("confirm")  # noqa: E731
        elif r < 0.74:
            choice = lambda: self.op_change("cancel")  # noqa: E731
        elif r < 0.80:
            choice = self.op_close
        elif r < 0.85:
            choice = self.op_create
        else:
            choice = self.op_read
        return choice() or self.op_book()

    def run(self):
        conn = None
        try:
            for self.i in range(MAX_OPS_PER_THREAD):
                if time.monotonic() >= self.deadline or self.ctx.killing.is_set() and conn is None:
                    break
                op = self.next_op()
                if op is None:
                    break
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQ_TIMEOUT)
                    try:
                        conn.connect()
                    except OSError as e:
                        op.no_reply(NOT_SENT)
                        if not self.ctx.killing.is_set():
                            self.ctx.err(f"round {self.rnd} client {self.tid}: cannot connect before the kill: {e!r}")
                        break
                data = json.dumps(op.body).encode() if op.body is not None else None
                try:
                    conn.request(op.method, op.path, body=data,
                                 headers=headers_for(admin=op.admin, token=op.token, body=data is not None))
                    resp = conn.getresponse()
                    raw = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    op.no_reply(UNKNOWN)
                    if not self.ctx.killing.is_set():
                        self.ctx.err(f"round {self.rnd} client {self.tid}: no reply before the kill: "
                                     f"{op.method} {op.path}: {e!r}")
                    break
                try:
                    js = json.loads(raw) if raw else None
                except ValueError:
                    js = None
                op.done(resp.status, js, raw)
                if resp.will_close:
                    conn.close()
                    conn = None
        except Exception as e:  # a bug in the test: report it, do not hang
            self.ctx.err(f"round {self.rnd} client {self.tid}: test error {e!r}")
            raise
        finally:
            if conn is not None:
                conn.close()


# ----------------------------------------------------------------------------- replay

class Replay:
    """The engine's state rebuilt from the journal, with its preconditions checked."""

    def __init__(self):
        self.clinics = 0
        self.doctors = {}
        self.slots = {}     # id -> {"doctorId","start","end","status","booking"}
        self.bookings = {}  # id -> {"slotId","patientName","status","createdAt","expiresAt","confirmedAt","seq",...}
        self.errors = []

    def bad(self, e, msg):
        self.errors.append(f"journal seq {e.get('seq')} {e.get('type')} {json.dumps(e.get('data'))}: {msg}")

    def apply(self, e):
        t, d = e.get("type"), e.get("data") or {}
        if t == "ClinicAdded":
            if d.get("clinicId") != self.clinics + 1:
                self.bad(e, f"clinic ids not dense (have {self.clinics})")
            self.clinics += 1
        elif t == "DoctorAdded":
            if d.get("doctorId") != len(self.doctors) + 1:
                self.bad(e, f"doctor ids not dense (have {len(self.doctors)})")
            self.doctors[d.get("doctorId")] = d
        elif t == "SlotCreated":
            sid = d.get("slotId")
            if sid != len(self.slots) + 1:
                self.bad(e, f"slot ids not dense (have {len(self.slots)})")
            if d.get("doctorId") not in self.doctors:
                self.bad(e, "unknown doctor")
            self.slots[sid] = {"doctorId": d.get("doctorId"), "start": d.get("start"), "end": d.get("end"),
                               "status": AVAILABLE, "booking": None, "seq": e["seq"]}
        elif t == "SlotHeld":
            bid, sid = d.get("bookingId"), d.get("slotId")
            if bid != len(self.bookings) + 1:
                self.bad(e, f"booking ids not dense (have {len(self.bookings)})")
            s = self.slots.get(sid)
            if s is None:
                self.bad(e, "unknown slot")
            elif s["status"] != AVAILABLE:
                other = self.bookings.get(s["booking"], {})
                self.bad(e, f"DOUBLE HOLD: slot {sid} is {s['status']} (booking {s['booking']}, held at seq "
                            f"{other.get('seq')}) when booking {bid} holds it")
            if s is not None:
                s["status"], s["booking"] = HELD, bid
            self.bookings[bid] = {"slotId": sid, "patientName": d.get("patientName"), "status": PENDING,
                                  "createdAt": d.get("createdAt"), "expiresAt": d.get("expiresAt"),
                                  "confirmedAt": None, "seq": e["seq"], "events": [(e["seq"], t)]}
        elif t in ("BookingConfirmed", "BookingExpired", "BookingCancelled"):
            bid = d.get("bookingId")
            b = self.bookings.get(bid)
            if b is None:
                self.bad(e, "unknown booking")
                return
            b["events"].append((e["seq"], t))
            s = self.slots.get(b["slotId"])
            if t == "BookingConfirmed":
                if b["status"] != PENDING:
                    self.bad(e, f"booking is {b['status']}, not PENDING")
                if s is not None and (s["status"] != HELD or s["booking"] != bid):
                    self.bad(e, f"DOUBLE BOOKING: slot {b['slotId']} is {s['status']} by booking {s['booking']}")
                if d.get("confirmedAt", "") >= b["expiresAt"]:
                    self.bad(e, f"confirmed at {d.get('confirmedAt')}, not before expiresAt {b['expiresAt']}")
                b["status"], b["confirmedAt"] = CONFIRMED, d.get("confirmedAt")
                if s is not None:
                    s["status"] = BOOKED
            else:
                if t == "BookingExpired":
                    if b["status"] != PENDING:
                        self.bad(e, f"booking is {b['status']}, not PENDING")
                    if d.get("expiredAt", "") < b["expiresAt"]:
                        self.bad(e, f"expired at {d.get('expiredAt')}, before expiresAt {b['expiresAt']}")
                    b["status"] = FAILED
                else:
                    if b["status"] not in (PENDING, CONFIRMED):
                        self.bad(e, f"booking is {b['status']}, neither PENDING nor CONFIRMED")
                    b["status"] = CANCELLED
                if s is not None and s["booking"] == bid and s["status"] in (HELD, BOOKED):
                    s["status"], s["booking"] = AVAILABLE, None
                elif s is not None:
                    self.bad(e, f"slot {b['slotId']} is {s['status']} by booking {s['booking']}, not by {bid}")
        elif t == "SlotClosed":
            s = self.slots.get(d.get("slotId"))
            if s is None:
                self.bad(e, "unknown slot")
            elif s["status"] != AVAILABLE:
                self.bad(e, f"slot is {s['status']} (booking {s['booking']}), not AVAILABLE")
            else:
                s["status"] = CLOSED
        else:
            self.bad(e, "unknown event type")

    def counts(self):
        sc = {k: 0 for k in (AVAILABLE, HELD, BOOKED, CLOSED)}
        for s in self.slots.values():
            sc[s["status"]] += 1
        bc = {k: 0 for k in (PENDING, CONFIRMED, FAILED, CANCELLED)}
        for b in self.bookings.values():
            bc[b["status"]] += 1
        return sc, bc


# ----------------------------------------------------------------------------- checks

class Snapshot:
    pass


def read_journal(port, problems):
    """Every event from seq 1 to the lastSeq of the reply (bounded pages)."""
    events, from_seq, last_seq = [], 1, None
    for _page in range(1000):
        st, js, raw = call(port, "GET", f"/events?fromSeq={from_seq}&limit=10000", admin=True)
        if st != 200 or not isinstance(js, dict) or not isinstance(js.get("events"), list):
            problems.append(f"GET /events?fromSeq={from_seq} -> {st} {raw[:300]!r}")
            return events, last_seq
        last_seq = js.get("lastSeq")
        events.extend(js["events"])
        if not js["events"] or js.get("nextSeq", 0) > last_seq:
            break
        from_seq = js["nextSeq"]
    return events, last_seq


def take_snapshot(ctx, port):
    snap = Snapshot()
    snap.problems = []
    snap.events, snap.last_seq = read_journal(port, snap.problems)
    st, snap.stats, raw = call(port, "GET", "/admin/stats", admin=True)
    if st != 200:
        snap.problems.append(f"GET /admin/stats -> {st} {raw[:300]!r}")
    st, docs, raw = call(port, "GET", "/doctors")
    snap.doctors = docs if st == 200 and isinstance(docs, list) else []
    paths = [f"/slots/{d['id']}" for d in snap.doctors]
    nb = max([0] + [e["data"].get("bookingId", 0) for e in snap.events if e.get("type") == "SlotHeld"])
    paths += [f"/booking/{i}" for i in range(1, nb + 2)]  # one past the last must be 404
    snap.views, errs = fetch_many(port, paths)
    snap.problems += errs
    snap.n_bookings = nb
    st, h, raw = call(port, "GET", "/healthz")
    snap.healthz = h.get("seq") if st == 200 and isinstance(h, dict) else None
    tail_st, tail, _ = call(port, "GET", f"/events?fromSeq={(snap.last_seq or 0) + 1}", admin=True)
    snap.quiet = (tail_st == 200 and isinstance(tail, dict) and tail.get("events") == []
                  and tail.get("lastSeq") == snap.last_seq and snap.healthz == snap.last_seq
                  and isinstance(snap.stats, dict) and snap.stats.get("asOfSeq") == snap.last_seq)
    return snap


def wait_quiet(port, max_s=10.0):
    """Until /healthz seq has not moved for ~0.4 s (pending expiries written); bounded."""
    deadline = time.monotonic() + max_s
    last, since = None, time.monotonic()
    for _poll in range(int(max_s / 0.1) + 1):
        if time.monotonic() >= deadline:
            break
        try:
            st, h, _ = call(port, "GET", "/healthz", timeout=5)
            seq = h.get("seq") if st == 200 and isinstance(h, dict) else None
        except (OSError, http.client.HTTPException):
            seq = None
        if seq != last:
            last, since = seq, time.monotonic()
        elif time.monotonic() - since >= 0.4:
            return
        time.sleep(0.1)


def allowed_statuses(b, t_ms):
    k, u = b.known, b.unknown_op
    if k == PENDING:
        out = {PENDING}
        if u == "confirm":
            out.add(CONFIRMED)
        if u == "cancel":
            out.add(CANCELLED)
        if t_ms >= b.expires_ms:
            out.add(FAILED)
        return out
    if k == CONFIRMED:
        return {CONFIRMED, CANCELLED} if u == "cancel" else {CONFIRMED}
    return {k}


def verify(ctx, srv, sigterm=False):
    """Every check after a restart; returns a list of discrepancies."""
    port = srv.api.port
    t_verify = time.monotonic()
    wait_quiet(port)
    snap = None
    for _attempt in range(VERIFY_ATTEMPTS):
        snap = take_snapshot(ctx, port)
        if snap.quiet and not snap.problems:
            break
        time.sleep(0.3)
    p = list(snap.problems)
    if not snap.quiet:
        p.append(f"the server never held still for a snapshot (healthz {snap.healthz}, "
                 f"lastSeq {snap.last_seq}, stats asOfSeq {(snap.stats or {}).get('asOfSeq')})")
    if snap.last_seq is None or not isinstance(snap.stats, dict) or snap.stats.get("slots") is None:
        return p + ["cannot read the journal or /admin/stats: nothing checked"], ""
    t_check = now_ms()
    events = snap.events

    # --- the journal: gap-free, unchanged prefix, kept events, replay ---------------------
    seqs = [e.get("seq") for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        first_bad = next((i for i, s in enumerate(seqs) if s != i + 1), None)
        p.append(f"journal not gap-free from 1: at index {first_bad} seq {seqs[first_bad]} "
                 f"(around {seqs[max(0, first_bad - 2):first_bad + 3]})")
    if snap.last_seq != len(events):
        p.append(f"/events lastSeq {snap.last_seq} but {len(events)} events read")
    if snap.last_seq is not None and snap.last_seq < ctx.max_acked_seq:
        p.append(f"ACKNOWLEDGED WRITES LOST: lastSeq {snap.last_seq} < max acknowledged seq {ctx.max_acked_seq}")
    if snap.healthz is None or snap.healthz < ctx.max_acked_seq:
        p.append(f"/healthz seq {snap.healthz} < max acknowledged seq {ctx.max_acked_seq}")
    for i, old in enumerate(ctx.journal):
        new = events[i] if i < len(events) else None
        if new != old:
            p.append(f"journal changed across a restart at seq {old.get('seq')}: was {json.dumps(old)}, "
                     f"now {json.dumps(new)}")
            break
    by_seq = {e.get("seq"): e for e in events}
    for seq, old in sorted(ctx.must_keep.items()):
        if by_seq.get(seq) != old:
            p.append(f"event seen in /events before the kill is gone or changed: was {json.dumps(old)}, "
                     f"now {json.dumps(by_seq.get(seq))}")

    rp = Replay()
    for e in events:
        rp.apply(e)
    p += rp.errors
    slot_keys = {(s["doctorId"], s["start"], s["end"]) for s in rp.slots.values()}
    closed_seqs = {}
    for e in events:
        if e.get("type") == "SlotClosed":
            closed_seqs.setdefault(e["data"].get("slotId"), []).append(e["seq"])

    # --- every event was asked for by a request that did not fail ----------------------
    with ctx.lock:
        seen_names = {}
        for e in events:
            t, d = e.get("type"), e.get("data") or {}
            if t == "SlotHeld":
                name = d.get("patientName")
                att = ctx.book_attempts.get(name)
                if name in seen_names:
                    p.append(f"PHANTOM: patient {name!r} held twice (seq {seen_names[name]} and {e['seq']})")
                seen_names[name] = e["seq"]
                if att is None:
                    p.append(f"PHANTOM: seq {e['seq']} SlotHeld for {name!r}: no such request was sent")
                elif att["outcome"] not in MAY_BE_IN_JOURNAL:
                    p.append(f"PHANTOM: seq {e['seq']} SlotHeld for {name!r}, but that request was {att['outcome']}")
                elif att["slot"] != d.get("slotId"):
                    p.append(f"seq {e['seq']} SlotHeld for {name!r} on slot {d.get('slotId')}, requested slot {att['slot']}")
                elif att["outcome"] == ACKED and (att["id"], att["seq"]) != (d.get("bookingId"), e["seq"]):
                    p.append(f"seq {e['seq']} SlotHeld for {name!r} is booking {d.get('bookingId')}, "
                             f"acknowledged as booking {att['id']} at seq {att['seq']}")
            elif t in ("BookingConfirmed", "BookingCancelled"):
                op = "confirm" if t == "BookingConfirmed" else "cancel"
                b = ctx.bookings.get(d.get("bookingId"))
                if b is None or not any(r["op"] == op and r["outcome"] in MAY_BE_IN_JOURNAL for r in b.ops):
                    p.append(f"PHANTOM: seq {e['seq']} {t} for booking {d.get('bookingId')}: no {op} request "
                             f"for it was acknowledged or left without a reply")
            elif t == "SlotCreated":
                key = (d.get("doctorId"), d.get("start"), d.get("end"))
                att = ctx.creates.get(key)
                if att is None or att["outcome"] not in MAY_BE_IN_JOURNAL:
                    p.append(f"PHANTOM: seq {e['seq']} SlotCreated {key}: request "
                             f"{'never sent' if att is None else att['outcome']}")
                elif att["outcome"] == ACKED:
                    k = att["spans"].index((key[1], key[2]))
                    if (att["ids"][k], att["seqs"][k]) != (d.get("slotId"), e["seq"]):
                        p.append(f"seq {e['seq']} SlotCreated {key} is slot {d.get('slotId')}, acknowledged as slot "
                                 f"{att['ids'][k]} at seq {att['seqs'][k]}")
            elif t == "SlotClosed":
                recs = ctx.closes.get(d.get("slotId"), [])
                if not any(r["outcome"] in MAY_BE_IN_JOURNAL for r in recs):
                    p.append(f"PHANTOM: seq {e['seq']} SlotClosed slot {d.get('slotId')}: no close request for it "
                             f"was acknowledged or left without a reply")
            elif t in ("ClinicAdded", "DoctorAdded"):
                if e["seq"] > ctx.setup_seq:
                    p.append(f"PHANTOM: seq {e['seq']} {t} after the setup")
        # a multi-slot create is all or nothing
        for key, att in ctx.creates.items():
            if len(att["spans"]) > 1 and key[1] == att["spans"][0][0]:
                present = [(att["doctorId"],) + sp in slot_keys for sp in att["spans"]]
                if any(present) and not all(present):
                    p.append(f"a {len(att['spans'])}-slot create of doctor {att['doctorId']} is in the journal only "
                             f"in part: {list(zip(att['spans'], present))}")

        # --- everything acknowledged is there -------------------------------------------
        for b in ctx.bookings.values():
            rb = rp.bookings.get(b.id)
            if rb is None:
                p.append(f"ACKNOWLEDGED BOOKING LOST: booking {b.id} ({b.name!r}, slot {b.slot_id}, seq {b.seq})")
                continue
            got = (rb["slotId"], rb["patientName"], rb["createdAt"], rb["expiresAt"])
            want = (b.slot_id, b.name, b.created_at, b.expires_at)
            if got != want:
                p.append(f"booking {b.id} in the journal is {got}, acknowledged as {want}")
            if b.seq is not None and rb["seq"] != b.seq:
                p.append(f"booking {b.id} held at seq {rb['seq']}, acknowledged seq {b.seq}")
            allowed = allowed_statuses(b, t_check)
            if rb["status"] not in allowed:
                p.append(f"booking {b.id} ({b.name!r}) is {rb['status']} after recovery; the acknowledged "
                         f"operations allow only {sorted(allowed)} (known {b.known}, unanswered {b.unknown_op}, "
                         f"ops {b.ops}, events {rb['events']})")
            for r in b.ops:
                if r["outcome"] == ACKED:
                    typ = "BookingConfirmed" if r["op"] == "confirm" else "BookingCancelled"
                    if not any(t == typ and s <= r["seq"] for s, t in rb["events"]):
                        p.append(f"ACKNOWLEDGED {r['op'].upper()} LOST: booking {b.id} acknowledged at seq "
                                 f"{r['seq']}; its events {rb['events']}")
        for sid, s in ctx.slots.items():
            rs = rp.slots.get(sid)
            if rs is None:
                p.append(f"ACKNOWLEDGED SLOT LOST: slot {sid} {s}")
            elif (rs["doctorId"], rs["start"], rs["end"]) != (s["doctorId"], s["start"], s["end"]):
                p.append(f"slot {sid} is {rs}, acknowledged as {s}")
        for key, att in ctx.creates.items():
            if att["outcome"] == ACKED:
                k = att["spans"].index((key[1], key[2]))
                ev = by_seq.get(att["seqs"][k])
                if not ev or ev.get("type") != "SlotCreated" or ev["data"].get("slotId") != att["ids"][k]:
                    p.append(f"acknowledged slot {att['ids'][k]} (seq {att['seqs'][k]}): that seq is {json.dumps(ev)}")
        for sid, recs in ctx.closes.items():
            for r in recs:
                if r["outcome"] != ACKED:
                    continue
                rs = rp.slots.get(sid)
                if rs is None or rs["status"] != CLOSED:
                    p.append(f"ACKNOWLEDGED CLOSE LOST: slot {sid} closed at seq {r['seq']} is "
                             f"{rs and rs['status']} after recovery")
                    continue
                closed_at = closed_seqs.get(sid, [])
                if not closed_at or min(closed_at) > r["seq"]:
                    p.append(f"slot {sid}: acknowledged CLOSED at seq {r['seq']}, SlotClosed at {closed_at}")

    # --- the server's view equals the replay ------------------------------------------
    views = snap.views
    sc, bc = rp.counts()
    stats = snap.stats if isinstance(snap.stats, dict) else {}
    ss, bs = stats.get("slots", {}), stats.get("bookings", {})
    want_slots = {"total": len(rp.slots), "available": sc[AVAILABLE], "held": sc[HELD], "booked": sc[BOOKED],
                  "closed": sc[CLOSED]}
    want_bookings = {"total": len(rp.bookings), "pending": bc[PENDING], "confirmed": bc[CONFIRMED],
                     "failed": bc[FAILED], "cancelled": bc[CANCELLED]}
    if {k: ss.get(k) for k in want_slots} != want_slots or {k: bs.get(k) for k in want_bookings} != want_bookings:
        p.append(f"/admin/stats {json.dumps({'slots': ss, 'bookings': bs})} != replay "
                 f"{json.dumps({'slots': want_slots, 'bookings': want_bookings})}")
    if bs.get("pending") != ss.get("held") or bs.get("confirmed") != ss.get("booked"):
        p.append(f"DOUBLE HOLD/BOOKING in /admin/stats: pending {bs.get('pending')} vs held {ss.get('held')}, "
                 f"confirmed {bs.get('confirmed')} vs booked {ss.get('booked')}")
    if stats.get("doctors") != len(rp.doctors):
        p.append(f"/admin/stats doctors {stats.get('doctors')} != replay {len(rp.doctors)}")

    listed = {}
    for d in snap.doctors:
        st, arr = views.get(f"/slots/{d['id']}", (None, None))
        if st != 200 or not isinstance(arr, list):
            p.append(f"GET /slots/{d['id']} -> {st}")
            continue
        for s in arr:
            if s.get("id") in listed:
                p.append(f"slot {s.get('id')} listed twice")
            listed[s.get("id")] = s
    if set(listed) != set(rp.slots):
        p.append(f"slots listed {sorted(set(listed) - set(rp.slots))[:20]} not in the journal; "
                 f"in the journal but not listed {sorted(set(rp.slots) - set(listed))[:20]}")
    for sid, rs in rp.slots.items():
        s = listed.get(sid)
        if s is not None and (s.get("doctorId"), s.get("start"), s.get("end"), s.get("status")) != \
                (rs["doctorId"], rs["start"], rs["end"], rs["status"]):
            p.append(f"GET /slots says slot {sid} is {s}, the journal replays to {rs}")
    got_bookings = {}
    for i in range(1, snap.n_bookings + 1):
        st, v = views.get(f"/booking/{i}", (None, None))
        if st != 200 or not isinstance(v, dict):
            p.append(f"GET /booking/{i} -> {st} {v}")
            continue
        got_bookings[i] = v
        rb = rp.bookings.get(i)
        if rb is None:
            continue
        want = (rb["slotId"], rb["patientName"], rb["status"], rb["createdAt"], rb["expiresAt"])
        got = (v.get("slotId"), v.get("patientName"), v.get("status"), v.get("createdAt"), v.get("expiresAt"))
        if got != want or (rb["confirmedAt"] is not None and v.get("confirmedAt") != rb["confirmedAt"]):
            p.append(f"GET /booking/{i} is {v}, the journal replays to {want} confirmedAt {rb['confirmedAt']}")
    st, v = views.get(f"/booking/{snap.n_bookings + 1}", (None, None))
    if st != 404:
        p.append(f"GET /booking/{snap.n_bookings + 1} (one past the journal's last booking) -> {st} {v}")

    # no slot held or booked twice, as the server shows it
    holders = {}
    for bid, v in got_bookings.items():
        if v.get("status") in (PENDING, CONFIRMED):
            holders.setdefault(v.get("slotId"), []).append((bid, v.get("status")))
    for sid, s in listed.items():
        hs = holders.get(sid, [])
        want = {HELD: PENDING, BOOKED: CONFIRMED}.get(s.get("status"))
        if want is None:
            if hs:
                p.append(f"slot {sid} is {s.get('status')} but bookings {hs} hold it")
        elif len(hs) != 1 or hs[0][1] != want:
            p.append(f"DOUBLE HOLD: slot {sid} is {s.get('status')}, held by bookings {hs} (want exactly one {want})")
    for sid, hs in holders.items():
        if sid not in listed:
            p.append(f"bookings {hs} hold slot {sid}, which no doctor lists")

    # --- SIGTERM replies to every command it executed (README): nothing unanswered happened
    if sigterm:
        with ctx.lock:
            for name, att in ctx.book_attempts.items():
                if att["outcome"] == UNKNOWN and name in seen_names:
                    p.append(f"SIGTERM: POST /booking for {name!r} (slot {att['slot']}) got no reply, yet the "
                             f"journal has it at seq {seen_names[name]}")
            for key, att in ctx.creates.items():
                if att["outcome"] == UNKNOWN and key[1] == att["spans"][0][0] and key in slot_keys:
                    p.append(f"SIGTERM: POST /slots {att['spans']} got no reply, yet the journal has it")
            for b in ctx.bookings.values():
                rb = rp.bookings.get(b.id)
                if b.unknown_op and rb and rb["status"] == {"confirm": CONFIRMED, "cancel": CANCELLED}[b.unknown_op] \
                        and rb["status"] != b.known:
                    p.append(f"SIGTERM: {b.unknown_op} of booking {b.id} got no reply, yet the journal has it "
                             f"(events {rb['events']})")

    # --- learn what the restart showed (it is durable now) ----------------------------
    if not p:
        with ctx.lock:
            ctx.journal = events
            for name, att in ctx.book_attempts.items():
                if att["outcome"] == UNKNOWN:
                    att["outcome"] = HAPPENED if name in seen_names else LOST
            for key, att in ctx.creates.items():
                if att["outcome"] == UNKNOWN:
                    att["outcome"] = HAPPENED if key in slot_keys else LOST
            for bid, rb in rp.bookings.items():
                b = ctx.bookings.get(bid)
                if b is None:  # an unanswered POST /booking that happened: an orphan, admin may cancel it
                    name = rb["patientName"]
                    owner = int(name.split("t")[1].split("n")[0])
                    b = Booking(bid, rb["slotId"], name, None, owner, rb["createdAt"], rb["expiresAt"], None,
                                rb["status"])
                    ctx.bookings[bid] = b
                    ctx.by_owner.setdefault(owner, []).append(b)
                for r in b.ops:
                    if r["outcome"] == UNKNOWN:
                        typ = "BookingConfirmed" if r["op"] == "confirm" else "BookingCancelled"
                        r["outcome"] = HAPPENED if any(t == typ for _s, t in rb["events"]) else LOST
                b.known, b.unknown_op = rb["status"], None
                b.dead = b.dead or rb["status"] in (FAILED, CANCELLED)
            for sid, rs in rp.slots.items():
                if sid not in ctx.slots:
                    ctx.slots[sid] = {"doctorId": rs["doctorId"], "start": rs["start"], "end": rs["end"]}
            ctx.slot_pool = sorted(sid for sid, rs in rp.slots.items() if rs["status"] != CLOSED)
    summary = (f"lastSeq {snap.last_seq}, {len(rp.slots)} slots ({sc[HELD]} held, {sc[BOOKED]} booked, "
               f"{sc[CLOSED]} closed), {len(rp.bookings)} bookings; checked in {time.monotonic() - t_verify:.1f}s")
    return p, summary


# ----------------------------------------------------------------------------- rounds

def setup(ctx, srv):
    port = srv.api.port
    for k in range(DOCTORS):
        st, js, raw = call(port, "POST", "/doctors", {"name": f"Dr. Crash {k}", "specialty": "GP"}, admin=True)
        if st != 201:
            raise AssertionError(f"POST /doctors -> {st} {raw!r}")
        ctx.doctors.append(js["id"])
        ctx.ack_seq(js["seq"])
        spans = [slot_span(k * 100 + i) for i in range(INITIAL_SLOTS)]
        att = {"outcome": UNKNOWN, "doctorId": js["id"], "spans": spans, "ids": None, "seqs": None}
        for s, e in spans:
            ctx.creates[(js["id"], s, e)] = att
        st, arr, raw = call(port, "POST", "/slots",
                            {"doctorId": js["id"], "slots": [{"start": s, "end": e} for s, e in spans]}, admin=True)
        if st != 201:
            raise AssertionError(f"POST /slots -> {st} {raw[:300]!r}")
        att.update(outcome=ACKED, ids=[x["id"] for x in arr], seqs=[x["seq"] for x in arr])
        for x in arr:
            ctx.slots[x["id"]] = {"doctorId": x["doctorId"], "start": x["start"], "end": x["end"]}
            ctx.slot_pool.append(x["id"])
            ctx.ack_seq(x["seq"])
    ctx.setup_seq = ctx.max_acked_seq


def watch_expiries(ctx, srv, from_seq, t_start):
    """The expiry round: wait until /admin/stats counts new expiries, then read the journal
    from from_seq and keep every event seen (they must all survive the kill)."""
    port = srv.api.port
    deadline = t_start + EXPIRY_WAIT_MAX
    base = None
    for _poll in range(int(EXPIRY_WAIT_MAX / 0.1) + 1):
        if time.monotonic() >= deadline:
            return []
        st, js, _ = call(port, "GET", "/admin/stats", admin=True)
        if st == 200 and isinstance(js, dict):
            if base is None:
                base = js.get("expiries", 0)
            elif js.get("expiries", 0) > base and time.monotonic() - t_start >= 1.2:
                break
        time.sleep(0.1)
    else:
        return []
    expired = []
    for _page in range(100):
        st, js, _ = call(port, "GET", f"/events?fromSeq={from_seq}&limit=10000", admin=True)
        if st != 200:
            break
        evs = [e for e in js["events"] if e["seq"] <= js["lastSeq"]]
        for e in evs:
            ctx.must_keep[e["seq"]] = e
        expired += [e for e in evs if e["type"] == "BookingExpired"]
        if not evs or js["nextSeq"] > js["lastSeq"]:
            break
        from_seq = js["nextSeq"]
    return expired


def run_round(ctx, srv, rnd, rng, last):
    """Clients, then SIGKILL (SIGTERM in the last round) while they are still sending."""
    ctx.killing.clear()
    ctx.errors = []
    ctx.stats = {}
    port = srv.api.port
    expiry_round = rnd == ctx.expiry_round
    dur = rng.uniform(RUN_MIN, RUN_MAX)
    t0 = time.monotonic()
    deadline = t0 + (EXPIRY_WAIT_MAX if expiry_round else dur) + 30  # the kill comes first
    clients = [Client(ctx, t, rnd, port, deadline) for t in range(THREADS)]
    threads = [threading.Thread(target=c.run, daemon=True, name=f"client-{c.tid}") for c in clients]
    for t in threads:
        t.start()
    notes = []
    if expiry_round:
        expired = watch_expiries(ctx, srv, len(ctx.journal) + 1, t0)
        if not expired:
            ctx.err(f"round {rnd} (--hold-ttl {SHORT_TTL}): no BookingExpired in /events within {EXPIRY_WAIT_MAX}s")
        notes.append(f"{len(expired)} expiries seen before the kill")
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        time.sleep(dur)
    alive_clients = sum(t.is_alive() for t in threads)
    if srv.proc.poll() is not None:
        ctx.err(f"round {rnd}: slotd exited by itself with {srv.proc.returncode} before the kill")
    ctx.killing.set()
    t_kill = time.monotonic() - t0
    if last:
        rc = srv.stop(timeout=60)
        if rc != 0:
            ctx.err(f"round {rnd}: SIGTERM -> exit code {rc}, want 0")
        how = "SIGTERM"
    else:
        rc = srv.kill()
        if rc != -signal.SIGKILL:
            ctx.err(f"round {rnd}: slotd exit code {rc} after SIGKILL, want -9")
        how = "SIGKILL"
    for t in threads:
        t.join(REQ_TIMEOUT + 5)
    if any(t.is_alive() for t in threads):
        ctx.err(f"round {rnd}: a client thread did not finish after the kill")
    if alive_clients < THREADS:
        notes.append(f"only {alive_clients}/{THREADS} clients still sending at the kill")
    s = ctx.stats
    unknown = sum(v for k, v in s.items() if k.endswith("_" + UNKNOWN))
    return (f"{how} at {t_kill:.2f}s: acked {s.get('booked', 0)} bookings, {s.get('confirmed', 0)} confirms, "
            f"{s.get('cancelled', 0)} cancels, {s.get('closed', 0)} closes, {s.get('created', 0)} creates; "
            f"{s.get('book_409', 0)} booking 409s; {unknown} unanswered"
            + (f"; {'; '.join(notes)}" if notes else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slotd", required=True, help="path to the slotd binary")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    ap.add_argument("--rounds", type=int, default=8, help="kill/restart rounds (>= 1; the last one is SIGTERM)")
    args = ap.parse_args()
    slotd = os.path.abspath(args.slotd)
    if not (os.path.isfile(slotd) and os.access(slotd, os.X_OK)):
        print(f"crash_test: no executable slotd at {slotd}")
        print("crash: 0 passed, 1 failed")
        return 1
    seed = args.seed
    rounds = max(1, min(args.rounds, 100))
    print(f"crash_test: seed {seed}, {rounds} rounds, {THREADS} client threads, slotd {slotd}", flush=True)
    print(f"  (re-run with: python3 {sys.argv[0]} --slotd {args.slotd} --seed {seed} --rounds {rounds})", flush=True)
    rng = random.Random(seed)
    ctx = Ctx(seed, rounds)
    ctx.expiry_round = rounds // 2 if rounds >= 3 else -1
    data_dir = tempfile.mkdtemp(prefix="slotd-crash-data-")
    srv = Server(slotd, data_dir=data_dir, hold_ttl=HOLD_TTL, admin_token=ADMIN_TOKEN)
    passed = failed = 0
    t_all = time.monotonic()
    ok = False
    try:
        srv.hold_ttl = SHORT_TTL if ctx.expiry_round == 0 else HOLD_TTL
        srv.start(ready_timeout=60)
        setup(ctx, srv)
        for rnd in range(rounds):
            last = rnd == rounds - 1
            t_round = time.monotonic()
            label = f"round {rnd}" + (f" (--hold-ttl {SHORT_TTL})" if rnd == ctx.expiry_round else "")
            what, summary, problems = "", "", []
            try:
                what = run_round(ctx, srv, rnd, rng, last)
                srv.hold_ttl = SHORT_TTL if rnd + 1 == ctx.expiry_round else HOLD_TTL
                srv.start(ready_timeout=60)
                problems, summary = verify(ctx, srv, sigterm=last)
            except AssertionError as e:  # slotd did not come back (the message has its log)
                problems = [f"{e}"]
            # after the restart first (the point of the test), then what the clients saw
            errs = ctx.errors
            problems = problems[:MAX_REPORTED] + [f"(during the round) {m}" for m in errs[:MAX_REPORTED // 4]] \
                + ([f"... {len(errs) - MAX_REPORTED // 4} more seen by the clients during the round"]
                   if len(errs) > MAX_REPORTED // 4 else []) + problems[MAX_REPORTED:]
            dt = time.monotonic() - t_round
            if problems:
                failed += 1
                print(f"FAIL {label}: {what}", flush=True)
                print(f"  seed {seed}, round {rnd}, data dir kept at {data_dir}")
                for msg in problems[:MAX_REPORTED + MAX_REPORTED // 4 + 1]:
                    print(f"  - {msg}")
                if len(problems) > MAX_REPORTED + MAX_REPORTED // 4 + 1:
                    print(f"  ... and {len(problems) - MAX_REPORTED - MAX_REPORTED // 4 - 1} more")
                if not any("----- slotd log" in m for m in problems):
                    print(srv.log_tail(4000))
                break
            passed += 1
            print(f"ok   {label}: {what}; after restart {summary} ({dt:.1f}s)", flush=True)
        else:
            rc = srv.stop(timeout=60)
            if rc != 0:
                failed += 1
                print(f"FAIL final SIGTERM: exit code {rc}, want 0\n{srv.log_tail(4000)}")
            else:
                ok = True
    except Exception as e:  # noqa: BLE001 - report, clean up, count as a failure
        failed += 1
        import traceback
        traceback.print_exc()
        print(f"FAIL: {e!r} (seed {seed}, data dir {data_dir})\n{srv.log_tail(4000)}")
    finally:
        if srv.running():
            srv.kill()
        srv.cleanup()
        if ok:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"(took {time.monotonic() - t_all:.1f}s)")
    print(f"crash: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed == rounds else 1


if __name__ == "__main__":
    sys.exit(main())
