# shellcheck shell=bash disable=SC2034 # sourced: sets hello, work, sp, wp, slots for the caller
# bench/booking_common.sh — what the durable-booking A/B scripts share (booking_ab.sh,
# partitions_ab.sh), sourced after bench/args.sh: checks the tools, makes a temp dir that
# goes (with the server) when the script ends, and defines start/stop (one server at a time,
# pinned to CPU 0 with wrk on CPU 1 when PINNED is yes) and cpu_ticks.
# Usage: booking_bench_setup NAME PINNED(yes|no) DURATION_S
booking_bench_setup() {
  local name=$1 pinned=$2 dur=$3 tool
  for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "$name: $tool is not installed (scripts/install-deps.sh wrk curl)" >&2; exit 1; }
  done
  hello=$root/build/release/bench/hello_server
  work=$(mktemp -d -t "$name.XXXXXX")
  pid=''
  trap 'if [[ -n $pid ]]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -rf "$work"' EXIT
  sp=() wp=()
  if [[ $pinned == yes ]]; then sp=(taskset -c 0) wp=(taskset -c 1); fi
  slots=$((dur * 100000))
}
start() { start_listening "$work/log" "${sp[@]}" "$@"; }
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=''; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, in clock ticks
