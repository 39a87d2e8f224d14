#!/usr/bin/env bash
# POST /booking latency with and without a webhook endpoint that never answers, in one run
# against one slotd (real RocksDB, fsync per batch, loopback). ROUNDS times (3) in turn:
#   A  no webhook
#   B  one endpoint subscribed to every event type whose receiver accepts connections,
#      reads the request and never answers (an attempt waits out --webhook-timeout, 10 s,
#      longer than a phase), deleted again after the phase
# The same wrk load in every phase (bench/book_unique.lua: every request holds a fresh
# slot); between phases the holds expire (--hold-ttl) so the same slots are free again.
# Alternating and taking medians keeps a busy machine's drift out of the comparison.
# Prints p50/p99 (wrk --latency) per phase, the medians and their ratio, and writes them
# to --out. Bounded: every server it starts is stopped at exit.
# Usage: bench/webhook_latency.sh [BUILD_DIR] [--quick] [--out FILE]
#   env CONNECTIONS (16), THREADS (1): the wrk load; ROUNDS (3).
set -euo pipefail
build=${1:-build/release}
shift || true
duration=5
out=webhook_latency.results.txt
source "$(dirname "$0")/args.sh"
parse_bench_args 2 "$@"
command -v wrk >/dev/null || { echo "webhook_latency: wrk is not installed (apt-get install wrk)"; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
port=$(free_port)
sink_port=$(free_port)
token=bench-token
threads=${THREADS:-1}
connections=${CONNECTIONS:-16}
rounds=${ROUNDS:-3}
slots_per_thread=150000
ttl=$((duration + 3))
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# The receiver that never answers: accepts, reads and keeps every connection open (10 min at most).
python3 - "$sink_port" <<'PY' &
import select, socket, sys, time
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(128)
open_connections = []
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    ready, _, _ = select.select([listener] + open_connections, [], [], 1)
    for s in ready:
        if s is listener:
            open_connections.append(listener.accept()[0])
        elif not s.recv(65536):
            open_connections.remove(s)
            s.close()
PY
pids+=($!)

"$build/api/slotd" --port "$port" --data-dir "$dir/data" --admin-token "$token" --hold-ttl "$ttl" \
  --allow-private-webhooks ${SLOTD_ARGS:-} >"$dir/slotd.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$base/healthz" >/dev/null || { echo "webhook_latency: slotd did not start"; cat "$dir/slotd.log"; exit 1; }

python3 "$(dirname "$0")/seed_slots.py" "$port" "$token" $((threads * slots_per_thread))

metric() { curl -s "$base/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# wrk --latency prints "     99%    2.31ms": in microseconds.
percentile_us() {
  awk -v p="$1%" '$1 == p {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    f = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : (u == "m") ? 60000000 : 1;
    printf "%d", v * f }' "$2"
}
wait_for_free_slots() {
  for _ in $(seq 600); do
    [[ $(metric slotd_pending_holds) == 0 ]] && return 0
    sleep 0.1
  done
  echo "webhook_latency: holds did not expire"; exit 1
}
declare -A p50 p99 booked
phase() {
  local name=$1 before after
  before=$(metric slotd_bookings)
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$here/book_unique.lua" "$base/" \
    -- "$slots_per_thread" >"$dir/$name.wrk"
  after=$(metric slotd_bookings)
  p50[$name]=$(percentile_us 50 "$dir/$name.wrk")
  p99[$name]=$(percentile_us 99 "$dir/$name.wrk")
  booked[$name]=$((after - before))
}

register() {
  curl -s -XPOST "$base/admin/webhooks" -H "Authorization: Bearer $token" \
    -d "{\"url\":\"http://127.0.0.1:$sink_port/hook\",\"events\":[\"booking.held\",\"booking.confirmed\",\"booking.failed\",\"booking.cancelled\",\"slot.created\",\"slot.closed\"]}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
median() { printf "%s\n" "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

order=()
deliveries=()
for r in $(seq "$rounds"); do
  phase "A$r"
  order+=("A$r")
  sleep "$ttl"; wait_for_free_slots
  hook=$(register)
  phase "B$r"
  order+=("B$r")
  deliveries+=("$(curl -s "$base/admin/webhooks/$hook" -H "Authorization: Bearer $token" |
    python3 -c 'import json,sys; d=json.load(sys.stdin)["delivery"]; print("state=%s delivered=%d failures=%d lag=%d lastError=%r" % (d["state"], d["delivered"], d["failures"], d["lag"], d["lastError"]))')")
  curl -sf -XDELETE "$base/admin/webhooks/$hook" -H "Authorization: Bearer $token" >/dev/null
  sleep "$ttl"; wait_for_free_slots
done

a99=(); b99=(); a50=(); b50=()
for name in "${order[@]}"; do
  if [[ $name == A* ]]; then a99+=("${p99[$name]}"); a50+=("${p50[$name]}"); else b99+=("${p99[$name]}"); b50+=("${p50[$name]}"); fi
done
{
  echo "# webhook_latency $(date -u +%FT%TZ) POST /booking, wrk -t$threads -c$connections -d${duration}s per phase, $rounds rounds, loopback, fsync per batch"
  printf "%-8s %-34s %10s %10s %10s\n" phase webhooks p50_us p99_us bookings
  for name in "${order[@]}"; do
    what="none"; [[ $name == B* ]] && what="one endpoint that never answers"
    printf "%-8s %-34s %10s %10s %10s\n" "$name" "$what" "${p50[$name]}" "${p99[$name]}" "${booked[$name]}"
  done
  ma50=$(median "${a50[@]}"); mb50=$(median "${b50[@]}"); ma99=$(median "${a99[@]}"); mb99=$(median "${b99[@]}")
  echo "median p50_us: none $ma50, never-answering endpoint $mb50"
  echo "median p99_us: none $ma99, never-answering endpoint $mb99"
  awk -v a="$ma99" -v b="$mb99" 'BEGIN { printf "p99 ratio (with / without): %.2f\n", b / a }'
  for d in "${deliveries[@]}"; do echo "endpoint at the end of its B phase: $d"; done
} | tee "$out"
