#!/usr/bin/env bash
# scripts/cluster.sh start|stop|status — a local slotd cluster on loopback for trying cluster
# mode by hand: 3 nats-server nodes (JetStream, clustered) and N slotd nodes following the
# streams of the same partitions; for each partition one of them takes the lease and leads. Data and logs live under
# $SLOTD_CLUSTER_DIR (default /tmp/slotd-cluster); `stop` ends exactly the processes whose
# pid files `start` wrote there.
#
# Environment: SLOTD_BIN (build/release/api/slotd), SLOTD_CLUSTER_NODES (3 slotd nodes),
# SLOTD_CLUSTER_REPLICAS (3), SLOTD_NATS_PORT (14222: client ports 14222..14224, routes
# +2000), SLOTD_HTTP_PORT (18081: slotd on 18081..), SLOTD_ADMIN_TOKEN (cluster-admin-token),
# SLOTD_CLUSTER_PARTITIONS (0: the --partition list every node serves, e.g. 1,4).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${SLOTD_CLUSTER_DIR:-/tmp/slotd-cluster}
slotd=${SLOTD_BIN:-$here/../build/release/api/slotd}
nodes=${SLOTD_CLUSTER_NODES:-3}
replicas=${SLOTD_CLUSTER_REPLICAS:-3}
nats_port=${SLOTD_NATS_PORT:-14222}
route_port=$((nats_port + 2000))
http_port=${SLOTD_HTTP_PORT:-18081}
admin_token=${SLOTD_ADMIN_TOKEN:-cluster-admin-token}
partitions=${SLOTD_CLUSTER_PARTITIONS:-0}

nats_urls() {
  local urls=() i
  for i in 0 1 2; do urls+=("nats://127.0.0.1:$((nats_port + i))"); done
  (IFS=,; echo "${urls[*]}")
}

wait_port() {  # port, seconds
  local end=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    if ((SECONDS >= end)); then echo "cluster.sh: nothing listens on port $1 after $2 s" >&2; return 1; fi
    sleep 0.1
  done
}

start() {
  mkdir -p "$dir"
  local routes="nats://127.0.0.1:$route_port,nats://127.0.0.1:$((route_port + 1)),nats://127.0.0.1:$((route_port + 2))"
  local i
  for i in 0 1 2; do
    [[ -f $dir/nats$i.pid ]] && kill -0 "$(cat "$dir/nats$i.pid")" 2>/dev/null && continue
    nats-server -js -sd "$dir/nats$i" -n "n$i" -a 127.0.0.1 -p $((nats_port + i)) \
      --cluster_name slotd --cluster "nats://127.0.0.1:$((route_port + i))" --routes "$routes" \
      >"$dir/nats$i.log" 2>&1 &
    echo $! >"$dir/nats$i.pid"
  done
  for i in 0 1 2; do wait_port $((nats_port + i)) 10; done
  for ((i = 0; i < nodes; i++)); do
    [[ -f $dir/slotd$i.pid ]] && kill -0 "$(cat "$dir/slotd$i.pid")" 2>/dev/null && continue
    "$slotd" --host 127.0.0.1 --port $((http_port + i)) --data-dir "$dir/slotd$i" \
      --admin-token "$admin_token" --nats "$(nats_urls)" --node-id "slotd$i" \
      --stream-replicas "$replicas" --partition "$partitions" >"$dir/slotd$i.log" 2>&1 &
    echo $! >"$dir/slotd$i.pid"
  done
  for ((i = 0; i < nodes; i++)); do wait_port $((http_port + i)) 30; done
  status
}

stop_pid_file() {
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  local f
  for f in "$dir"/slotd*.pid; do [[ -e $f ]] && stop_pid_file "$f"; done
  for f in "$dir"/nats*.pid; do [[ -e $f ]] && stop_pid_file "$f"; done
  echo "cluster.sh: stopped (data kept in $dir; rm -rf it for a fresh cluster)"
}

status() {
  local f i
  for i in 0 1 2; do
    f=$dir/nats$i.pid
    if [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null; then
      echo "nats-server n$i  nats://127.0.0.1:$((nats_port + i))  pid $(cat "$f")"
    else
      echo "nats-server n$i  down"
    fi
  done
  for f in "$dir"/slotd*.pid; do
    [[ -e $f ]] || continue
    i=${f##*/slotd}; i=${i%.pid}
    if kill -0 "$(cat "$f")" 2>/dev/null; then
      echo "slotd$i  http://127.0.0.1:$((http_port + i))  $(curl -s --max-time 2 "http://127.0.0.1:$((http_port + i))/healthz" || echo unreachable)"
    else
      echo "slotd$i  down"
    fi
  done
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
