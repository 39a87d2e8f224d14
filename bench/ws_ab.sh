#!/usr/bin/env bash
# ws_ab.sh — the live feed (bench/ws_fanout) of two or more slotd binaries back to back in
# one invocation: for A/B comparisons of a change on a noisy machine (alternate the
# binaries and repeat: A B A B).
# For each binary: a fresh temp data dir, slotd with one io thread and no per-client cap on
# feed connections, then ws_fanout with SUBSCRIBERS subscribers of one clinic while
# bookings run at RATE per second for DURATION_S seconds (its two phases: every subscriber
# reading, then one stuck subscriber added). Prints ws_fanout's RESULT lines, one per phase.
# Usage: bench/ws_ab.sh DURATION_S SUBSCRIBERS RATE PINNED(yes|no) SLOTD_BINARY...
#   PINNED=yes: slotd under taskset -c 0, ws_fanout under taskset -c 1.
# Env: SLOTD_ARGS (more slotd flags), OUT=FILE (also append the RESULT lines to FILE).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/args.sh
source "$root/bench/args.sh"
(($# >= 5)) || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
dur=$1 subscribers=$2 rate=$3 pinned=$4; shift 4
ws_fanout=$root/build/release/bench/ws_fanout
work=$(mktemp -d -t ws-ab.XXXXXX)
pid=''
cleanup() { if [[ -n $pid ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"  # both sides hold a socket per subscriber
sp=() wp=()
[[ $pinned == yes ]] && sp=(taskset -c 0) && wp=(taskset -c 1)
start() { start_listening "$work/log" "${sp[@]}" "$@"; }
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=''; }
for bin in "$@"; do
  d=$(mktemp -d "$work/data.XXXXXX")
  # shellcheck disable=SC2086 # SLOTD_ARGS is a list of flags
  start "$bin" --host 127.0.0.1 --port 0 --data-dir "$d" --admin-token T --hold-ttl 3600 --threads 1 \
    --max-feed-connections-per-client 0 ${SLOTD_ARGS:-}
  timeout $((4 * dur + 600)) "${wp[@]}" "$ws_fanout" --port "$port" --admin-token T \
    --subscribers "$subscribers" --rate "$rate" --duration "$dur" --drain 5 --out "$work/ws.txt" >"$work/out"
  grep '^RESULT ' "$work/out" | sed "s|^RESULT |binary=$bin pinned=$pinned |" | tee -a "${OUT:-/dev/null}"
  stop
done
