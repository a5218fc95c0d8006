#!/usr/bin/env bash
# Builds the DSS oracle (a Java CLI around DSS, see README.md) with Maven.
# Artifacts come from Maven Central into ~/.m2 (or $MAVEN_REPO_LOCAL); a second
# run is offline-fast. Output: validator/target/dss-oracle-1.0.jar + target/lib/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# -B -ntp and no colour: plain, quiet output in make test logs.
args=(-q -B -ntp -Dstyle.color=never)
if [[ -n "${MAVEN_REPO_LOCAL:-}" ]]; then
	args+=("-Dmaven.repo.local=${MAVEN_REPO_LOCAL}")
fi
cd "$here/validator"
# Debian's Maven 3.8.7 (with Jansi 2) still writes bare ESC[0m resets to both
# streams in batch mode; strip every SGR sequence so logs stay plain text.
# Maven's messages are diagnostics, so they all go to stderr.
mvn "${args[@]}" package 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g' >&2
test -f target/dss-oracle-1.0.jar
