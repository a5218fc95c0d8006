#!/usr/bin/env bash
# Office-side integration tests: builds the poststelle binary, starts
# `poststelle serve` with a configuration file on 127.0.0.1, sends mail over
# SMTP with curl and drives the office API with curl (list, SSE, download,
# acknowledge, triage), with a webhook receiver checking signatures.
#
#   test/integration/offices/run.sh [go test flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# test/setup.sh names every Debian package the tests use; quick when all are there.
bash "$repo/test/setup.sh" >/dev/null
cd "$repo"
exec go test -tags integration -count=1 "$@" ./test/integration/offices/
