#!/usr/bin/env bash
# Gateway throughput and latency with wrk on loopback, beside Kafka's
# producer perf test for the same record size and redis-benchmark, in the
# same run. The gateway runs as `eprostream ingest`, a process of its own.
#
#   bash bench/gateway.sh            (about 2 minutes)
#   DURATION=30s bash bench/gateway.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
STAMP=$(date +%s)
export EPRO_ENV=bench-gw-$STAMP TOPIC_PREFIX=bench-gw-$STAMP. ADMIN_ADDR= LOG_LEVEL=warn
ADDR=127.0.0.1:18080
OUT=${DEVSTACK_DIR:-$ROOT/.devstack}/bench
mkdir -p "$OUT"
command -v wrk >/dev/null || bash devstack/stack.sh apt wrk
bash devstack/stack.sh up >/dev/null
go build -o bin/eprostream ./cmd/eprostream

echo "gateway benchmark $(date -u +%F\ %H:%M) UTC, $DURATION per run, $CONNS connections (wrk -t2)"
echo
echo "| run | figure | command |"
echo "|---|---|---|"
ANCHOR_PARTS="kafka redis" ANCHOR_RECORDS=${ANCHOR_RECORDS:-500000} ANCHOR_RECORD_SIZE=385 bash bench/anchors.sh | tail -n +3

bin/eprostream migrate >/dev/null
TOKEN=$(bin/eprostream apikey create --name bench --study '*' --rate 10000000 | awk '/^token:/ {print $2}')
export TOKEN
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  java -cp "${DEVSTACK_DIR:-$ROOT/.devstack}/kafka/libs/*" -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
    -Dkafka.logs.file="${DEVSTACK_DIR:-$ROOT/.devstack}/kafka/tools.log" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:${DEVSTACK_KAFKA_PORT:-9092} \
    --delete --topic "bench-gw-$STAMP\\..*" >/dev/null 2>&1 || true
  redis-cli -p "${DEVSTACK_REDIS_PORT:-6379}" --scan --pattern "eprostream:$EPRO_ENV:*" | xargs -r -n 1000 redis-cli -p "${DEVSTACK_REDIS_PORT:-6379}" DEL >/dev/null
}
trap cleanup EXIT

serve() {
  [[ -n $pid ]] && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
  LOG_LEVEL=info bin/eprostream ingest --listen "$ADDR" --rate-overall 0 "$@" >"$OUT/ingest.log" 2>&1 &
  pid=$!
  # Serving, and the study registry loaded (until then submissions get 503).
  for _ in $(seq 1 300); do
    curl -fsS "http://$ADDR/openapi.json" >/dev/null 2>&1 && grep -q "study registry loaded" "$OUT/ingest.log" && return
    sleep 0.1
  done
  echo "ingest did not start; see $OUT/ingest.log" >&2; exit 1
}

# wrk's summary: "Requests/sec: 12345.67" and, with --latency, "99%  12.34ms".
run() {
  local name=$1 batch=$2; shift 2
  BATCH=$batch wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/wrk/submit.lua "http://$ADDR" >"$OUT/wrk.txt" 2>&1
  local rps p50 p99 figure
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$OUT/wrk.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$OUT/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$OUT/wrk.txt")
  if grep -q "unexpected answer" "$OUT/wrk.txt"; then
    # A figure of refused requests measures nothing: stop, and show why.
    echo "ERROR: $name got answers other than 202/accepted, so its figure is not a throughput:" >&2
    grep "unexpected answer" "$OUT/wrk.txt" | head -3 >&2
    exit 1
  fi
  if ((batch > 1)); then figure="$((rps * batch)) submissions/s ($rps requests/s), p50 $p50, p99 $p99"
  else figure="$rps req/s, p50 $p50, p99 $p99"; fi
  printf '| %s | %s | `%s` |\n' "$name" "$figure" "BATCH=$batch wrk -t2 -c$CONNS -d$DURATION --latency -s bench/wrk/submit.lua"
}

serve
BATCH=1 wrk -t2 -c"$CONNS" -d3s -s bench/wrk/submit.lua "http://$ADDR" >/dev/null 2>&1 # warm-up: connections, scripts
run "single POST, all Redis work on (key, limits, idempotency)" 1
CONNS=8 run "batch of 500, all Redis work on, 8 connections" 500
serve --no-rate-limits
run "single POST, idempotency only (no rate limits)" 1
serve --no-rate-limits --no-idempotency
run "single POST, no Redis round trips (no limits, no idempotency)" 1
