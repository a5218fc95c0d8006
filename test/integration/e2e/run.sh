#!/usr/bin/env bash
# End-to-end test of the mailroom against real peers: installs Dovecot and
# Python when missing, starts a private Dovecot on 127.0.0.1 (the shared
# test/integration/mail/dovecot.sh), runs the tests, and stops Dovecot
# again whatever happens. Exits non-zero when a test fails.
#
#   test/integration/e2e/run.sh [go test flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
dovecot_sh=$repo/test/integration/mail/dovecot.sh

# test/setup.sh names every Debian package the tests use; quick when all are there.
bash "$repo/test/setup.sh" >/dev/null

work=$(mktemp -d /tmp/poststelle-e2e.XXXXXX)
chmod 755 "$work" # Dovecot's unprivileged processes read their files below it
dovecot_dir=$work/dovecot
cleanup() {
	"$dovecot_sh" "$dovecot_dir" stop || true
	rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
imap_port=$(port)
imaps_port=$(port)
"$dovecot_sh" "$dovecot_dir" setup "$imap_port" "$imaps_port"
"$dovecot_sh" "$dovecot_dir" start

export POSTSTELLE_IT_IMAPS_ADDR=127.0.0.1:$imaps_port
export POSTSTELLE_IT_DOVECOT_CA=$dovecot_dir/cert.pem
export POSTSTELLE_IT_DOVECOT_DIR=$dovecot_dir

cd "$repo"
go test -tags integration -count=1 "$@" ./test/integration/e2e/...
