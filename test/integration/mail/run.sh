#!/usr/bin/env bash
# Mail integration tests against real peers: installs Dovecot and swaks
# when missing, starts a private Dovecot on 127.0.0.1, runs the tests, and
# stops Dovecot again whatever happens.
#
#   test/integration/mail/run.sh [go test flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)

# test/setup.sh names every Debian package the tests use; quick when all are there.
bash "$repo/test/setup.sh" >/dev/null

work=$(mktemp -d /tmp/poststelle-mail-it.XXXXXX)
chmod 755 "$work" # Dovecot's unprivileged processes read their files below it
dovecot_dir=$work/dovecot
cleanup() {
	"$here/dovecot.sh" "$dovecot_dir" stop || true
	rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
imap_port=$(port)
imaps_port=$(port)
"$here/dovecot.sh" "$dovecot_dir" setup "$imap_port" "$imaps_port"
"$here/dovecot.sh" "$dovecot_dir" start

export POSTSTELLE_IT_IMAP_ADDR=127.0.0.1:$imap_port
export POSTSTELLE_IT_IMAPS_ADDR=127.0.0.1:$imaps_port
export POSTSTELLE_IT_DOVECOT_CA=$dovecot_dir/cert.pem
export POSTSTELLE_IT_DOVECOT_CONF=$dovecot_dir/dovecot.conf
export POSTSTELLE_IT_DOVECOT_CTL="$here/dovecot.sh $dovecot_dir"
export POSTSTELLE_IT_SWAKS=$(command -v swaks)

cd "$repo"
go test -tags integration -count=1 "$@" ./test/integration/mail/...
