package smtpout

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/mail/mailcompose"
)

// sink is a go-smtp server that keeps what it receives.
type sink struct {
	mu       sync.Mutex
	mails    []sunk
	rcptErr  error
	authUser string
	authPass string
	addr     string
}

type sunk struct {
	from string
	to   []string
	data []byte
	tls  bool
	auth string
}

type sinkSession struct {
	s    *sink
	c    *gosmtp.Conn
	cur  sunk
	user string
}

func (ss *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != ss.s.authUser || pass != ss.s.authPass {
			return errors.New("bad credentials")
		}
		ss.user = user
		return nil
	}), nil
}
func (ss *sinkSession) Reset()        { ss.cur = sunk{} }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *gosmtp.MailOptions) error {
	if ss.s.authUser != "" && ss.user == "" {
		return &gosmtp.SMTPError{Code: 530, Message: "auth required"}
	}
	ss.cur.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if ss.s.rcptErr != nil {
		return ss.s.rcptErr
	}
	ss.cur.to = append(ss.cur.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.data = b
	_, ss.cur.tls = ss.c.TLSConnectionState()
	ss.cur.auth = ss.user
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

func startSink(t *testing.T, s *sink, tlsCfg *tls.Config) {
	t.Helper()
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &sinkSession{s: s, c: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = tlsCfg == nil
	srv.TLSConfig = tlsCfg
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func (s *sink) received() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.mails...)
}

func selfSigned(t *testing.T, dir string) (*tls.Config, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, ca
}

type fixture struct {
	blobs *blob.Store
	orig  *gateway.MessageReceived
	req   *gateway.ReplyRequested
}

const originalMail = "From: Erika Muster <buerger@example.org>\r\n" +
	"To: poststelle@stadt.example\r\n" +
	"Subject: =?utf-8?q?Antrag_auf_Anh=C3=B6rung?=\r\n" +
	"Message-ID: <antrag-1@example.org>\r\n" +
	"References: <root@example.org>\r\n  <mid@example.org>\r\n" +
	"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n" +
	"\r\n" +
	"Sehr geehrte Damen und Herren,\r\n"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	bs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := bs.PutBytes(ctx, []byte(originalMail))
	body, _ := bs.PutBytes(ctx, []byte("Sehr geehrte Frau Muster,\nIhr Antrag ist eingegangen. Grüße\n"))
	pdf, _ := bs.PutBytes(ctx, bytes.Repeat([]byte("%PDF-1.7 bescheid "), 200))
	return &fixture{blobs: bs,
		orig: &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: "<antrag-1@example.org>",
			From: gateway.Address{Address: "buerger@example.org", Name: "Erika Muster"}, Subject: "Antrag auf Anhörung", Raw: raw},
		req: &gateway.ReplyRequested{ReplyID: "r-1", Office: "bauamt", Author: "sb1", Channel: gateway.ChannelSMTP,
			To: gateway.Address{Address: "buerger@example.org", Name: "Erika Muster"}, Body: body,
			Attachments: []gateway.Part{{Path: "1", MediaType: "application/pdf", Filename: "Bescheid Müller.pdf", Blob: pdf}}},
	}
}

func (f *fixture) outbound(t *testing.T, relay RelayConfig) *Outbound {
	t.Helper()
	o, err := New(Config{From: "Stadt Musterstadt – Poststelle <poststelle@stadt.example>", Hostname: "gw.stadt.example", Relay: relay},
		Deps{Blobs: f.blobs, Now: func() time.Time { return time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func relayOf(s *sink) RelayConfig {
	host, port, _ := net.SplitHostPort(s.addr)
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	return RelayConfig{Host: host, Port: p, TLS: TLSNone, Timeout: 5 * time.Second}
}

func TestSendThreadsAndEncodes(t *testing.T) {
	f := newFixture(t)
	s := &sink{}
	startSink(t, s, nil)
	o := f.outbound(t, relayOf(s))
	info, err := o.Send(context.Background(), f.req, f.orig)
	if err != nil {
		t.Fatal(err)
	}
	if info.ChannelMessageID != mailcompose.ReplyMessageID("r-1", "stadt.example") || !strings.HasPrefix(info.Response, "250") {
		t.Fatalf("sent info %+v", info)
	}
	got := s.received()
	if len(got) != 1 || got[0].from != "poststelle@stadt.example" || len(got[0].to) != 1 || got[0].to[0] != "buerger@example.org" {
		t.Fatalf("envelope %+v", got)
	}
	// The bytes the relay accepted are kept, for ReplySent.Sent.
	if kept, err := f.blobs.ReadAll(context.Background(), info.Sent, 1<<20); err != nil || !bytes.Equal(kept, got[0].data) {
		t.Fatalf("kept %v bytes (%v), the relay received %d", info.Sent, err, len(got[0].data))
	}
	m, err := mail.ReadMessage(bytes.NewReader(got[0].data))
	if err != nil {
		t.Fatal(err)
	}
	h := m.Header
	checks := map[string]string{
		"In-Reply-To": "<antrag-1@example.org>",
		"References":  "<root@example.org> <mid@example.org> <antrag-1@example.org>",
		"Message-Id":  info.ChannelMessageID,
		"Date":        "Tue, 03 Mar 2026 12:00:00 +0000",
	}
	for k, want := range checks {
		if v := h.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	dec := new(mime.WordDecoder)
	if subj, _ := dec.DecodeHeader(h.Get("Subject")); subj != "Re: Antrag auf Anhörung" {
		t.Errorf("subject %q", subj)
	}
	from, err := h.AddressList("From")
	if err != nil || from[0].Name != "Stadt Musterstadt – Poststelle" {
		t.Errorf("from %v %v", from, err)
	}
	mt, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "multipart/mixed" {
		t.Fatalf("content type %q", mt)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	text, _ := mr.NextPart()
	tb, _ := io.ReadAll(text)
	if !strings.Contains(string(tb), "Grüße\r\n") {
		t.Errorf("text part %q", tb)
	}
	att, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := io.ReadAll(base64.NewDecoder(base64.StdEncoding, att))
	if att.FileName() != "Bescheid Müller.pdf" || !bytes.HasPrefix(ab, []byte("%PDF-1.7")) || len(ab) != 18*200 {
		t.Errorf("attachment %q, %d bytes", att.FileName(), len(ab))
	}
	// A resend renders the same Message-ID.
	again, _ := o.Send(context.Background(), f.req, f.orig)
	if again.ChannelMessageID != info.ChannelMessageID {
		t.Fatal("Message-ID differs between sends")
	}
}

func TestHeaderInjectionRefused(t *testing.T) {
	f := newFixture(t)
	o := f.outbound(t, RelayConfig{Host: "127.0.0.1", Port: 1, TLS: TLSNone})
	ctx := context.Background()
	for name, mod := range map[string]func(r *gateway.ReplyRequested){
		"subject CRLF":  func(r *gateway.ReplyRequested) { r.Subject = "Hallo\r\nBcc: evil@example.net" },
		"subject LF":    func(r *gateway.ReplyRequested) { r.Subject = "Hallo\nBcc: evil@example.net" },
		"to CRLF":       func(r *gateway.ReplyRequested) { r.To.Address = "a@example.org\r\nBcc: evil@example.net" },
		"to two":        func(r *gateway.ReplyRequested) { r.To.Address = "a@example.org, evil@example.net" },
		"to name CRLF":  func(r *gateway.ReplyRequested) { r.To.Name = "X\r\nBcc: evil@example.net" },
		"filename CRLF": func(r *gateway.ReplyRequested) { r.Attachments[0].Filename = "a.pdf\r\nBcc: evil@example.net" },
		"filename path": func(r *gateway.ReplyRequested) { r.Attachments[0].Filename = "../../etc/passwd" },
		"subject NUL":   func(r *gateway.ReplyRequested) { r.Subject = "a\x00b" },
	} {
		t.Run(name, func(t *testing.T) {
			r := *f.req
			r.Attachments = append([]gateway.Part(nil), f.req.Attachments...)
			mod(&r)
			_, err := o.Send(ctx, &r, f.orig)
			if err == nil || !replies.IsPermanent(err) {
				t.Fatalf("err = %v, want a permanent refusal", err)
			}
		})
	}
}

func TestErrorClassification(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name      string
		rcptErr   error
		permanent bool
	}{
		{"550 refused recipient", &gosmtp.SMTPError{Code: 550, Message: "no such user"}, true},
		{"451 greylisted", &gosmtp.SMTPError{Code: 451, Message: "try later"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &sink{rcptErr: tt.rcptErr}
			startSink(t, s, nil)
			_, err := f.outbound(t, relayOf(s)).Send(ctx, f.req, f.orig)
			if err == nil || replies.IsPermanent(err) != tt.permanent {
				t.Fatalf("err = %v, permanent %v", err, replies.IsPermanent(err))
			}
		})
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	relay := relayOf(&sink{addr: addr})
	if _, err := f.outbound(t, relay).Send(ctx, f.req, f.orig); err == nil || replies.IsPermanent(err) {
		t.Fatalf("connection refused: %v", err)
	}
}

func TestStartTLSAndAuth(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	tlsCfg, ca := selfSigned(t, dir)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("geheim\n"), 0o600)

	s := &sink{authUser: "gw", authPass: "geheim"}
	startSink(t, s, tlsCfg)
	relay := relayOf(s)
	relay.TLS, relay.CAFile, relay.Username, relay.PasswordFile = TLSStartTLS, ca, "gw", pwFile
	if _, err := f.outbound(t, relay).Send(context.Background(), f.req, f.orig); err != nil {
		t.Fatal(err)
	}
	got := s.received()
	if len(got) != 1 || !got[0].tls || got[0].auth != "gw" {
		t.Fatalf("received %+v", got)
	}

	// STARTTLS required but not offered: a temporary failure, never plain text.
	plain := &sink{}
	startSink(t, plain, nil)
	relay = relayOf(plain)
	relay.TLS = TLSStartTLS
	if _, err := f.outbound(t, relay).Send(context.Background(), f.req, f.orig); err == nil || replies.IsPermanent(err) {
		t.Fatalf("err = %v", err)
	}
	if len(plain.received()) != 0 {
		t.Fatal("sent without the required TLS")
	}
	// Opportunistic falls back to plain text when STARTTLS is not offered.
	relay.TLS = TLSOpportunistic
	if _, err := f.outbound(t, relay).Send(context.Background(), f.req, f.orig); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	bs, _ := blob.Open(t.TempDir())
	for name, cfg := range map[string]Config{
		"no from":          {Relay: RelayConfig{Host: "127.0.0.1"}},
		"from CRLF":        {From: "a@b.example\r\nBcc: x@y", Relay: RelayConfig{Host: "127.0.0.1"}},
		"no relay":         {From: "a@b.example"},
		"plain non-local":  {From: "a@b.example", Relay: RelayConfig{Host: "relay.example", TLS: TLSNone}},
		"bad tls":          {From: "a@b.example", Relay: RelayConfig{Host: "relay.example", TLS: "maybe"}},
		"user no password": {From: "a@b.example", Relay: RelayConfig{Host: "relay.example", Username: "u"}},
	} {
		if _, err := New(cfg, Deps{Blobs: bs}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestThreadingFallbacks(t *testing.T) {
	f := newFixture(t)
	o := f.outbound(t, RelayConfig{Host: "127.0.0.1", TLS: TLSNone})
	ctx := context.Background()
	// An IMAP-collected message: the Message-ID is the sender's, the mailbox
	// coordinates are never taken for one.
	imapOrig := &gateway.MessageReceived{Channel: gateway.ChannelIMAP, SenderMessageID: "<x@example.org>",
		Transport: gateway.TransportEvidence{Coordinates: "box/1/7"}}
	th := o.threadingOf(ctx, f.req, imapOrig)
	if th.InReplyTo != "<x@example.org>" || len(th.References) != 1 {
		t.Fatalf("imap threading %+v", th)
	}
	// Hostile ids are dropped, never copied.
	bad := &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: "<a\r\nBcc: x@y>"}
	if th := o.threadingOf(ctx, &gateway.ReplyRequested{}, bad); th.InReplyTo != "" || len(th.References) != 0 {
		t.Fatalf("hostile threading %+v", th)
	}
}

func FuzzRenderHeaders(f *testing.F) {
	f.Add("Antrag", "Erika", "a.pdf", "<x@y> <z@w>")
	f.Add("Re: \r\nBcc: x@y", "X\nY", "a\r\n.pdf", "<a\r\n@b>")
	f.Add("Ärger über Öffnungszeiten und sehr lange Betreffzeilen, die umbrochen werden müssen, damit nichts kaputt geht", "Ä", "ü.pdf", "")
	bs, _ := blob.Open(f.TempDir())
	ctx := context.Background()
	body, _ := bs.PutBytes(ctx, []byte("text"))
	att, _ := bs.PutBytes(ctx, []byte("data"))
	o, err := New(Config{From: "poststelle@stadt.example", Relay: RelayConfig{Host: "127.0.0.1", TLS: TLSNone}}, Deps{Blobs: bs})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, subject, name, filename, refs string) {
		req := &gateway.ReplyRequested{ReplyID: "r", Subject: subject, To: gateway.Address{Address: "a@example.org", Name: name}, Body: body,
			Attachments: []gateway.Part{{Path: "1", MediaType: "application/pdf", Filename: filename, Blob: att}}}
		orig := &gateway.MessageReceived{Channel: gateway.ChannelSMTP, SenderMessageID: refs}
		raw, err := o.Render(ctx, req, orig)
		if err != nil {
			return
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("rendered message does not parse: %v\n%q", err, raw)
		}
		for k := range m.Header {
			switch k {
			case "From", "To", "Subject", "Date", "Message-Id", "In-Reply-To", "References", "Mime-Version", "Content-Type":
			default:
				t.Fatalf("unexpected header %q in %q", k, raw)
			}
		}
		if to, err := m.Header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "a@example.org" {
			t.Fatalf("recipients %v %v", to, err)
		}
	})
}
