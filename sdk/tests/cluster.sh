# Live servers for the SDK suites: one redis-server and two approvald replicas
# on it, on free 127.0.0.1 ports, stopped when the sourcing script exits.
# Source it after scripts/lib.sh, then call `start_cluster`. It exports:
#   APPROVALD_ADDR_A, APPROVALD_ADDR_B   host:port of the two replicas
#   APPROVALD_REDIS_URL, APPROVALD_REDIS_PREFIX   their shared store
#   APPROVALD_BIN                         the server binary (built if unset)
#   APPROVALD_DEFAULT_TIMEOUT_SECONDS     the replicas' --default-timeout
# so that tests can start (and kill) more replicas of the same cluster.
# `start_traced_replica` (after start_cluster) adds a third replica that
# exports its OpenTelemetry spans to an OTLP receiver, and exports:
#   APPROVALD_ADDR_TRACED   host:port of that replica
#   APPROVALD_OTLP_SPANS    a file with one line per span it exported,
#                           "span <trace_id> <parent_span_id> <name>"

CLUSTER_DIR=""
CLUSTER_PIDS=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The pinned grpc-health-probe, to wait for health SERVING.
need_health_probe() {
  HEALTH_PROBE="$ROOT/tools/bin/grpc-health-probe"
  if ! [ -x "$HEALTH_PROBE" ]; then
    log "installing grpc-health-probe (tools/bin)"
    GOBIN="$ROOT/tools/bin" go install github.com/grpc-ecosystem/grpc-health-probe@v0.4.62
  fi
}

# wait_serving HOST:PORT: until the replica's health says SERVING (30 s at most).
wait_serving() {
  local i
  for i in $(seq 1 150); do
    if "$HEALTH_PROBE" -addr="$1" -service=approval.v1.ApprovalService -connect-timeout=1s -rpc-timeout=1s >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  echo "approvald at $1 did not become SERVING; its log:" >&2
  cat "$CLUSTER_DIR"/approvald-*.log >&2 || true
  return 1
}

stop_cluster() {
  local pid
  for pid in "${CLUSTER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${CLUSTER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  CLUSTER_PIDS=()
  [ -n "$CLUSTER_DIR" ] && rm -rf "$CLUSTER_DIR"
  CLUSTER_DIR=""
}

# start_replica NAME: one more approvald on the cluster's Redis; sets
# REPLICA_ADDR to its host:port.
start_replica() {
  local port metrics
  port="$(free_port)"
  metrics="$(free_port)"
  "$APPROVALD_BIN" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$metrics" \
    --redis-url "$APPROVALD_REDIS_URL" --redis-prefix "$APPROVALD_REDIS_PREFIX" \
    --default-timeout "${APPROVALD_DEFAULT_TIMEOUT_SECONDS}s" \
    --shutdown-grace 2s >"$CLUSTER_DIR/approvald-$1.log" 2>&1 &
  CLUSTER_PIDS+=($!)
  REPLICA_ADDR="127.0.0.1:$port"
}

start_cluster() {
  need_redis
  need_health_probe
  [ -n "${APPROVALD_BIN:-}" ] || build_approvald
  CLUSTER_DIR="$(mktemp -d)"
  trap stop_cluster EXIT
  local redis_port
  redis_port="$(free_port)"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$CLUSTER_DIR" >"$CLUSTER_DIR/redis.log" 2>&1 &
  CLUSTER_PIDS+=($!)
  export APPROVALD_BIN
  export APPROVALD_REDIS_URL="redis://127.0.0.1:$redis_port"
  export APPROVALD_REDIS_PREFIX="sdk-$RANDOM-$RANDOM"
  # A distinctive default, so the SDK tests can tell that a request without
  # a timeout gets the server's default (not one the client made up).
  export APPROVALD_DEFAULT_TIMEOUT_SECONDS=4321
  start_replica a
  export APPROVALD_ADDR_A="$REPLICA_ADDR"
  start_replica b
  export APPROVALD_ADDR_B="$REPLICA_ADDR"
  wait_serving "$APPROVALD_ADDR_A"
  wait_serving "$APPROVALD_ADDR_B"
  log "cluster up: replicas $APPROVALD_ADDR_A and $APPROVALD_ADDR_B on $APPROVALD_REDIS_URL"
}

# A third replica whose server spans go, over OTLP/gRPC, to an OTLP receiver
# (tests/src/bin/otlp-sink.rs) that writes them to $APPROVALD_OTLP_SPANS:
# the SDKs' trace propagation tests look there for their caller's trace id.
start_traced_replica() {
  (cd "$ROOT" && cargo build --locked -q -p approval-tests --bin otlp-sink)
  export APPROVALD_OTLP_SPANS="$CLUSTER_DIR/otlp-spans.txt"
  "$ROOT/target/debug/otlp-sink" >"$APPROVALD_OTLP_SPANS" 2>"$CLUSTER_DIR/otlp-sink.log" &
  CLUSTER_PIDS+=($!)
  local i port=""
  for i in $(seq 1 100); do
    # The file appears once the background shell has opened it: not yet is
    # not an error (under set -e a failed sed here would end the suite).
    port="$(sed -n 's/^port //p' "$APPROVALD_OTLP_SPANS" 2>/dev/null || true)"
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "otlp-sink did not start:" >&2; cat "$CLUSTER_DIR/otlp-sink.log" >&2; return 1; }
  # Spans leave in batches every 100 ms instead of every 5 s.
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$port" OTEL_BSP_SCHEDULE_DELAY=100 \
    start_replica traced
  export APPROVALD_ADDR_TRACED="$REPLICA_ADDR"
  wait_serving "$APPROVALD_ADDR_TRACED"
  log "traced replica $APPROVALD_ADDR_TRACED exports its spans to 127.0.0.1:$port ($APPROVALD_OTLP_SPANS)"
}
