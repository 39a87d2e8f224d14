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
