#!/usr/bin/env bash
# Builds the DSS oracle (a Java CLI around DSS, see README.md) with Maven.
# Artifacts come from Maven Central into ~/.m2 (or $MAVEN_REPO_LOCAL); a second
# run is offline-fast. Output: validator/target/dss-oracle-1.0.jar + target/lib/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
args=(-q -B)
if [[ -n "${MAVEN_REPO_LOCAL:-}" ]]; then
	args+=("-Dmaven.repo.local=${MAVEN_REPO_LOCAL}")
fi
cd "$here/validator"
mvn "${args[@]}" package
test -f target/dss-oracle-1.0.jar
