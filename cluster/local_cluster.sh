#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine, for trying `landmark run --address` without
# cloud machines: one head node plus N worker "nodes", each a separate raylet with its own CPU
# count, ports and temp dir, all on 127.0.0.1.
#
#   cluster/local_cluster.sh start  [--workers N] [--port P] [--head-cpus C] [--worker-cpus C]
#                                   [--metrics] [--dashboard]
#   cluster/local_cluster.sh add    [--port P] [--worker-cpus C]
#   cluster/local_cluster.sh status [--port P]
#   cluster/local_cluster.sh stop   [--port P]
#
# `add` joins one more worker node to a running cluster (as a new machine would join a real
# one), for example while a run is going, to watch it place actors there.
#
# Each node is started with `ray start --block` in its own process group, and its pid is kept
# under the state dir; `stop` ends exactly those (never `ray stop`, which would end every Ray
# on the machine, other people's included). Ports are derived from --port so that two clusters
# with different --port values never collide:
#
#   P        GCS (the address to join: 127.0.0.1:P)
#   P+1      Ray client server (ray://127.0.0.1:P+1)
#   P+2      dashboard and Jobs API, with --dashboard only (http://127.0.0.1:P+2, head only)
#   P+10i..  node i (0 = head): node manager, object manager, metrics export (P+10i+12),
#            dashboard agent http/grpc, runtime env agent
#   P+200+100i .. +99   worker process ports of node i
#
# Environment: RAY (the ray executable; default: the project's .venv/bin/ray, else `ray`),
# LANDMARK_CLUSTER_DIR (state dir; default /tmp/landmark-cluster-P), READY_TIMEOUT (s, 90).
# The nodes run with that executable's folder first on PATH, as in an activated venv, so a
# `ray job submit` entrypoint such as `landmark run …` finds the landmark installed beside Ray.
#
# Token authentication is on: `start` writes a fresh token to STATE/auth_token (mode 600)
# and every node, and every driver that joins, reads it through RAY_AUTH_TOKEN_PATH. A
# client without it is refused, at the dashboard and its Jobs API (`ray job submit` sends
# the token as a bearer header) too. (Ray cannot keep a multi-node cluster on 127.0.0.1
# alone, Ray issue #59110, so its ports are reachable from the network: the token is the
# guard; the dashboard, on the head only, is bound to 127.0.0.1.)
set -euo pipefail

export RAY_AUTH_MODE=token
export RAY_USAGE_STATS_ENABLED=0
export RAY_worker_niceness=0  # not Ray's default 15: see coordinator/ray_setup.py
unset RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER  # a single-node setting: it forbids worker nodes

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAX_WORKERS=8
HOST=127.0.0.1

usage() {
  sed -n '6,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "local_cluster: $*" >&2
  exit 1
}

ray_bin() {
  if [[ -n "${RAY:-}" ]]; then
    echo "$RAY"
  elif [[ -x "$ROOT/.venv/bin/ray" ]]; then
    echo "$ROOT/.venv/bin/ray"
  elif command -v ray >/dev/null; then
    command -v ray
  else
    die "no 'ray' executable: run 'make setup' (creates .venv) or set RAY=/path/to/ray"
  fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

is_int() {
  [[ "$1" =~ ^[0-9]+$ ]]
}

# --- options ------------------------------------------------------------------------------
COMMAND="${1:-}"
[[ -n "$COMMAND" ]] || usage
shift
WORKERS=1
PORT=6390
HEAD_CPUS=1
WORKER_CPUS=1
METRICS=0
DASHBOARD=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workers) WORKERS="${2:-}"; shift 2 ;;
    --port) PORT="${2:-}"; shift 2 ;;
    --head-cpus) HEAD_CPUS="${2:-}"; shift 2 ;;
    --worker-cpus) WORKER_CPUS="${2:-}"; shift 2 ;;
    --metrics) METRICS=1; shift ;;
    --dashboard) DASHBOARD=1; shift ;;
    -h|--help) usage ;;
    *) echo "local_cluster: unknown option '$1'" >&2; usage ;;
  esac
done
for value in "$WORKERS" "$PORT" "$HEAD_CPUS" "$WORKER_CPUS"; do
  is_int "$value" || die "options take whole numbers, got '$value'"
done
((WORKERS <= MAX_WORKERS)) || die "--workers must be at most $MAX_WORKERS, got $WORKERS"
((PORT >= 1024 && PORT + 200 + 100 * (MAX_WORKERS + 1) <= 65535)) \
  || die "--port must leave room for the derived ports (1024..$((65535 - 200 - 100 * (MAX_WORKERS + 1))))"
STATE="${LANDMARK_CLUSTER_DIR:-/tmp/landmark-cluster-$PORT}"
READY_TIMEOUT="${READY_TIMEOUT:-90}"
export RAY_AUTH_TOKEN_PATH="$STATE/auth_token"
DASHBOARD_PORT=$((PORT + 2))

write_token() {
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$RAY_AUTH_TOKEN_PATH")
}

# --- one node -----------------------------------------------------------------------------
node_ports() {
  local i=$1 base=$((PORT + 10 + 10 * $1)) workers=$((PORT + 200 + 100 * $1))
  echo --node-manager-port=$((base)) --object-manager-port=$((base + 1)) \
    --metrics-export-port=$((base + 2)) --dashboard-agent-listen-port=$((base + 3)) \
    --dashboard-agent-grpc-port=$((base + 4)) --runtime-env-agent-port=$((base + 5)) \
    --min-worker-port=$((workers)) --max-worker-port=$((workers + 99))
}

launch_node() {
  local i=$1
  shift
  local dir="$STATE/node-$i"
  mkdir -p "$dir"
  # setsid: the node gets its own process group, so stop can end its leftovers by group id.
  local ray
  ray=$(ray_bin)
  # shellcheck disable=SC2046
  PATH="$(dirname "$ray"):$PATH" setsid "$ray" start --block --disable-usage-stats \
    --node-ip-address=$HOST --temp-dir="$dir/ray" $(node_ports "$i") "$@" \
    >"$dir/start.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}

wait_ready() {
  local i=$1 dir="$STATE/node-$1" deadline=$((SECONDS + READY_TIMEOUT)) pid
  pid=$(cat "$dir/pid")
  until grep -q "Ray runtime started" "$dir/start.log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/start.log" >&2
      echo "local_cluster: node $i exited while starting (log: $dir/start.log)" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "local_cluster: node $i not ready after ${READY_TIMEOUT}s (log: $dir/start.log)" >&2
      return 1
    fi
    sleep 0.2
  done
}

# --- commands -----------------------------------------------------------------------------
# Ray gives a new raylet a fixed 30 s to register with the GCS; on a busy machine it can miss
# that and exit, so a node that exits while starting is launched again (a hung one is not).
start_node() {
  local i=$1 attempt
  shift
  for attempt in 1 2 3; do
    launch_node "$i" "$@"
    if wait_ready "$i"; then
      return 0
    fi
    kill -0 "$(cat "$STATE/node-$i/pid")" 2>/dev/null && return 1
    ((attempt < 3)) && echo "local_cluster: starting node $i again (attempt $((attempt + 1)) of 3)" >&2
  done
  return 1
}

start() {
  [[ ! -e "$STATE/node-0/pid" ]] || die "a cluster is already recorded in $STATE: run '$0 stop --port $PORT' first"
  local ports=("$PORT" $((PORT + 1)))
  if ((DASHBOARD)); then
    ports+=("$DASHBOARD_PORT")
  fi
  for port in "${ports[@]}"; do
    ! port_in_use "$port" || die "port $port on $HOST is in use: pick another --port"
  done
  mkdir -p "$STATE"
  write_token
  # shellcheck disable=SC2046
  if ! start_node 0 --head --port="$PORT" --ray-client-server-port=$((PORT + 1)) \
    $(dashboard_options) --num-cpus="$HEAD_CPUS" || ! wait_dashboard; then
    stop_nodes
    exit 1
  fi
  local i
  for ((i = 1; i <= WORKERS; i++)); do
    if ! start_node "$i" --address="$HOST:$PORT" --num-cpus="$WORKER_CPUS" \
      --resources="{\"local_node_$i\": 1}"; then
      stop_nodes
      exit 1
    fi
  done
  echo "local_cluster: head + $WORKERS worker node(s) on $HOST (state: $STATE)"
  echo "  token:      export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH"
  echo "  join it:    landmark run job.yaml --address $HOST:$PORT   (or RAY_ADDRESS=$HOST:$PORT)"
  echo "  client:     ray://$HOST:$((PORT + 1))"
  echo "  metrics:    $(metrics_targets)"
  if ((DASHBOARD)); then
    echo "  dashboard:  $(dashboard_url)  (Jobs API; needs the token too)"
    echo "  submit:     ray job submit --address $(dashboard_url) --working-dir . --" \
      "landmark run job.yaml --address auto --out /absolute/path"
  fi
  echo "  stop it:    $0 stop --port $PORT"
  if ((METRICS)); then
    write_prometheus_config
  fi
}

# One more worker node, numbered after the last one recorded.
add() {
  [[ -e "$STATE/node-0/pid" ]] || die "no cluster recorded in $STATE: run '$0 start --port $PORT' first"
  local i=1
  while [[ -e "$STATE/node-$i" ]]; do
    i=$((i + 1))
  done
  ((i <= MAX_WORKERS)) || die "at most $MAX_WORKERS worker nodes per cluster"
  start_node "$i" --address="$HOST:$PORT" --num-cpus="$WORKER_CPUS" \
    --resources="{\"local_node_$i\": 1}" || die "node $i did not start (log: $STATE/node-$i/start.log)"
  echo "local_cluster: worker node $i joined $HOST:$PORT ($WORKER_CPUS CPU)"
}

# --- the dashboard (--dashboard) ----------------------------------------------------------
# On the head only, bound to the loopback; its URL is kept in the state dir for `status`.
dashboard_options() {
  if ((DASHBOARD)); then
    echo --include-dashboard=true --dashboard-host=$HOST --dashboard-port="$DASHBOARD_PORT"
  else
    echo --include-dashboard=false
  fi
}

dashboard_url() {
  echo "http://$HOST:$DASHBOARD_PORT"
}

# `ray start` can report the node started before the dashboard's HTTP server listens.
wait_dashboard() {
  ((DASHBOARD)) || return 0
  local deadline=$((SECONDS + READY_TIMEOUT))
  until port_in_use "$DASHBOARD_PORT"; do
    if ((SECONDS >= deadline)); then
      echo "local_cluster: the dashboard is not listening on port $DASHBOARD_PORT after" \
        "${READY_TIMEOUT}s (logs: $STATE/node-0/ray/session_latest/logs/dashboard*)" >&2
      return 1
    fi
    sleep 0.2
  done
  dashboard_url >"$STATE/dashboard"
}

metrics_targets() {
  local i targets=()
  for dir in "$STATE"/node-*; do
    i=${dir##*/node-}
    targets+=("$HOST:$((PORT + 12 + 10 * i))")
  done
  echo "${targets[*]}"
}

write_prometheus_config() {
  local file="$STATE/prometheus.yml" list
  list=$(metrics_targets | sed "s/\([^ ]*\)/'\1'/g; s/ /, /g")
  cat >"$file" <<EOF
# Written by cluster/local_cluster.sh: scrape every node of the local cluster.
global:
  scrape_interval: 10s
scrape_configs:
  - job_name: ray
    static_configs:
      - targets: [$list]
EOF
  echo "  prometheus: $file  (prometheus --config.file=$file)"
}

status() {
  [[ -d "$STATE" ]] || die "no cluster recorded in $STATE"
  local dir pid url
  for dir in "$STATE"/node-*; do
    pid=$(cat "$dir/pid" 2>/dev/null || echo "")
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      echo "${dir##*/}: running (pid $pid)"
    else
      echo "${dir##*/}: not running"
    fi
  done
  if [[ -f "$STATE/dashboard" ]]; then
    url=$(cat "$STATE/dashboard")
    echo "dashboard: $url (Jobs API: ray job submit --address $url …)"
  fi
  "$(ray_bin)" status --address="$HOST:$PORT" || true
}

stop_node() {
  local dir=$1 pid deadline
  pid=$(cat "$dir/pid" 2>/dev/null || echo "")
  [[ -n "$pid" ]] || return 0
  # `ray start --block` cleans up its node on SIGTERM; give it time, then end the group.
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}

stop_nodes() {
  [[ -d "$STATE" ]] || return 0
  local dirs=() dir
  for dir in "$STATE"/node-*; do
    [[ -e "$dir" ]] && dirs+=("$dir")
  done
  # Workers first, the head last: a worker whose head vanished waits to reconnect.
  for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
    stop_node "${dirs[$i]}"
  done
}

stop() {
  [[ -d "$STATE" ]] || { echo "local_cluster: nothing recorded in $STATE"; return 0; }
  stop_nodes
  rm -rf "$STATE"
  echo "local_cluster: stopped (port $PORT)"
}

case "$COMMAND" in
  start) start ;;
  add) add ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
