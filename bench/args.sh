# shellcheck shell=bash disable=SC2034 # sourced: sets duration, out, pid and port for the caller
# bench/args.sh — what every bench script shares, sourced after BUILD_DIR is shifted off:
# the options every script takes, `--quick` (shorter runs: duration=QUICK_SECONDS) and
# `--out FILE` (results file), and free_port (an unused loopback TCP port).
# Usage: duration=5; out=default.txt; parse_bench_args 2 "$@"
parse_bench_args() {
  local quick_seconds=$1
  shift
  while (($#)); do
    case $1 in
      --quick) duration=$quick_seconds ;;
      --out) out=${2:?--out needs a file}; shift ;;
      *) echo "usage: $0 [BUILD_DIR] [--quick] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
  done
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_listening LOG CMD...: runs CMD in the background, its output in LOG, and waits (at
# most 30 s) for its "listening on http://HOST:PORT" line; sets pid and port. Exits the
# script with the log on stderr if that line does not come.
start_listening() {
  local log=$1
  shift
  : >"$log" # exists before the server (started in the background) opens it
  "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\).*/\1/p' "$log" | head -n1)
    [[ -n $port ]] && return 0
    sleep 0.1
  done
  cat "$log" >&2
  exit 1
}
