#!/usr/bin/env bash
# run.sh — DSS as the oracle for RFC 4998 evidence records (crypto/ers):
# builds the DSS CLI (../dss/build.sh), re-validates every case of
# crypto/ers/testdata/dss/jobs.tsv with its --evidence-record mode at the
# validation time recorded in the golden file, fails when DSS's verdicts
# differ from crypto/ers/testdata/dss/golden/, then runs the Go test that
# requires our verifier to agree with those verdicts, and last the live
# step (serve_test.go): the real `poststelle serve` on the demo set-up
# builds records over a message it received and a log head with its own
# TSA, `poststelle evidence records` exports them, and DSS must give each
# the verdict of the fixed case built the same way (built-today, and
# built-changed-data with a byte of the data object flipped).
#   run.sh --regen   remakes the cases (mkers) and the golden files: the
#                    records are signed anew, so the goldens must follow.
# Needs: Java 17, Maven, Go. Prints "dss: N passed, M failed".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cases="$root/crypto/ers/testdata/dss"
bash "$here/../dss/build.sh"
if [[ "${1:-}" == "--regen" ]]; then
  (cd "$root" && go run ./test/integration/ers/mkers -out "$cases")
  rm -rf "$cases/golden"
  "$here/../dss/validate.sh" --evidence-record --jobs "$cases/jobs.tsv" --corpus "$cases" --base "$cases" --out "$cases/golden"
fi
"$here/../dss/validate.sh" --evidence-record --check --jobs "$cases/jobs.tsv" --corpus "$cases" --base "$cases" --out "$cases/golden"
cd "$root"
go test -count=1 -run 'TestCompareWithDSS' ./crypto/ers/
go test -tags integration -count=1 -run 'TestServeRecordsWithDSS' ./test/integration/ers/
