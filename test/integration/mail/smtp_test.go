//go:build integration

package mail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
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

type receiver struct {
	addr  string
	dir   string
	log   interface{ Close() error }
	blobs *blob.Store
}

func startReceiver(t *testing.T, cfg smtp.Config) *receiver {
	t.Helper()
	dir := t.TempDir()
	l, err := openLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Hostname = "gw.kreis.example"
	cfg.TLSCertFile, cfg.TLSKeyFile = certFiles(t, dir)
	srv, err := smtp.New(cfg, gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	r := &receiver{addr: srv.Addr().String(), dir: dir, log: l, blobs: blobs}
	t.Cleanup(func() { cancel(); <-done; l.Close() })
	return r
}

// stop ends the receiver so that its log can be read.
func (r *receiver) messages(t *testing.T) []*gateway.MessageReceived {
	t.Helper()
	return received(t, r.dir)
}

func TestSwaksPlainAndSTARTTLS(t *testing.T) {
	r := startReceiver(t, smtp.Config{AcceptDomains: []string{"kreis.example"}})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"plain", nil},
		{"starttls", []string{"--tls"}},
	} {
		out, err := swaks(t, r.addr, append([]string{"--from", "buerger@example.org", "--to", "bauamt@kreis.example",
			"--header", "Subject: swaks " + tc.name, "--header", "X-De-Mail-Authoritative: yes", "--body", "Antrag per swaks"}, tc.args...)...)
		if err != nil || !strings.Contains(out, "250 2.0.0 OK: recorded as rcv-") {
			t.Fatalf("%s: swaks failed: %v\n%s", tc.name, err, out)
		}
	}
	// The log is shared with the running receiver; reading it from a second
	// handle is fine for SQLite in WAL mode.
	msgs := r.messages(t)
	if len(msgs) != 2 {
		t.Fatalf("%d messages recorded, want 2", len(msgs))
	}
	for _, m := range msgs {
		tlsWanted := strings.HasSuffix(m.Subject, "starttls")
		if tlsWanted != strings.HasPrefix(m.Transport.TLS, "TLS 1.") {
			t.Errorf("%s: TLS evidence %q", m.Subject, m.Transport.TLS)
		}
		if m.Transport.Envelope["mailFrom"] != "buerger@example.org" || m.Transport.Envelope["helo"] != "sender.example.org" ||
			len(m.Transport.Untrusted) != 1 {
			t.Errorf("%s: evidence %+v", m.Subject, m.Transport)
		}
		raw, err := r.blobs.ReadAll(context.Background(), m.Raw, 0)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "gw.kreis.example") {
			t.Errorf("stored bytes were altered with our own trace: %q", raw)
		}
	}
}

func TestSwaksRefusals(t *testing.T) {
	r := startReceiver(t, smtp.Config{AcceptAddresses: []string{"poststelle@kreis.example"}, MaxMessageBytes: 4096})
	out, err := swaks(t, r.addr, "--from", "a@example.org", "--to", "poststelle@kreis.example",
		"--body", strings.Repeat("0123456789abcdef\n", 400))
	if err == nil || !strings.Contains(out, "552 5.3.4") {
		t.Errorf("oversized message: %v\n%s", err, out)
	}
	out, err = swaks(t, r.addr, "--from", "a@example.org", "--to", "someone@kreis.example")
	if err == nil || !strings.Contains(out, "550 5.1.1") {
		t.Errorf("unknown recipient: %v\n%s", err, out)
	}
	if n := len(r.messages(t)); n != 0 {
		t.Errorf("%d messages recorded after refusals", n)
	}
}

// TestSwaksResendAfterCrash kills the receiver process (SIGKILL) after the
// append and before the 250; swaks sees the connection drop, sends the same
// message again to the restarted receiver, and is told it is already
// recorded. The log holds it once.
func TestSwaksResendAfterCrash(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	msgFile := filepath.Join(dir, "message.eml")
	os.WriteFile(msgFile, []byte("From: buerger@example.org\nTo: poststelle@kreis.example\nSubject: resent after a lost 250\n"+
		"Message-ID: <lost-250@example.org>\nDate: Tue, 3 Jun 2025 10:00:00 +0200\n\nBitte nur einmal eingehen lassen.\n"), 0o600)
	cc := childConfig{Dir: dir, SMTP: smtp.Config{Listen: addr, AcceptAll: true, Hostname: "gw.kreis.example"}, KillAfter: 1}
	send := func() (string, error) {
		return swaks(t, addr, "--from", "buerger@example.org", "--to", "poststelle@kreis.example", "--data", "@"+msgFile)
	}

	c := startChild(t, "smtp", cc)
	waitListening(t, addr)
	out, err := send()
	if err == nil || strings.Contains(out, "OK: recorded") || !strings.Contains(out, "closed connection") {
		t.Fatalf("the first delivery should have lost its 250: %v\n%s", err, out)
	}
	c.waitKilled(t, 30*time.Second)

	cc.KillAfter = 0
	c = startChild(t, "smtp", cc)
	waitListening(t, addr)
	out, err = send()
	if err != nil || !strings.Contains(out, "250 2.0.0 OK: already recorded as rcv-") {
		t.Fatalf("resend: %v\n%s", err, out)
	}
	c.stop(t)
	msgs := received(t, dir)
	if len(msgs) != 1 || msgs[0].SenderMessageID != "<lost-250@example.org>" {
		t.Errorf("log holds %d messages, want the one: %+v", len(msgs), msgs)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	eventually(t, 30*time.Second, addr+" accepts connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

var _ = tls.VersionTLS13
