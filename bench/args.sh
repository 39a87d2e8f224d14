# bench/args.sh — the options every bench script takes, sourced after BUILD_DIR is shifted
# off: `--quick` (shorter runs: duration=QUICK_SECONDS) and `--out FILE` (results file).
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
