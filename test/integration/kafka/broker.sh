#!/usr/bin/env bash
# broker.sh start|stop|restart|wait-restarts|status|classpath — a single-node
# Apache Kafka (KRaft) broker on 127.0.0.1 for the integration tests.
#
# The broker and its runtime dependencies come from Maven Central through
# pom.xml beside this script (cached in ~/.m2 and copied to
# test/integration/.work/kafka/libs); the machine's Java 17+ runs it. The data
# directory survives stop/start, so a restart keeps the log.
#
# Environment:
#   KAFKA_PORT            client port (default 19092)
#   KAFKA_CONTROLLER_PORT controller port (default 19093)
#   KAFKA_WORK            work directory (default test/integration/.work/kafka)
#   KAFKA_HEAP            JVM heap options (default -Xms256m -Xmx512m)
#   MAVEN_OPTS_EXTRA      extra mvn flags, e.g. -Dmaven.repo.local=/tmp/m2
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${KAFKA_PORT:-19092}"
cport="${KAFKA_CONTROLLER_PORT:-19093}"
work="${KAFKA_WORK:-$here/../.work/kafka}"
heap="${KAFKA_HEAP:--Xms256m -Xmx512m}"
libs="$work/libs"
data="$work/data"
pidfile="$work/broker.pid"
logfile="$work/broker.log"

log() { echo "broker.sh: $*" >&2; }

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then echo "$JAVA_HOME/bin/java"; else command -v java; fi
}

# mvn_quiet runs Maven for a test log: batch mode, no download progress, no
# colour, only errors. Debian's Maven 3.8 still writes jansi's ESC[0m resets to
# stdout and stderr unless the JVM itself (MAVEN_OPTS, not -D) has
# jansi.noreset.
mvn_quiet() {
  MAVEN_OPTS="${MAVEN_OPTS:-} -Djansi.noreset=true" mvn --quiet --batch-mode --no-transfer-progress \
    -Dstyle.color=never "$@"
}

fetch() {
  mkdir -p "$work"
  if [[ -f "$libs/.complete" && "$libs/.complete" -nt "$here/pom.xml" ]]; then return; fi
  command -v mvn >/dev/null || { log "mvn not found (apt-get install -y maven openjdk-17-jre-headless)"; exit 1; }
  log "fetching Kafka from Maven Central into $libs"
  rm -rf "$libs"
  # shellcheck disable=SC2086
  mvn_quiet ${MAVEN_OPTS_EXTRA:-} -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs"
  touch "$libs/.complete"
}

classpath() { echo "$libs/*"; }

run_class() { # run_class MAIN args... (tools, not the broker)
  "$(java_bin)" -Xmx256m -cp "$(classpath)" -Dlog4j2.configurationFile="$here/log4j2.properties" \
    -Dlog4j2.level=WARN "$@"
}

write_config() {
  mkdir -p "$data"
  cat >"$work/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=2000
auto.create.topics.enable=false
log.message.timestamp.type=CreateTime
CONF
}

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

ready() { # a metadata request succeeds (probe.py: no JVM start per poll)
  python3 "$here/probe.py" "127.0.0.1:$port"
}

start() {
  if running; then log "already running (pid $(cat "$pidfile"))"; return; fi
  fetch
  write_config
  if [[ ! -f "$data/meta.properties" ]]; then
    log "formatting KRaft storage in $data"
    run_class kafka.tools.StorageTool format --standalone -t "$(run_class kafka.tools.StorageTool random-uuid)" \
      -c "$work/server.properties" >>"$logfile" 2>&1 ||
      run_class kafka.tools.StorageTool format -t "$(run_class kafka.tools.StorageTool random-uuid)" \
        -c "$work/server.properties" >>"$logfile" 2>&1
  fi
  log "starting broker on 127.0.0.1:$port (log $logfile)"
  # shellcheck disable=SC2086
  nohup "$(java_bin)" $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$(classpath)" \
    kafka.Kafka "$work/server.properties" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if ! running; then log "broker exited; see $logfile"; tail -n 30 "$logfile" >&2; exit 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && ready; then
      log "ready on 127.0.0.1:$port"; return
    fi
    sleep 1
  done
  log "broker not ready after 120 s; see $logfile"; exit 1
}

stop() {
  if ! running; then log "not running"; rm -f "$pidfile"; return; fi
  local pid; pid="$(cat "$pidfile")"
  log "stopping broker (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    if ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidfile"; log "stopped"; return; fi
    sleep 1
  done
  log "broker did not stop in 60 s; killing"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# restart stops and starts the broker, keeping its data. Watermill's
# TestReconnect asks for two restarts that can overlap, so they queue behind
# a lock (--close: the broker started under it must not inherit and hold it),
# and each leaves a token in $work/restarts while it is pending, which
# wait-restarts waits out: a test must not end with a restart still coming.
restart() {
  mkdir -p "$work/restarts"
  token="$work/restarts/$$"
  touch "$token"
  trap 'rm -f "$token"' EXIT
  flock --close "$work/restart.lock" bash "${BASH_SOURCE[0]}" restart-now
}

wait_restarts() {
  local t
  for _ in $(seq 1 300); do
    for t in "$work"/restarts/*; do # a token whose restart was killed is stale
      if [[ -e $t ]] && ! kill -0 "${t##*/}" 2>/dev/null; then rm -f "$t"; fi
    done
    if [[ -z "$(ls -A "$work/restarts" 2>/dev/null)" ]]; then
      running || { log "not running after the restarts"; exit 1; }
      return
    fi
    sleep 1
  done
  log "restarts still pending after 300 s: $(ls "$work/restarts")"; exit 1
}

status() {
  if running && ready; then echo "running pid $(cat "$pidfile") on 127.0.0.1:$port"; else echo "stopped"; return 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  restart-now) stop; start ;; # restart's body, run under its lock
  wait-restarts) wait_restarts ;;
  status) status ;;
  fetch) fetch ;;
  classpath) fetch; classpath ;;
  reset) stop; rm -rf "$data" "$logfile" ;;
  *) echo "usage: $0 start|stop|restart|wait-restarts|status|fetch|classpath|reset" >&2; exit 2 ;;
esac
