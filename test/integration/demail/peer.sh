#!/usr/bin/env bash
# The stand-in De-Mail provider's parts that are not Go: its PKI, made
# with openssl, and the gateway's mailbox, a private Dovecot 2.3 on
# 127.0.0.1 with implicit TLS that requires a client certificate of the
# provider's CA (ssl_verify_client_cert, auth_ssl_require_client_cert).
#
#   peer.sh DIR setup IMAPS_PORT   certificates under DIR/pki, Dovecot under DIR/dovecot
#   peer.sh DIR start | stop
#
# DIR/pki holds, as PEM:
#   provider-ca.{pem,key}    the provider's CA (the operator configures it as demail.providers[].ca_file)
#   provider-sign.{pem,key}  the provider's qualified seal certificate (RSA), for X-de-mail-integrity and the confirmation XML
#   provider-ca.crl          the provider CA's CRL (demail.providers[].crl_files)
#   foreign-ca.pem, foreign-sign.{pem,key}  another CA and a signature certificate of it, same subject
#   gateway.{pem,key}        the gateway's TLS server certificate (Dovecot, the submission sink)
#   client.{pem,key}         our client certificate, issued by the provider
#   stranger.{pem,key}       a client certificate of the foreign CA
#   gateway-client.{pem,key} the gateway's client certificate, for its deliveries by SMTP
#   kreis-ca.pem, poststelle-server.{pem,key}  the authority's own CA and our SMTP server certificate
set -euo pipefail
dir=$1
cmd=$2
pki=$dir/pki
dc=$dir/dovecot
conf=$dc/dovecot.conf

# issue NAME CA SUBJECT EXTENSIONS [KEYSPEC]: a key and a certificate signed by CA.
issue() {
	local name=$1 ca=$2 subj=$3 ext=$4 key=${5:-ec}
	if [ "$key" = rsa ]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/$name.key" 2>/dev/null
	else
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>/dev/null
	fi
	openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
	printf '%s\n' "$ext" >"$pki/$name.ext"
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.pem" -CAkey "$pki/$ca.key" -CAcreateserial \
		-days 2 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.pem" 2>/dev/null
}

ca() {
	local name=$1 subj=$2
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 -subj "$subj" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$pki/$name.key" -out "$pki/$name.pem" 2>/dev/null
}

# crl writes the provider CA's current CRL (nothing revoked), as the
# operator fetches it for demail.providers[].crl_files.
crl() {
	: >"$pki/index.txt"
	echo 01 >"$pki/crlnumber"
	cat >"$pki/ca.cnf" <<CNF
[ca]
default_ca = provider
[provider]
database = $pki/index.txt
crlnumber = $pki/crlnumber
default_md = sha256
default_crl_days = 2
CNF
	openssl ca -config "$pki/ca.cnf" -gencrl -keyfile "$pki/provider-ca.key" -cert "$pki/provider-ca.pem" \
		-out "$pki/provider-ca.crl" 2>/dev/null
}

setup() {
	local sport=$1
	mkdir -p "$pki" "$dc"/{run,state,mail}
	chmod 755 "$dc"
	chown dovecot:dovecot "$dc/mail"
	ca provider-ca "/C=DE/O=Test-DMDA/CN=Test De-Mail PKI"
	ca foreign-ca "/C=DE/O=Fremd/CN=Fremde CA"
	# A qualified seal certificate, as a provider's is (EN 319 412-5
	# qcStatements: QcCompliance, QcType eseal, QcSSCD).
	local sign
	sign=$(cat <<'EXT'
keyUsage=critical,digitalSignature,nonRepudiation
1.3.6.1.5.5.7.1.3=ASN1:SEQUENCE:qcs
[qcs]
compliance=SEQUENCE:qc_compliance
type=SEQUENCE:qc_type
sscd=SEQUENCE:qc_sscd
[qc_compliance]
id=OID:0.4.0.1862.1.1
[qc_type]
id=OID:0.4.0.1862.1.6
types=SEQUENCE:qc_types
[qc_types]
eseal=OID:0.4.0.1862.1.6.2
[qc_sscd]
id=OID:0.4.0.1862.1.4
EXT
)
	issue provider-sign provider-ca "/C=DE/O=Test-DMDA/CN=Signatur provider.de-mail.example" "$sign" rsa
	issue foreign-sign foreign-ca "/C=DE/O=Test-DMDA/CN=Signatur provider.de-mail.example" "$sign" rsa
	issue gateway provider-ca "/CN=127.0.0.1" \
		"$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost')"
	issue client provider-ca "/O=Kreis Musterland/CN=poststelle@kreis.de-mail.example" \
		"$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
	issue stranger foreign-ca "/CN=mta.example.org" \
		"$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
	issue gateway-client provider-ca "/CN=gateway.provider.de-mail.example" \
		"$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
	ca kreis-ca "/O=Kreis Musterland/CN=Kreis Server-CA"
	issue poststelle-server kreis-ca "/CN=127.0.0.1" \
		"$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost')"
	crl
	chmod 644 "$pki"/*.pem "$pki"/*.crl
	: >"$dc/users"
	for n in 1 2 3 4 5 6 7 8; do
		echo "postfach$n@kreis.de-mail.example:{PLAIN}secret-$n" >>"$dc/users"
	done
	cat >"$conf" <<CONF
base_dir = $dc/run
state_dir = $dc/state
log_path = $dc/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = $(id -u dovecot)
mail_location = maildir:$dc/mail/%u
auth_mechanisms = plain login
ssl = required
ssl_cert = <$pki/gateway.pem
ssl_key = <$pki/gateway.key
# The provider gateway knows its customers by their client certificate:
# one of the provider's CA, checked at login; no CRL in this test PKI.
ssl_ca = <$pki/provider-ca.pem
ssl_verify_client_cert = yes
ssl_require_crl = no
auth_ssl_require_client_cert = yes
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dc/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$dc/mail/%u
}
service imap-login {
  inet_listener imap {
    port = 0
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
	dovecot -c "$conf" </dev/null >>"$dc/dovecot.out" 2>&1
	local port
	port=$(awk '/port = [1-9]/{print $3}' "$conf" | tail -1)
	for _ in $(seq 50); do
		if [ -s "$dc/run/master.pid" ] && (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "dovecot did not start; log:" >&2
	cat "$dc/dovecot.log" "$dc/dovecot.out" >&2 || true
	return 1
}

# stop ends this Dovecot and every process it started (its own process group).
stop() {
	if [ -s "$dc/run/master.pid" ]; then
		local pid pgid
		pid=$(cat "$dc/run/master.pid")
		pgid=$(ps -o pgid= -p "$pid" | tr -d ' ' || true)
		if [ -n "$pgid" ] && [ "$pgid" != "$(ps -o pgid= -p $$ | tr -d ' ')" ]; then
			kill -TERM -- "-$pgid" 2>/dev/null || true
			for _ in $(seq 50); do
				kill -0 -- "-$pgid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL -- "-$pgid" 2>/dev/null || true
		fi
		rm -f "$dc/run/master.pid"
	fi
}

case $cmd in
setup) setup "$3" ;;
start) start ;;
stop) stop ;;
*) echo "usage: $0 DIR setup IMAPS_PORT | start | stop" >&2; exit 2 ;;
esac
