#!/usr/bin/env bash
# bench/run.sh — one run that prints Kafka's own ProducerPerformance
# (acks=all, 1 KiB records) beside the kafkalog append rate with 1 and 64
# appenders and the append-to-subscriber latency. Starts the broker if it is
# not running (and stops it again afterwards).
#
#   test/integration/kafka/bench/run.sh            # defaults
#   RECORDS=500000 SECONDS_EACH=20 test/integration/kafka/bench/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kdir="$here/.."
root="$(cd "$here/../../../.." && pwd)"
export KAFKA_PORT="${KAFKA_PORT:-19092}"
brokers="127.0.0.1:$KAFKA_PORT"
records="${RECORDS:-200000}"
partitions="${PARTITIONS:-12}"
seconds="${SECONDS_EACH:-10}"

started=0
trap '[[ $started == 1 ]] && bash "$kdir/broker.sh" stop' EXIT
if ! bash "$kdir/broker.sh" status >/dev/null 2>&1; then
  bash "$kdir/broker.sh" start
  started=1
fi
cp="$(bash "$kdir/broker.sh" classpath)"
topic="bench-perf-$(date +%s)"
java -Xmx256m -cp "$cp" -Dlog4j2.configurationFile="$kdir/log4j2.properties" org.apache.kafka.tools.TopicCommand \
  --bootstrap-server "$brokers" --create --topic "$topic" --partitions "$partitions" --replication-factor 1 >/dev/null 2>&1
echo "running Kafka ProducerPerformance: $records records of 1024 bytes, acks=all" >&2
perf_out="$(java -Xmx512m -cp "$cp" -Dlog4j2.configurationFile="$kdir/log4j2.properties" org.apache.kafka.tools.ProducerPerformance \
  --topic "$topic" --num-records "$records" --record-size 1024 --throughput -1 \
  --producer-props bootstrap.servers="$brokers" acks=all 2>/dev/null)"
line="$(grep 'records sent' <<<"$perf_out" | tail -n 1)"
rate="$(sed -E 's/.* records sent, ([0-9.]+) records\/sec.*/\1/' <<<"$line")"
echo "running kafkalog appenders" >&2
cd "$root"
go run ./test/integration/kafka/bench -brokers "$brokers" -partitions "$partitions" -seconds "$seconds" \
  -kafka-rate "$rate" -kafka-line "$line"
