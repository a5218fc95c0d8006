#!/usr/bin/env bash
# run.sh [DOC...] — validates every docs/openapi/*.yaml (or each DOC) as OpenAPI 3.1 with
# openapi-spec-validator (PyPI), which runs in a private virtual environment
# made on first use under the user's cache directory. Exits non-zero when the
# document does not validate. Starts no server.
#
# Needs: python3 with venv (Debian: python3-venv), network to PyPI on first run.
# Environment:
#   OPENAPI_VENV  the virtual environment (default ~/.cache/poststelle/openapi-spec-validator-VERSION)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
# Pinned so that a new release cannot turn a passing document into a failing run.
version=0.9.0
venv="${OPENAPI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/poststelle/openapi-spec-validator-$version}"

log() { echo "openapi: $*" >&2; }

# A venv whose interpreter has gone (python upgraded) or whose install was
# interrupted is made again rather than trusted.
if ! "$venv/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
  command -v python3 >/dev/null || { log "python3 not found (apt-get install -y python3 python3-venv)"; exit 1; }
  log "installing openapi-spec-validator $version into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" || { log "python3 -m venv failed (Debian: apt-get install -y python3-venv)"; exit 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "openapi-spec-validator==$version"
fi
if [ $# -eq 0 ]; then
  set -- "$root"/docs/openapi/*.yaml
fi
for doc in "$@"; do
  "$venv/bin/openapi-spec-validator" "$doc"
done
