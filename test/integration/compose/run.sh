#!/usr/bin/env bash
# run.sh — check docker-compose.yml and the Dockerfile without a Docker
# daemon (test/compose, a module of its own so that the Compose loader stays
# out of the gateway's go.mod): the Compose specification's loader validates,
# interpolates and cross-checks the file as `docker compose config` does, the
# topology is held against test/integration/kafka/cluster.sh and the gateway's
# configuration loader, and the Dockerfile's go build runs natively (a static
# binary that runs). Starts no containers and no peers. Needs: Go.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root/test/compose"
go vet ./...
go test -count=1 -timeout 10m "$@" ./...
