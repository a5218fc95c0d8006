//go:build integration

package mail

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

// certFiles writes a self-signed certificate for 127.0.0.1.
func certFiles(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// swaks runs the real SMTP client and returns its transcript.
func swaks(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	all := append([]string{"--server", host, "--port", port, "--helo", "sender.example.org", "--timeout", "20"}, args...)
	out, err := exec.Command(env(t, envSwaks), all...).CombinedOutput()
	return string(out), err
}

// smtpGateway writes a configuration with the SMTP receiver on a free
// port, its STARTTLS certificate made here, and the section's other keys
// (YAML flow-map entries, ", key: value").
func smtpGateway(t *testing.T, extra string) *gw {
	t.Helper()
	g := newGateway(t)
	g.smtp = servetest.FreeAddr(t)
	cert, key := certFiles(t, g.dir)
	g.write(t, fmt.Sprintf("smtp: {listen: %q, hostname: gw.kreis.example, tls_cert_file: %s, tls_key_file: %s%s}\n", g.smtp, cert, key, extra))
	return g
}

// demoLogin reads the demo office's login that serve made on first start.
func (g *gw) demoLogin(t *testing.T) (user, password string) {
	t.Helper()
	c := servetest.DemoLogin(t, filepath.Join(g.dir, "data"))
	return c.User, c.Password
}

// rawMessage downloads the stored bytes of a message from the office API,
// as the demo office's member.
func (g *gw) rawMessage(t *testing.T, stream string) []byte {
	t.Helper()
	user, pw := g.demoLogin(t)
	var body []byte
	eventually(t, 30*time.Second, "the message is in the demo office", func() bool {
		req, _ := http.NewRequest("GET", "http://"+g.api+"/offices/demo/messages/"+stream+"/raw", nil)
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK
	})
	return body
}

func TestSwaksPlainAndSTARTTLS(t *testing.T) {
	g := smtpGateway(t, ", accept_domains: [kreis.example]")
	p := g.start(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"plain", nil},
		{"starttls", []string{"--tls"}},
	} {
		out, err := swaks(t, g.smtp, append([]string{"--from", "buerger@example.org", "--to", "bauamt@kreis.example",
			"--header", "Subject: swaks " + tc.name, "--header", "X-De-Mail-Authoritative: yes", "--body", "Antrag per swaks"}, tc.args...)...)
		if err != nil || !strings.Contains(out, "250 2.0.0 OK: recorded as rcv-") {
			t.Fatalf("%s: swaks failed: %v\n%s", tc.name, err, out)
		}
	}
	recs := servetest.Replay(t, bin, g.config, "MessageReceived")
	if len(recs) != 2 {
		t.Fatalf("%d messages recorded, want 2", len(recs))
	}
	for _, r := range recs {
		m := r.Payload.(*gateway.MessageReceived)
		tlsWanted := strings.HasSuffix(m.Subject, "starttls")
		if tlsWanted != strings.HasPrefix(m.Transport.TLS, "TLS 1.") {
			t.Errorf("%s: TLS evidence %q", m.Subject, m.Transport.TLS)
		}
		if m.Transport.Envelope["mailFrom"] != "buerger@example.org" || m.Transport.Envelope["helo"] != "sender.example.org" ||
			len(m.Transport.Untrusted) != 1 {
			t.Errorf("%s: evidence %+v", m.Subject, m.Transport)
		}
		raw := g.rawMessage(t, r.Stream)
		if !strings.Contains(string(raw), "Antrag per swaks") || strings.Contains(string(raw), "gw.kreis.example") {
			t.Errorf("stored bytes are not the message as sent (or carry our own trace): %q", raw)
		}
	}
	p.Stop(t)
}

func TestSwaksRefusals(t *testing.T) {
	g := smtpGateway(t, ", accept_addresses: [poststelle@kreis.example], max_message_bytes: 4096")
	p := g.start(t)
	out, err := swaks(t, g.smtp, "--from", "a@example.org", "--to", "poststelle@kreis.example",
		"--body", strings.Repeat("0123456789abcdef\n", 400))
	if err == nil || !strings.Contains(out, "552 5.3.4") {
		t.Errorf("oversized message: %v\n%s", err, out)
	}
	out, err = swaks(t, g.smtp, "--from", "a@example.org", "--to", "someone@kreis.example")
	if err == nil || !strings.Contains(out, "550 5.1.1") {
		t.Errorf("unknown recipient: %v\n%s", err, out)
	}
	// A message that is accepted shows that the log is read at all.
	out, err = swaks(t, g.smtp, "--from", "a@example.org", "--to", "poststelle@kreis.example", "--header", "Subject: accepted")
	if err != nil || !strings.Contains(out, "OK: recorded as") {
		t.Errorf("accepted message: %v\n%s", err, out)
	}
	msgs := g.received(t)
	if len(msgs) != 1 || msgs[0].Subject != "accepted" {
		t.Errorf("log holds %d messages after two refusals and one acceptance, want only the accepted one", len(msgs))
	}
	p.Stop(t)
}
