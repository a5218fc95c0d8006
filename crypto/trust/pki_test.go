package trust

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

// testPKI is a CA hierarchy made with the openssl command line at test
// time (not with our own code, so that the two cannot share a mistake):
//
//	root ── int (pathlen 0) ── leaf (QC statements), revoked, expired
//	                        └─ sub (a CA below a pathlen-0 CA) ── subleaf
//	     └─ ocsp responder (id-kp-OCSPSigning) issued by int
type testPKI struct {
	dir  string
	t    testing.TB
	now  time.Time
	cert map[string]*cert.Certificate
}

func opensslRun(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// qcStatementsHex is the DER of qcStatements with QcCompliance, QcSSCD and
// QcType esign.
func qcStatementsHex() string {
	der := []byte{0x30, 0x25,
		0x30, 0x08, 0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x01,
		0x30, 0x08, 0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x04,
		0x30, 0x0f, 0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x06, 0x30, 0x05, 0x06, 0x03}
	// QcType value: OID 0.4.0.1862.1.6.1 needs 7 bytes; build it properly.
	der = der[:len(der)-4]
	typ := []byte{0x06, 0x07, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x06, 0x01}
	stmt := append([]byte{0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x06, 0x30, byte(len(typ))}, typ...)
	stmt = append([]byte{0x30, byte(len(stmt))}, stmt...)
	body := append(der[2:], stmt...)
	return hex.EncodeToString(append([]byte{0x30, byte(len(body))}, body...))
}

const caConf = `
[ca]
default_ca = ca_default
[ca_default]
dir = .
database = DB
new_certs_dir = .
serial = SERIAL
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
default_crl_days = 30
[anything]
commonName = supplied
[v3_root]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_int]
basicConstraints = critical,CA:true,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_sub]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
authorityKeyIdentifier = keyid
[v3_leaf]
basicConstraints = critical,CA:false
keyUsage = critical,nonRepudiation
authorityKeyIdentifier = keyid
certificatePolicies = 0.4.0.194112.1.2
1.3.6.1.5.5.7.1.3 = DER:QCSTATEMENTS
[v3_ocsp]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
[v3_badcrit]
basicConstraints = critical,CA:false
1.2.3.4.5 = critical,DER:0500
`

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), t: t, now: time.Now().UTC().Truncate(time.Second), cert: map[string]*cert.Certificate{}}
	conf := strings.ReplaceAll(caConf, "QCSTATEMENTS", qcStatementsHex())
	for _, ca := range []string{"root", "int", "sub"} {
		conf += fmt.Sprintf("[ca_%s]\ndir = .\ndatabase = %s.db\nnew_certs_dir = .\nserial = %s.srl\ndefault_md = sha256\npolicy = anything\nunique_subject = no\ndefault_crl_days = 30\n", ca, ca, ca)
		os.WriteFile(filepath.Join(p.dir, ca+".db"), nil, 0o644)
		os.WriteFile(filepath.Join(p.dir, ca+".srl"), []byte("1000\n"), 0o644)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "ca.cnf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	p.key("root")
	opensslRun(t, p.dir, "req", "-new", "-x509", "-key", "root.key", "-subj", "/CN=Test Root", "-days", "3650",
		"-config", "ca.cnf", "-extensions", "v3_root", "-out", "root.pem")
	p.load("root")
	p.issue("int", "root", "v3_int", p.now.Add(-400*day), p.now.Add(3000*day))
	p.issue("leaf", "int", "v3_leaf", p.now.Add(-300*day), p.now.Add(300*day))
	p.issue("revoked", "int", "v3_leaf", p.now.Add(-300*day), p.now.Add(300*day))
	p.issue("expired", "int", "v3_leaf", p.now.Add(-300*day), p.now.Add(-10*day))
	p.issue("ocsp", "int", "v3_ocsp", p.now.Add(-300*day), p.now.Add(300*day))
	// A responder whose certificate runs out two days from now: validated
	// later, its answers need a proof of existence from within its validity.
	p.issue("ocspshort", "int", "v3_ocsp", p.now.Add(-300*day), p.now.Add(2*day))
	p.issue("badcrit", "int", "v3_badcrit", p.now.Add(-300*day), p.now.Add(300*day))
	p.issue("sub", "int", "v3_sub", p.now.Add(-300*day), p.now.Add(300*day))
	p.issue("subleaf", "sub", "v3_leaf", p.now.Add(-200*day), p.now.Add(200*day))
	// Revoke "revoked" 100 days ago with reason keyCompromise, by editing
	// the openssl database (openssl ca -revoke would use the current time).
	db, err := os.ReadFile(filepath.Join(p.dir, "int.db"))
	if err != nil {
		t.Fatal(err)
	}
	serial := strings.ToUpper(p.cert["revoked"].SerialNumber.Text(16))
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(db)), "\n") {
		f := strings.Split(line, "\t")
		if f[3] == serial {
			f[0], f[2] = "R", p.now.Add(-100*day).Format("060102150405Z")+",keyCompromise"
		}
		out = append(out, strings.Join(f, "\t"))
	}
	os.WriteFile(filepath.Join(p.dir, "int.db"), []byte(strings.Join(out, "\n")+"\n"), 0o644)
	opensslRun(t, p.dir, "ca", "-batch", "-config", "ca.cnf", "-name", "ca_int", "-gencrl", "-keyfile", "int.key", "-cert", "int.pem", "-out", "int.crl")
	opensslRun(t, p.dir, "ca", "-batch", "-config", "ca.cnf", "-name", "ca_root", "-gencrl", "-keyfile", "root.key", "-cert", "root.pem", "-out", "root.crl")
	return p
}

func (p *testPKI) key(name string) {
	opensslRun(p.t, p.dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name+".key")
}

func (p *testPKI) issue(name, issuer, ext string, from, to time.Time) {
	p.key(name)
	opensslRun(p.t, p.dir, "req", "-new", "-key", name+".key", "-subj", "/CN=Test "+name, "-out", name+".csr")
	opensslRun(p.t, p.dir, "ca", "-batch", "-config", "ca.cnf", "-name", "ca_"+issuer, "-cert", issuer+".pem", "-keyfile", issuer+".key",
		"-in", name+".csr", "-out", name+".pem", "-extensions", ext, "-notext",
		"-startdate", from.Format("20060102150405Z"), "-enddate", to.Format("20060102150405Z"))
	p.load(name)
}

func (p *testPKI) load(name string) {
	data, err := os.ReadFile(filepath.Join(p.dir, name+".pem"))
	if err != nil {
		p.t.Fatal(err)
	}
	cs, err := cert.ParseAll(data)
	if err != nil {
		p.t.Fatalf("%s: %v", name, err)
	}
	p.cert[name] = cs[0]
}

func (p *testPKI) crl(ca string) *CRL {
	data, err := os.ReadFile(filepath.Join(p.dir, ca+".crl"))
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := ParseCRL(data)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// ocspFor makes an OCSP response about name, signed by the delegated
// responder, from the openssl database.
func (p *testPKI) ocspFor(name string) *OCSPResponse {
	return p.ocspBy(name, "ocsp", "-ndays", "1")
}

// ocspBy makes an OCSP response about name signed by the responder
// certificate and key named responder; extra are further `openssl ocsp`
// options (without -ndays the response has no nextUpdate).
func (p *testPKI) ocspBy(name, responder string, extra ...string) *OCSPResponse {
	opensslRun(p.t, p.dir, "ocsp", "-issuer", "int.pem", "-cert", name+".pem", "-no_nonce", "-reqout", name+".ocspreq")
	out := name + "." + responder + ".ocsp"
	args := append([]string{"ocsp", "-index", "int.db", "-rsigner", responder + ".pem", "-rkey", responder + ".key", "-CA", "int.pem",
		"-reqin", name + ".ocspreq", "-respout", out}, extra...)
	opensslRun(p.t, p.dir, args...)
	data, err := os.ReadFile(filepath.Join(p.dir, out))
	if err != nil {
		p.t.Fatal(err)
	}
	r, err := ParseOCSPResponse(data)
	if err != nil {
		p.t.Fatal(err)
	}
	return r
}

func (p *testPKI) store() *Store {
	s := NewStore()
	s.AddCertificate(p.cert["root"], "root.pem")
	return s
}
