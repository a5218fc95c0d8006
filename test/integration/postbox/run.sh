#!/usr/bin/env bash
# Postbox API integration test: builds the poststelle binary, starts
# `poststelle serve` with a postbox section on 127.0.0.1, submits a message
# with curl as the portal (multipart, Idempotency-Key, a retry, wrong and
# other clients' tokens), answers it through the office API, picks the
# answer up with curl, and crashes serve between record and 201 to check
# that the retry makes one message.
#
#   test/integration/postbox/run.sh [go test flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# test/setup.sh names every Debian package the tests use; quick when all are there.
bash "$repo/test/setup.sh" >/dev/null
cd "$repo"
exec go test -tags integration -count=1 "$@" ./test/integration/postbox/
