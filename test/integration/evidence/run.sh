#!/usr/bin/env bash
# Evidence bundle integration test: builds the poststelle binary, starts
# `poststelle serve` with a test TSA for receipt timestamps, receives a
# message over SMTP, downloads its evidence bundle from the office API and
# makes one with `poststelle evidence`, and checks both with
# `poststelle evidence verify` and with the EU DSS validator
# (test/integration/dss, built on first use), intact and with one byte
# changed. On a shared machine run it under the peers lock, like the other
# scripts (a lock taken here would deadlock under make integration run
# inside such a lock):
#
#   flock /tmp/poststelle-peers.lock bash test/integration/evidence/run.sh [go test flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# test/setup.sh names every Debian package the tests use; quick when all are there.
bash "$repo/test/setup.sh" >/dev/null
if [[ ! -f "$repo/test/integration/dss/validator/target/dss-oracle-1.0.jar" ]]; then
	bash "$repo/test/integration/dss/build.sh"
fi
cd "$repo"
exec go test -tags integration -count=1 "$@" ./test/integration/evidence/
