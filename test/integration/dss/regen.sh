#!/usr/bin/env bash
# Regenerates the DSS golden files under golden/ (and anchors/, jobs.tsv).
#  1. probe: every signature/timestamp sample of the corpus MANIFEST, at now,
#     without trust; dumps the CA certificates at the top of each chain into
#     anchors/<sample>/.
#  2. golden: per sample, three runs: untrusted at now, trusted (anchors) at
#     now, trusted at shortly after signing (see mkjobs.py).
# Needs: bash, java 17, maven (build.sh), python3. Usage: regen.sh [TESTDATA_DIR]
# (default: the repository's testdata/)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
corpus="${1:-$here/../../../testdata}/signatures"
corpus="$(cd "$corpus" && pwd)"
test -f "$corpus/MANIFEST.tsv"
"$here/build.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$here"
python3 mkjobs.py samples "$corpus/MANIFEST.tsv" > "$tmp/probe.tsv"
rm -rf anchors golden
./validate.sh --jobs "$tmp/probe.tsv" --corpus "$corpus" --base "$here" --out "$tmp/probe" --dump-anchors anchors
python3 mkjobs.py golden "$corpus/MANIFEST.tsv" "$tmp/probe" anchors > jobs.tsv
./validate.sh --jobs jobs.tsv --corpus "$corpus" --base "$here" --out golden
