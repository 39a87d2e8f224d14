#!/usr/bin/env bash
# slotd next to the usual Node/Express + PostgreSQL booking app (bench/baseline/), in one
# run on this machine, under the same wrk load, one system at a time:
#   1. slotd (real binary, temp data dir, RocksDB journal, --hold-ttl 3600): seeded through
#      its admin bulk POST /slots, then a GET /slots/:doctorId read run, then
#      bench/book_unique.lua (every request books a different slot); stopped.
#   2. a private PostgreSQL cluster (temp dir, 127.0.0.1, default durability: fsync on,
#      synchronous_commit on) + one Node process (express, pg Pool): the same data seeded
#      with generate_series, the same two wrk runs; stopped.
# Durable bookings are counted from each system's own store afterwards (slotd: GET
# /admin/stats bookings.total; PostgreSQL: count(*) FROM bookings), and each is checked
# for double bookings. Prints a table with the ratios slotd/baseline and writes it to
# --out. A bench, not a test: nothing here asserts a timing.
#
# Usage: bench/compare_baseline.sh [BUILD_DIR] [--quick] [--out FILE]
#   BUILD_DIR  where api/slotd is (build/release)
#   --quick    3 s per wrk run instead of 10 s
#   --out      results file (compare_baseline.results.txt in the current directory)
# Environment: THREADS (2) and CONNECTIONS (64) for wrk, POOL_SIZE (20) for the pg Pool,
#   DOCTORS (40) x SLOTS_PER_DOCTOR (20000) slots of 30 minutes (enough distinct slots
#   for 10 s of bookings at 60k/s; a warning says when a run used them up).
# Installs what is missing (postgresql, nodejs, npm, wrk, curl, python3 via apt-get; the
# baseline's node_modules via npm) and cleans up everything it started at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=build/release
if (($#)) && [[ $1 != --* ]]; then build=$1; shift; fi
duration=10
out=compare_baseline.results.txt
source "$(dirname "$0")/args.sh"
parse_bench_args 3 "$@"
threads=${THREADS:-2}
connections=${CONNECTIONS:-64}
pool_size=${POOL_SIZE:-20}
doctors=${DOCTORS:-40}
per_doctor=${SLOTS_PER_DOCTOR:-20000}
slot_minutes=30
base_epoch=1924992000 # 2031-01-01T00:00:00Z
total_slots=$((doctors * per_doctor))
slots_per_thread=$((total_slots / threads))
hold_ttl=3600
token=compare-baseline-token

log() { echo "compare_baseline: $*" >&2; }
die() { log "$*"; exit 1; }

# --- install what is missing --------------------------------------------------------------
slotd="$build/api/slotd"
[[ -x $slotd ]] || die "$slotd not found: build it first (cmake --preset release && cmake --build --preset release)"
pg_bin() { printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -n1; }
missing=()
[[ -x "$(pg_bin)/initdb" ]] || missing+=(postgresql)
node --version >/dev/null 2>&1 || missing+=(nodejs)
npm --version >/dev/null 2>&1 || missing+=(npm)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
pgbin=$(pg_bin)
id postgres >/dev/null 2>&1 || die "no 'postgres' user to run PostgreSQL as (apt-get install postgresql makes it)"
if [[ ! -d $here/baseline/node_modules ]]; then
  log "npm install in bench/baseline"
  if [[ -f $here/baseline/package-lock.json ]]; then
    (cd "$here/baseline" && npm ci --no-audit --no-fund --loglevel=error)
  else
    (cd "$here/baseline" && npm install --no-audit --no-fund --loglevel=error)
  fi
fi

# --- temp dirs, and cleanup of everything at exit -----------------------------------------
work=$(mktemp -d -t slotd-compare.XXXXXX)
pgdir=$(mktemp -d -t slotd-compare-pg.XXXXXX) # owned by postgres: it refuses to run as root
chown postgres:postgres "$pgdir"
slotd_pid='' node_pid='' pg_started=''
stop_pid() { # pid: SIGTERM, then wait for it
  [[ -n $1 ]] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
pg_ctl() { (cd "$pgdir" && runuser -u postgres -- "$pgbin/pg_ctl" "$@"); }
cleanup() {
  set +e
  stop_pid "$node_pid"; node_pid=
  stop_pid "$slotd_pid"; slotd_pid=
  if [[ -n $pg_started ]]; then pg_ctl -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1; pg_started=; fi
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # url log
  for _ in $(seq 200); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  cat "$2" >&2 || true
  die "nobody answers $1"
}

# run_wrk NAME URL SCRIPT [SCRIPT ARGS...]: runs wrk, keeps its output in $work/NAME.wrk
run_wrk() {
  local name=$1 url=$2 script=$3; shift 3
  log "wrk $name: -t$threads -c$connections -d${duration}s -s ${script#"$here/"} $url -- $*"
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$script" "$url" -- "$@" >"$work/$name.wrk"
}
wrk_rps() { awk '/^Requests\/sec/ {print $2}' "$work/$1.wrk"; }
wrk_secs() { # the measured elapsed time of the run, in seconds
  awk '/ requests in / { t = $4; sub(/,$/, "", t);
         if (t ~ /ms$/) { sub(/ms$/, "", t); t /= 1000 } else if (t ~ /m$/) { sub(/m$/, "", t); t *= 60 }
         else sub(/s$/, "", t); print t }' "$work/$1.wrk"
}
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/ {n = $5} END {print n + 0}' "$work/$1.wrk"; }
wrk_errors() { # connect+read+write+timeout socket errors
  awk '/Socket errors:/ { gsub(/,/, ""); n = $4 + $6 + $8 + $10 } END {print n + 0}' "$work/$1.wrk"
}
wrk_lat() { # "p50 / p99" as wrk prints them
  awk '$1 == "50%" {p50 = $2} $1 == "99%" {p99 = $2} END {print p50 " / " p99}' "$work/$1.wrk"
}
read_path="/slots/:doctorId (one day)"
read_wrk=("$here/baseline/read_slots.lua" "$doctors" "$per_doctor" "$slot_minutes" "$base_epoch")
book_wrk=("$here/book_unique.lua" "$slots_per_thread")

load_before=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the machine skews both sides

# --- 1. slotd ----------------------------------------------------------------------------
slotd_port=$(free_port)
log "starting slotd on 127.0.0.1:$slotd_port"
"$slotd" --host 127.0.0.1 --port "$slotd_port" --data-dir "$work/slotd-data" --admin-token "$token" \
  --hold-ttl "$hold_ttl" >"$work/slotd.log" 2>&1 &
slotd_pid=$!
wait_http "http://127.0.0.1:$slotd_port/healthz" "$work/slotd.log"
log "seeding slotd: $doctors doctors x $per_doctor slots"
python3 - "$slotd_port" "$token" "$doctors" "$per_doctor" "$slot_minutes" "$base_epoch" <<'PY'
import datetime, http.client, json, sys
port, token = int(sys.argv[1]), sys.argv[2]
doctors, per, minutes, base = map(int, sys.argv[3:7])
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
def iso(s): return datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
spans = [{"start": iso(base + i * minutes * 60), "end": iso(base + (i + 1) * minutes * 60)} for i in range(per)]
for d in range(1, doctors + 1):
    c.request("POST", "/doctors", json.dumps({"name": f"Dr. Bench {d}", "specialty": "GP"}), h)
    r = c.getresponse(); doctor = json.loads(r.read())
    assert r.status == 201 and doctor["id"] == d, (r.status, doctor)
    for i in range(0, per, 10000):  # --max-bulk-slots
        c.request("POST", "/slots", json.dumps({"doctorId": d, "slots": spans[i:i + 10000]}), h)
        r = c.getresponse(); made = json.loads(r.read())
        assert r.status == 201, (r.status, made)
        # book_unique.lua books slot ids 1..doctors*per; the baseline seeds the same ids.
        first = (d - 1) * per + i + 1
        assert made[0]["id"] == first and made[-1]["id"] == first + len(made) - 1, (made[0], made[-1])
PY
run_wrk slotd_read "http://127.0.0.1:$slotd_port" "${read_wrk[@]}"
run_wrk slotd_book "http://127.0.0.1:$slotd_port/" "${book_wrk[@]}"
sleep 1 # let the last in-flight requests finish; they count if they are durable
read -r slotd_bookings slotd_held slotd_booked < <(
  curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$slotd_port/admin/stats" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["bookings"]["total"], s["slots"]["held"], s["slots"]["booked"])')
# No cancels or expiries in this run: every booking holds exactly one slot.
slotd_double=$((slotd_bookings - slotd_held - slotd_booked))
log "slotd: $slotd_bookings durable bookings, $slotd_held held + $slotd_booked booked slots"
stop_pid "$slotd_pid"; slotd_pid=

# --- 2. baseline: PostgreSQL + one Node process ---------------------------------------------
pg_port=$(free_port)
log "starting PostgreSQL ($pgbin) on 127.0.0.1:$pg_port in $pgdir"
(cd "$pgdir" && runuser -u postgres -- "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 \
  --locale=C >"$pgdir/initdb.log" 2>&1) || { cat "$pgdir/initdb.log" >&2; die "initdb failed"; }
pg_started=1
pg_ctl -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pgdir" start >/dev/null ||
  { cat "$pgdir/postgres.log" >&2; die "PostgreSQL did not start"; }
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }
psql -d postgres -c 'CREATE DATABASE slotd'
psql -d slotd -f "$here/baseline/schema.sql"
log "seeding PostgreSQL: $doctors doctors x $per_doctor slots"
psql -d slotd -v doctors="$doctors" -v per="$per_doctor" -v minutes="$slot_minutes" \
  -f "$here/baseline/seed.sql" >/dev/null
pg_settings=$(psql -d slotd -At -F= -c "SELECT name, current_setting(name) FROM pg_settings WHERE name IN
  ('server_version', 'fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
   'shared_buffers', 'max_connections') ORDER BY name" | paste -sd' ')
for s in fsync=on synchronous_commit=on; do
  [[ " $pg_settings " == *" $s "* ]] || die "PostgreSQL is not at default durability ($pg_settings)"
done

node_port=$(free_port)
log "starting the Node baseline on 127.0.0.1:$node_port (pool $pool_size)"
(cd "$here/baseline" && NODE_ENV=production HOST=127.0.0.1 PORT="$node_port" PG_POOL_SIZE="$pool_size" \
  HOLD_TTL="$hold_ttl" DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/slotd" \
  exec node server.js) >"$work/node.log" 2>&1 &
node_pid=$!
wait_http "http://127.0.0.1:$node_port/healthz" "$work/node.log"
run_wrk base_read "http://127.0.0.1:$node_port" "${read_wrk[@]}"
run_wrk base_book "http://127.0.0.1:$node_port/" "${book_wrk[@]}"
sleep 1
stop_pid "$node_pid"; node_pid= # every transaction is over: the counts below are final
base_bookings=$(psql -d slotd -At -c 'SELECT count(*) FROM bookings')
base_double=$(psql -d slotd -At -c "SELECT count(*) FROM (SELECT slot_id FROM bookings
  WHERE status <> 'CANCELLED' GROUP BY slot_id HAVING count(*) > 1) AS doubled")
base_taken=$(psql -d slotd -At -c "SELECT count(*) FROM slots WHERE status IN ('HELD', 'BOOKED')")
log "baseline: $base_bookings durable bookings, $base_taken held/booked slots"
((base_taken == base_bookings)) || log "WARNING: baseline has $base_bookings bookings but $base_taken taken slots"
node_version=$(node --version)
express_version=$(node -p "require('$here/baseline/node_modules/express/package.json').version")
pg_version=$(node -p "require('$here/baseline/node_modules/pg/package.json').version")

for n in "$slotd_bookings" "$base_bookings"; do
  ((n < total_slots * 95 / 100)) || log "WARNING: $n bookings of $total_slots slots: ran out of distinct slots (raise SLOTS_PER_DOCTOR)"
done

# --- results ------------------------------------------------------------------------------
slotd_secs=$(wrk_secs slotd_book); base_secs=$(wrk_secs base_book)
{
  echo "# compare_baseline $(date -u +%FT%TZ): wrk -t$threads -c$connections -d${duration}s on 127.0.0.1, one system at a time, $(nproc) cores shared with wrk, load average before: $load_before"
  echo "# data: $doctors doctors x $per_doctor slots of $slot_minutes min = $total_slots slots, the same ids in both"
  echo "# slotd: $slotd (RocksDB journal, one fsync per group-committed batch, --hold-ttl $hold_ttl)"
  echo "# baseline: one Node $node_version process, express $express_version, pg $pg_version (Pool max $pool_size);"
  echo "#   PostgreSQL $pg_settings"
  awk -v sb="$slotd_bookings" -v bb="$base_bookings" -v ss="$slotd_secs" -v bs="$base_secs" \
      -v sbr="$(wrk_rps slotd_book)" -v bbr="$(wrk_rps base_book)" \
      -v srr="$(wrk_rps slotd_read)" -v brr="$(wrk_rps base_read)" \
      -v sbe="$(wrk_non2xx slotd_book) / $(wrk_errors slotd_book)" -v bbe="$(wrk_non2xx base_book) / $(wrk_errors base_book)" \
      -v sre="$(wrk_non2xx slotd_read) / $(wrk_errors slotd_read)" -v bre="$(wrk_non2xx base_read) / $(wrk_errors base_read)" \
      -v sbl="$(wrk_lat slotd_book)" -v bbl="$(wrk_lat base_book)" \
      -v srl="$(wrk_lat slotd_read)" -v brl="$(wrk_lat base_read)" \
      -v sd="$slotd_double" -v bd="$base_double" -v rp="$read_path" '
    function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
    BEGIN {
      fmt = "%-38s %20s %20s %15s\n"
      printf fmt, "", "slotd", "baseline", "slotd/baseline"
      s = sb / ss; b = bb / bs
      printf fmt, "POST /booking: durable bookings/s", sprintf("%.0f", s), sprintf("%.0f", b), ratio(s, b)
      printf fmt, "  durable bookings (counted in the DB)", sb, bb, ""
      printf fmt, "  wrk requests/s", sbr, bbr, ratio(sbr, bbr)
      printf fmt, "  wrk non-2xx / socket errors", sbe, bbe, ""
      printf fmt, "  latency p50 / p99", sbl, bbl, ""
      printf fmt, "GET " rp ": reads/s", srr, brr, ratio(srr, brr)
      printf fmt, "  wrk non-2xx / socket errors", sre, bre, ""
      printf fmt, "  latency p50 / p99", srl, brl, ""
      printf fmt, "double bookings", sd, bd, ""
    }'
} | tee "$out"

# One machine-readable line per run (bench/run reads them): replies/s, successful replies/s
# (200 for reads, 201 for bookings), p50/p99 in ms; bookings also durable (counted in the
# store) and durable/s.
wrk_ms() { # the wrk --latency percentile $2 ("50%") of run $1, in ms
  awk -v p="$2" '$1 == p { v = $2; f = 1
      if (v ~ /us$/) { sub(/us$/, "", v); f = 0.001 } else if (v ~ /ms$/) sub(/ms$/, "", v)
      else if (v ~ /m$/) { sub(/m$/, "", v); f = 60000 } else if (v ~ /s$/) { sub(/s$/, "", v); f = 1000 }
      printf "%.3f", v * f }' "$work/$1.wrk"
}
wrk_s201() { awk '/^wrk-status:/ { for (i = 2; i <= NF; i++) if ($i ~ /^s201=/) { sub(/^s201=/, "", $i); print $i } }' "$work/$1.wrk"; }
result_line() { # run system durable
  local run=$1 secs rps ok
  secs=$(wrk_secs "$run"); rps=$(wrk_rps "$run")
  if [[ $run == *_book ]]; then ok=$(wrk_s201 "$run"); else
    ok=$(awk -v r="$(awk '/ requests in / {print $1}' "$work/$run.wrk")" -v n="$(wrk_non2xx "$run")" 'BEGIN {print r - n}'); fi
  awk -v name="$run" -v sys="$2" -v rps="$rps" -v ok="$ok" -v secs="$secs" -v d="${3:-}" \
      -v p50="$(wrk_ms "$run" 50%)" -v p99="$(wrk_ms "$run" 99%)" -v n="$(wrk_non2xx "$run")" -v e="$(wrk_errors "$run")" \
      'BEGIN { printf "RESULT name=compare.%s system=%s rps=%.0f ok_rps=%.0f p50_ms=%s p99_ms=%s non2xx=%d errors=%d", name, sys, rps, ok / secs, p50, p99, n, e
               if (d != "") printf " durable=%d durable_per_s=%.0f", d, d / secs
               printf "\n" }'
}
{
  result_line slotd_read slotd
  result_line base_read baseline
  result_line slotd_book slotd "$slotd_bookings"
  result_line base_book baseline "$base_bookings"
} | tee -a "$out"
if ((slotd_double != 0 || base_double != 0)); then log "DOUBLE BOOKINGS: slotd $slotd_double, baseline $base_double"; exit 1; fi
