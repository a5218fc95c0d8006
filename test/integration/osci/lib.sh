#!/usr/bin/env bash
# lib.sh — sourced by run.sh and osci/testdata/library/gen.sh (and any other
# script that needs the Java OSCI peer). After `osci_peer_build`:
#   OSCI_PEER_CP   classpath of the peer (its classes, the library, BouncyCastle)
#   OSCI_JAVA      the java binary
#   OSCI_LIB_FROM  where the library came from (maven or the directory)
# The library, de.osci:osci-bibliothek 2.4.1, comes from Maven Central when the
# registry serves it, else from OSCI_LIB_DIR (default: ../shared/peers/
# osci-bibliothek-2.4.1 beside the repository). When neither has it, the
# build fails and says so: the interop tests are never skipped.
# BouncyCastle (bcprov-jdk18on 1.76) always comes from Maven Central.
# Artifacts go to ~/.m2 (or $MAVEN_REPO_LOCAL); the compiled peer is cached in
# ${XDG_CACHE_HOME:-~/.cache}/poststelle/osci-peer-<hash of sources and jars>.
# Callers hold /tmp/poststelle-peers.lock around the build and the runs on
# shared machines (see docs in README.md); this file takes no lock itself,
# so that a caller holding it does not deadlock.

osci_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
osci_root="$(cd "$osci_here/../../.." && pwd)"
OSCI_VERSION=2.4.1
OSCI_BCPROV=org.bouncycastle:bcprov-jdk18on:1.76
OSCI_JAVA="${OSCI_JAVA:-java}"

osci_die() {
	echo "osci: $*" >&2
	exit 1
}

# osci_mvn_copy ARTIFACT DIR: copies one artifact (no transitives) into DIR;
# Maven's output goes to stderr with its colour codes stripped.
osci_mvn_copy() {
	local args=(-q -B -ntp -Dstyle.color=never)
	if [[ -n "${MAVEN_REPO_LOCAL:-}" ]]; then
		args+=("-Dmaven.repo.local=${MAVEN_REPO_LOCAL}")
	fi
	mkdir -p "$2"
	# dependency:copy needs no project; run it from an empty directory so a
	# pom.xml in the caller's working directory is not picked up.
	(cd "$2" && mvn "${args[@]}" dependency:copy -Dartifact="$1" -DoutputDirectory="$2" \
		-Dmdep.stripVersion=true 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g' >&2; exit "${PIPESTATUS[0]}")
}

# osci_resolve_lib DIR: puts the library's jars into OSCI_LIB_JARS (a
# classpath), from Maven Central into DIR or from OSCI_LIB_DIR.
osci_resolve_lib() {
	local dir="$1"
	for c in mvn javac "$OSCI_JAVA" sha256sum; do
		command -v "$c" >/dev/null || osci_die "$c not found (test/setup.sh installs maven and openjdk-17-jdk-headless)"
	done
	if osci_mvn_copy "de.osci:osci-bibliothek:$OSCI_VERSION" "$dir/maven" 2>/dev/null &&
		osci_mvn_copy "commons-logging:commons-logging:1.2" "$dir/maven"; then
		OSCI_LIB_FROM="maven:de.osci:osci-bibliothek:$OSCI_VERSION"
		OSCI_LIB_JARS="$dir/maven/osci-bibliothek.jar:$dir/maven/commons-logging.jar"
		return
	fi
	local libdir="${OSCI_LIB_DIR:-$osci_root/../shared/peers/osci-bibliothek-$OSCI_VERSION}"
	local jar="$libdir/lib/osci-bibliothek.jar" logging="$libdir/lib/commons-logging.jar"
	if [[ ! -f "$jar" || ! -f "$logging" ]]; then
		osci_die "the OSCI-Bibliothek $OSCI_VERSION is missing: Maven Central does not serve de.osci:osci-bibliothek:$OSCI_VERSION here, and OSCI_LIB_DIR=$libdir has no lib/osci-bibliothek.jar and lib/commons-logging.jar (set OSCI_LIB_DIR to the unpacked release, see test/integration/osci/README.md)"
	fi
	OSCI_LIB_FROM="$libdir"
	OSCI_LIB_JARS="$jar:$logging"
}

# osci_peer_build: resolves the jars, compiles the peer once per distinct
# sources and jars, exports OSCI_PEER_CP and OSCI_JAVA.
osci_peer_build() {
	local cache="${XDG_CACHE_HOME:-$HOME/.cache}/poststelle"
	mkdir -p "$cache/osci-deps"
	osci_resolve_lib "$cache/osci-deps"
	osci_mvn_copy "$OSCI_BCPROV" "$cache/osci-deps/bc" ||
		osci_die "could not fetch $OSCI_BCPROV from Maven Central"
	local bc="$cache/osci-deps/bc/bcprov-jdk18on.jar"
	local cp="$OSCI_LIB_JARS:$bc"
	local hash
	hash="$( (cd "$osci_here/peer" && find . -name '*.java' | LC_ALL=C sort | xargs sha256sum
		tr ':' '\n' <<<"$cp" | xargs sha256sum | cut -d' ' -f1) | sha256sum | cut -c1-16)"
	local out="$cache/osci-peer-$hash"
	if [[ ! -f "$out/ok" ]]; then
		rm -rf "$out.tmp"
		mkdir -p "$out.tmp/classes"
		(cd "$osci_here/peer" && find . -name '*.java' | LC_ALL=C sort >"$out.tmp/sources")
		(cd "$osci_here/peer" && javac -nowarn --release 17 -encoding UTF-8 -cp "$cp" -d "$out.tmp/classes" @"$out.tmp/sources") ||
			osci_die "compiling the peer failed"
		touch "$out.tmp/ok"
		rm -rf "$out"
		mv "$out.tmp" "$out"
	fi
	export OSCI_PEER_CP="$out/classes:$cp"
	export OSCI_JAVA OSCI_LIB_FROM
	echo "osci: peer built in $out (library from $OSCI_LIB_FROM)" >&2
}
