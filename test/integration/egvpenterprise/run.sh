#!/usr/bin/env bash
# run.sh — runs the EGVP Enterprise connector through the real `poststelle serve`
# binary against the Go stand-in of the Enterprise web service
# (channels/egvpenterprise/enterprisetest) on 127.0.0.1, with the three real EGVP
# samples. No peers beyond the stand-in, which runs in the test process. Extra
# arguments go to `go test`. Used by .ci/run (make test).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../../.."
go test -tags integration -count=1 -timeout 10m ./test/integration/egvpenterprise/... "$@"
