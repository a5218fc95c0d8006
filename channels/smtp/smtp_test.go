package smtp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

// selfSigned makes a server certificate for 127.0.0.1 at run time.
func selfSigned(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"mx.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

type fixture struct {
	srv   *Server
	log   *sqlitelog.Log
	blobs *blob.Store
	pool  *x509.CertPool
}

func openLog(t testing.TB, dir string) *sqlitelog.Log {
	t.Helper()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// start runs a receiver for kreis.example and poststelle@stadt.example.
func start(t testing.TB, mod func(*Config, *gateway.IntakeDeps)) *fixture {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir)
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, pool := selfSigned(t)
	cfg := Config{Listen: "127.0.0.1:0", Hostname: "gw.kreis.example", TLSConfig: tlsCfg,
		AcceptDomains: []string{"kreis.example"}, AcceptAddresses: []string{"Poststelle@Stadt.example"}}
	deps := gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg, &deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		l.Close()
	})
	return &fixture{srv: srv, log: l, blobs: blobs, pool: pool}
}

// send delivers raw and returns the server's final reply text.
func (f *fixture) send(t testing.TB, startTLS bool, from string, to []string, raw []byte) (string, error) {
	t.Helper()
	var c *gosmtp.Client
	var err error
	if startTLS {
		c, err = gosmtp.DialStartTLS(f.srv.Addr().String(), &tls.Config{RootCAs: f.pool, ServerName: "mx.test"})
	} else {
		c, err = gosmtp.Dial(f.srv.Addr().String())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("sender.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(raw); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	c.Quit()
	return resp.StatusText, nil
}

func (f *fixture) received(t testing.TB) []*gateway.MessageReceived {
	t.Helper()
	evs, err := f.log.Read(context.Background(), 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	var out []*gateway.MessageReceived
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := p.(*gateway.MessageReceived); ok {
			out = append(out, m)
		}
	}
	return out
}

var testMessage = []byte("Received: from relay.example.org by mx.example.org; Tue, 3 Jun 2025 10:00:00 +0200\r\n" +
	"From: =?utf-8?q?B=C3=BCrger?= <buerger@example.org>\r\nTo: bauamt@kreis.example\r\n" +
	"Subject: Antrag\r\nMessage-ID: <m1@example.org>\r\nX-De-Mail-Authoritative: yes\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n\r\nHallo.\r\n.dot-stuffed line\r\n")

func TestReceiveRecordsEvidenceAndKeepsBytes(t *testing.T) {
	for _, tls := range []bool{false, true} {
		f := start(t, nil)
		reply, err := f.send(t, tls, "buerger@example.org", []string{"bauamt@kreis.example", "POSTSTELLE@stadt.example"}, testMessage)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reply, "2.0.0 OK: recorded as rcv-") {
			t.Errorf("reply %q", reply)
		}
		msgs := f.received(t)
		if len(msgs) != 1 {
			t.Fatalf("%d messages recorded", len(msgs))
		}
		m := msgs[0]
		raw, err := f.blobs.ReadAll(context.Background(), m.Raw, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, testMessage) {
			t.Errorf("stored bytes differ from sent bytes:\n%q\n%q", raw, testMessage)
		}
		env := m.Transport.Envelope
		if env["mailFrom"] != "buerger@example.org" || env["rcptTo"] != "bauamt@kreis.example, poststelle@stadt.example" ||
			env["helo"] != "sender.example.org" || env["receivedBy"] != "gw.kreis.example" {
			t.Errorf("envelope %v", env)
		}
		if m.Channel != gateway.ChannelSMTP || m.From.Name != "Bürger" || m.Subject != "Antrag" || m.SenderMessageID != "<m1@example.org>" {
			t.Errorf("message %+v", m)
		}
		if len(m.Transport.Received) != 1 || len(m.Transport.Untrusted) != 1 || !strings.HasPrefix(m.Transport.RemoteAddr, "127.0.0.1:") {
			t.Errorf("transport %+v", m.Transport)
		}
		if tls != strings.HasPrefix(m.Transport.TLS, "TLS 1.3 ") {
			t.Errorf("TLS evidence %q with STARTTLS %v", m.Transport.TLS, tls)
		}
		if len(m.Parts) != 1 || m.Parts[0].Kind != "body" {
			t.Errorf("parts %+v", m.Parts)
		}
	}
}

func TestResendIsRecognised(t *testing.T) {
	f := start(t, nil)
	to := []string{"bauamt@kreis.example"}
	if _, err := f.send(t, false, "a@example.org", to, testMessage); err != nil {
		t.Fatal(err)
	}
	reply, err := f.send(t, false, "a@example.org", to, testMessage)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reply, "2.0.0 OK: already recorded as rcv-") {
		t.Errorf("resend reply %q", reply)
	}
	// The same bytes with another envelope are another delivery.
	if _, err := f.send(t, false, "a@example.org", []string{"other@kreis.example"}, testMessage); err != nil {
		t.Fatal(err)
	}
	if n := len(f.received(t)); n != 2 {
		t.Errorf("%d messages recorded, want 2", n)
	}
}

func smtpCode(err error) int {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestRefusals(t *testing.T) {
	f := start(t, func(c *Config, _ *gateway.IntakeDeps) { c.MaxMessageBytes = 1024 })
	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcde\r\n"), 100)...)
	tests := []struct {
		name string
		to   []string
		raw  []byte
		code int
	}{
		{"unknown recipient", []string{"someone@elsewhere.example"}, testMessage, 550},
		{"malformed recipient", []string{"no-at-sign"}, testMessage, 501},
		{"oversized", []string{"bauamt@kreis.example"}, big, 552},
	}
	for _, tc := range tests {
		_, err := f.send(t, false, "a@example.org", tc.to, tc.raw)
		if smtpCode(err) != tc.code {
			t.Errorf("%s: got %v, want %d", tc.name, err, tc.code)
		}
	}
	if n := len(f.received(t)); n != 0 {
		t.Errorf("%d messages recorded after refusals", n)
	}
}

func TestSizeAnnounced(t *testing.T) {
	f := start(t, func(c *Config, _ *gateway.IntakeDeps) { c.MaxMessageBytes = 4096 })
	c, err := gosmtp.Dial(f.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("x.example"); err != nil {
		t.Fatal(err)
	}
	if size, ok := c.MaxMessageSize(); !ok || size != 4096 {
		t.Errorf("SIZE %d %v", size, ok)
	}
	if err := c.Mail("a@example.org", &gosmtp.MailOptions{Size: 5000}); smtpCode(err) != 552 {
		t.Errorf("MAIL with SIZE over the limit: %v", err)
	}
}

func TestRequireTLS(t *testing.T) {
	f := start(t, func(c *Config, _ *gateway.IntakeDeps) { c.RequireTLS = true })
	if _, err := f.send(t, false, "a@example.org", []string{"x@kreis.example"}, testMessage); smtpCode(err) != 530 {
		t.Errorf("plain MAIL: %v", err)
	}
	if _, err := f.send(t, true, "a@example.org", []string{"x@kreis.example"}, testMessage); err != nil {
		t.Errorf("MAIL after STARTTLS: %v", err)
	}
}

type failingRecorder struct{ err error }

func (f failingRecorder) Record(context.Context, string, string, *gateway.MessageReceived) (gateway.Receipt, error) {
	return gateway.Receipt{}, f.err
}

type failingStore struct{ *blob.Store }

func (failingStore) Put(ctx context.Context, r io.Reader, max int64) (blob.Ref, error) {
	io.Copy(io.Discard, r)
	return blob.Ref{}, errors.New("disk full")
}

// TestTemporaryFailures shows that the sender is told to retry when the log
// or the disk fails, and told the message is unacceptable when the log
// refuses the event itself.
func TestTemporaryFailures(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config, *gateway.IntakeDeps)
		code int
	}{
		{"log closed", func(_ *Config, d *gateway.IntakeDeps) { d.Intake = failingRecorder{eventstore.ErrClosed} }, 451},
		{"disk full", func(_ *Config, d *gateway.IntakeDeps) { d.Blobs = failingStore{d.Blobs.(*blob.Store)} }, 451},
		{"event refused", func(_ *Config, d *gateway.IntakeDeps) { d.Intake = failingRecorder{eventstore.ErrInvalidEvent} }, 554},
	}
	for _, tc := range tests {
		f := start(t, tc.mod)
		_, err := f.send(t, false, "a@example.org", []string{"x@kreis.example"}, testMessage)
		if smtpCode(err) != tc.code {
			t.Errorf("%s: got %v, want %d", tc.name, err, tc.code)
		}
	}
}

// TestAnswerFollowsRecord checks the order: when the hook between record
// and reply runs, the event is already in the log.
func TestAnswerFollowsRecord(t *testing.T) {
	var f *fixture
	var seen int
	f = start(t, func(_ *Config, d *gateway.IntakeDeps) {
		d.AfterRecord = func(r gateway.Receipt) {
			evs, err := f.log.ReadStream(context.Background(), gateway.DefaultTenant, r.Stream)
			if err == nil {
				seen = len(evs)
			}
		}
	})
	if _, err := f.send(t, false, "a@example.org", []string{"x@kreis.example"}, testMessage); err != nil {
		t.Fatal(err)
	}
	if seen != 1 {
		t.Errorf("hook saw %d events in the stream before the reply, want 1", seen)
	}
}

func TestConfigErrors(t *testing.T) {
	deps := gateway.IntakeDeps{Intake: failingRecorder{}, Blobs: &blob.Store{}}
	for _, cfg := range []Config{
		{Listen: "127.0.0.1:0"},
		{Listen: "127.0.0.1:0", AcceptDomains: []string{"a@b"}},
		{Listen: "127.0.0.1:0", AcceptAddresses: []string{"nobody"}},
		{Listen: "127.0.0.1:0", AcceptAll: true, TLSCertFile: "x.pem"},
		{Listen: "127.0.0.1:0", AcceptAll: true, RequireTLS: true},
	} {
		if s, err := New(cfg, deps); err == nil {
			s.ln.Close()
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	f := start(t, func(c *Config, _ *gateway.IntakeDeps) { c.MaxConnections = 1 })
	first, err := gosmtp.Dial(f.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.Hello("one.example"); err != nil {
		t.Fatal(err)
	}
	second, err := gosmtp.Dial(f.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := second.Hello("two.example"); smtpCode(err) != 421 {
		t.Errorf("second session: %v, want 421", err)
	}
	first.Quit()
	// The slot is free again once the first session ended.
	eventually := time.Now().Add(5 * time.Second)
	for {
		third, err := gosmtp.Dial(f.srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		err = third.Hello("three.example")
		third.Close()
		if err == nil {
			break
		}
		if time.Now().After(eventually) {
			t.Fatalf("third session after the first ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestControlCharactersInHeaders sends header fields holding NUL, ESC and
// a bare CR and checks that the recorded receipt shows U+FFFD in their
// place and says so, while the stored bytes are what was sent.
func TestControlCharactersInHeaders(t *testing.T) {
	f := start(t, nil)
	raw := []byte("From: =?utf-8?q?B=C3=BCrger=00?= <buerger@example.org>\r\nTo: bauamt@kreis.example\r\n" +
		"Subject: Antrag\x00 Az.\x1b[2J 12\rX\r\nReply-To: <antwort@example.org>\x00\r\n\r\nHallo.\r\n")
	if _, err := f.send(t, false, "buerger@example.org", []string{"bauamt@kreis.example"}, raw); err != nil {
		t.Fatal(err)
	}
	ms := f.received(t)
	if len(ms) != 1 {
		t.Fatalf("%d receipts", len(ms))
	}
	m := ms[0]
	if m.Subject != "Antrag\uFFFD Az.\uFFFD[2J 12\uFFFDX" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.From.Name != "Bürger\uFFFD" || m.Metadata["replyTo"] != "<antwort@example.org>\uFFFD" {
		t.Errorf("from %+v, replyTo %q", m.From, m.Metadata["replyTo"])
	}
	for _, field := range []string{"Subject", "From", "Reply-To"} {
		if !slices.Contains(m.Problems, "header "+field+": control characters replaced with U+FFFD") {
			t.Errorf("no problem for %s in %q", field, m.Problems)
		}
	}
	stored, err := f.blobs.ReadAll(context.Background(), m.Raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, raw) {
		t.Errorf("stored bytes differ from those sent")
	}
}

// TestRunStopsWhenCancelledAtOnce: a stop right after the start (Ctrl-C
// during start-up) must end Run, even before go-smtp registered the
// listener.
func TestRunStopsWhenCancelledAtOnce(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	blobs, _ := blob.Open(filepath.Join(dir, "blobs"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		srv, err := New(Config{Listen: "127.0.0.1:0", AcceptAll: true},
			gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
}
