package demail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

// tlsCert issues a TLS certificate from ca for usage, valid for 127.0.0.1.
func (ca *testCA) tlsCert(t testing.TB, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.x, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// smtpGateway is the provider gateway's side of the SMTP intake: our
// server certificate (from its own CA) and the provider PKI.
type smtpGateway struct {
	provider *testCA // issues the gateway's client certificate
	serverCA *testCA // issues our server certificate
	config   Config
	client   tls.Certificate // the provider gateway's client certificate
	addr     string
}

func newSMTPGateway(t testing.TB, provider *testCA) *smtpGateway {
	t.Helper()
	g := &smtpGateway{provider: provider, serverCA: newCA(t, "Kreis Server-CA")}
	g.client = provider.tlsCert(t, "gateway.provider.de-mail.example", x509.ExtKeyUsageClientAuth)
	srv := g.serverCA.tlsCert(t, "poststelle.kreis.example", x509.ExtKeyUsageServerAuth)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	keyDER, err := x509.MarshalPKCS8PrivateKey(srv.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	g.config = Config{Providers: []ProviderConfig{{Name: providerName, CAFile: caFile(t, provider)}},
		SMTP: &SMTPConfig{Listen: "127.0.0.1:0", Hostname: "poststelle.kreis.example", CertFile: certFile, KeyFile: keyFile}}
	return g
}

// start runs the De-Mail inbound with deps until the test ends.
func (g *smtpGateway) start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	t.Helper()
	c := g.config
	c.MaxMessageBytes = max
	in, err := New(c, deps)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := in.(interface{ Addr() net.Addr })
	if !ok {
		t.Fatalf("inbound %T has no listening address", in)
	}
	g.addr = a.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// deliver runs one SMTP transaction as the gateway, with client as its
// TLS client certificate (none when nil; no STARTTLS at all when
// starttls is false), and returns the final reply code or the error text.
func (g *smtpGateway) deliver(t testing.TB, raw []byte, client *tls.Certificate, starttls bool) channeltest.Answer {
	var c *gosmtp.Client
	if starttls {
		roots := x509.NewCertPool()
		roots.AddCert(g.serverCA.x)
		cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if client != nil {
			cfg.Certificates = []tls.Certificate{*client}
		}
		var err error
		if c, err = gosmtp.DialStartTLS(g.addr, cfg); err != nil {
			return smtpAnswer(err)
		}
	} else {
		var err error
		if c, err = gosmtp.Dial(g.addr); err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("gateway.provider.de-mail.example"); err != nil {
			t.Fatal(err)
		}
	}
	defer c.Close()
	if err := c.Mail("erika.mustermann@mustermann.de-mail.example", nil); err != nil {
		return smtpAnswer(err)
	}
	if err := c.Rcpt("poststelle@kreis.de-mail.example", nil); err != nil {
		return smtpAnswer(err)
	}
	w, err := c.Data()
	if err != nil {
		return smtpAnswer(err)
	}
	if _, err := w.Write(raw); err != nil {
		return smtpAnswer(err)
	}
	if _, err := w.CloseWithResponse(); err != nil {
		return smtpAnswer(err)
	}
	return channeltest.Answer{Accepted: true, Code: "250"}
}

func smtpAnswer(err error) channeltest.Answer {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return channeltest.Answer{Code: strconv.Itoa(se.Code)}
	}
	return channeltest.Answer{Code: "error: " + err.Error()}
}

// smtpDriver is the conformance suite's peer: the provider gateway
// delivering by SMTP with its client certificate.
type smtpDriver struct {
	g    *smtpGateway
	mu   sync.Mutex
	last []byte
}

func (d *smtpDriver) Start(t testing.TB, deps gateway.IntakeDeps, max int64) { d.g.start(t, deps, max) }

func (d *smtpDriver) Send(t testing.TB, raw []byte) channeltest.Answer {
	d.mu.Lock()
	d.last = raw
	d.mu.Unlock()
	return d.g.deliver(t, raw, &d.g.client, true)
}

func (d *smtpDriver) Retry(t testing.TB) channeltest.Answer {
	d.mu.Lock()
	raw := d.last
	d.mu.Unlock()
	return d.g.deliver(t, raw, &d.g.client, true)
}

// TestSMTPChannelConformance runs the channel contract's suite against the
// De-Mail inbound over SMTP from the provider gateway.
func TestSMTPChannelConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New: func(t testing.TB) channeltest.Driver {
			return &smtpDriver{g: newSMTPGateway(t, newCA(t, "Test De-Mail PKI"))}
		},
		Codes: channeltest.Codes{Accepted: "250", Temporary: "451", TooLarge: "552", Refused: "554"},
	})
}

// TestSMTPClientCertificate delivers a provider-signed De-Mail over SMTP
// with and without the provider's client certificate: only the provider
// gateway's delivery is taken in, recorded on channel demail with its
// evidence; every other session is refused before MAIL and records nothing.
func TestSMTPClientCertificate(t *testing.T) {
	w := newWorld(t)
	g := newSMTPGateway(t, w.ca)
	w.qualify(t, &g.config)
	var mu sync.Mutex
	var got []*gateway.MessageReceived
	rec := recordFunc(func(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
		if !strings.HasPrefix(key, "demail:") {
			t.Errorf("message key %q is not scoped to the demail channel", key)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		return gateway.Receipt{EventID: "ev-" + strconv.Itoa(len(got))}, nil
	})
	g.start(t, gateway.IntakeDeps{Intake: rec, Blobs: newBlobs(t), Logger: slog.New(slog.DiscardHandler)}, 0)
	good := stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
	foreign := newCA(t, "Fremde CA").tlsCert(t, "mta.example.org", x509.ExtKeyUsageClientAuth)
	serverOnly := w.ca.tlsCert(t, "gateway.provider.de-mail.example", x509.ExtKeyUsageServerAuth)

	for _, tc := range []struct {
		name     string
		client   *tls.Certificate
		starttls bool
		accepted bool
		code     string // the reply code when refused; "" for a failed handshake
	}{
		{"provider client certificate", &g.client, true, true, "250"},
		{"no STARTTLS", nil, false, false, "530"},
		{"no client certificate", nil, true, false, ""},
		{"client certificate from a foreign CA", &foreign, true, false, ""},
		{"provider certificate not for client auth", &serverOnly, true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			before := len(got)
			mu.Unlock()
			a := g.deliver(t, good, tc.client, tc.starttls)
			if a.Accepted != tc.accepted {
				t.Fatalf("answer %+v, accepted want %v", a, tc.accepted)
			}
			switch {
			case tc.code != "" && a.Code != tc.code:
				t.Errorf("answer %q, want %s", a.Code, tc.code)
			case tc.code == "" && !strings.HasPrefix(a.Code, "error: ") && !strings.HasPrefix(a.Code, "5"):
				t.Errorf("answer %q, want a failed handshake or a permanent refusal", a.Code)
			}
			mu.Lock()
			n := len(got)
			var m *gateway.MessageReceived
			if n > before {
				m = got[n-1]
			}
			mu.Unlock()
			if !tc.accepted {
				if m != nil {
					t.Fatalf("a refused session recorded %+v", m)
				}
				return
			}
			if m == nil || m.Channel != gateway.ChannelDeMail || m.DeMail == nil {
				t.Fatalf("receipt %+v", m)
			}
			if m.DeMail.Verdict != string(ProviderSigned) || !m.DeMail.WrittenForm || len(m.Problems) != 0 ||
				m.SenderMessageID != "4711@provider.de-mail.example" || len(m.Transport.Untrusted) != 0 {
				t.Errorf("evidence %+v, problems %q", m.DeMail, m.Problems)
			}
			if m.Transport.TLS == "" || len(m.Transport.Envelope["tlsClientCertSHA256"]) != 64 {
				t.Errorf("transport %+v lacks the TLS client certificate", m.Transport)
			}
		})
	}
}

func newBlobs(t testing.TB) *blob.Store {
	t.Helper()
	b, err := blob.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
