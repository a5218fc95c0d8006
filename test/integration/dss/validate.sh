#!/usr/bin/env bash
# Runs the DSS oracle; all arguments go to the CLI (see README.md), e.g.
#   validate.sh --trust ca.pem --at 2012-01-02T03:04:05Z signature.p7m
#   validate.sh --jobs jobs.tsv --corpus ../../../testdata/signatures --base . --out /tmp/out
# Builds it first if it is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$here/validator/target/dss-oracle-1.0.jar"
if [[ ! -f "$jar" ]]; then
	"$here/build.sh" >&2
fi
# A constant identity hash (-XX:hashCode=2, a HotSpot testing mode) makes DSS
# reproducible: DSS's Digest.hashCode mixes in an enum's identity hash, so the
# order of its HashSets, and with it which of two equally valid issuer
# certificates ends a chain, otherwise depends on what the JVM hashed before
# (pades-5-signatures-and-1-document-timestamp.pdf: the self-signed I.CA
# certificate or its cross-certificate from KCA NBU SR 3). See README.md.
# No network for the validator: DSS must never fetch OCSP/CRL/AIA behind our back.
exec java -Xss4m -XX:+UnlockExperimentalVMOptions -XX:hashCode=2 -Djava.net.useSystemProxies=false \
	-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=9 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=9 \
	-jar "$jar" "$@"
