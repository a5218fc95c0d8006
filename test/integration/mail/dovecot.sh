#!/usr/bin/env bash
# Runs a private Dovecot 2.3 for the mail integration tests: its own
# configuration, mail and state under $1 (a directory), listening on
# 127.0.0.1 only, with a static password file of test users.
#
#   dovecot.sh DIR setup IMAP_PORT IMAPS_PORT   write config, certificate, users
#   dovecot.sh DIR start | stop | restart
set -euo pipefail
dir=$1
cmd=$2
conf=$dir/dovecot.conf

setup() {
	local port=$1 sport=$2
	mkdir -p "$dir"/{run,state,mail}
	chmod 755 "$dir"
	chown dovecot:dovecot "$dir/mail"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
	: >"$dir/users"
	for u in user1 user2 user3 user4 user5 user6 user7 user8; do
		echo "$u@test:{PLAIN}secret-$u" >>"$dir/users"
	done
	cat >"$conf" <<CONF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = $(id -u dovecot)
mail_location = maildir:$dir/mail/%u
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$dir/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $sport
    ssl = yes
  }
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
protocol imap {
  mail_max_userip_connections = 50
}
CONF
}

start() {
	# Detached from our output, so that a caller reading it is not kept waiting.
	dovecot -c "$conf" </dev/null >>"$dir/dovecot.out" 2>&1
	for _ in $(seq 50); do
		if [ -s "$dir/run/master.pid" ] && (exec 3<>/dev/tcp/127.0.0.1/"$(awk '/port =/{print $3; exit}' "$conf")") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "dovecot did not start; log:" >&2
	cat "$dir/dovecot.log" >&2 || true
	return 1
}

# stop ends this Dovecot instance and every process it started (its
# process group, which is its own since the master daemonizes), including
# the imap processes that a plain master shutdown would leave serving their
# clients: the tests need a real outage.
stop() {
	if [ -s "$dir/run/master.pid" ]; then
		local pid pgid
		pid=$(cat "$dir/run/master.pid")
		pgid=$(ps -o pgid= -p "$pid" | tr -d ' ' || true)
		if [ -n "$pgid" ] && [ "$pgid" != "$(ps -o pgid= -p $$ | tr -d ' ')" ]; then
			kill -TERM -- "-$pgid" 2>/dev/null || true
			for _ in $(seq 50); do
				kill -0 -- "-$pgid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL -- "-$pgid" 2>/dev/null || true
		fi
		rm -f "$dir/run/master.pid"
	fi
}

case $cmd in
setup) setup "$3" "$4" ;;
start) start ;;
stop) stop ;;
restart) stop; start ;;
*) echo "usage: $0 DIR setup PORT SPORT | start | stop | restart" >&2; exit 2 ;;
esac
