#!/usr/bin/env bash
# Installs every Debian package the test suite uses. Idempotent: it asks apt
# only for what is missing, then checks that each tool really works.
# Packages are installed with --no-install-recommends, so everything a test
# needs is named here, not left to a Recommends (swaks only recommends the
# Net::SSLeay it needs for STARTTLS). Runs as root (CI and the dev machines
# are root); elsewhere it uses sudo when present.
set -euo pipefail

pkgs=(
  sqlite3               # cmd/poststelle: the log-tampering tests edit databases with the real tool
  openssl               # crypto/*, channels/smtpout: independent signatures, certificates, timestamps; dovecot.sh's certificate
  swaks                 # test/integration/mail: a real SMTP client
  libnet-ssleay-perl    # swaks's TLS (STARTTLS, --tls-on-connect); only a Recommends of swaks
  dovecot-core          # dovecot and /usr/lib/dovecot/dovecot-lda (mail, e2e)
  dovecot-imapd         # the IMAP server the mail and e2e tests collect from
  maven                 # fetches the Java test peers (Kafka, DSS) from Maven Central
  openjdk-17-jdk-headless # javac for the DSS oracle (maven only pulls a JRE); java for Kafka and DSS
  ca-certificates       # HTTPS to Maven Central (Java's trust store is built from it)
  curl                  # test/integration/offices and e2e: the office API and SMTP as a client sees them
  python3               # free ports in run.sh, the DSS oracle's mkjobs.py, the e2e office client
  procps                # ps in dovecot.sh (stopping Dovecot's process group)
  python3-venv          # test/integration/openapi puts openapi-spec-validator (PyPI) in a venv
  chromium              # test/integration/ui: the headless browser the web UI tests drive (chromedp)
  xmlsec1               # crypto/xmlenc, crypto/xmldsig: the independent XML Encryption and XML-DSig oracle
  softhsm2              # crypto/pkcs11, channels/oscichannel: a real PKCS#11 token (softhsm2-util, libsofthsm2.so)
  libxml2-utils         # xmllint: egvpsoap validates the SOAP bodies against the EGVP WSDL's schema; xjustiz checks its schema tables against the real XJustiz XSDs
)

need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done

if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${need[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Installed is not the same as usable: check what the tests call.
missing=()
for c in sqlite3 openssl swaks dovecot mvn java javac curl python3 ps chromium xmlsec1 softhsm2-util xmllint; do
  command -v "$c" >/dev/null || missing+=("$c")
done
[[ -x /usr/lib/dovecot/dovecot-lda ]] || missing+=(/usr/lib/dovecot/dovecot-lda)
[[ -f /usr/lib/softhsm/libsofthsm2.so ]] || missing+=(/usr/lib/softhsm/libsofthsm2.so)
perl -MNet::SSLeay -e1 2>/dev/null || missing+=("perl Net::SSLeay")
if ((${#missing[@]})); then
  echo "setup: still missing after install: ${missing[*]}" >&2
  exit 1
fi

# Dovecot's package starts a system instance; the tests run their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet dovecot 2>/dev/null; then
  systemctl stop dovecot || true
fi
echo "setup: test peers installed"
