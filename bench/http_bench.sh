#!/usr/bin/env bash
# End-to-end booking throughput over HTTP on loopback: a real slotd (temp data dir, real
# RocksDB, fsync per batch) and wrk, bounded in time. Reports durable bookings/s (201s)
# next to a read-only GET /doctors run in the same invocation, so the ratio is comparable
# across noisy runs.
# Usage: bench/http_bench.sh [BUILD_DIR] [--quick] [--out FILE]
set -euo pipefail
build=${1:-build/release}
shift || true
duration=5
out=http_bench.results.txt
source "$(dirname "$0")/args.sh"
parse_bench_args 2 "$@"
command -v wrk >/dev/null || { echo "http_bench: wrk is not installed (apt-get install wrk)"; exit 1; }
dir=$(mktemp -d)
port=$(free_port)
token=bench-token
"$build/api/slotd" --port "$port" --data-dir "$dir" --admin-token "$token" --hold-ttl 3600 ${SLOTD_ARGS:-} >"$dir/slotd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

threads=2; connections=${CONNECTIONS:-256}; slots_per_thread=200000
python3 "$(dirname "$0")/seed_slots.py" "$port" "$token" $((threads * slots_per_thread))

read_rps=$(wrk -t$threads -c$connections -d${duration}s "http://127.0.0.1:$port/doctors" | awk '/Requests\/sec/ {print $2}')
before=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^slotd_bookings / {print $2}')
book_out=$(wrk -t$threads -c$connections -d${duration}s -s bench/book_unique.lua "http://127.0.0.1:$port/" -- $slots_per_thread)
after=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^slotd_bookings / {print $2}')
batches=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^slotd_batches_total / {print $2}')
book_rps=$(echo "$book_out" | awk '/Requests\/sec/ {print $2}')
lat=$(echo "$book_out" | grep '^wrk-status:')
durable=$(( after - before ))
{
  echo "# http_bench $(date -u +%FT%TZ) wrk -t$threads -c$connections -d${duration}s, loopback, fsync per batch"
  printf "GET /doctors            %12s req/s\n" "$read_rps"
  printf "POST /booking (unique)  %12s req/s  (%s durable holds, %s)\n" "$book_rps" "$durable" "$lat"
  awk -v d="$durable" -v t="$duration" 'BEGIN { printf "durable bookings/s      %12.0f\n", d / t }'
  awk -v b="$book_rps" -v r="$read_rps" 'BEGIN { printf "booking/read ratio      %12.3f\n", b / r }'
  printf "journal batches so far  %12s\n" "$batches"
} | tee "$out"
