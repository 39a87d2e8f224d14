#!/usr/bin/env bash
# booking_ab.sh — durable POST /booking of two or more slotd binaries back to back, next to
# hello_server running the same Lua script, in one invocation: for A/B comparisons of a change
# on a noisy machine (alternate the binaries and repeat: A B A B).
# For each binary: a fresh temp data dir, seeded with DURATION x 100,000 one-minute slots
# by bench/seed_slots.py, then wrk -t2 -c64 -dDURATION --latency
# -s bench/book_unique.lua (the load of bench/run's slotd.book); prints req/s, p50/p99, the
# statuses, slotd's batches (group commits), commands and mean journal append (write + sync)
# per group commit from /metrics, the share of bookings slotd itself answered within
# 0.5/1/2/5/10 ms of their arrival, and slotd's CPU time
# (user + system, from /proc) per 1,000 answered requests, which varies less than req/s when
# another tenant takes the machine's time: during the load, and with the work the load left
# behind (counted until slotd stays under 1 % CPU for a second).
# Usage: bench/booking_ab.sh DURATION_S PINNED(yes|no) SLOTD_BINARY...
# Env: SLOTD_ARGS (more slotd flags), PERF=FILE (perf record -g the last binary's run into FILE).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/args.sh
source "$root/bench/args.sh"
(($# >= 3)) || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
dur=$1 pinned=$2; shift 2
# shellcheck source=bench/booking_common.sh
source "$root/bench/booking_common.sh"
booking_bench_setup booking-ab "$pinned" "$dur"
# One scrape of slotd's /metrics; the two functions after it read one from standard input.
metrics() { curl -s "http://127.0.0.1:$port/metrics"; }
# Cumulative counts of slotd's POST /booking latency buckets (le 0.5, 1, 2, 5, 10 ms), then
# the total count.
booking_histogram() {
  awk '
    BEGIN {split("0.0005 0.001 0.002 0.005 0.01", le, " "); for (i = 1; i <= 5; i++) at[le[i]] = i}
    /^slotd_http_request_duration_seconds_bucket\{route="POST \/booking",/ {
      if (match($0, /le="[^"]*"/)) { l = substr($0, RSTART + 4, RLENGTH - 5); if (l in at) n[at[l]] = $NF }
    }
    /^slotd_http_request_duration_seconds_count\{route="POST \/booking"\}/ {c = $NF}
    END {for (i = 1; i <= 5; i++) printf "%s ", n[i] + 0; printf "%s", c + 0}'
}
# slotd's group commits, commands and seconds spent in journal appends (write + sync), in
# that order.
counters() {
  awk '
    $1 == "slotd_batches_total" {b = $2} $1 == "slotd_commands_total" {c = $2}
    $1 == "slotd_journal_append_seconds_total" {j = $2}
    END {printf "%s %s %s", b + 0, c + 0, j + 0}'
}
wrk_run() { # FIRST_SLOT
  timeout $((dur + 30)) "${wp[@]}" wrk -t2 -c64 -d"${dur}s" --latency -s "$root/bench/book_unique.lua" \
    "http://127.0.0.1:$port/" -- $((slots / 2)) "$1" >"$work/wrk"
  awk '/^Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} /^wrk-status/ {st=$0}
       END {printf "rps=%s p50=%s p99=%s %s\n", r, p50, p99, st}' "$work/wrk"
}
start "$hello" --host 127.0.0.1 --port 0 --threads 1
echo "hello_server: $(wrk_run 1)"
stop
n=0
for bin in "$@"; do
  n=$((n + 1))
  d=$(mktemp -d "$work/data.XXXXXX")
  # shellcheck disable=SC2086 # SLOTD_ARGS is a list of flags
  start "$bin" --host 127.0.0.1 --port 0 --data-dir "$d" --admin-token T --hold-ttl 3600 --threads 1 ${SLOTD_ARGS:-}
  python3 "$root/bench/seed_slots.py" "$port" T "$slots"
  first=1  # a fresh slotd's first slot
  m=$(metrics)
  before=$(counters <<<"$m") hist0=$(booking_histogram <<<"$m")
  perf_pid=''
  if [[ -n ${PERF:-} && $n == "$#" ]]; then
    perf record -F 999 -g -o "$PERF" -p "$pid" -- sleep $((dur > 1 ? dur - 1 : 1)) >/dev/null 2>&1 &
    perf_pid=$!
  fi
  cpu0=$(cpu_ticks "$pid")
  echo "$bin: $(wrk_run "$first")"
  cpu1=$(cpu_ticks "$pid")
  [[ -n $perf_pid ]] && wait "$perf_pid"
  m=$(metrics)
  after=$(counters <<<"$m") hist1=$(booking_histogram <<<"$m")
  # Work the load left behind (the entity index's sorting and ingests, RocksDB's flushes and
  # compactions, all at idle priority) counts too: CPU until slotd stays under 1 % for a
  # second, at most 30 s.
  cpu2=$cpu1
  for _ in $(seq 30); do
    sleep 1
    t=$(cpu_ticks "$pid")
    ((t - cpu2 <= $(getconf CLK_TCK) / 100)) && { cpu2=$t; break; }
    cpu2=$t
  done
  read -r b0 c0 j0 <<<"$before"; read -r b1 c1 j1 <<<"$after"
  per_k() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n=$((c1 - c0)) 'BEGIN {printf "%.1f", n ? t * 1000 / hz * 1000 / n : 0}'; }
  echo "  group commits during the load: $((b1 - b0)), commands: $((c1 - c0)), slotd CPU ms per 1,000 commands: $(
    per_k $((cpu1 - cpu0))) during the load, $(per_k $((cpu2 - cpu0))) with the work it left"
  echo "  journal append (write + sync) per group commit, mean: $(awk -v j="$j1" -v i="$j0" -v n=$((b1 - b0)) \
    'BEGIN {printf "%.3f ms, %.0f %% of the load", n ? (j - i) * 1000 / n : 0, (j - i) * 100 / '"$dur"'}')"
  # slotd's own view (slotd_http_request_duration_seconds, from a request's arrival to its
  # answer): what wrk's p99 adds beyond it is time before slotd reads a request and in wrk.
  echo "  slotd's own latency of POST /booking during the load: $(awk -v a="$hist0" -v b="$hist1" 'BEGIN {
    n = split(a, x, " "); split(b, y, " "); total = y[n] - x[n]
    split("0.5 1 2 5 10", le, " ")
    for (i = 1; i <= 5; i++) printf "%s%.2f %% within %s ms", (i > 1 ? ", " : ""), total ? (y[i] - x[i]) * 100 / total : 0, le[i]
  }')"
  stop
done
