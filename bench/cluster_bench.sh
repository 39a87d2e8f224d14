#!/usr/bin/env bash
# Cluster mode next to the embedded journal, in one run: durable bookings/s and p99 (wrk,
# bench/book_unique.lua, every 201 a durable hold) against a single node with its embedded
# RocksDB journal, then a leader whose batches go to a JetStream stream with 1 and with 3
# replicas (3 nats-server nodes on loopback, fresh per mode, a follower slotd beside the
# leader); the follower's read throughput (GET /doctors, GET /slots/1); and the failover
# time: kill -9 of the leader until the follower answers a write with 201.
# Everything runs on this machine's loopback, bounded in time; nothing is left running.
# Usage: bench/cluster_bench.sh [BUILD_DIR] [--quick] [--out FILE]
set -euo pipefail
build=${1:-build/release}
shift || true
duration=5
out=bench/results/cluster-$(date -u +%Y-%m-%dT%H%M%SZ).txt
lease_ttl=1.5
source "$(dirname "$0")/args.sh"
parse_bench_args 2 "$@"
command -v wrk >/dev/null || { echo "cluster_bench: wrk is not installed (apt-get install wrk)"; exit 1; }
command -v nats-server >/dev/null || { echo "cluster_bench: nats-server is not installed"; exit 1; }
slotd=$build/api/slotd
token=bench-token
threads=2; connections=${CONNECTIONS:-64}; slots_per_thread=200000
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
wait_http() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.1; done; echo "no slotd on $1" >&2; return 1; }
role_of() { curl -s --max-time 1 "http://127.0.0.1:$1/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("cluster",{}).get("role","single"))' 2>/dev/null || echo down; }
now_ms() { date +%s%3N; }

seed_slots() {  # port: a doctor per 10,000 slots, enough for every thread of wrk
  python3 "$(dirname "$0")/seed_slots.py" "$1" "$token" $((threads * slots_per_thread))
}

metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="slotd_$2" '$1 == m {print $2}'; }

book_run() {  # port label: one wrk run of unique bookings, one result line
  local port=$1 label=$2 before after o
  before=$(metric "$port" bookings)
  o=$(wrk -t$threads -c$connections -d${duration}s -s bench/book_unique.lua "http://127.0.0.1:$port/" -- $slots_per_thread)
  after=$(metric "$port" bookings)
  local status p99
  status=$(echo "$o" | grep '^wrk-status:')
  p99=$(echo "$status" | sed -E 's/.*p99_us=([0-9]+).*/\1/')
  printf "%-34s %10.0f durable bookings/s  p99 %7.1f ms  (%s)\n" "$label" \
    "$(awk -v d=$((after - before)) -v t="$duration" 'BEGIN{print d/t}')" \
    "$(awk -v u="$p99" 'BEGIN{print u/1000}')" "$status" | tee -a "$out"
}

read_run() {  # port label path
  local rps
  rps=$(wrk -t$threads -c$connections -d${duration}s "http://127.0.0.1:$1$3" | awk '/Requests\/sec/ {print $2}')
  printf "%-34s %10s req/s\n" "$2" "$rps" | tee -a "$out"
}

mkdir -p "$(dirname "$out")"
echo "# cluster_bench $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo ?) wrk -t$threads -c$connections -d${duration}s, loopback, load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out"

# 1. The embedded RocksDB journal (the default single node).
port=$(free_port)
"$slotd" --port "$port" --data-dir "$work/single" --admin-token "$token" --hold-ttl 3600 >"$work/single.log" 2>&1 &
single=$!; pids+=("$single")
wait_http "$port"; seed_slots "$port"
book_run "$port" "embedded RocksDB (single node)"
read_run "$port" "single node GET /doctors" /doctors
read_run "$port" "single node GET /slots/1" "/slots/1?from=2031-01-01T00:00:00.000Z&to=2031-01-01T01:40:00.000Z"
kill -TERM "$single"; wait "$single" 2>/dev/null || true

# 2. JetStream R1 and R3: 3 nats-server nodes, a leader and a follower.
for replicas in 1 3; do
  d=$work/r$replicas; mkdir -p "$d"
  cports=(); rports=()
  for i in 0 1 2; do cports+=("$(free_port)"); rports+=("$(free_port)"); done
  routes="nats://127.0.0.1:${rports[0]},nats://127.0.0.1:${rports[1]},nats://127.0.0.1:${rports[2]}"
  urls="nats://127.0.0.1:${cports[0]},nats://127.0.0.1:${cports[1]},nats://127.0.0.1:${cports[2]}"
  nats_pids=()
  for i in 0 1 2; do
    nats-server -js -sd "$d/nats$i" -n "n$i" -a 127.0.0.1 -p "${cports[$i]}" --cluster_name bench \
      --cluster "nats://127.0.0.1:${rports[$i]}" --routes "$routes" >"$d/nats$i.log" 2>&1 &
    pids+=($!); nats_pids+=($!)
  done
  hports=("$(free_port)" "$(free_port)"); node_pids=()
  for i in 0 1; do
    "$slotd" --port "${hports[$i]}" --data-dir "$d/slotd$i" --admin-token "$token" --hold-ttl 3600 \
      --nats "$urls" --node-id "b$i" --stream-replicas "$replicas" --lease-ttl "$lease_ttl" >"$d/slotd$i.log" 2>&1 &
    pids+=($!); node_pids+=($!)
    sleep 1  # the first node takes the lease: the leader is node 0
  done
  for i in 0 1; do wait_http "${hports[$i]}"; done
  leader=""; follower=""
  for _ in $(seq 100); do
    for i in 0 1; do [[ $(role_of "${hports[$i]}") == leader ]] && leader=$i; done
    [[ -n $leader ]] && break; sleep 0.1
  done
  [[ -n $leader ]] || { echo "cluster_bench: no leader with R$replicas" >&2; exit 1; }
  follower=$((1 - leader))
  seed_slots "${hports[$leader]}"
  book_run "${hports[$leader]}" "JetStream R$replicas leader"
  # The follower has applied everything before it is read from.
  target=$(metric "${hports[$leader]}" durable_seq)
  for _ in $(seq 300); do [[ $(metric "${hports[$follower]}" read_seq) -ge $target ]] && break; sleep 0.1; done
  read_run "${hports[$follower]}" "R$replicas follower GET /doctors" /doctors
  read_run "${hports[$follower]}" "R$replicas follower GET /slots/1" "/slots/1?from=2031-01-01T00:00:00.000Z&to=2031-01-01T01:40:00.000Z"
  if [[ $replicas == 3 ]]; then
    # Failover: kill -9 the leader, then a write to the follower until it answers 201.
    t0=$(now_ms)
    kill -KILL "${node_pids[$leader]}"
    for _ in $(seq 600); do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -X POST -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d '{"name":"Dr. After","specialty":"GP"}' "http://127.0.0.1:${hports[$follower]}/doctors" || true)
      [[ $code == 201 ]] && break
      sleep 0.02
    done
    t1=$(now_ms)
    printf "%-34s %10s ms from kill -9 of the leader to the first 201 on the follower (lease TTL %s s, last answer %s)\n" \
      "R3 failover" "$((t1 - t0))" "$lease_ttl" "$code" | tee -a "$out"
  fi
  for p in "${node_pids[@]}" "${nats_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}" "${nats_pids[@]}"; do wait "$p" 2>/dev/null || true; done
done
echo "written: $out"
