#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft, from Maven Central jars), Redis and
# ClickHouse (Debian packages), all on 127.0.0.1, data under .devstack/.
#
#   stack.sh install                 install what is missing (apt, Maven)
#   stack.sh up     [service...]     install, start what is not running, wait until it answers
#   stack.sh down   [service...]     stop what `up` started (nothing else)
#   stack.sh status [service...]     one line per service; exit 3 if one is not answering
#   stack.sh env                     the client environment for this stack
#   stack.sh kill-node I             kill -9 Kafka node I (fault tests)
#   stack.sh start-node I            start Kafka node I again and wait until it answers
#   stack.sh apt PACKAGE...          apt-get install (used by the Makefile for check tools)
#
# Services: kafka redis clickhouse. Ports and folders come from the
# DEVSTACK_* variables below; README.md lists them. DEVSTACK_KAFKA_NODES=N
# (default 1) makes Kafka a cluster of N combined broker+controller nodes:
# node I listens on DEVSTACK_KAFKA_PORT+2(I-1) (controller
# DEVSTACK_KAFKA_CONTROLLER_PORT+2(I-1)) and keeps its files in
# $KAFKA_DIR/node-I. With 1 node the paths are those of a single broker.
#
# DEVSTACK_SECURE=1 starts the secured stack instead, beside the plain one
# (a folder of its own, .devstack/secure, and ports of its own): a
# throw-away CA and a certificate for 127.0.0.1 under $DEVSTACK_DIR/tls
# (openssl), Kafka with a SASL_SSL listener only (SCRAM-SHA-512 users
# created when its storage is formatted), Redis on a TLS port only with an
# ACL user (the default user off), ClickHouse on its secure native port
# only, its user with a password. The passwords are random, kept in
# $DEVSTACK_DIR/tls/*.password (mode 0600) and never printed: `stack.sh
# env` names their files.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${DEVSTACK_SECURE:-0} in
  1) SECURE=1 ;;
  0 | "") SECURE=0 ;;
  *) printf 'devstack: ERROR: DEVSTACK_SECURE is 1 (the secured stack) or 0, not %s\n' "$DEVSTACK_SECURE" >&2; exit 1 ;;
esac
if [[ $SECURE == 1 ]]; then
  STATE=${DEVSTACK_DIR:-$ROOT/.devstack/secure}
  KAFKA_PORT=${DEVSTACK_KAFKA_PORT:-29092}
  KAFKA_CONTROLLER_PORT=${DEVSTACK_KAFKA_CONTROLLER_PORT:-29093}
  REDIS_PORT=${DEVSTACK_REDIS_PORT:-26379}
  CH_PORT=${DEVSTACK_CLICKHOUSE_PORT:-29440}
else
  STATE=${DEVSTACK_DIR:-$ROOT/.devstack}
  KAFKA_PORT=${DEVSTACK_KAFKA_PORT:-9092}
  KAFKA_CONTROLLER_PORT=${DEVSTACK_KAFKA_CONTROLLER_PORT:-9093}
  REDIS_PORT=${DEVSTACK_REDIS_PORT:-6379}
  CH_PORT=${DEVSTACK_CLICKHOUSE_PORT:-9000}
fi
KAFKA_NODES=${DEVSTACK_KAFKA_NODES:-1}
# Several JVMs share the machine: a smaller default heap each.
if [[ $KAFKA_NODES == 1 ]]; then KAFKA_HEAP=${DEVSTACK_KAFKA_HEAP:-512m}; else KAFKA_HEAP=${DEVSTACK_KAFKA_HEAP:-384m}; fi
CH_HTTP_PORT=${DEVSTACK_CLICKHOUSE_HTTP_PORT:-8123}
WAIT_SECONDS=${DEVSTACK_WAIT_SECONDS:-120}
ALL_SERVICES=(kafka redis clickhouse)

KAFKA_DIR=$STATE/kafka
KAFKA_LIBS=${DEVSTACK_KAFKA_LIBS:-$KAFKA_DIR/libs} # another stack's jars may be shared
REDIS_DIR=$STATE/redis
CH_DIR=$STATE/clickhouse
TLS_DIR=$STATE/tls

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
  tls_make
}

# ---------------------------------------------------------------- tls (secured stack)

# A CA and one server certificate it signs (127.0.0.1, localhost), made once
# per folder; a PKCS#12 copy for Kafka; random passwords.
tls_make() {
  [[ $SECURE == 1 ]] || return 0
  [[ -s $TLS_DIR/server.p12 && -s $TLS_DIR/clickhouse.password ]] && return 0
  command -v openssl >/dev/null || need_root_apt openssl
  say "tls: making a throw-away CA and a certificate for 127.0.0.1 in $TLS_DIR"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  (
    cd "$TLS_DIR"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 90 -subj "/CN=eprostream devstack CA" -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth,clientAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 90 -extfile server.ext -out server.pem
    for name in store kafka kafka-broker redis clickhouse; do openssl rand -hex 16 | tr -d '\n' >"$name.password"; done
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name devstack \
      -out server.p12 -passout "file:store.password"
    chmod 644 ca.pem
  ) >"$STATE/tls.log" 2>&1 || die "tls: openssl failed; see $STATE/tls.log"
}

secret() { cat "$TLS_DIR/$1.password"; }

# The settings of Kafka's own tools for the SASL_SSL listener (mode 0600).
kafka_client_properties() {
  local f=$TLS_DIR/kafka-client.properties
  (
    umask 077
    cat >"$f" <<CONF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="eprostream" password="$(secret kafka)";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
CONF
  )
  echo "$f"
}

# ---------------------------------------------------------------- kafka

# One node keeps the layout of a single broker ($KAFKA_DIR, kafka.pid), so
# existing .devstack folders go on working; a cluster's node I lives in
# $KAFKA_DIR/node-I with the pidfile kafka-I.pid.
node_dir() { if [[ $KAFKA_NODES == 1 ]]; then echo "$KAFKA_DIR"; else echo "$KAFKA_DIR/node-$1"; fi; }
node_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
node_controller_port() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
node_pidfile() { if [[ $KAFKA_NODES == 1 ]]; then pidfile kafka; else echo "$STATE/kafka-$1.pid"; fi; }
node_log() { echo "$(node_dir "$1")/server.log"; }
node_name() { if [[ $KAFKA_NODES == 1 ]]; then echo kafka; else echo "kafka-$1"; fi; }

kafka_bootstrap() { # every node's broker address, comma-separated
  local i out=""
  for ((i = 1; i <= KAFKA_NODES; i++)); do out+="${out:+,}127.0.0.1:$(node_port "$i")"; done
  echo "$out"
}

kafka_check_nodes() {
  [[ $KAFKA_NODES =~ ^[1-9][0-9]?$ ]] || die "DEVSTACK_KAFKA_NODES must be a number of nodes from 1 to 99, not '$KAFKA_NODES'"
  local i ports=()
  for ((i = 1; i <= KAFKA_NODES; i++)); do ports+=("$(node_port "$i")" "$(node_controller_port "$i")"); done
  if [[ $(printf '%s\n' "${ports[@]}" | sort -u | wc -l) -ne ${#ports[@]} ]]; then
    die "Kafka ports overlap: DEVSTACK_KAFKA_PORT=$KAFKA_PORT and DEVSTACK_KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT with $KAFKA_NODES nodes (node I uses both +2(I-1))"
  fi
}

kafka_node_check() { # I: a node number of this cluster
  [[ ${1:-} =~ ^[1-9][0-9]*$ ]] && (($1 <= KAFKA_NODES)) \
    || die "no Kafka node '${1:-}': DEVSTACK_KAFKA_NODES=$KAFKA_NODES, so nodes are 1..$KAFKA_NODES"
}

kafka_java() { # main-class args...
  java -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
    -Dkafka.logs.file="$KAFKA_DIR/tools.log" "$@"
}

kafka_config() { # I
  local i=$1 dir voters="" j rf isr
  dir=$(node_dir "$i")
  for ((j = 1; j <= KAFKA_NODES; j++)); do voters+="${voters:+,}$j@127.0.0.1:$(node_controller_port "$j")"; done
  # Three replicas with two in sync: a write acknowledged with acks=all
  # survives the loss of any one node, and one node may be down.
  rf=$((KAFKA_NODES < 3 ? KAFKA_NODES : 3))
  isr=$((rf >= 3 ? 2 : 1))
  mkdir -p "$dir"
  local listener=PLAINTEXT
  [[ $SECURE == 1 ]] && listener=SASL_SSL
  (
    umask 077
    cat >"$dir/server.properties" <<CONF
# Written by devstack/stack.sh; edit the script, not this file.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=$listener://127.0.0.1:$(node_port "$i"),CONTROLLER://127.0.0.1:$(node_controller_port "$i")
advertised.listeners=$listener://127.0.0.1:$(node_port "$i")
controller.listener.names=CONTROLLER
inter.broker.listener.name=$listener
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$listener:$listener
log.dirs=$dir/data
auto.create.topics.enable=false
num.partitions=12
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
log.retention.hours=168
CONF
  )
  [[ $SECURE == 1 ]] || return 0
  cat >>"$dir/server.properties" <<CONF
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(secret kafka-broker)";
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/server.p12
ssl.keystore.password=$(secret store)
ssl.key.password=$(secret store)
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
CONF
}

# kafka_cluster_id prints the id every node of the cluster is formatted with:
# kept in $KAFKA_DIR/cluster.id, or read back from a node formatted before.
kafka_cluster_id() {
  local f=$KAFKA_DIR/cluster.id j id
  if [[ -s $f ]]; then cat "$f"; return; fi
  for ((j = 1; j <= KAFKA_NODES; j++)); do
    id=$(sed -n 's/^cluster\.id=//p' "$(node_dir "$j")/data/meta.properties" 2>/dev/null || true)
    if [[ -n $id ]]; then echo "$id" >"$f"; echo "$id"; return; fi
  done
  id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
  [[ -n $id ]] || die "kafka: StorageTool random-uuid printed no cluster id; see $KAFKA_DIR/tools.log"
  echo "$id" >"$f"
  echo "$id"
}

kafka_start_node() { # I
  local i=$1 dir
  dir=$(node_dir "$i")
  kafka_config "$i"
  if [[ ! -f $dir/data/meta.properties ]]; then
    say "$(node_name "$i"): formatting storage in $dir/data"
    local id
    if [[ $KAFKA_NODES == 1 ]]; then
      id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
    else
      id=$(kafka_cluster_id)
    fi
    local scram=()
    if [[ $SECURE == 1 ]]; then
      scram=(--add-scram "SCRAM-SHA-512=[name=broker,password=$(secret kafka-broker)]"
        --add-scram "SCRAM-SHA-512=[name=eprostream,password=$(secret kafka)]")
    fi
    kafka_java kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" "${scram[@]}" \
      >"$dir/format.log" 2>&1 || die "$(node_name "$i"): formatting storage failed; see $dir/format.log"
  fi
  setsid nohup java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -cp "$KAFKA_LIBS/*" \
    -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
    -Dkafka.logs.file="$dir/server.log" \
    kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$(node_pidfile "$i")"
}

kafka_start() { kafka_start_node 1; }

kafka_ready() {
  port_open "$KAFKA_PORT" || return 1
  local client=()
  [[ $SECURE == 1 ]] && client=(--command-config "$(kafka_client_properties)")
  timeout 60 java -Xmx128m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
    -Dkafka.logs.file="$KAFKA_DIR/tools.log" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" "${client[@]}" --list >/dev/null 2>&1
}

# kafka_registered prints the ids of the brokers the cluster's metadata
# lists (registered and not fenced), asking through bootstrap.
kafka_registered() { # bootstrap
  timeout 60 java -Xmx128m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$ROOT/devstack/kafka/log4j2.properties" \
    -Dkafka.logs.file="$KAFKA_DIR/tools.log" org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$1" 2>/dev/null | grep -v 'isFenced: true' | sed -n 's/^[^ ]* (id: \([0-9]*\) .*/\1/p' | sort -n || true
}

# A cluster answers when every node's broker is registered.
kafka_cluster_ready() {
  local i
  for ((i = 1; i <= KAFKA_NODES; i++)); do port_open "$(node_port "$i")" || return 1; done
  [[ $(kafka_registered "$(kafka_bootstrap)" | sort -u | wc -l) -eq $KAFKA_NODES ]]
}

# A node answers when the cluster, asked through that node, lists it.
kafka_node_ready() { # I
  port_open "$(node_port "$1")" || return 1
  kafka_registered "127.0.0.1:$(node_port "$1")" | grep -qx "$1"
}

kafka_wait() { # what ready-command [args...]: every started node must stay alive meanwhile
  local what=$1 deadline=$((SECONDS + WAIT_SECONDS)) i
  shift
  until "$@"; do
    for ((i = 1; i <= KAFKA_NODES; i++)); do
      if [[ -f $(node_pidfile "$i") ]] && ! pid_alive "$(node_pidfile "$i")"; then
        tail -n 20 "$(node_log "$i")" >&2 2>/dev/null || true
        die "$(node_name "$i") exited during start-up; see $(node_log "$i")"
      fi
    done
    if ((SECONDS >= deadline)); then
      for ((i = 1; i <= KAFKA_NODES; i++)); do tail -n 5 "$(node_log "$i")" >&2 2>/dev/null || true; done
      die "$what did not answer on $(kafka_bootstrap) within ${WAIT_SECONDS}s; see $(for ((i = 1; i <= KAFKA_NODES; i++)); do printf '%s ' "$(node_log "$i")"; done)"
    fi
    sleep 0.5
  done
}

kafka_cluster_up() {
  local i t0=$SECONDS pf
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    pf=$(node_pidfile "$i")
    if pid_alive "$pf"; then
      say "$(node_name "$i"): already running (pid $(cat "$pf"))"
    elif pid_alive "$(pidfile kafka)" && [[ $(node_port "$i") == "$KAFKA_PORT" ]]; then
      die "$(node_name "$i"): port $KAFKA_PORT is the single-node Kafka of this stack (pid $(cat "$(pidfile kafka)")); stop it first: bash devstack/stack.sh down kafka (without DEVSTACK_KAFKA_NODES)"
    elif port_open "$(node_port "$i")" || port_open "$(node_controller_port "$i")"; then
      # A broker devstack did not start cannot be a voter of this quorum.
      die "$(node_name "$i"): port $(node_port "$i") or $(node_controller_port "$i") is taken by a process devstack did not start (another Kafka? stop it, or choose DEVSTACK_KAFKA_PORT and DEVSTACK_KAFKA_CONTROLLER_PORT)"
    else
      rm -f "$pf"
      say "$(node_name "$i"): starting on 127.0.0.1:$(node_port "$i") (controller $(node_controller_port "$i")), log $(node_log "$i")"
      kafka_start_node "$i"
    fi
  done
  kafka_wait "the Kafka cluster ($KAFKA_NODES brokers registered)" kafka_cluster_ready
  say "kafka: cluster of $KAFKA_NODES nodes ready in $((SECONDS - t0))s ($(kafka_bootstrap))"
}

kafka_cluster_down() {
  local i pids=() pf pid
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    pf=$(node_pidfile "$i")
    if pid_alive "$pf"; then
      pid=$(cat "$pf")
      # All at once: stopped one by one, the last nodes would wait for a quorum that is gone.
      kill -TERM "$pid" 2>/dev/null || true
      pids[i]=$pid
    else
      rm -f "$pf"
      say "$(node_name "$i"): not running (nothing devstack started)"
    fi
  done
  for _ in $(seq 1 60); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.5
  done
  for i in "${!pids[@]}"; do
    pid=${pids[i]}
    if kill -0 "$pid" 2>/dev/null; then
      say "$(node_name "$i"): did not stop within 30s, killing pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(node_pidfile "$i")"
    say "$(node_name "$i"): stopped"
  done
}

kafka_cluster_status() {
  local i rc=0 owner ids state
  ids=$(kafka_registered "$(kafka_bootstrap)")
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    if pid_alive "$(node_pidfile "$i")"; then owner="pid $(cat "$(node_pidfile "$i")")"; else owner="not started by devstack"; fi
    state=DOWN
    if port_open "$(node_port "$i")" && grep -qx "$i" <<<"$ids"; then state=up; else rc=3; fi
    printf '%-11s %-6s 127.0.0.1:%-6s %s, controller %s, log %s\n' "$(node_name "$i")" "$state" "$(node_port "$i")" \
      "$owner" "$(node_controller_port "$i")" "$(node_log "$i")"
  done
  return $rc
}

# Fault tests: kill -9 one node, and bring it back.
cmd_kill_node() { # I
  kafka_node_check "${1:-}"
  local i=$1 pf pid
  pf=$(node_pidfile "$i")
  pid_alive "$pf" || die "$(node_name "$i"): not running (nothing devstack started), so not killed"
  pid=$(cat "$pf")
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && die "$(node_name "$i"): pid $pid survived kill -9"
  rm -f "$pf"
  say "$(node_name "$i"): killed (kill -9 pid $pid)"
}

cmd_start_node() { # I
  kafka_node_check "${1:-}"
  local i=$1 pf t0=$SECONDS
  pf=$(node_pidfile "$i")
  install_kafka
  if pid_alive "$pf"; then
    say "$(node_name "$i"): already running (pid $(cat "$pf"))"
  elif port_open "$(node_port "$i")"; then
    die "$(node_name "$i"): port $(node_port "$i") is taken by a process devstack did not start"
  else
    say "$(node_name "$i"): starting on 127.0.0.1:$(node_port "$i"), log $(node_log "$i")"
    kafka_start_node "$i"
  fi
  if [[ $KAFKA_NODES == 1 ]]; then
    kafka_wait "kafka" kafka_ready
  else
    kafka_wait "$(node_name "$i")" kafka_node_ready "$i"
  fi
  say "$(node_name "$i"): ready in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- redis

redis_ready() {
  if [[ $SECURE == 1 ]]; then
    [[ $(REDISCLI_AUTH=$(secret redis) redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --tls --cacert "$TLS_DIR/ca.pem" \
      --user eprostream PING 2>/dev/null) == PONG ]]
    return
  fi
  [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]]
}

redis_start() {
  mkdir -p "$REDIS_DIR"
  local conf=() port=(--port "$REDIS_PORT")
  if [[ $SECURE == 1 ]]; then
    # TLS only, and one ACL user whose password stays in a 0600 file.
    (
      umask 077
      cat >"$REDIS_DIR/secure.conf" <<CONF
tls-port $REDIS_PORT
tls-cert-file $TLS_DIR/server.pem
tls-key-file $TLS_DIR/server.key
tls-ca-cert-file $TLS_DIR/ca.pem
tls-auth-clients no
user default off
user eprostream on >$(secret redis) ~* &* +@all
CONF
    )
    conf=("$REDIS_DIR/secure.conf")
    port=(--port 0)
  fi
  # Append-only file so idempotency keys and lock counters survive a restart.
  redis-server "${conf[@]}" --bind 127.0.0.1 "${port[@]}" --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$(pidfile redis)" --logfile "$REDIS_DIR/redis.log" \
    --appendonly yes --appendfsync everysec --save "" --protected-mode yes \
    >/dev/null || die "redis: redis-server did not start; see $REDIS_DIR/redis.log"
}

# ---------------------------------------------------------------- clickhouse

clickhouse_ready() {
  if [[ $SECURE == 1 ]]; then
    [[ $(clickhouse-client --config-file "$CH_DIR/client.xml" --host 127.0.0.1 --port "$CH_PORT" --secure \
      --query "SELECT 1" 2>/dev/null) == 1 ]]
    return
  fi
  [[ $(clickhouse-client --host 127.0.0.1 --port "$CH_PORT" --query "SELECT 1" 2>/dev/null) == 1 ]]
}

clickhouse_start() {
  mkdir -p "$CH_DIR/data/tmp" "$CH_DIR/data/user_files" "$CH_DIR/data/format_schemas"
  if [[ $SECURE == 1 ]]; then
    # The secure native port only, and the default user with a password
    # (its SHA-256 in users.xml, the password itself in the client's 0600
    # configuration that the readiness check uses).
    sed -e "s|@DATA@|$CH_DIR/data|g" -e "s|@TLS@|$TLS_DIR|g" -e "s|@SECURE_PORT@|$CH_PORT|g" \
      "$ROOT/devstack/clickhouse/config-secure.xml" >"$CH_DIR/config.xml"
    (
      umask 077
      sed -e "s|@TLS@|$TLS_DIR|g" -e "s|@PASSWORD@|$(secret clickhouse)|g" \
        "$ROOT/devstack/clickhouse/client-secure.xml" >"$CH_DIR/client.xml"
      sed -e "s|<password></password>|<password_sha256_hex>$(secret clickhouse | sha256sum | cut -d' ' -f1)</password_sha256_hex>|" \
        "$ROOT/devstack/clickhouse/users.xml" >"$CH_DIR/users.xml"
    )
  else
    sed -e "s|@DATA@|$CH_DIR/data|g" -e "s|@TCP_PORT@|$CH_PORT|g" -e "s|@HTTP_PORT@|$CH_HTTP_PORT|g" \
      "$ROOT/devstack/clickhouse/config.xml" >"$CH_DIR/config.xml"
    cp "$ROOT/devstack/clickhouse/users.xml" "$CH_DIR/users.xml"
  fi
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
  if [[ $svc == kafka && $KAFKA_NODES != 1 ]]; then kafka_cluster_up; return; fi
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
  if [[ $svc == kafka && $KAFKA_NODES != 1 ]]; then kafka_cluster_down; return; fi
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
  if [[ $svc == kafka && $KAFKA_NODES != 1 ]]; then kafka_cluster_status; return; fi
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
KAFKA_BROKERS=$(kafka_bootstrap)
REDIS_ADDR=127.0.0.1:$REDIS_PORT
CLICKHOUSE_ADDR=127.0.0.1:$CH_PORT
EOF
  [[ $SECURE == 1 ]] || return 0
  cat <<EOF
KAFKA_TLS_CA_FILE=$TLS_DIR/ca.pem
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USERNAME=eprostream
KAFKA_SASL_PASSWORD_FILE=$TLS_DIR/kafka.password
REDIS_TLS_CA_FILE=$TLS_DIR/ca.pem
REDIS_USERNAME=eprostream
REDIS_PASSWORD_FILE=$TLS_DIR/redis.password
CLICKHOUSE_TLS_CA_FILE=$TLS_DIR/ca.pem
CLICKHOUSE_PASSWORD_FILE=$TLS_DIR/clickhouse.password
EOF
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  kafka_check_nodes
  [[ $SECURE == 1 && $KAFKA_NODES != 1 ]] && die "the secured stack runs one Kafka node, not DEVSTACK_KAFKA_NODES=$KAFKA_NODES"
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
    kill-node) cmd_kill_node "$@" ;;
    start-node) cmd_start_node "$@" ;;
    *) die "usage: stack.sh install|up|down|status|env [kafka|redis|clickhouse...], or kill-node|start-node I" ;;
  esac
}

main "$@"
