#!/usr/bin/env bash
# De-Mail integration tests against a stand-in provider (there is no public
# De-Mail test provider): an openssl CA for the provider's certificates, a
# private Dovecot on 127.0.0.1 as the provider gateway's mailbox that admits
# only clients with a certificate of that CA, and the Go provider of the
# tests (channels/demail/demailtest: stamping, confirmations, the SMTP
# submission sink). Stops Dovecot again whatever happens.
#
#   flock /tmp/poststelle-peers.lock bash test/integration/demail/run.sh [go test flags]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)

# test/setup.sh names every Debian package the tests use; quick when all are there.
bash "$repo/test/setup.sh" >/dev/null

work=$(mktemp -d /tmp/poststelle-demail-it.XXXXXX)
chmod 755 "$work" # Dovecot's unprivileged processes read their files below it
cleanup() {
	"$here/peer.sh" "$work" stop || true
	rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
imaps_port=$(port)
"$here/peer.sh" "$work" setup "$imaps_port"
"$here/peer.sh" "$work" start

export POSTSTELLE_IT_DEMAIL_DIR=$work
export POSTSTELLE_IT_DEMAIL_IMAPS=127.0.0.1:$imaps_port

cd "$repo"
go test -tags integration -count=1 -timeout 5m "$@" ./test/integration/demail/...
