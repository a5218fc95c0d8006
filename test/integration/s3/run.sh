#!/usr/bin/env bash
# run.sh — start SeaweedFS's S3 server on 127.0.0.1, create the bucket, run the
# blob store conformance suite against it (eventstore/s3blob, build tag
# integration), the key store suite (eventstore/blobkeys), encryption at rest
# over both (eventstore/cryptblob) and the serve test (a `poststelle serve`
# with blobs.backend: s3 taking mail in over SMTP and serving /raw from S3),
# then stop the server.
#
# The first run builds SeaweedFS (about 8 minutes on 2 cores, under the shared
# lock) and caches the binary in ~/.cache/poststelle; later runs take about a
# minute. Needs: Go, curl, python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/poststelle-s3.XXXXXX")"
cleanup() {
  bash "$here/seaweed.sh" stop "$work" || true
  rm -rf "$work"
}
trap cleanup EXIT
bash "$here/seaweed.sh" start "$work"
set -a
# shellcheck disable=SC1091
source "$work/env"
set +a
export S3_PID="$(cat "$work/pid")"
cd "$root"
go run ./test/integration/s3/mkbucket
go test -tags integration -count=1 -timeout 10m "$@" ./eventstore/s3blob/... ./eventstore/blobkeys/... ./eventstore/cryptblob/... ./test/integration/s3/...
# Our verified put against the client's plain PutObject, side by side.
go test -tags integration -count=1 -run '^$' -bench Put10KiB -benchtime 300x ./eventstore/s3blob/
