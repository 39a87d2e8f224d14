#!/usr/bin/env bash
# startup_ab.sh — slotd's own start-up on one data dir, for two or more slotd binaries back
# to back (alternate them and repeat: A B A B). Each run starts the binary on a fresh copy of
# DATA_DIR (so every run recovers the same snapshot and tail; --snapshot-every 0, so none is
# written), waits for it to listen, prints the "recovered ... in N ms" line and the phases
# line (binaries that print one), and stops it with kill -9.
# A data dir of 10M slots with a snapshot 1M events before its end:
#   build/release/bench/recovery_bench --slots 10000000 --no-pause --keep-data --dir D
#   → D/data-10000000
# Each SLOTD is a command, split at spaces: a binary, or e.g. "env NAME=VALUE BINARY".
# Usage: bench/startup_ab.sh DATA_DIR SLOTD...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/args.sh
source "$root/bench/args.sh"
(($# >= 2)) || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
data=$1
shift
work=$(mktemp -d -t startup-ab.XXXXXX)
pid=''
cleanup() { if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -rf "$work"; }
trap cleanup EXIT
for bin in "$@"; do
  rm -rf "$work/data"
  cp -a "$data" "$work/data"
  sync
  # shellcheck disable=SC2086 # a command of several words
  start_listening "$work/log" $bin --data-dir "$work/data" --port 0 --snapshot-every 0
  echo "$bin: $(grep -E -o 'recovered to seq .* ms \(.*events\)' "$work/log")"
  grep -E -o 'recovery phases: .*' "$work/log" | sed 's/^/  /' || true
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=''
done
