#!/usr/bin/env bash
# partitions_ab.sh — durable POST /booking on one slotd serving one partition, then the same
# binary serving two (--partition 0,1), in one invocation, next to hello_server running the
# same Lua script: what a second partition in the same process buys on this machine. Each
# partition has its own sequencer and journal thread, so two partitions group-commit (and
# fdatasync) side by side.
# For each setup: a fresh temp data dir seeded with DURATION x 100,000 one-minute slots
# (split between the partitions), then wrk -t2 -c64 -dDURATION --latency
# -s bench/book_unique.lua: with one partition both wrk threads book it, with two each wrk
# thread books its own partition. Prints req/s, p50/p99, the statuses, the group commits and
# commands (from /metrics, per partition) and slotd's CPU time per 1,000 commands.
# Usage: bench/partitions_ab.sh DURATION_S PINNED(yes|no) SLOTD_BINARY [ROUNDS (1)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/args.sh
source "$root/bench/args.sh"
(($# >= 3)) || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
dur=$1 pinned=$2 bin=$3 rounds=${4:-1}
# shellcheck source=bench/booking_common.sh
source "$root/bench/booking_common.sh"
booking_bench_setup partitions-ab "$pinned" "$dur"
wrk_run() { # PER_THREAD_SLOTS PER_PARTITION(0|1)
  timeout $((dur + 30)) "${wp[@]}" wrk -t2 -c64 -d"${dur}s" --latency -s "$root/bench/book_unique.lua" \
    "http://127.0.0.1:$port/" -- "$1" 1 "$2" >"$work/wrk"
  awk '/^Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} /^wrk-status/ {st=$0}
       END {printf "rps=%s p50=%s p99=%s %s\n", r, p50, p99, st}' "$work/wrk"
}
counters() { # "batches commands" summed over the partitions named
  local b=0 c=0 p x y
  for p in "$@"; do
    read -r x y < <(curl -s "http://127.0.0.1:$port/metrics?partition=$p" |
      awk '/^slotd_(batches|commands)_total / {printf "%s ", $2} END {print ""}')
    b=$((b + x)) c=$((c + y))
  done
  echo "$b $c"
}
one_setup() { # LABEL PARTITION_LIST
  local label=$1 list=$2 d cpu0 cpu1 b0 c0 b1 c1
  d=$(mktemp -d "$work/data.XXXXXX")
  start "$bin" --host 127.0.0.1 --port 0 --data-dir "$d" --admin-token T --hold-ttl 3600 --threads 1 \
    --partition "$list"
  if [[ $list == 0 ]]; then
    python3 "$root/bench/seed_slots.py" "$port" T "$slots"
    read -r b0 c0 < <(counters 0)
  else
    python3 "$root/bench/seed_slots.py" "$port" T $((slots / 2))
    python3 "$root/bench/seed_slots.py" "$port" T $((slots / 2)) $(((1 << 40) | 1))
    read -r b0 c0 < <(counters 0 1)
  fi
  cpu0=$(cpu_ticks "$pid")
  echo "$label: $(wrk_run $((slots / 2)) "$([[ $list == 0 ]] && echo 0 || echo 1)")"
  cpu1=$(cpu_ticks "$pid")
  if [[ $list == 0 ]]; then read -r b1 c1 < <(counters 0); else read -r b1 c1 < <(counters 0 1); fi
  echo "  group commits during the load: $((b1 - b0)), commands: $((c1 - c0)), slotd CPU ms per 1,000 commands: $(
    awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" -v n=$((c1 - c0)) 'BEGIN {printf "%.1f", n ? t * 1000 / hz * 1000 / n : 0}')"
  stop
}
start "$hello" --host 127.0.0.1 --port 0 --threads 1
echo "hello_server: $(wrk_run $((slots / 2)) 0)"
stop
for ((r = 1; r <= rounds; r++)); do
  one_setup "one partition (--partition 0)" 0
  one_setup "two partitions (--partition 0,1)" 0,1
done
