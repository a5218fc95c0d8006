#!/usr/bin/env bash
# gen.sh — regenerates the golden captures in this folder: runs the library's
# requests through the Java peer against the capture endpoint and writes what
# it sent (see README.md). Run under `flock /tmp/poststelle-peers.lock` on a
# shared machine; review the diff (every byte changes: fresh keys and times).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OSCI_TEST_PKGS=./test/integration/osci exec bash "$here/../../../test/integration/osci/run.sh" -run '^TestLibraryRequests$' -update
