#!/usr/bin/env python3
"""Memory a client that never reads its answers costs slotd: one doctor with SLOTS slots,
CLIENTS connections (each from its own loopback address, a 4 KiB receive buffer) that send
one `GET /slots/:doctorId?status=AVAILABLE` (rendered per request, not cached) and never
read. Prints slotd's RSS before, with the clients, and after they close, per client.

Run: python3 bench/slow_readers.py build/release/api/slotd [--slots 20000] [--clients 300]
A figure, not a test: the answer of each such request stays in slotd's memory (less what
the kernel's socket buffers take) until --request-timeout ends the write.
Standard library only; loopback only; one slotd in a temp dir, stopped at the end.
"""

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from api_util import BASE_MS, MINUTE_MS, Server, iso, rss_kib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("slotd")
    ap.add_argument("--slots", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=300)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="slotd-slow-readers-")
    server = Server(os.path.abspath(args.slotd), data_dir=data)
    server.start()
    socks = []
    try:
        api = server.api
        d = api.req("POST", "/doctors", {"name": "Dr. Busy", "specialty": "GP"}, admin=True).json
        for first in range(0, args.slots, 10_000):
            n = min(10_000, args.slots - first)
            spans = [{"start": iso(BASE_MS + (first + i) * 30 * MINUTE_MS),
                      "end": iso(BASE_MS + (first + i + 1) * 30 * MINUTE_MS)} for i in range(n)]
            r = api.req("POST", "/slots", {"doctorId": d["id"], "slots": spans}, admin=True, timeout=120)
            assert r.status == 201, r.describe()
        path = f"/slots/{d['id']}?status=AVAILABLE"
        body = api.req("GET", path, timeout=60).body
        pid = server.proc.pid
        before, _ = rss_kib(pid)
        for k in range(args.clients):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind((f"127.0.{10 + k // 250}.{k % 250 + 1}", 0))
            s.connect(("127.0.0.1", server.port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            socks.append(s)
        time.sleep(3)
        during, _ = rss_kib(pid)
        for s in socks:
            s.close()
        socks = []
        time.sleep(2)
        after, _ = rss_kib(pid)
        result = {"slots": args.slots, "answerBytes": len(body), "clients": args.clients,
                  "rssBeforeMiB": round(before / 1024, 1), "rssWithClientsMiB": round(during / 1024, 1),
                  "rssAfterMiB": round(after / 1024, 1),
                  "perClientKiB": round((during - before) / max(1, args.clients), 1)}
        print(json.dumps(result))
    finally:
        for s in socks:
            s.close()
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
