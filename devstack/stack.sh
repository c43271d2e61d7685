#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft, from Maven Central jars), Redis and
# ClickHouse (Debian packages), all on 127.0.0.1, data under .devstack/.
#
#   stack.sh install                 install what is missing (apt, Maven)
#   stack.sh up     [service...]     install, start what is not running, wait until it answers
#   stack.sh down   [service...]     stop what `up` started (nothing else)
#   stack.sh status [service...]     one line per service; exit 3 if one is not answering
#   stack.sh env                     the client environment for this stack
#   stack.sh apt PACKAGE...          apt-get install (used by the Makefile for check tools)
#
# Services: kafka redis clickhouse. Ports and folders come from the
# DEVSTACK_* variables below; README.md lists them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${DEVSTACK_DIR:-$ROOT/.devstack}
KAFKA_PORT=${DEVSTACK_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${DEVSTACK_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP=${DEVSTACK_KAFKA_HEAP:-512m}
REDIS_PORT=${DEVSTACK_REDIS_PORT:-6379}
CH_PORT=${DEVSTACK_CLICKHOUSE_PORT:-9000}
CH_HTTP_PORT=${DEVSTACK_CLICKHOUSE_HTTP_PORT:-8123}
WAIT_SECONDS=${DEVSTACK_WAIT_SECONDS:-120}
ALL_SERVICES=(kafka redis clickhouse)

KAFKA_DIR=$STATE/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
REDIS_DIR=$STATE/redis
CH_DIR=$STATE/clickhouse

say() { printf 'devstack: %s\n' "$*"; }
die() { printf 'devstack: ERROR: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { # pidfile
  [[ -f $1 ]] || return 1
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

logfile() {
  case $1 in
    kafka) echo "$KAFKA_DIR/server.log" ;;
    redis) echo "$REDIS_DIR/redis.log" ;;
    clickhouse) echo "$CH_DIR/data/clickhouse-server.err.log" ;;
  esac
}

pidfile() { echo "$STATE/$1.pid"; }

# ---------------------------------------------------------------- install

need_root_apt() {
  local pkgs=("$@")
  [[ ${#pkgs[@]} -eq 0 ]] && return 0
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  say "installing Debian packages: ${pkgs[*]}"
  $sudo apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null \
    || die "apt-get install ${pkgs[*]} failed"
}

install_packages() {
  local pkgs=()
  command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  command -v redis-server >/dev/null || pkgs+=(redis-server)
  command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || pkgs+=(redis-tools)
  command -v clickhouse-server >/dev/null || pkgs+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || pkgs+=(clickhouse-client)
  need_root_apt "${pkgs[@]}"
}

install_kafka() {
  local pom=$ROOT/devstack/kafka/pom.xml stamp=$KAFKA_LIBS/.pom.sha256 want
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
  say "resolving the Kafka broker jars from Maven Central (devstack/kafka/pom.xml)"
  rm -rf "$KAFKA_LIBS"; mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$KAFKA_LIBS" >"$KAFKA_DIR/maven.log" 2>&1 \
    || die "Maven could not resolve the Kafka jars; see $KAFKA_DIR/maven.log"
  echo "$want" >"$stamp"
}

cmd_install() {
  mkdir -p "$KAFKA_DIR" "$REDIS_DIR" "$CH_DIR"
  install_packages
  install_kafka
}

# ---------------------------------------------------------------- kafka

kafka_java() { # main-class args...
  java -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
    -Dkafka.logs.file="$KAFKA_DIR/tools.log" "$@"
}

kafka_config() {
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by devstack/stack.sh; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
auto.create.topics.enable=false
num.partitions=12
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
}

kafka_ready() {
  port_open "$KAFKA_PORT" || return 1
  timeout 60 java -Xmx128m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
    -Dkafka.logs.file="$KAFKA_DIR/tools.log" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

kafka_start() {
  kafka_config
  if [[ ! -f $KAFKA_DIR/data/meta.properties ]]; then
    say "kafka: formatting storage in $KAFKA_DIR/data"
    local id; id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
    kafka_java kafka.tools.StorageTool format -t "$id" -c "$KAFKA_DIR/server.properties" \
      >"$KAFKA_DIR/format.log" 2>&1 || die "kafka: formatting storage failed; see $KAFKA_DIR/format.log"
  fi
  setsid nohup java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -cp "$KAFKA_LIBS/*" \
    -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
    -Dkafka.logs.file="$KAFKA_DIR/server.log" \
    kafka.Kafka "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/stdout.log" 2>&1 </dev/null &
  echo $! >"$(pidfile kafka)"
}

# ---------------------------------------------------------------- redis

redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]]; }

redis_start() {
  mkdir -p "$REDIS_DIR"
  # Append-only file so idempotency keys and lock counters survive a restart.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$(pidfile redis)" --logfile "$REDIS_DIR/redis.log" \
    --appendonly yes --appendfsync everysec --save "" --protected-mode yes \
    >/dev/null || die "redis: redis-server did not start; see $REDIS_DIR/redis.log"
}

# ---------------------------------------------------------------- clickhouse

clickhouse_ready() {
  [[ $(clickhouse-client --host 127.0.0.1 --port "$CH_PORT" --query "SELECT 1" 2>/dev/null) == 1 ]]
}

clickhouse_start() {
  mkdir -p "$CH_DIR/data/tmp" "$CH_DIR/data/user_files" "$CH_DIR/data/format_schemas"
  sed -e "s|@DATA@|$CH_DIR/data|g" -e "s|@TCP_PORT@|$CH_PORT|g" -e "s|@HTTP_PORT@|$CH_HTTP_PORT|g" \
    "$ROOT/devstack/clickhouse/config.xml" >"$CH_DIR/config.xml"
  cp "$ROOT/devstack/clickhouse/users.xml" "$CH_DIR/users.xml"
  (cd "$CH_DIR" && clickhouse-server --config-file="$CH_DIR/config.xml" \
    --pid-file="$(pidfile clickhouse)" --daemon >"$CH_DIR/stdout.log" 2>&1) \
    || die "clickhouse: clickhouse-server did not start; see $CH_DIR/stdout.log"
}

# ---------------------------------------------------------------- lifecycle

port_of() {
  case $1 in kafka) echo "$KAFKA_PORT" ;; redis) echo "$REDIS_PORT" ;; clickhouse) echo "$CH_PORT" ;; esac
}

wait_ready() { # service
  local svc=$1 deadline=$((SECONDS + WAIT_SECONDS))
  until "${svc}_ready"; do
    if [[ -f $(pidfile "$svc") ]] && ! pid_alive "$(pidfile "$svc")"; then
      tail -n 20 "$(logfile "$svc")" >&2 2>/dev/null || true
      die "$svc exited during start-up; see $(logfile "$svc")"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$(logfile "$svc")" >&2 2>/dev/null || true
      die "$svc did not answer on 127.0.0.1:$(port_of "$svc") within ${WAIT_SECONDS}s; see $(logfile "$svc")"
    fi
    sleep 0.5
  done
}

service_up() {
  local svc=$1 t0=$SECONDS
  if pid_alive "$(pidfile "$svc")"; then
    say "$svc: already running (pid $(cat "$(pidfile "$svc")"))"
  elif port_open "$(port_of "$svc")"; then
    rm -f "$(pidfile "$svc")"
    say "$svc: port $(port_of "$svc") is taken by a process devstack did not start; using it as $svc"
  else
    rm -f "$(pidfile "$svc")"
    say "$svc: starting on 127.0.0.1:$(port_of "$svc"), log $(logfile "$svc")"
    "${svc}_start"
  fi
  wait_ready "$svc"
  say "$svc: ready in $((SECONDS - t0))s"
}

service_down() {
  local svc=$1 pf pid
  pf=$(pidfile "$svc")
  if ! pid_alive "$pf"; then
    rm -f "$pf"
    say "$svc: not running (nothing devstack started)"
    return 0
  fi
  pid=$(cat "$pf")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$svc: did not stop within 30s, killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
  say "$svc: stopped"
}

service_status() {
  local svc=$1 port owner
  port=$(port_of "$svc")
  if pid_alive "$(pidfile "$svc")"; then owner="pid $(cat "$(pidfile "$svc")")"; else owner="not started by devstack"; fi
  if "${svc}_ready"; then
    printf '%-11s up     127.0.0.1:%-6s %s, log %s\n' "$svc" "$port" "$owner" "$(logfile "$svc")"
  else
    printf '%-11s DOWN   127.0.0.1:%-6s %s, log %s\n' "$svc" "$port" "$owner" "$(logfile "$svc")"
    return 3
  fi
}

services() { # validate names, default to all
  if [[ $# -eq 0 ]]; then echo "${ALL_SERVICES[@]}"; return; fi
  local s
  for s in "$@"; do
    case $s in kafka | redis | clickhouse) ;; *) die "unknown service '$s' (want kafka, redis or clickhouse)" ;; esac
  done
  echo "$@"
}

cmd_env() {
  cat <<EOF
KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
REDIS_ADDR=127.0.0.1:$REDIS_PORT
CLICKHOUSE_ADDR=127.0.0.1:$CH_PORT
EOF
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    install) cmd_install ;;
    apt) need_root_apt "$@" ;;
    up)
      local svcs; svcs=$(services "$@")
      cmd_install
      for s in $svcs; do service_up "$s"; done ;;
    down)
      local svcs; svcs=$(services "$@")
      for s in $svcs; do service_down "$s"; done ;;
    status)
      local svcs rc=0; svcs=$(services "$@")
      for s in $svcs; do service_status "$s" || rc=3; done
      return $rc ;;
    env) cmd_env ;;
    *) die "usage: stack.sh install|up|down|status|env [kafka|redis|clickhouse...]" ;;
  esac
}

main "$@"
