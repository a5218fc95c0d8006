#!/usr/bin/env bash
# Builds the DSS validator CLI (Maven Central) and re-validates every corpus
# job, failing when DSS's verdicts differ from the committed golden results
# that crypto/verify's comparison test reads.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/build.sh"
bash "$here/check.sh"
