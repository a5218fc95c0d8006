#!/usr/bin/env bash
# run.sh — runs the FIT-Connect interop tests: FITKO's Python SDK
# fitconnect 0.4.2 (from PyPI, into a git-ignored venv under
# test/integration/.work/portal-venv) plays the portal and the citizen
# against the Go stand-in of the Submission API (standin/, started as its own
# process by the test from cmd/fitconnect-standin on 127.0.0.1), and the
# gateway's portal channel through the real `poststelle serve` binary.
# Extra arguments go to `go test`. Exits non-zero when anything fails; the SDK
# is never skipped. Used by .ci/run (make test).
#
# Needs: Python 3.9+ with venv and pip (PyPI reachable, or a pip cache), Go.
# On a shared machine run it under `flock /tmp/poststelle-peers.lock`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/test/integration/.work/portal-venv"
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "portal: $python not found" >&2; exit 1; }
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import fitconnect, importlib.metadata as m; assert m.version("fitconnect") == "0.4.2"' 2>/dev/null; then
	rm -rf "$venv"
	"$python" -m venv "$venv"
	"$venv/bin/python" -m pip install -q --disable-pip-version-check 'fitconnect==0.4.2' >&2 ||
		{ echo "portal: pip install fitconnect==0.4.2 failed" >&2; exit 1; }
fi
export PORTAL_PYTHON="$venv/bin/python"
cd "$root"
go test -tags integration -count=1 -timeout 20m ./test/integration/portal/ "$@"
