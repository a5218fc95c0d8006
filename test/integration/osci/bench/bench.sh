#!/usr/bin/env bash
# bench.sh — the OSCI receive benchmark of issue 13 with the Java library beside
# it: builds the peer (lib.sh), then runs ./test/integration/osci/bench, which
# measures the raw append, the gateway's passive recipient with 64 dialogs, and
# the library's decrypt-bench over the same messages. Arguments go to the
# harness (e.g. -n 256 -json FILE). Takes /tmp/poststelle-peers.lock itself
# unless OSCI_BENCH_LOCKED is set (bench/run.sh holds it already).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
if [[ -z ${OSCI_BENCH_LOCKED:-} ]]; then
	exec env OSCI_BENCH_LOCKED=1 flock /tmp/poststelle-peers.lock bash "$0" "$@"
fi
# shellcheck source=../lib.sh
source "$here/../lib.sh"
osci_peer_build
cd "$root"
go run ./test/integration/osci/bench -java "$OSCI_JAVA" -library-cp "$OSCI_PEER_CP" "$@"
