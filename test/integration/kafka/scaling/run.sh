#!/usr/bin/env bash
# scaling/run.sh — SMTP intake per CPU-second of the serve processes, 3 nodes
# on the 3-broker KRaft cluster (cluster.sh) vs 1 node on the single broker
# (broker.sh). Starts whichever of the two is not running and stops it again
# afterwards. Run it under the peers lock:
#
#   flock /tmp/poststelle-peers.lock bash test/integration/kafka/scaling/run.sh
#   N=500 ROUNDS=1 BENCH_OUT=bench/results bash test/integration/kafka/scaling/run.sh   # also scaling.json
#   PROFILE=/tmp/prof bash test/integration/kafka/scaling/run.sh   # also CPU profiles of each serve process
#
# With PROFILE, each node's CPU profile over the measured span lands in
# $PROFILE/<one|three><round>/node<i>-<slice>.pprof; read them with
#   go tool pprof -top $PROFILE/three0/node*.pprof
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kdir="$here/.."
root="$(cd "$here/../../../.." && pwd)"
export KAFKA_PORT="${KAFKA_PORT:-19092}"

started_single=0 started_cluster=0
cleanup() {
  if [[ $started_single == 1 ]]; then bash "$kdir/broker.sh" stop || true; fi
  if [[ $started_cluster == 1 ]]; then bash "$kdir/cluster.sh" stop || true; fi
}
trap cleanup EXIT
if ! bash "$kdir/broker.sh" status >/dev/null 2>&1; then
  bash "$kdir/broker.sh" start
  started_single=1
fi
if [[ "$(bash "$kdir/cluster.sh" status | grep -c running)" != 3 ]]; then
  bash "$kdir/cluster.sh" stop
  bash "$kdir/cluster.sh" start
  started_cluster=1
fi
json=()
if [[ -n ${BENCH_OUT:-} ]]; then
  mkdir -p "$BENCH_OUT"
  json=(-json "$(cd "$BENCH_OUT" && pwd)/scaling.json")
fi
cd "$root"
go run ./test/integration/kafka/scaling -single "127.0.0.1:$KAFKA_PORT" -cluster "$(bash "$kdir/cluster.sh" brokers)" \
  -n "${N:-2000}" -rounds "${ROUNDS:-2}" ${PROFILE:+-profile "$PROFILE"} "${json[@]}"
