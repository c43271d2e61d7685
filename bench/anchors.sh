#!/usr/bin/env bash
# Anchor figures every eprostream benchmark is compared with, measured on the
# local stack (make up): Kafka's own perf tools, redis-benchmark,
# clickhouse-client, and the stack's start time and memory.
#
#   bash bench/anchors.sh            all anchors (about 3 minutes)
#   ANCHOR_RECORDS=200000 bash bench/anchors.sh   a quicker, smaller run
#   ANCHOR_PARTS="kafka redis" bash bench/anchors.sh   only some parts
#     (parts: kafka redis clickhouse memory start)
#
# Prints a Markdown table on stdout; raw tool output goes to .devstack/bench/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
STATE=${DEVSTACK_DIR:-$ROOT/.devstack}
OUT=$STATE/bench
mkdir -p "$OUT"
RECORDS=${ANCHOR_RECORDS:-1000000}
SIZE=${ANCHOR_RECORD_SIZE:-400}
KAFKA=127.0.0.1:${DEVSTACK_KAFKA_PORT:-9092}
REDIS_PORT=${DEVSTACK_REDIS_PORT:-6379}
CH_PORT=${DEVSTACK_CLICKHOUSE_PORT:-9000}
LIBS=$STATE/kafka/libs
TOPIC=bench-anchor-$(date +%s)
PARTS=${ANCHOR_PARTS:-kafka redis clickhouse memory start}
want() { [[ " $PARTS " == *" $1 "* ]]; }

row() { printf '| %s | %s | `%s` |\n' "$1" "$2" "$3"; }
kjava() { java -Xmx512m -cp "$LIBS/*" -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
  -Dkafka.logs.file="$OUT/tools.log" "$@"; }

bash devstack/stack.sh up >/dev/null

echo "| anchor | figure | command |"
echo "|---|---|---|"

if want kafka; then
# Kafka produce: acks=all, idempotent (the producer default), 12 partitions.
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA" --create --topic "$TOPIC" \
  --partitions 12 --replication-factor 1 >/dev/null
kjava org.apache.kafka.tools.ProducerPerformance --topic "$TOPIC" --num-records "$RECORDS" \
  --record-size "$SIZE" --throughput -1 \
  --producer-props bootstrap.servers="$KAFKA" acks=all linger.ms=5 batch.size=131072 >"$OUT/produce.txt" 2>&1
p=$(tail -n1 "$OUT/produce.txt")
# "1000000 records sent, 250000.0 records/sec (95.37 MB/sec), 80.12 ms avg latency, ... 99th."
rps=$(sed -E 's/.* sent, ([0-9.]+) records\/sec.*/\1/' <<<"$p")
mbs=$(sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/' <<<"$p")
p99=$(sed -E 's/.*, ([0-9]+) ms 99th.*/\1/' <<<"$p")
row "Kafka produce, $RECORDS x ${SIZE} B, acks=all" "$rps records/s, $mbs MB/s, p99 $p99 ms" \
  "ProducerPerformance --num-records $RECORDS --record-size $SIZE --throughput -1 acks=all"

kjava org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$KAFKA" --topic "$TOPIC" \
  --messages "$RECORDS" --timeout 60000 >"$OUT/consume.txt" 2>&1
# header: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
c=$(tail -n1 "$OUT/consume.txt")
cmbs=$(cut -d, -f4 <<<"$c" | tr -d ' ')
crps=$(cut -d, -f6 <<<"$c" | tr -d ' ')
row "Kafka consume, same records" "$crps records/s, $cmbs MB/s" "ConsumerPerformance --messages $RECORDS"
kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA" --delete --topic "$TOPIC" >/dev/null 2>&1 || true

fi

if want redis; then
# Redis: one connection per client, 50 clients, without and with pipelining.
for P in 1 16; do
  redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t set,get -n 500000 -P "$P" -q -d 100 >"$OUT/redis-P$P.txt" 2>&1
  # -q still redraws progress with carriage returns; keep the final lines.
  set_rps=$(tr '\r' '\n' <"$OUT/redis-P$P.txt" | sed -nE 's/^SET: ([0-9.]+) requests per second.*/\1/p')
  get_rps=$(tr '\r' '\n' <"$OUT/redis-P$P.txt" | sed -nE 's/^GET: ([0-9.]+) requests per second.*/\1/p')
  row "Redis SET / GET, 100 B, -P $P" "$set_rps / $get_rps req/s" "redis-benchmark -t set,get -n 500000 -d 100 -P $P -q"
done

fi

if want clickhouse; then
# ClickHouse: 1M submissions-like rows from a TSV file through clickhouse-client.
chc() { clickhouse-client --host 127.0.0.1 --port "$CH_PORT" "$@"; }
chc --query "CREATE DATABASE IF NOT EXISTS bench_anchor"
chc --query "DROP TABLE IF EXISTS bench_anchor.submissions"
chc --query "CREATE TABLE bench_anchor.submissions (
  message_id String, study_id String, site_id String, subject_id String, instrument String,
  submitted_at DateTime('UTC'), item_codes Array(String), item_values Array(Float64),
  source String, topic String, partition UInt16, offset UInt64)
  ENGINE = MergeTree PARTITION BY toYYYYMM(submitted_at) ORDER BY (study_id, site_id, subject_id, submitted_at)"
chc --query "SELECT concat('01J', toString(number)), 'ONC-301', concat('SITE-', toString(number % 40)),
  concat('ONC-301-', toString(number % 5000)), 'PRO-CTCAE', toDateTime(1795000000 + number, 'UTC'),
  ['PAIN_SEVERITY','NAUSEA_FREQUENCY','FATIGUE_SEVERITY'], [toFloat64(number % 5), 1.0, 2.0],
  'app', 'epro-clean', number % 12, number FROM system.numbers LIMIT 1000000 FORMAT TSV" >"$OUT/ch.tsv"
t0=$(date +%s.%N)
chc --query "INSERT INTO bench_anchor.submissions FORMAT TSV" <"$OUT/ch.tsv"
t1=$(date +%s.%N)
n=$(chc --query "SELECT count() FROM bench_anchor.submissions")
chrps=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
row "ClickHouse insert, 1M submissions-like rows" "$chrps rows/s ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s)" \
  "clickhouse-client --query 'INSERT … FORMAT TSV' < 1M rows"
chc --query "DROP DATABASE bench_anchor"
rm -f "$OUT/ch.tsv"

fi

if want memory; then
# Memory of each service after the load above.
for svc in kafka redis clickhouse; do
  pf=$STATE/$svc.pid
  if [[ -f $pf ]] && kill -0 "$(cat "$pf")" 2>/dev/null; then
    rss=$(ps -o rss= -p "$(cat "$pf")" | awk '{printf "%.0f", $1/1024}')
    row "$svc resident memory after the anchors" "$rss MiB" "ps -o rss= -p \$(cat .devstack/$svc.pid)"
  fi
done

fi

if want start; then
# Stack start, cold (empty data folder, jars copied from the local Maven
# repository) and warm (same data, restart), on other ports so the running
# stack is left alone.
tmp=$(mktemp -d)
export DEVSTACK_DIR=$tmp DEVSTACK_KAFKA_PORT=19092 DEVSTACK_KAFKA_CONTROLLER_PORT=19093 \
  DEVSTACK_REDIS_PORT=16379 DEVSTACK_CLICKHOUSE_PORT=19000 DEVSTACK_CLICKHOUSE_HTTP_PORT=18123
t0=$(date +%s.%N); bash devstack/stack.sh up >"$OUT/start-cold.txt" 2>&1; t1=$(date +%s.%N)
bash devstack/stack.sh down >/dev/null
t2=$(date +%s.%N); bash devstack/stack.sh up >"$OUT/start-warm.txt" 2>&1; t3=$(date +%s.%N)
bash devstack/stack.sh down >/dev/null
rm -rf "$tmp"
row "stack start, cold / warm" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s / $(awk -v a="$t2" -v b="$t3" 'BEGIN{printf "%.1f", b-a}') s" \
  "DEVSTACK_DIR=\$(mktemp -d) bash devstack/stack.sh up (twice, with down between)"
fi
