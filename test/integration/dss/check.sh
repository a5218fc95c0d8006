#!/usr/bin/env bash
# Re-runs every job of jobs.tsv at the validation time recorded in its golden
# file and fails when DSS's verdicts differ from golden/ (one JVM, ~1-2 min).
# Prints "dss: N passed, M failed".
# Usage: check.sh [TESTDATA_DIR]   (default: the repository's testdata/)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
corpus="${1:-$here/../../../testdata}/signatures"
test -f "$corpus/MANIFEST.tsv" || { echo "check.sh: corpus not found at $corpus" >&2; exit 2; }
"$here/validate.sh" --check --jobs "$here/jobs.tsv" --corpus "$corpus" --base "$here" --out "$here/golden"
# The oracle's own generated cases (mkgen, mkpades, mkxml) live beside it, not in the corpus.
"$here/validate.sh" --check --jobs "$here/jobs-pades.tsv" --corpus "$here" --base "$here" --out "$here/golden"
"$here/validate.sh" --check --jobs "$here/jobs-generated.tsv" --corpus "$here" --base "$here" --out "$here/golden"
exec "$here/validate.sh" --check --jobs "$here/jobs-xml.tsv" --corpus "$here" --base "$here" --out "$here/golden"
