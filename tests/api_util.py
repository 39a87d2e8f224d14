"""Helpers for api_test.py: start/stop a real slotd on a loopback port, talk HTTP to it.

Standard library only. Every wait here is bounded in time.
"""

import argparse
import atexit
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import sys

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")

_live_servers = []


def _kill_leftovers():
    for s in list(_live_servers):
        if s.proc is not None and s.proc.poll() is None:
            s.proc.kill()
            try:
                s.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_leftovers)


def child_env(overrides=None):
    """This process's environment without any SLOTD_* variable, plus overrides (None removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTD_")}
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def rss_kib(pid):
    """(VmRSS, VmHWM) of a process in KiB, from /proc/<pid>/status (VmHWM: the peak)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(ms):
    """Epoch milliseconds -> 2031-01-06T08:00:00.000Z."""
    dt = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso(s):
    """2031-01-06T08:00:00.000Z -> epoch milliseconds."""
    dt = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(dt.timestamp() * 1000))


BASE_MS = parse_iso("2031-01-06T08:00:00.000Z")
MINUTE_MS = 60_000


class Resp:
    def __init__(self, method, path, req_headers, req_body, status, headers, body):
        self.method = method
        self.path = path
        self.req_headers = req_headers
        self.req_body = req_body
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body
        self.json = None
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            self.json = None

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def describe(self):
        """The exact request and response, for a failure message."""
        rb = self.req_body
        if rb is not None and len(rb) > 400:
            rb = rb[:400] + b"...(%d bytes)" % len(self.req_body)
        hdrs = ", ".join(f"{k}: {v}" for k, v in (self.req_headers or {}).items())
        body = self.body[:1500]
        return (f"\n  request:  {self.method} {self.path}  [{hdrs}]  body={rb!r}"
                f"\n  response: {self.status} content-type={self.content_type!r} body={body!r}")


class Api:
    """An HTTP client for one slotd. Keeps the highest seq seen for the seq checks.
    `source`: the loopback address to connect from (127.0.0.2, …), so that one test can
    be several clients by peer address."""

    def __init__(self, port, admin_token, source=None):
        self.port = port
        self.admin_token = admin_token
        self.source = source
        self.last_seq = 0

    def from_address(self, source):
        """The same server, seen from another loopback peer address."""
        return Api(self.port, self.admin_token, source)

    def connect(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(self.source, 0) if self.source else None)

    def req(self, method, path, body=None, headers=None, admin=False, token=None, raw=None,
            conn=None, timeout=10):
        hdrs = {}
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        if admin:
            hdrs["Authorization"] = f"Bearer {self.admin_token}"
        if token is not None:
            hdrs["X-Booking-Token"] = token
        if headers:
            hdrs.update(headers)
        own = conn is None
        c = conn or self.connect(timeout)
        try:
            c.request(method, path, body=data, headers=hdrs)
            r = c.getresponse()
            rbody = r.read()
            rh = {k.lower(): v for k, v in r.getheaders()}
            return Resp(method, path, hdrs, data, r.status, rh, rbody)
        finally:
            if own:
                c.close()

    def healthz(self, timeout=2):
        return self.req("GET", "/healthz", timeout=timeout)


class Server:
    """One slotd process on a free loopback port with its own temp data dir."""

    def __init__(self, binary, data_dir=None, hold_ttl=None, max_holds=None, demo=False,
                 admin_token="test-admin-token-0123456789", extra_args=(), env=None, port=None):
        """admin_token=None: no --admin-token flag (slotd reads or creates DATA_DIR/admin-token).
        port: a fixed port (e.g. one named in a partition map); default: a free one per start.
        env: variables to set for slotd (a None value removes one); every other SLOTD_*
        variable of this process is removed, so that the flags alone decide."""
        self.binary = binary
        self.env = dict(env or {})
        self.own_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="slotd-api-data-")
        self.hold_ttl = hold_ttl
        self.max_holds = max_holds
        self.demo = demo
        self.admin_token = admin_token
        self.extra_args = list(extra_args)
        self.log_dir = tempfile.mkdtemp(prefix="slotd-api-log-")
        self.log_path = os.path.join(self.log_dir, "slotd.log")
        self.proc = None
        self.fixed_port = port
        self.port = None
        self.api = None
        self.starts = 0

    def args(self):
        a = [self.binary, "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data_dir]
        if self.admin_token is not None:
            a += ["--admin-token", self.admin_token]
        if self.hold_ttl is not None:
            a += ["--hold-ttl", str(self.hold_ttl)]
        if self.max_holds is not None:
            a += ["--max-holds-per-client", str(self.max_holds)]
        if self.demo:
            a += ["--demo"]
        return a + self.extra_args

    def child_env(self):
        return child_env(self.env)

    def start(self, ready_timeout=10.0):
        """Start (or restart on the same data dir) and wait for GET /healthz 200."""
        last_err = None
        for _attempt in range(3):  # a new port if the chosen one was taken in between
            self.port = self.fixed_port or free_port()
            self.starts += 1
            with open(self.log_path, "ab") as log:
                log.write(f"\n===== start #{self.starts}: {' '.join(self.args())}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, env=self.child_env())
            _live_servers.append(self)
            self.api = Api(self.port, self.admin_token)
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_err = f"slotd exited with {self.proc.returncode} before it was ready"
                    break
                try:
                    r = self.api.healthz(timeout=1)
                    if r.status == 200:
                        return self
                    last_err = f"GET /healthz answered {r.status}"
                except OSError as e:
                    last_err = f"GET /healthz: {e!r}"
                time.sleep(0.05)
            else:
                self.kill()
                raise AssertionError(f"slotd not ready within {ready_timeout}s ({last_err})\n{self.log_tail()}")
            # exited early: maybe the port was taken; try again with a new one
        raise AssertionError(f"slotd failed to start: {last_err}\n{self.log_tail()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM; returns the exit code, or raises if it did not exit within timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"slotd did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")
        return self.proc.returncode

    def kill(self):
        """SIGKILL (a crash); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        return self.proc.returncode

    def log_of_last_start(self):
        """What slotd wrote (stdout and stderr) since its last start."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return data.rsplit(f"===== start #{self.starts}: ", 1)[-1]

    def log_tail(self, max_chars=6000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return "(no slotd log)"
        text = data[-max_chars:].decode("utf-8", "replace")
        return f"----- slotd log ({self.log_path}, last {len(text)} chars) -----\n{text}\n----- end of slotd log -----"

    def cleanup(self):
        """Stop (SIGKILL if needed) and remove the data and log dirs."""
        if self.running():
            try:
                self.stop()
            except AssertionError:
                pass
        if self in _live_servers:
            _live_servers.remove(self)
        if self.own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.log_dir, ignore_errors=True)


def read_raw_response(f):
    """Read one HTTP/1.1 response from a buffered binary file; None on EOF."""
    line = f.readline(65537)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {line!r}")
    status = int(parts[1])
    headers = {}
    for _ in range(200):
        h = f.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        for _ in range(100000):
            size_line = f.readline(65537)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # trailers
                for _ in range(200):
                    t = f.readline(65537)
                    if t in (b"\r\n", b"\n", b""):
                        break
                break
            body += f.read(size)
            f.readline(65537)
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    return status, headers, body


class ServerCase(unittest.TestCase):
    """Starts slotd servers for a test class and stops them after it: each must exit 0 on
    SIGTERM. `slotd` is the binary under test (set by run_main)."""

    slotd = None
    server = None
    servers = ()  # every Server of the class, for log dumps on failure

    @classmethod
    def start_server(cls, **kw):
        s = Server(ServerCase.slotd, **kw)
        cls.servers = tuple(cls.servers) + (s,)
        try:
            s.start()
        except BaseException:
            s.cleanup()
            raise
        return s

    @classmethod
    def tearDownClass(cls):
        errors = []
        for s in cls.servers:
            if s.running():
                try:
                    rc = s.stop()
                    if rc != 0:
                        errors.append(f"slotd exited with {rc} on SIGTERM (want 0)\n{s.log_tail()}")
                except AssertionError as e:
                    errors.append(str(e))
            s.cleanup()
        cls.servers = ()
        if errors:
            raise AssertionError("\n".join(errors))


# ---- the runner shared by api_test.py and ws_test.py ------------------------------------


class LogDumpingResult(unittest.TextTestResult):
    """Prints the slotd log of the failing test's class."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._dumped = set()

    def _dump_logs(self, test):
        if id(test) in self._dumped:
            return
        self._dumped.add(id(test))
        for s in getattr(test, "servers", ()) or ():
            self.stream.write("\n" + s.log_tail(3000) + "\n")
            self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump_logs(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._dump_logs(test)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._dump_logs(test)


def _all_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _all_tests(t)
        else:
            yield t


def run_main(module, label):
    """Parses --slotd/-k, sets module.SLOTD, runs the module's tests and prints the
    closing line `<label>: N passed, M failed`. Returns the exit code."""
    ap = argparse.ArgumentParser(description=module.__doc__)
    ap.add_argument("--slotd", required=True, help="path to the slotd binary")
    ap.add_argument("-k", action="append", default=[], help="only tests whose name contains this")
    args = ap.parse_args()
    slotd = os.path.abspath(args.slotd)
    if not (os.path.isfile(slotd) and os.access(slotd, os.X_OK)):
        print(f"{label}_test: no executable slotd at {slotd}")
        print(f"{label}: 0 passed, 1 failed")
        return 1
    module.SLOTD = slotd
    ServerCase.slotd = slotd
    loader = unittest.TestLoader()
    if args.k:
        loader.testNamePatterns = [f"*{k}*" for k in args.k]
    suite = loader.loadTestsFromModule(module)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=LogDumpingResult)
    real = {t.id() for t in _all_tests(suite)}  # before run(): a run suite drops its tests
    t0 = time.monotonic()
    result = runner.run(suite)
    # a test with failing subtests counts once; a setUpClass/tearDownClass error counts as one failure
    failing = {getattr(t, "test_case", t).id() for t, _ in result.failures + result.errors}
    failing |= {t.id() for t in result.unexpectedSuccesses}
    failed = len(failing)
    passed = result.testsRun - len(failing & real) - len(result.skipped)
    print(f"(took {time.monotonic() - t0:.1f}s)")
    print(f"{label}: {passed} passed, {failed} failed")
    return 0 if failed == 0 and result.testsRun > 0 else 1


# =============================================================================
# Cluster mode: real nats-server processes (JetStream, clustered) on loopback ports.

_live_nats = []


def _kill_nats_leftovers():
    for n in list(_live_nats):
        n.kill_all()


atexit.register(_kill_nats_leftovers)


class NatsCluster:
    """`size` nats-server processes with JetStream, clustered on free loopback ports, data
    in a temp dir (removed by cleanup). Each server can be killed and restarted."""

    def __init__(self, size=3):
        self.size = size
        self.dir = tempfile.mkdtemp(prefix="slotd-nats-")
        self.client_ports = [free_port() for _ in range(size)]
        self.route_ports = [free_port() for _ in range(size)]
        self.procs = [None] * size
        _live_nats.append(self)

    def urls(self):
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.client_ports)

    def start(self, i=None, ready_timeout=10.0):
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.route_ports)
        for k in ([i] if i is not None else range(self.size)):
            log = open(os.path.join(self.dir, f"nats{k}.log"), "ab")
            self.procs[k] = subprocess.Popen(
                ["nats-server", "-js", "-sd", os.path.join(self.dir, f"store{k}"), "-n", f"n{k}",
                 "-a", "127.0.0.1", "-p", str(self.client_ports[k]), "--cluster_name", "slotd-test",
                 "--cluster", f"nats://127.0.0.1:{self.route_ports[k]}", "--routes", routes],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
        for k in ([i] if i is not None else range(self.size)):
            deadline = time.monotonic() + ready_timeout
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.client_ports[k]), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"nats-server n{k} not listening after {ready_timeout}s")
                    time.sleep(0.05)
        return self

    def request(self, subject, payload, timeout=10.0):
        """One NATS request/reply on server 0 over the plain text protocol (enough for the
        JetStream API: $JS.API.STREAM.INFO.<stream>, ...MSG.DELETE...); returns the reply
        decoded as JSON."""
        data = json.dumps(payload).encode()
        with socket.create_connection(("127.0.0.1", self.client_ports[0]), timeout=timeout) as sock:
            sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.slotd-test 1\r\n' +
                         f"PUB {subject} _INBOX.slotd-test {len(data)}\r\n".encode() + data + b"\r\n")
            buf = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\r\n" in buf:
                    line, rest = buf.split(b"\r\n", 1)
                    if line.startswith(b"PING"):
                        sock.sendall(b"PONG\r\n")
                    elif line.startswith(b"MSG "):
                        size = int(line.split()[-1])
                        if len(rest) < size + 2:
                            break  # the payload has not all arrived
                        return json.loads(rest[:size])
                    elif line.startswith(b"-ERR"):
                        raise AssertionError(f"nats-server: {line.decode()}")
                    buf = rest
        raise AssertionError(f"no reply to {subject} within {timeout}s")

    def kill(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)

    def kill_all(self):
        for i in range(self.size):
            self.kill(i)

    def log_tail(self, max_chars=2000):
        out = []
        for k in range(self.size):
            try:
                with open(os.path.join(self.dir, f"nats{k}.log"), "rb") as f:
                    out.append(f"----- nats-server n{k} -----\n" + f.read()[-max_chars:].decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)

    def cleanup(self):
        self.kill_all()
        if self in _live_nats:
            _live_nats.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)


def cluster_node(binary, nats, node_id, lease_ttl=1.5, replicas=3, extra_args=(), port=None):
    """A slotd in cluster mode (not started): follows the stream of `nats`, takes the lease
    when it is free."""
    return Server(binary, extra_args=["--nats", nats.urls(), "--node-id", node_id,
                                      "--lease-ttl", str(lease_ttl), "--stream-replicas", str(replicas),
                                      *extra_args], port=port)


def slot_body_times(i, minutes=30, base_ms=BASE_MS):
    """{"start","end"} of the i-th back-to-back slot from BASE_MS."""
    start = base_ms + i * minutes * MINUTE_MS
    return {"start": iso(start), "end": iso(start + minutes * MINUTE_MS)}
