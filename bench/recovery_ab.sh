#!/usr/bin/env bash
# recovery_ab.sh — start-up from a snapshot plus a journal tail, for two or more builds of
# recovery_bench back to back (alternate them and repeat: A B A B), on a noisy machine.
# Each run builds its own data dir of SLOTS slots in a temp dir, times a full replay, then
# the newest snapshot plus the last 1M events (recovery_bench --no-pause), and removes it.
# Prints each run's two lines and appends its machine-readable line, after a header naming
# the binary, to OUT.
# Usage: bench/recovery_ab.sh SLOTS OUT RECOVERY_BENCH_BINARY...
set -euo pipefail
(($# >= 3)) || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
slots=$1 out=$2; shift 2
work=$(mktemp -d -t recovery-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "# bench/recovery_ab.sh $slots $out $* ($(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg))" >>"$out"
for bin in "$@"; do
  echo "## $bin" | tee -a "$out"
  "$bin" --slots "$slots" --no-pause --dir "$work/data" --out "$work/line" | grep -E "full replay|snapshot at seq"
  cat "$work/line" >>"$out"
  rm -rf "$work/data" "$work/line"
done
