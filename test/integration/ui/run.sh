#!/usr/bin/env bash
# Browser tests of the web UI: builds poststelle, starts `poststelle serve`
# with offices, rules and the web UI on 127.0.0.1, and drives Debian's
# headless Chromium with chromedp through login, live arrival, manual
# routing, the Prüfprotokoll, an answer and the role limits. Screenshots of
# overview, triage, message page and search in German and English go to
# $UI_OUT (default test/integration/ui/out).
#
#   flock /tmp/poststelle-peers.lock bash test/integration/ui/run.sh [go test flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bash "$repo/test/setup.sh" >/dev/null
export UI_OUT=${UI_OUT:-$here/out}
mkdir -p "$UI_OUT"
cd "$repo"
exec go test -tags integration -count=1 -timeout 10m "$@" ./test/integration/ui/
