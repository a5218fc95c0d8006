#!/usr/bin/env bash
# cluster.sh start|stop|kill N|start-one N|status|reset — three Apache Kafka
# (KRaft) nodes on 127.0.0.1, each broker and controller, for the cluster
# test: replication factor 3, min.insync.replicas 2. Jars come from
# broker.sh fetch (Maven Central, see pom.xml).
#
# Ports: node N (1..3) listens on 127.0.0.1:$((KAFKA_CLUSTER_BASE + 100*N))
# for clients and the next port for the controller quorum (default base
# 19100: 19200/19201, 19300/19301, 19400/19401).
#
# Environment:
#   KAFKA_CLUSTER_BASE   port base (default 19100)
#   KAFKA_CLUSTER_WORK   work directory (default test/integration/.work/kafka-cluster)
#   KAFKA_HEAP           JVM heap per node (default -Xms192m -Xmx384m)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
base="${KAFKA_CLUSTER_BASE:-19100}"
work="${KAFKA_CLUSTER_WORK:-$here/../.work/kafka-cluster}"
heap="${KAFKA_HEAP:--Xms192m -Xmx384m}"
libs="$(bash "$here/broker.sh" classpath)"

log() { echo "cluster.sh: $*" >&2; }
java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then echo "$JAVA_HOME/bin/java"; else command -v java; fi
}
run_class() {
  "$(java_bin)" -Xmx256m -cp "$libs" -Dlog4j2.configurationFile="$here/log4j2.properties" -Dlog4j2.level=WARN "$@"
}
port() { echo $((base + 100 * $1)); }
cport() { echo $((base + 100 * $1 + 1)); }
voters() { echo "1@127.0.0.1:$(cport 1),2@127.0.0.1:$(cport 2),3@127.0.0.1:$(cport 3)"; }
brokers() { echo "127.0.0.1:$(port 1),127.0.0.1:$(port 2),127.0.0.1:$(port 3)"; }
pidfile() { echo "$work/node$1.pid"; }
running() { [[ -f "$(pidfile "$1")" ]] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

write_config() {
  local n=$1 dir="$work/node$1"
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(port "$n"),CONTROLLER://127.0.0.1:$(cport "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=2000
auto.create.topics.enable=false
log.message.timestamp.type=CreateTime
unclean.leader.election.enable=false
CONF
}

start_one() {
  local n=$1 dir="$work/node$1"
  if running "$n"; then return; fi
  write_config "$n"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    run_class kafka.tools.StorageTool format -t "$(cat "$work/cluster.id")" -c "$dir/server.properties" >>"$dir/node.log" 2>&1
  fi
  # shellcheck disable=SC2086
  nohup "$(java_bin)" $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$libs" \
    kafka.Kafka "$dir/server.properties" >>"$dir/node.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$n")"
  log "node $n starting on 127.0.0.1:$(port "$n") (log $dir/node.log)"
}

ready() { # every node answers a metadata request that lists three brokers
  local n
  for n in 1 2 3; do python3 "$here/probe.py" "127.0.0.1:$(port "$n")" 3 || return 1; done
}

start() {
  mkdir -p "$work"
  [[ -f "$work/cluster.id" ]] || run_class kafka.tools.StorageTool random-uuid | tail -n 1 >"$work/cluster.id"
  for n in 1 2 3; do start_one "$n"; done
  for _ in $(seq 1 120); do
    for n in 1 2 3; do running "$n" || { log "node $n exited; see $work/node$n/node.log"; tail -n 30 "$work/node$n/node.log" >&2; exit 1; }; done
    if ready; then log "ready: $(brokers)"; return; fi
    sleep 1
  done
  log "cluster not ready after 120 s"; exit 1
}

stop_one() {
  local n=$1 sig=${2:-TERM}
  running "$n" || { rm -f "$(pidfile "$n")"; return; }
  local pid; pid="$(cat "$(pidfile "$n")")"
  kill "-$sig" "$pid"
  for _ in $(seq 1 60); do
    if ! kill -0 "$pid" 2>/dev/null; then rm -f "$(pidfile "$n")"; return; fi
    sleep 1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$(pidfile "$n")"
}

stop() { for n in 3 2 1; do stop_one "$n"; done; log "stopped"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  kill) stop_one "$2" KILL; log "node $2 killed" ;;
  start-one) start_one "$2" ;;
  brokers) brokers ;;
  classpath) echo "$libs" ;;
  status) for n in 1 2 3; do if running "$n"; then echo "node $n running"; else echo "node $n stopped"; fi; done ;;
  reset) stop; rm -rf "$work" ;;
  *) echo "usage: $0 start|stop|kill N|start-one N|brokers|classpath|status|reset" >&2; exit 2 ;;
esac
