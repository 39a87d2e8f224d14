#!/usr/bin/env bash
# The sequencer's fork() pause in slotd itself at a large state (recovery_bench measures it
# inside the bench process, which also holds the engines of its earlier phases). Builds a
# data dir of SLOTS slots with a confirmed booking on every 8th (recovery_bench --keep-data
# --no-pause), starts slotd on it with --snapshot-every 1, then makes ROUNDS
# bookings one at a time over HTTP; each starts a fork()-based snapshot, and the next
# booking waits until it is written. Prints every snapshot's "writer paused N us for fork"
# (wall time of the fork() call on the sequencer thread) with min/median/max, and writes
# them to --out. Asserts nothing about time. Bounded: each wait is capped, and the slotd it
# starts is stopped at exit.
# Usage: bench/fork_pause.sh [BUILD_DIR] [--quick] [--out FILE]
#   SLOTS: 10,000,000 (--quick: 1,000,000); env ROUNDS (8).
set -euo pipefail
build=${1:-build/release}
shift || true
duration=10000000  # slots (args.sh calls it duration; --quick sets the smaller count)
out=fork_pause.results.txt
source "$(dirname "$0")/args.sh"
parse_bench_args 1000000 "$@"
slots=$duration
rounds=${ROUNDS:-8}
command -v curl >/dev/null || { echo "fork_pause: curl is not installed (apt-get install curl)"; exit 1; }
dir=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
port=$(free_port)

echo "fork_pause: building a data dir of $slots slots (recovery_bench --keep-data --no-pause)..."
"$build/bench/recovery_bench" --slots "$slots" --keep-data --no-pause --dir "$dir" --out "$dir/recovery.txt" >/dev/null
data="$dir/data-$slots"
log="$dir/slotd.log"
"$build/api/slotd" --host 127.0.0.1 --port "$port" --data-dir "$data" --admin-token fork-pause-admin-token-0123456789 \
  --snapshot-every 1 --snapshots-kept 2 >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q "listening" "$log" && break; sleep 0.2; done
grep -q "listening" "$log" || { echo "fork_pause: slotd did not start"; tail -5 "$log"; exit 1; }
grep "recovered to seq" "$log"

snapshots() { grep -c "for fork)" "$log" || true; }
for ((i = 0; i < rounds; i++)); do
  before=$(snapshots)
  # recovery_bench booked every 8th slot from slot 1: slots 8k+2 are free.
  code=$(curl -s -o /dev/null -w '%{http_code}' -XPOST "127.0.0.1:$port/booking" \
    -d "{\"slotId\":$((8 * (i + 1) + 2)),\"patientName\":\"Fork Pause\"}")
  [[ $code == 201 ]] || { echo "fork_pause: booking $i answered $code"; exit 1; }
  for _ in $(seq 1 300); do (($(snapshots) > before)) && break; sleep 0.1; done
done

pauses=$(grep -o "writer paused [0-9]* us for fork" "$log" | grep -o "[0-9]*" || true)
[[ -n $pauses ]] || { echo "fork_pause: no snapshot was written"; tail -5 "$log"; exit 1; }
summary=$(echo "$pauses" | sort -n | awk '{v[NR]=$1} END {printf "snapshots=%d min_us=%d median_us=%d max_us=%d", NR, v[1], v[int((NR+1)/2)], v[NR]}')
{
  echo "# bench/fork_pause.sh $build: slotd with --snapshot-every 1 on $slots slots ($((slots / 8)) confirmed bookings), $rounds bookings one at a time"
  echo "# the fork() pause of each snapshot, in order (us):"
  echo "fork_pause_us $(echo $pauses)"
  echo "slots=$slots $summary"
  grep "for fork)" "$log" | sed 's/^slotd: //; s/: \/.*//'
} | tee "$out"
