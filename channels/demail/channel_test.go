package demail

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/imap"
	"github.com/poststelle/poststelle/channels/imap/imaptest"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

const providerName = "provider.de-mail.example"

// caFile writes ca's certificate as PEM, the way the operator configures
// a provider.
func caFile(t testing.TB, ca *testCA) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "provider-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.x.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// testConfig is a demail: section for the in-memory gateway mailbox at port.
func testConfig(ca string, port int, max int64) Config {
	return Config{MaxMessageBytes: max,
		Providers: []ProviderConfig{{Name: providerName, CAFile: ca}},
		Mailboxes: []imap.MailboxConfig{{Name: "gateway", Host: "127.0.0.1", Port: port, TLS: imap.TLSNone,
			Folder: imaptest.Folder, Username: "poststelle", PasswordEnv: imaptest.PasswordEnv,
			PollInterval: 50 * time.Millisecond}}}
}

// TestChannelConformance runs the channel contract's suite against the
// De-Mail inbound over the provider gateway's (in-memory) mailbox.
func TestChannelConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New: func(t testing.TB) channeltest.Driver {
			ca := caFile(t, newCA(t, "Test De-Mail PKI"))
			return &imaptest.Driver{Build: func(port int, max int64, deps gateway.IntakeDeps) (gateway.Inbound, error) {
				return New(testConfig(ca, port, max), deps)
			}}
		},
		Codes: channeltest.Codes{Accepted: "done", Temporary: "retry", TooLarge: "left: too large", Refused: "left: refused"},
	})
}

// intake runs the De-Mail inbound against an in-memory gateway mailbox
// and returns a function that delivers one message and waits for its
// receipt.
func intake(t *testing.T, ca string, configure ...func(*Config)) func(raw []byte) *gateway.MessageReceived {
	t.Helper()
	peer := imaptest.StartMemPeer(t, true)
	if err := peer.Create(imaptest.Folder, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *gateway.MessageReceived, 1)
	rec := recordFunc(func(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
		if !strings.HasPrefix(key, "demail:") {
			t.Errorf("message key %q is not scoped to the demail channel", key)
		}
		r, err := (&gateway.Intake{Log: l}).Record(ctx, tenant, key, m)
		if err == nil {
			got <- m
		}
		return r, err
	})
	os.Setenv(imaptest.PasswordEnv, "secret")
	cfg := testConfig(ca, peer.Port, 0)
	for _, f := range configure {
		f(&cfg)
	}
	w, err := New(cfg, gateway.IntakeDeps{Intake: rec, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { w.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped; l.Close() })
	return func(raw []byte) *gateway.MessageReceived {
		if err := peer.Append(imaptest.Folder, raw); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			return m
		case <-time.After(20 * time.Second):
			t.Fatal("no receipt in time")
			return nil
		}
	}
}

type recordFunc func(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error)

func (f recordFunc) Record(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
	return f(ctx, tenant, key, m)
}

// TestIntakeEvidence takes messages in through the channel and checks what
// the receipt says: only an absenderbestätigt message with the configured
// provider's signature satisfies the written form; every other is
// recorded, flagged and never trusted.
func TestIntakeEvidence(t *testing.T) {
	w := newWorld(t)
	deliver := intake(t, caFile(t, w.ca), func(c *Config) { w.qualify(t, c) })
	signed := func(authoritative string, certDER []byte) []byte {
		return stamp{fields: normalFields(authoritative), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: certDER}.message(t)
	}
	good := signed("yes", w.ecCert)
	// A body past the header window makes the channel read the whole
	// message for the body hash.
	large := stamp{fields: normalFields("yes"), body: body + strings.Repeat("Anlage\r\n", headerWindow/8+1), alg: "sha256/ec-dsa",
		key: w.ecKey, cert: w.ecCert}.message(t)
	for _, tc := range []struct {
		name        string
		raw         []byte
		verdict     Verdict
		writtenForm bool
		problem     string // a problem the receipt must list; "" for none at all
	}{
		{"absenderbestätigt, provider-signed", good, ProviderSigned, true, ""},
		{"large, provider-signed", large, ProviderSigned, true, ""},
		{"large, body tampered past the header window", append(large[:len(large)-4:len(large)-4], "xx\r\n"...), Broken, false,
			"demail: integrity broken"},
		{"provider-signed, not absenderbestätigt", signed("no", w.ecCert), ProviderSigned, false, ""},
		{"tampered body", replace(good, "anbei mein Antrag", "anbei mein Widerspruch"), Broken, false, "demail: integrity broken"},
		{"tampered protected header", replace(good, "Subject: Antrag auf Baugenehmigung", "Subject: Antrag auf Abriss"),
			Broken, false, "demail: integrity broken"},
		{"foreign CA", signed("yes", w.foreign), Untrusted, false, "demail: integrity untrusted"},
		{"expired certificate", signed("yes", w.expired), Expired, false, "demail: integrity certificate-expired"},
		{"no integrity at all", []byte("From: a@example.org\r\nSubject: x\r\nX-de-mail-authoritative: yes\r\n\r\nbody\r\n"),
			Missing, false, "demail: integrity missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := deliver(tc.raw)
			if m.Channel != gateway.ChannelDeMail || m.DeMail == nil {
				t.Fatalf("channel %q, evidence %v", m.Channel, m.DeMail)
			}
			if m.DeMail.Verdict != string(tc.verdict) || m.DeMail.WrittenForm != tc.writtenForm {
				t.Fatalf("verdict %q written form %v (%s), want %q %v", m.DeMail.Verdict, m.DeMail.WrittenForm,
					m.DeMail.VerdictDetail, tc.verdict, tc.writtenForm)
			}
			if tc.problem == "" && len(m.Problems) != 0 {
				t.Errorf("problems %q, want none", m.Problems)
			}
			if tc.problem != "" && !hasPrefix(m.Problems, tc.problem) {
				t.Errorf("problems %q lack %q", m.Problems, tc.problem)
			}
			if tc.verdict == ProviderSigned {
				if m.SenderMessageID != "4711@provider.de-mail.example" || m.DeMail.Sender != "erika.mustermann@mustermann.de-mail.example" ||
					m.DeMail.PrivateID != "Az-63-2026-117" || len(m.DeMail.ProviderCertificate) != 64 || len(m.Transport.Untrusted) != 0 {
					t.Errorf("receipt %+v, evidence %+v", m, m.DeMail)
				}
			} else if len(m.Transport.Untrusted) == 0 {
				t.Error("the provider fields of an unverified message left transport.untrusted")
			}
		})
	}
}

func hasPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func TestConfigValidate(t *testing.T) {
	box := imap.MailboxConfig{Host: "gateway.provider.example", Username: "u", PasswordEnv: "P",
		CertFile: "c.pem", KeyFile: "k.pem"}
	prov := ProviderConfig{Name: providerName, CAFile: "ca.pem"}
	smtpSection := SMTPConfig{Listen: "127.0.0.1:2526", CertFile: "c.pem", KeyFile: "k.pem"}
	for _, tc := range []struct {
		name string
		c    Config
		want string
	}{
		{"empty section", Config{}, ""},
		{"complete", Config{Providers: []ProviderConfig{prov}, Mailboxes: []imap.MailboxConfig{box}}, ""},
		{"mailbox without provider", Config{Mailboxes: []imap.MailboxConfig{box}}, "providers:"},
		{"provider without name", Config{Providers: []ProviderConfig{{CAFile: "ca.pem"}}}, "providers[0].name: required"},
		{"provider name not a domain", Config{Providers: []ProviderConfig{{Name: "provider", CAFile: "ca.pem"}}}, "providers[0].name:"},
		{"provider without CA", Config{Providers: []ProviderConfig{{Name: providerName}}}, "providers[0].ca_file: required"},
		{"bad pin", Config{Providers: []ProviderConfig{{Name: providerName, CAFile: "ca.pem", PinnedSHA256: []string{"abcd"}}}},
			"providers[0].pinned_sha256[0]:"},
		{"good pin with colons", Config{Providers: []ProviderConfig{{Name: providerName, CAFile: "ca.pem",
			PinnedSHA256: []string{strings.Repeat("ab:", 31) + "ab"}}}}, ""},
		{"mailbox without client certificate", Config{Providers: []ProviderConfig{prov},
			Mailboxes: []imap.MailboxConfig{{Host: "gw.example", Username: "u", PasswordEnv: "P"}}}, "mailboxes[0].cert_file: required"},
		{"mailbox without host", Config{Providers: []ProviderConfig{prov}, Mailboxes: []imap.MailboxConfig{{CertFile: "c", KeyFile: "k"}}},
			"mailboxes[0].host: required"},
		{"negative size", Config{MaxMessageBytes: -1}, "max_message_bytes:"},
		{"smtp complete", Config{Providers: []ProviderConfig{prov}, SMTP: &smtpSection}, ""},
		{"smtp without provider", Config{SMTP: &smtpSection}, "providers:"},
		{"smtp without listen", Config{Providers: []ProviderConfig{prov}, SMTP: &SMTPConfig{CertFile: "c", KeyFile: "k"}},
			"smtp.listen: required"},
		{"smtp listen not host:port", Config{Providers: []ProviderConfig{prov},
			SMTP: &SMTPConfig{Listen: "127.0.0.1", CertFile: "c", KeyFile: "k"}}, "smtp.listen:"},
		{"smtp without certificate", Config{Providers: []ProviderConfig{prov}, SMTP: &SMTPConfig{Listen: ":25", KeyFile: "k"}},
			"smtp.cert_file: required"},
		{"smtp without key", Config{Providers: []ProviderConfig{prov}, SMTP: &SMTPConfig{Listen: ":25", CertFile: "c"}},
			"smtp.key_file: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

// TestLoadTrustErrors names the field whose file is wrong.
func TestLoadTrustErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o600)
	for _, tc := range []struct {
		name string
		p    ProviderConfig
		want string
	}{
		{"missing CA file", ProviderConfig{Name: providerName, CAFile: filepath.Join(dir, "none.pem")}, "providers[0].ca_file:"},
		{"junk CA file", ProviderConfig{Name: providerName, CAFile: junk}, "providers[0].ca_file:"},
		{"junk intermediates", ProviderConfig{Name: providerName, CAFile: caFile(t, newCA(t, "ca")), IntermediatesFile: junk},
			"providers[0].intermediates_file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Providers: []ProviderConfig{tc.p}}
			if _, err := c.LoadTrust(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want prefix %q", err, tc.want)
			}
		})
	}
}
