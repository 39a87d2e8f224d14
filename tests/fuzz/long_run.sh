#!/usr/bin/env bash
# The long fuzzing run: each target in turn, one process (WORKERS: more, on one corpus; the machine is shared),
# until RUNS inputs (default 10,000,000) or SECONDS seconds per target (default 0 = no time
# bound), whichever comes first; a target stops early at its first crash. Prints one line
# per target: inputs run, seconds, crashes (files libFuzzer saved: crash-, leak-, timeout-,
# oom-). The corpus grows in BUILD_DIR/fuzz-long/<target>/corpus (kept for the next run);
# the binaries are copied first, so a rebuild during the run does not change what runs.
#   tests/fuzz/long_run.sh [BUILD_DIR] [RUNS] [SECONDS]     (BUILD_DIR: build/fuzz)
#   TARGETS="iso_time route_body" tests/fuzz/long_run.sh    (some targets only)
#   WORKERS=2 tests/fuzz/long_run.sh …   (N processes per target on one corpus, RUNS/N inputs
#                                         each; "inputs" is their sum; logs log, log.2, …)
# Exits non-zero if any target crashed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build/fuzz}" && pwd)
runs=${2:-10000000}
seconds=${3:-0}
targets=${TARGETS:-"iso_time journal_record stream_batch http_request route_body feed_message snapshot_file"}
stateful=" http_request route_body feed_message "  # see tests/fuzz/CMakeLists.txt
workers=${WORKERS:-1}
long=$build/fuzz-long
mkdir -p "$long/bin"
for t in $targets; do cp "$build/tests/fuzz/$t" "$long/bin/$t"; done

status=0
echo "fuzz long run: at most $runs inputs or ${seconds}s (0 = no bound) per target, $(date -u +%FT%TZ)"
for t in $targets; do
  work=$long/$t
  mkdir -p "$work/corpus" "$work/artifacts" "$work/tmp"
  leaks=-detect_leaks=1
  [[ $stateful == *" $t "* ]] && leaks=-detect_leaks=0
  dict=()
  [[ -f $here/$t.dict ]] && dict=(-dict="$here/$t.dict")
  before=$(ls "$work/artifacts" | wc -l)
  started=$(date +%s)
  logs=()
  pids=()
  for ((w = 1; w <= workers; w++)); do
    log=$work/log
    ((w > 1)) && log=$work/log.$w
    logs+=("$log")
    ASAN_OPTIONS=detect_leaks=1 TMPDIR=$work/tmp "$long/bin/$t" -runs="$(((runs + workers - 1) / workers))" \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 $leaks "${dict[@]}" \
      -artifact_prefix="$work/artifacts/" "$work/corpus" "$here/corpus/$t" > "$log" 2>&1 &
    pids+=($!)
  done
  rc=0
  for pid in "${pids[@]}"; do
    wait "$pid"
    code=$?
    ((rc == 0)) && rc=$code
  done
  elapsed=$(($(date +%s) - started))
  execs=$(awk '/stat::number_of_executed_units/ {n += $2} END {print n}' "${logs[@]}")
  crashes=$(($(ls "$work/artifacts" | wc -l) - before))
  printf '%-15s inputs %11s  seconds %6s  crashes %s  (exit %s, log %s)\n' \
    "$t" "${execs:-?}" "$elapsed" "$crashes" "$rc" "${logs[*]}"
  if ((rc != 0 || crashes != 0)); then status=1; fi
done
exit $status
