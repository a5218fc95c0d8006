#!/usr/bin/env bash
# bench/run.sh — one run that prints Kafka's own ProducerPerformance
# (acks=all, 1 KiB records) beside the kafkalog append rate with 1 and 64
# appenders and the append-to-subscriber latency. Starts the broker if it is
# not running (and stops it again afterwards).
#
#   test/integration/kafka/bench/run.sh            # defaults
#   RECORDS=500000 SECONDS_EACH=20 test/integration/kafka/bench/run.sh
#   BENCH_OUT=bench/results test/integration/kafka/bench/run.sh   # also kafka.json, kafka-producerperf.json
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
perf() { # one ProducerPerformance run of ${1:-$records} records; prints its summary line
  java -Xmx512m -cp "$cp" -Dlog4j2.configurationFile="$kdir/log4j2.properties" org.apache.kafka.tools.ProducerPerformance \
    --topic "$topic" --num-records "${1:-$records}" --record-size 1024 --throughput -1 \
    --producer-props bootstrap.servers="$brokers" acks=all 2>/dev/null | grep 'records sent' | tail -n 1
}
rate_of() { sed -E 's/.* records sent, ([0-9.]+) records\/sec.*/\1/' <<<"$1"; }
# The machine is shared: ProducerPerformance runs before and after ours, and
# the ratio is taken against the mean of both.
# A broker just started is a cold JVM: a first short run warms it up, so
# that "before" is not measured on it.
echo "warming the broker up: ${WARMUP_RECORDS:-50000} records" >&2
perf "${WARMUP_RECORDS:-50000}" >/dev/null
echo "running Kafka ProducerPerformance: $records records of 1024 bytes, acks=all" >&2
before="$(perf)"
echo "running kafkalog appenders" >&2
cd "$root"
json=()
if [[ -n ${BENCH_OUT:-} ]]; then
  mkdir -p "$BENCH_OUT"
  BENCH_OUT="$(cd "$BENCH_OUT" && pwd)"
  json=(-json "$BENCH_OUT/kafka.json")
fi
out="$(go run ./test/integration/kafka/bench -brokers "$brokers" -partitions "$partitions" -seconds "$seconds" \
  -kafka-rate "$(rate_of "$before")" -kafka-line "$before" "${json[@]}")"
grep -v '^best-kafkalog-rate' <<<"$out"
echo "running Kafka ProducerPerformance again" >&2
after="$(perf)"
ours="$(grep '^best-kafkalog-rate' <<<"$out" | cut -d' ' -f2)"
echo "ProducerPerformance after: $after"
awk -v a="$(rate_of "$before")" -v b="$(rate_of "$after")" -v o="$ours" 'BEGIN {
  m = (a + b) / 2
  printf "\nsummary: ProducerPerformance %.0f / %.0f records/s (mean %.0f); kafkalog best %.0f events/s; ratio %.2f (goal >= 0.80)\n", a, b, m, o, o / m
}'
if [[ -n ${BENCH_OUT:-} ]]; then
  # The same JSON form as the Go harnesses write (bench/figures).
  cat >"$BENCH_OUT/kafka-producerperf.json" <<JSON
{
  "harness": "kafka-producerperf",
  "started": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "params": {"records": "$records", "size": "1024", "acks": "all", "partitions": "$partitions"},
  "figures": [
    {"key": "before", "label": "Kafka ProducerPerformance before kafkalog", "value": $(rate_of "$before"), "unit": "records/s"},
    {"key": "after", "label": "Kafka ProducerPerformance after kafkalog", "value": $(rate_of "$after"), "unit": "records/s"}
  ]
}
JSON
fi
