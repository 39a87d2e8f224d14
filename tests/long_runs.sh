#!/usr/bin/env bash
# The long runs behind the durability claims (not in ctest: they take tens of minutes).
#   tests/long_runs.sh [BUILD_DIR] [KILL_CYCLES] [POWER_CUTS] [JOURNAL_CUTS]
# 1. kill -9 cycles of a real slotd taking snapshots on a small interval (default 2,000);
# 2. power cuts while a snapshot is written, each followed by a recovery (default 10,000);
# 3. power cuts while the journal writes, rolls WAL files and flushes (default 2,000).
# (The fuzzing long run is tests/fuzz/long_run.sh.)
# Each prints its counts last; the script exits non-zero if any fails.
set -euo pipefail
build=${1:-build/release}
cycles=${2:-2000}
cuts=${3:-10000}
journal_cuts=${4:-2000}
here=$(cd "$(dirname "$0")" && pwd)
status=0
python3 "$here/snapshot_kill_test.py" --slotd "$build/api/slotd" --cycles "$cycles" --seed 7 || status=1
SLOTD_SNAPSHOT_POWER_CUTS=$cuts "$build/tests/snapshot_power_loss_tests" \
  -tc="a power cut at any step*" -s 2>&1 | grep -E "snapshot power cuts|test cases|assertions" || status=1
SLOTD_JOURNAL_POWER_CUTS=$journal_cuts "$build/tests/journal_power_loss_tests" \
  -tc="after power cuts*" 2>&1 | grep -E "journal power cuts|test cases|assertions" || status=1
exit $status
