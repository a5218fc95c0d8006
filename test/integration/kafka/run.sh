#!/usr/bin/env bash
# run.sh — start the Kafka broker, the three-broker cluster (cluster.sh) and
# the S3 server the cluster's gateways share (../s3/seaweed.sh; its first run
# builds SeaweedFS), run the Kafka integration tests against them, stop them. Exits non-zero when anything fails. Used by .ci/run.
#
# Needs: Java 17+, Maven (apt-get install -y openjdk-17-jre-headless maven), Go.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export KAFKA_PORT="${KAFKA_PORT:-19092}"
export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"

started=0
s3dir="$(mktemp -d "${TMPDIR:-/tmp}/poststelle-kafka-s3.XXXXXX")"
cleanup() {
  if [[ $started == 1 ]]; then bash "$here/broker.sh" stop || true; fi
  bash "$here/cluster.sh" stop || true
  bash "$here/../s3/seaweed.sh" stop "$s3dir" || true
  rm -rf "$s3dir"
}
trap cleanup EXIT
if ! bash "$here/broker.sh" status >/dev/null 2>&1; then
  bash "$here/broker.sh" start
  started=1
fi
# Three more brokers for TestCluster (replication factor 3, min.insync.replicas 2).
# Fresh each run: the test kills one of them.
bash "$here/cluster.sh" reset
bash "$here/cluster.sh" start
export KAFKA_CLUSTER="$(bash "$here/cluster.sh" brokers)"
# One blob store for the cluster: every node serves every message's bytes.
bash "$here/../s3/seaweed.sh" start "$s3dir"
set -a
# shellcheck disable=SC1091
source "$s3dir/env"
set +a
cd "$root"
go run ./test/integration/s3/mkbucket
go test -tags integration -count=1 -timeout 20m "$@" ./test/integration/kafka/...
# The unit tests of the backend against the same broker (they use kfake otherwise).
go test -count=1 -timeout 10m ./eventstore/kafkalog/...
