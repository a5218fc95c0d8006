#!/bin/sh
# Regenerates the committed fuzz seeds testdata/fuzz/FuzzParseCRL and
# testdata/fuzz/FuzzParseOCSP: a tiny openssl CA with one revoked
# certificate, its CRL and an OCSP response signed by a delegated responder.
# Run from crypto/trust: sh testdata/mkseeds.sh
set -eu
out=$(pwd)/testdata/fuzz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
cat > ca.cnf <<'CNF'
[ca]
default_ca = d
[d]
dir = .
database = db
new_certs_dir = .
serial = srl
default_md = sha256
policy = p
unique_subject = no
default_crl_days = 30
[p]
commonName = supplied
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
[v3_ocsp]
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
[v3_leaf]
keyUsage = critical,nonRepudiation
[crl_ext]
authorityKeyIdentifier = keyid
CNF
: > db; echo 1000 > srl
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -new -x509 -key ca.key -subj /CN=Seed-CA -days 30 -config ca.cnf -extensions v3_ca -out ca.pem
for n in leaf ocsp; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $n.key 2>/dev/null
  openssl req -new -key $n.key -subj /CN=Seed-$n -out $n.csr
  openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in $n.csr -out $n.pem -extensions v3_$n -days 10 2>/dev/null
done
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -revoke leaf.pem -crl_reason keyCompromise 2>/dev/null
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -gencrl -crlexts crl_ext -out crl.pem 2>/dev/null
openssl crl -in crl.pem -outform DER -out crl.der
openssl ocsp -issuer ca.pem -cert leaf.pem -reqout req.der
openssl ocsp -index db -rsigner ocsp.pem -rkey ocsp.key -CA ca.pem -reqin req.der -respout ocsp.der -ndays 1 2>/dev/null
python3 - "$out" <<'PY'
import os, sys
out = sys.argv[1]
def seed(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    lit = ''.join('\\x%02x' % b for b in data)
    with open(os.path.join(out, target, name), 'w') as f:
        f.write('go test fuzz v1\n[]byte("%s")\n' % lit)
seed('FuzzParseCRL', 'openssl-crl-revoked', open('crl.der', 'rb').read())
seed('FuzzParseCRL', 'truncated', open('crl.der', 'rb').read()[:40])
seed('FuzzParseOCSP', 'openssl-ocsp-delegated', open('ocsp.der', 'rb').read())
seed('FuzzParseOCSP', 'truncated', open('ocsp.der', 'rb').read()[:60])
PY
