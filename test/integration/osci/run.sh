#!/usr/bin/env bash
# run.sh — builds the Java peer around the Governikus OSCI-Bibliothek 2.4.1
# (lib.sh: Maven Central or OSCI_LIB_DIR, never skipped) and runs the OSCI
# interop tests against it. Extra arguments go to `go test` (e.g. -run,
# -update). Exits non-zero when anything fails. Used by .ci/run (make test).
#
# Needs: Java 17+ (javac), Maven, Go. On a shared machine run it under
# `flock /tmp/poststelle-peers.lock`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"
osci_peer_build
cd "$osci_root"
# OSCI_TEST_PKGS narrows the packages, for flags only one of them knows (gen.sh: -update).
go test -tags integration -count=1 -timeout 20m ${OSCI_TEST_PKGS:-./test/integration/osci/...} "$@"
