package revocation

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/poststelle/poststelle/crypto/cert"
)

// testPKI is made with the openssl command line at test time, so that our
// request, response and CRL handling meets an independent implementation:
//
//	ca ── good (0x1001), revoked (0x1002, keyCompromise)
//	   ├─ delegated responder (id-kp-OCSPSigning, id-pkix-ocsp-nocheck)
//	   └─ noeku responder (no id-kp-OCSPSigning)
//	rogue ca ── rogue responder (id-kp-OCSPSigning)
//
// The leaves name ocspURL and crlURL, which the test servers answer.
type testPKI struct {
	t    testing.TB
	dir  string
	cert map[string]*cert.Certificate
}

const pkiConf = `
[ca]
default_ca = ca_default
[ca_default]
dir = .
database = index.txt
new_certs_dir = .
crlnumber = crlnumber
default_md = sha256
default_crl_days = 7
[leaf]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,nonRepudiation
authorityInfoAccess = OCSP;URI:${ENV::OCSP_URL}
crlDistributionPoints = URI:${ENV::CRL_URL}
[leafdown]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,nonRepudiation
authorityInfoAccess = OCSP;URI:http://127.0.0.1:1/ocsp
crlDistributionPoints = URI:${ENV::CRL_URL}
[responder]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
[noeku]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
`

func run(t testing.TB, dir string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func newPKI(t testing.TB, ocspURL, crlURL string) *testPKI {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is required for these tests (apt-get install openssl): %v", err)
	}
	p := &testPKI{t: t, dir: t.TempDir(), cert: map[string]*cert.Certificate{}}
	env := []string{"OCSP_URL=" + ocspURL, "CRL_URL=" + crlURL}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(p.dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("pki.cnf", pkiConf)
	write("crlnumber", "01\n")
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	root := func(name, cn string) {
		run(t, p.dir, env, append(append([]string{"req", "-x509"}, ec...), "-keyout", name+".key", "-out", name+".pem",
			"-subj", "/CN="+cn, "-days", "30", "-addext", "basicConstraints=critical,CA:true",
			"-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectKeyIdentifier=hash")...)
	}
	issue := func(name, cn, ca, ext, serial string) {
		run(t, p.dir, env, append(append([]string{"req", "-new"}, ec...), "-keyout", name+".key", "-out", name+".csr", "-subj", "/CN="+cn)...)
		run(t, p.dir, env, "x509", "-req", "-in", name+".csr", "-CA", ca+".pem", "-CAkey", ca+".key", "-set_serial", serial,
			"-days", "10", "-extfile", "pki.cnf", "-extensions", ext, "-out", name+".pem")
	}
	root("ca", "Poststelle Test CA")
	root("rogue", "Poststelle Rogue CA")
	issue("good", "good", "ca", "leaf", "0x1001")
	issue("revoked", "revoked", "ca", "leaf", "0x1002")
	issue("revokeddown", "revoked, responder down", "ca", "leafdown", "0x1003")
	issue("stranger", "not in the responder's index", "ca", "leaf", "0x1004")
	issue("responder", "delegated responder", "ca", "responder", "0x2001")
	issue("noeku", "responder without OCSPSigning", "ca", "noeku", "0x2002")
	issue("rogueresp", "rogue responder", "rogue", "responder", "0x3001")
	for _, n := range []string{"ca", "rogue", "good", "revoked", "revokeddown", "stranger", "responder", "noeku", "rogueresp"} {
		p.cert[n] = p.load(n + ".pem")
	}
	// openssl's CA database: the revoked certificate revoked for keyCompromise.
	exp := p.cert["good"].NotAfter.UTC().Format("060102150405Z")
	rev := p.cert["revoked"].NotBefore.UTC().Format("060102150405Z")
	write("index.txt", fmt.Sprintf("V\t%s\t\t1001\tunknown\t/CN=good\nR\t%s\t%s,keyCompromise\t1002\tunknown\t/CN=revoked\nR\t%s\t%s,keyCompromise\t1003\tunknown\t/CN=revokeddown\n",
		exp, exp, rev, exp, rev))
	write("index.txt.attr", "unique_subject = no\n")
	run(t, p.dir, env, "ca", "-gencrl", "-config", "pki.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-out", "crl.pem")
	run(t, p.dir, env, "ca", "-gencrl", "-config", "pki.cnf", "-keyfile", "rogue.key", "-cert", "rogue.pem", "-out", "roguecrl.pem")
	return p
}

func (p *testPKI) load(name string) *cert.Certificate {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, name))
	if err != nil {
		p.t.Fatal(err)
	}
	cs, err := cert.ParseAll(b)
	if err != nil || len(cs) != 1 {
		p.t.Fatalf("%s: %v", name, err)
	}
	return cs[0]
}

func (p *testPKI) read(name string) []byte {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, name))
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// ocspResponder answers OCSP over HTTP on 127.0.0.1 by handing each request
// to `openssl ocsp` (its responder mode, reading the request from a file:
// openssl's own -port listener binds every interface, and the tests bind
// 127.0.0.1 only). signer is the responder certificate and key name.
type ocspResponder struct {
	p       *testPKI
	mu      sync.Mutex
	signer  string
	nextMin string // -nmin, "" for none
	// last is the last response served, for replay tests.
	last     []byte
	requests atomic.Int32
	gets     atomic.Int32
}

func (o *ocspResponder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	var der []byte
	switch r.Method {
	case http.MethodPost:
		der, _ = io.ReadAll(io.LimitReader(r.Body, 64<<10))
	case http.MethodGet:
		o.gets.Add(1)
		seg, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/ocsp/"))
		if err == nil {
			der, err = base64.StdEncoding.DecodeString(seg)
		}
		if err != nil {
			http.Error(w, "bad GET encoding", http.StatusBadRequest)
			return
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	dir := o.p.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "req.der"), der, 0o600); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	args := []string{"ocsp", "-index", filepath.Join(o.p.dir, "index.txt"), "-CA", filepath.Join(o.p.dir, "ca.pem"),
		"-rsigner", filepath.Join(o.p.dir, o.signer+".pem"), "-rkey", filepath.Join(o.p.dir, o.signer+".key"),
		"-reqin", filepath.Join(dir, "req.der"), "-respout", filepath.Join(dir, "resp.der")}
	if o.nextMin != "" {
		args = append(args, "-nmin", o.nextMin)
	}
	cmd := exec.Command("openssl", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		http.Error(w, fmt.Sprintf("openssl: %v %s", err, out), 500)
		return
	}
	resp, err := os.ReadFile(filepath.Join(dir, "resp.der"))
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	o.last = resp
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(resp)
}

// servers are the OCSP responder and CRL server the PKI's leaves point at.
type servers struct {
	pki      *testPKI
	ocsp     *ocspResponder
	crlHits  atomic.Int32
	crlBody  atomic.Pointer[[]byte]
	ocspSrv  *httptest.Server
	crlSrv   *httptest.Server
	ocspURL  string
	crlURL   string
	extraMux *http.ServeMux
}

func newServers(t testing.TB) *servers {
	t.Helper()
	s := &servers{extraMux: http.NewServeMux()}
	s.ocsp = &ocspResponder{signer: "ca", nextMin: "60"}
	s.ocspSrv = httptest.NewServer(s.ocsp)
	t.Cleanup(s.ocspSrv.Close)
	s.crlSrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ca.crl" {
			s.extraMux.ServeHTTP(w, r)
			return
		}
		s.crlHits.Add(1)
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(*s.crlBody.Load())
	}))
	t.Cleanup(s.crlSrv.Close)
	s.ocspURL = s.ocspSrv.URL + "/ocsp"
	s.crlURL = s.crlSrv.URL + "/ca.crl"
	s.pki = newPKI(t, s.ocspURL, s.crlURL)
	s.ocsp.p = s.pki
	crl := pemToDER(t, s.pki.read("crl.pem"))
	s.crlBody.Store(&crl)
	return s
}

func pemToDER(t testing.TB, b []byte) []byte {
	t.Helper()
	b = bytes.TrimSpace(b)
	start := bytes.IndexByte(b, '\n')
	end := bytes.LastIndex(b, []byte("\n-----END"))
	if start < 0 || end < start {
		t.Fatalf("not PEM: %q", b)
	}
	der, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(b[start+1:end]), "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	return der
}
