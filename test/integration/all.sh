#!/usr/bin/env bash
# all.sh — run every test/integration/*/run.sh (make integration), each to the
# end even when an earlier one failed, keeping each script's output in a log.
# When any failed, it ends with a summary of the failures: the failing tests'
# names and the lines around them. CI shows only the tail of a run's output,
# and without the summary a failure deep in a long log would be invisible
# there.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
logs="$(mktemp -d "${TMPDIR:-/tmp}/poststelle-integration.XXXXXX")"
failed=()
for s in "$here"/*/run.sh; do
  name="$(basename "$(dirname "$s")")"
  echo "== $s"
  start=$SECONDS
  bash "$s" 2>&1 | tee "$logs/$name.log"
  rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  ((rc == 0)) || failed+=("$name")
done
if ((${#failed[@]} == 0)); then
  rm -rf "$logs"
  exit 0
fi
echo
echo "==== integration failures: ${failed[*]} (full logs in $logs)"
for name in "${failed[@]}"; do
  echo "---- $name"
  # The failing tests and what they reported (t.Fatal lines name a _test.go
  # file and line), then the script's last lines.
  grep -n -E -e '--- FAIL|^FAIL|panic:|_test\.go:[0-9]+:|Error|error:' "$logs/$name.log" | grep -v -E 'WARN|level=' | tail -40
  echo "  (last lines)"
  tail -8 "$logs/$name.log"
done
exit 1
