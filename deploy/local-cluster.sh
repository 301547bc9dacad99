#!/usr/bin/env bash
# A cluster on this machine, to try one (and for test/cluster.test.ts): N instances of the server on one PostgreSQL,
# behind HAProxy, all on loopback.
#
#   deploy/local-cluster.sh start [N]   N instances (default 3) on BASE_PORT+1.. (BASE_PORT: 9100), HAProxy on
#                                       BASE_PORT, PostgreSQL via .ci/postgres.sh unless DATABASE_URL names one;
#                                       prints the balancer's plain-HTTP URL as its last line
#   deploy/local-cluster.sh stop        stops the instances (SIGTERM: they drain), HAProxy, and PostgreSQL if start
#                                       started it
#   deploy/local-cluster.sh pids        the instances' process ids, one a line
#   deploy/local-cluster.sh restart I   stops instance I with SIGTERM (it drains) and starts it again
#
# TLS_PEM=<certificate and key, PEM> also terminates TLS on BASE_PORT+100 (https://127.0.0.1:<that port>).
# STATE_DIR (default .cluster/) holds the logs, data directories, pids and the generated haproxy.cfg. Extra
# settings for the instances pass through the environment (TABAGENT_*). Needs the built server (npm ci builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_PORT="${BASE_PORT:-9100}"
STATE_DIR="$(realpath -m "${STATE_DIR:-.cluster}")"
say() { echo "local-cluster: $*" >&2; }

instance_pids() { cat "$STATE_DIR"/node-*.pid 2>/dev/null || true; }

# One instance, I, from the cluster's settings in $STATE_DIR/cluster.env; its pid goes to node-I.pid.
start_node() {
  local i="$1" port node
  # shellcheck disable=SC1091
  . "$STATE_DIR/cluster.env"
  port=$((BASE_PORT + i)) node="node-$i"
  mkdir -p "$STATE_DIR/$node"
  HOST=127.0.0.1 PORT="$port" DATABASE_URL="$DATABASE_URL" TABAGENT_NODE_ID="$node" TABAGENT_CLUSTER_SECRET="$CLUSTER_SECRET" \
    TABAGENT_INTERNAL_URL="http://127.0.0.1:$port" TABAGENT_DATA_DIR="$STATE_DIR/$node" TABAGENT_TRUSTED_PROXIES=127.0.0.1 \
    nohup node dist/server.mjs >>"$STATE_DIR/$node.log" 2>&1 &
  echo $! >"$STATE_DIR/$node.pid"
}

wait_healthy() {
  local url="$1" what="$2"
  for _ in $(seq 1 150); do
    curl -fs "$url/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "$what did not come up"
  return 1
}

stop_node() {
  local pidfile="$1" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

start() {
  local count="${1:-3}"
  [ -f dist/server.mjs ] || { say "dist/server.mjs is missing: run npm run build (npm ci does)"; exit 1; }
  command -v haproxy >/dev/null || { say "haproxy is missing: apt-get install haproxy"; exit 1; }
  mkdir -p "$STATE_DIR"
  if [ -z "${DATABASE_URL:-}" ]; then
    pg_isready -q -h 127.0.0.1 2>/dev/null || touch "$STATE_DIR/started-postgres"
    DATABASE_URL="$(PG_DATABASE="${PG_DATABASE:-tabagent_cluster}" bash .ci/postgres.sh)"
  fi
  (umask 077 && printf 'BASE_PORT=%q\nDATABASE_URL=%q\nCLUSTER_SECRET=%q\n' "$BASE_PORT" "$DATABASE_URL" \
    "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >"$STATE_DIR/cluster.env")
  local servers=""
  for i in $(seq 1 "$count"); do
    start_node "$i"
    servers+="  server node-$i 127.0.0.1:$((BASE_PORT + i)) check inter 500 fall 2 rise 2"$'\n'
  done
  for i in $(seq 1 "$count"); do
    wait_healthy "http://127.0.0.1:$((BASE_PORT + i))" "node-$i" || { tail -5 "$STATE_DIR/node-$i.log" >&2; stop; exit 1; }
  done
  local tls=""
  [ -n "${TLS_PEM:-}" ] && tls="  bind 127.0.0.1:$((BASE_PORT + 100)) ssl crt $TLS_PEM"
  sed -e "s|@LISTEN@|127.0.0.1:$BASE_PORT|" -e "s|@TLS@|$tls|" deploy/haproxy.cfg >"$STATE_DIR/haproxy.cfg"
  printf '%s' "$servers" >>"$STATE_DIR/haproxy.cfg"
  haproxy -D -f "$STATE_DIR/haproxy.cfg" -p "$STATE_DIR/haproxy.pid"
  wait_healthy "http://127.0.0.1:$BASE_PORT" "HAProxy"
  say "$count instances, HAProxy on $BASE_PORT, PostgreSQL at ${DATABASE_URL%%\?*}; logs in $STATE_DIR"
  echo "http://127.0.0.1:$BASE_PORT"
}

restart() {
  local i="$1"
  stop_node "$STATE_DIR/node-$i.pid"
  start_node "$i"
  # shellcheck disable=SC1091
  . "$STATE_DIR/cluster.env"
  wait_healthy "http://127.0.0.1:$((BASE_PORT + i))" "node-$i"
}

stop() {
  for pidfile in "$STATE_DIR"/node-*.pid; do
    [ -e "$pidfile" ] || continue
    local pid
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pidfile in "$STATE_DIR"/node-*.pid; do [ -e "$pidfile" ] && stop_node "$pidfile"; done
  if [ -f "$STATE_DIR/haproxy.pid" ]; then
    kill -TERM "$(cat "$STATE_DIR/haproxy.pid")" 2>/dev/null || true
    rm -f "$STATE_DIR/haproxy.pid"
  fi
  if [ -f "$STATE_DIR/started-postgres" ]; then
    pg_ctlcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main stop >&2 || true
    rm -f "$STATE_DIR/started-postgres"
  fi
}

case "${1:-}" in
  start) start "${2:-3}" ;;
  stop) stop ;;
  pids) instance_pids ;;
  restart) restart "${2:?which instance}" ;;
  *) echo "usage: $0 start [N] | stop | pids | restart I" >&2; exit 2 ;;
esac
