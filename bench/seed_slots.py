#!/usr/bin/env python3
"""Seeds a running slotd with TOTAL AVAILABLE one-minute slots from 2031-01-01, 10,000 per
new doctor (ids in creation order), for the booking benchmarks' book_unique.lua. The
doctors join CLINIC_ID (default: none named, the home partition's first clinic); name a
clinic of another partition to seed that partition.
   bench/seed_slots.py PORT ADMIN_TOKEN TOTAL [CLINIC_ID]"""
import datetime, http.client, json, sys

port, token, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
clinic = {"clinicId": int(sys.argv[4])} if len(sys.argv) > 4 else {}
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
base = 1924992000000  # 2031-01-01


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


made = 0
while made < total:
    c.request("POST", "/doctors", json.dumps({"name": f"Dr. Bench {made}", "specialty": "GP", **clinic}), h)
    doctor = json.loads(c.getresponse().read())["id"]
    n = min(10000, total - made)
    spans = [{"start": iso(base + i * 60000), "end": iso(base + (i + 1) * 60000)} for i in range(n)]
    c.request("POST", "/slots", json.dumps({"doctorId": doctor, "slots": spans}), h)
    r = c.getresponse()
    r.read()
    assert r.status == 201, r.status
    made += n
