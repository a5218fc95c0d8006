#!/usr/bin/env bash
# Installs the Debian packages the test suite's real peers need. Idempotent:
# it asks apt only for what is missing. Runs as root (CI and the dev machines
# are root); elsewhere it uses sudo when present.
set -euo pipefail

need=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || need+=("$1"); }
want sqlite3        # the log-tampering tests edit databases with the real tool
want openssl        # independent signatures, certificates and timestamps
want swaks          # a real SMTP client
want dovecot-imapd  # a real IMAP server
want maven          # fetches the Java test peers (Kafka, DSS) from Maven Central
want python3-venv   # test/integration/openapi puts openapi-spec-validator (PyPI) in a venv

if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${need[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Dovecot's package starts a system instance; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet dovecot 2>/dev/null; then
  systemctl stop dovecot || true
fi
echo "setup: test peers installed"
