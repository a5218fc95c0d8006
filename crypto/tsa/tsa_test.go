package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/keys"
	"github.com/poststelle/poststelle/crypto/selfissued"
	"github.com/poststelle/poststelle/crypto/tsp"
)

var testPolicy = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 3161, 1}

type fixture struct {
	dir    string
	caFile string
	srv    *Server
	url    string
}

func newFixture(t testing.TB, dir string, clock func() time.Time) *fixture {
	t.Helper()
	ca, err := selfissued.LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), "Test CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tsa.pem"), filepath.Join(dir, "tsa-key.pem")
	if _, err := ca.LoadOrIssue(certFile, keyFile, "Test TSA", selfissued.TSA); err != nil {
		t.Fatal(err)
	}
	certs, err := selfissued.ReadCertificates(certFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keys.LoadSigner(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var ders [][]byte
	for _, c := range certs {
		ders = append(ders, c.Raw)
	}
	srv, err := New(Config{Signer: key, Certificates: ders, Policy: testPolicy, Clock: clock,
		Serials: &SerialFile{Path: filepath.Join(dir, "serial")}, Accuracy: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &fixture{dir: dir, caFile: ca.CertFile, srv: srv, url: hs.URL}
}

func openssl(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func post(t *testing.T, url string, body []byte) []byte {
	t.Helper()
	resp, err := http.Post(url, "application/timestamp-query", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/timestamp-reply" {
		t.Fatalf("HTTP %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTSAWithOurClient(t *testing.T) {
	fixed := time.Date(2026, 12, 3, 21, 4, 5, 678e6, time.UTC)
	f := newFixture(t, t.TempDir(), func() time.Time { return fixed })
	digest := sha256.Sum256([]byte("Eingang 2026-12-03"))
	c := &tsp.Client{TSAs: []tsp.TSA{{URL: f.url, Policy: testPolicy}}, Attempts: 1}
	st, err := c.Timestamp(context.Background(), digest[:])
	if err != nil {
		t.Fatal(err)
	}
	info := st.Token.Info
	if !info.GenTime.Equal(fixed) || !info.Policy.Equal(testPolicy) || info.Accuracy != 1500*time.Millisecond {
		t.Errorf("genTime %v policy %s accuracy %v", info.GenTime, info.Policy, info.Accuracy)
	}
	if !st.Result.Valid {
		t.Fatalf("checks %+v", st.Result.Checks)
	}
	// The token binds the TSA certificate by ESSCertIDv2.
	r := st.Token.SignedData.Verify(cms.VerifyOptions{}).Signers[0]
	if len(r.SigningCertificateRefs) != 1 || r.SigningCertificateRefs[0].Version != 2 || !r.SigningCertificateRefs[0].DigestMatch {
		t.Errorf("signing certificate refs %+v", r.SigningCertificateRefs)
	}
	// A token over other data does not verify.
	other := sha256.Sum256([]byte("Eingang 2026-12-04"))
	if res := st.Token.Verify(tsp.VerifyOptions{Digest: other[:]}); res.Valid {
		t.Fatal("token verifies over other data")
	}
}

func TestTSAWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is required: %v", err)
	}
	f := newFixture(t, t.TempDir(), nil)
	dir := f.dir
	data := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(data, []byte("Zugang über das besondere Behördenpostfach\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := openssl(t, dir, "ts", "-query", "-data", "data.bin", "-sha256", "-cert", "-out", "req.tsq"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	req, _ := os.ReadFile(filepath.Join(dir, "req.tsq"))
	if err := os.WriteFile(filepath.Join(dir, "resp.tsr"), post(t, f.url, req), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := openssl(t, dir, "ts", "-verify", "-in", "resp.tsr", "-queryfile", "req.tsq", "-CAfile", f.caFile)
	if err != nil || !strings.Contains(out, "Verification: OK") {
		t.Fatalf("openssl ts -verify -queryfile: %v\n%s", err, out)
	}
	out, err = openssl(t, dir, "ts", "-verify", "-in", "resp.tsr", "-data", "data.bin", "-CAfile", f.caFile)
	if err != nil || !strings.Contains(out, "Verification: OK") {
		t.Fatalf("openssl ts -verify -data: %v\n%s", err, out)
	}
	text, err := openssl(t, dir, "ts", "-reply", "-in", "resp.tsr", "-text")
	if err != nil || !strings.Contains(text, "Policy OID: 1.3.6.1.4.1.99999.3161.1") || !strings.Contains(text, "Status: Granted.") {
		t.Fatalf("reply text: %v\n%s", err, text)
	}
	// A changed byte of the data fails.
	if err := os.WriteFile(data, []byte("Zugang über das besondere Behördenpostfach!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := openssl(t, dir, "ts", "-verify", "-in", "resp.tsr", "-data", "data.bin", "-CAfile", f.caFile); err == nil {
		t.Fatalf("openssl accepts changed data:\n%s", out)
	}
	// A changed byte of the token fails.
	resp, _ := os.ReadFile(filepath.Join(dir, "resp.tsr"))
	resp[len(resp)-10] ^= 0x01
	if err := os.WriteFile(filepath.Join(dir, "bad.tsr"), resp, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := openssl(t, dir, "ts", "-verify", "-in", "bad.tsr", "-queryfile", "req.tsq", "-CAfile", f.caFile); err == nil {
		t.Fatalf("openssl accepts a changed token:\n%s", out)
	}
	// Without -cert the token carries no certificate and openssl needs
	// it given: -untrusted with the TSA's chain.
	if out, err := openssl(t, dir, "ts", "-query", "-data", "data.bin", "-sha512", "-out", "nocert.tsq"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	req, _ = os.ReadFile(filepath.Join(dir, "nocert.tsq"))
	raw := post(t, f.url, req)
	parsed, err := tsp.ParseResponse(raw)
	if err != nil || parsed.Token == nil || len(parsed.Token.SignedData.Certificates) != 0 {
		t.Fatalf("certReq false: %v, token %+v", err, parsed)
	}
	if err := os.WriteFile(filepath.Join(dir, "nocert.tsr"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = openssl(t, dir, "ts", "-verify", "-in", "nocert.tsr", "-queryfile", "nocert.tsq", "-CAfile", f.caFile, "-untrusted", "tsa.pem")
	if err != nil || !strings.Contains(out, "Verification: OK") {
		t.Fatalf("openssl ts -verify without certReq: %v\n%s", err, out)
	}
}

func TestTSARefuses(t *testing.T) {
	f := newFixture(t, t.TempDir(), nil)
	digest := make([]byte, 32)
	enc := func(r *tsp.Request) []byte {
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sha1Req := enc(&tsp.Request{Hash: crypto.SHA1, HashedMessage: make([]byte, 20)})
	// SHA-384 named, 32 bytes given.
	sha256OID := []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}
	shortImprint := bytes.Replace(enc(&tsp.Request{Hash: crypto.SHA256, HashedMessage: digest}), sha256OID,
		append(sha256OID[:8:8], 0x02), 1)
	withExt := enc(&tsp.Request{Hash: crypto.SHA256, HashedMessage: digest})
	ext := []byte{0xa0, 0x02, 0x30, 0x00}
	withExt = append([]byte{0x30, byte(len(withExt) - 2 + len(ext))}, append(withExt[2:], ext...)...)
	cases := []struct {
		name string
		req  []byte
		fail int
	}{
		{"sha1", sha1Req, FailBadAlg},
		{"md5", []byte{0x30, 0x21, 0x02, 0x01, 0x01, 0x30, 0x1c, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05,
			0x04, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, FailBadAlg},
		{"policy", enc(&tsp.Request{Hash: crypto.SHA256, HashedMessage: digest, Policy: asn1.ObjectIdentifier{1, 2, 3}}), FailUnacceptedPolicy},
		{"garbage", []byte("not DER"), FailBadDataFormat},
		{"short imprint", shortImprint, FailBadDataFormat},
		{"extension", withExt, FailUnacceptedExtension},
		{"oversize", make([]byte, MaxRequestSize+1), FailBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := tsp.ParseResponse(post(t, f.url, c.req))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tsp.StatusRejection || resp.Token != nil {
				t.Fatalf("status %d, token %v", resp.Status, resp.Token != nil)
			}
			if got := failBit(resp.FailInfo); got != c.fail {
				t.Fatalf("failInfo bit %d (%x), want %d; %v", got, resp.FailInfo, c.fail, resp.StatusStrings)
			}
		})
	}
	// Not a POST of a timestamp query.
	r, err := http.Get(f.url)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %s", r.Status)
	}
	r, err = http.Post(f.url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %s", r.Status)
	}
}

func failBit(bits []byte) int {
	for i, b := range bits {
		for j := 0; j < 8; j++ {
			if b&(0x80>>j) != 0 {
				return i*8 + j
			}
		}
	}
	return -1
}

func TestSerialsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	// A clock stuck in 1970 leaves only the file to keep serials apart.
	epoch := func() time.Time { return time.Unix(0, 0) }
	var last *big.Int
	for restart := 0; restart < 3; restart++ {
		f := newFixture(t, dir, epoch)
		for i := 0; i < 3; i++ {
			tok, err := f.srv.Stamp(context.Background(), crypto.SHA256, make([]byte, 32))
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := tsp.ParseToken(tok)
			if err != nil {
				t.Fatal(err)
			}
			n := parsed.Info.SerialNumber
			if last != nil && n.Cmp(last) <= 0 {
				t.Fatalf("restart %d: serial %s after %s", restart, n, last)
			}
			last = n
		}
	}
	// With a real clock a lost file still does not repeat serials.
	if err := os.Remove(filepath.Join(dir, "serial")); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, dir, nil)
	tok, err := f.srv.Stamp(context.Background(), crypto.SHA256, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := tsp.ParseToken(tok)
	if parsed.Info.SerialNumber.Cmp(last) <= 0 {
		t.Fatalf("serial %s after losing the file, last %s", parsed.Info.SerialNumber, last)
	}
}

func TestNewRefusesNonTSACertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := selfissued.LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), "Test CA")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadOrIssue(filepath.Join(dir, "seal.pem"), filepath.Join(dir, "seal-key.pem"), "Seal", selfissued.Seal); err != nil {
		t.Fatal(err)
	}
	certs, _ := selfissued.ReadCertificates(filepath.Join(dir, "seal.pem"))
	key, _ := keys.LoadSigner(filepath.Join(dir, "seal-key.pem"))
	_, err = New(Config{Signer: key, Certificates: [][]byte{certs[0].Raw}, Policy: testPolicy, Serials: &SerialFile{Path: filepath.Join(dir, "s")}})
	if err == nil || !strings.Contains(err.Error(), "timeStamping") {
		t.Fatalf("err %v", err)
	}
}
