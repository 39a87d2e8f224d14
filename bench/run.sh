#!/usr/bin/env bash
# Runs every benchmark of bench/ and collects their figures in one results file.
# Usage: bench/run.sh [BUILD_DIR] [--quick]
set -euo pipefail
build=${1:-build/release}
quick=${2:-}
out_dir="$build/bench-results"
mkdir -p "$out_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
"$build/bench/engine_bench" $quick --out "$out_dir/engine_bench-$stamp.txt"
"$build/bench/journal_bench" $quick --out "$out_dir/journal_bench-$stamp.txt"
if [[ -n $quick ]]; then mem_args=(--slots 1000000 --bookings 100000); else mem_args=(); fi
"$build/bench/memory_bench" "${mem_args[@]}" --out "$out_dir/memory_bench-$stamp.txt"
"$(dirname "$0")/http_bench.sh" "$build" $quick --out "$out_dir/http_bench-$stamp.txt"
echo "results in $out_dir"
