package demail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/channels/smtpout"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// submitSink is a provider gateway's submission endpoint: STARTTLS with
// a client certificate from our CA required, recording what it accepts
// and refusing recipients with rcptCode when set.
type submitSink struct {
	mu       sync.Mutex
	rcptCode int
	got      [][]byte
	peers    []string
	addr     string
}

type submitSession struct {
	s    *submitSink
	conn *gosmtp.Conn
}

func (ss *submitSession) Reset()        {}
func (ss *submitSession) Logout() error { return nil }
func (ss *submitSession) Mail(string, *gosmtp.MailOptions) error {
	st, ok := ss.conn.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		return &gosmtp.SMTPError{Code: 530, Message: "client certificate required"}
	}
	ss.s.mu.Lock()
	ss.s.peers = append(ss.s.peers, st.PeerCertificates[0].Subject.CommonName)
	ss.s.mu.Unlock()
	return nil
}
func (ss *submitSession) Rcpt(string, *gosmtp.RcptOptions) error {
	if ss.s.rcptCode != 0 {
		return &gosmtp.SMTPError{Code: ss.s.rcptCode, Message: "refused"}
	}
	return nil
}
func (ss *submitSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.got = append(ss.s.got, b)
	ss.s.mu.Unlock()
	return nil
}

// writePair writes c as PEM certificate and key files in dir.
func writePair(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// startSubmitSink runs the sink and returns the gateway section that
// reaches it with a client certificate from the CA the sink requires.
func startSubmitSink(t *testing.T, s *submitSink) smtpout.RelayConfig {
	t.Helper()
	gwCA, ourCA := newCA(t, "Provider Server-CA"), newCA(t, "Kreis Client-CA")
	pool := x509.NewCertPool()
	pool.AddCert(ourCA.x)
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &submitSession{s: s, conn: c}, nil
	}))
	srv.Domain = "gateway.provider.example"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{gwCA.tlsCert(t, "gateway.provider.example", x509.ExtKeyUsageServerAuth)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	s.addr = l.Addr().String()
	certFile, keyFile := writePair(t, t.TempDir(), "client", ourCA.tlsCert(t, "poststelle.kreis.example", x509.ExtKeyUsageClientAuth))
	host, port, _ := net.SplitHostPort(s.addr)
	p, _ := strconv.Atoi(port)
	return smtpout.RelayConfig{Host: host, Port: p, CAFile: caFile(t, gwCA), CertFile: certFile, KeyFile: keyFile, Timeout: 5 * time.Second}
}

func answerFixture(t *testing.T) (*gateway.ReplyRequested, *gateway.MessageReceived, smtpout.Blobs) {
	t.Helper()
	bs := newBlobs(t)
	ctx := context.Background()
	raw, _ := bs.PutBytes(ctx, []byte("From: b@x.de-mail.example\r\nSubject: Antrag\r\nMessage-ID: <m1@x.de-mail.example>\r\n\r\nText\r\n"))
	body, _ := bs.PutBytes(ctx, []byte("Ihr Antrag ist eingegangen.\n"))
	orig := &gateway.MessageReceived{Channel: gateway.ChannelDeMail, SenderMessageID: "<m1@x.de-mail.example>",
		From: gateway.Address{Address: "b@x.de-mail.example"}, Subject: "Antrag", Raw: raw,
		DeMail: &gateway.DeMailEvidence{ConfirmReceipt: true, Authoritative: true, Verdict: "provider-signed"}}
	req := &gateway.ReplyRequested{ReplyID: "rpl-7f3a", Office: "bauamt", Channel: gateway.ChannelDeMail,
		To: orig.From, Body: body}
	return req, orig, bs
}

func TestOutboundSubmitsWithClientCertificate(t *testing.T) {
	sink := &submitSink{}
	gw := startSubmitSink(t, sink)
	req, orig, bs := answerFixture(t)
	yes := true
	out, err := NewOutbound(&OutboundConfig{From: "Kreis <poststelle@kreis.de-mail.example>", Hostname: "poststelle.kreis.example",
		Gateway: gw, Options: SubmitOptions{ConfirmDispatch: &yes}}, OutboundDeps{Blobs: bs})
	if err != nil {
		t.Fatal(err)
	}
	info, err := out.Send(context.Background(), req, orig)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !strings.HasPrefix(info.Response, "250") || info.ChannelMessageID == "" {
		t.Errorf("sent info %+v, want a 250 and a Message-ID", info)
	}
	if len(sink.got) != 1 || len(sink.peers) != 1 || sink.peers[0] != "poststelle.kreis.example" {
		t.Fatalf("sink got %d messages from %v, want one from our certificate", len(sink.got), sink.peers)
	}
	msg := string(sink.got[0])
	for _, want := range []string{
		"X-de-mail-confirmation-of-dispatch: yes\r\n", // configured
		"X-de-mail-confirmation-of-receipt: yes\r\n",  // as the sender chose
		"X-de-mail-confirmation-of-retrieve: no\r\n",
		"X-de-mail-authoritative: yes\r\n",
		"X-de-mail-private: no\r\n",
		"X-de-mail-private-id: rpl-7f3a\r\n",
		"In-Reply-To: <m1@x.de-mail.example>\r\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("submitted message lacks %q:\n%s", want, msg)
		}
	}
}

func TestOutboundRefusals(t *testing.T) {
	for _, tt := range []struct {
		code      int
		permanent bool
	}{{550, true}, {451, false}} {
		sink := &submitSink{rcptCode: tt.code}
		gw := startSubmitSink(t, sink)
		req, orig, bs := answerFixture(t)
		out, err := NewOutbound(&OutboundConfig{From: "poststelle@kreis.de-mail.example", Gateway: gw}, OutboundDeps{Blobs: bs})
		if err != nil {
			t.Fatal(err)
		}
		_, err = out.Send(context.Background(), req, orig)
		if err == nil || replies.IsPermanent(err) != tt.permanent {
			t.Errorf("%d: err = %v, want permanent %v", tt.code, err, tt.permanent)
		}
	}
	// Without our client certificate the gateway ends the handshake.
	sink := &submitSink{}
	gw := startSubmitSink(t, sink)
	gw.CertFile, gw.KeyFile = "", ""
	req, orig, bs := answerFixture(t)
	o, err := smtpout.New(smtpout.Config{From: "poststelle@kreis.de-mail.example", Relay: gw}, smtpout.Deps{Blobs: bs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Send(context.Background(), req, orig); err == nil || len(sink.got) != 0 {
		t.Errorf("without a client certificate: err = %v, %d accepted", err, len(sink.got))
	}
}

func TestOutboundConfigErrors(t *testing.T) {
	gw := smtpout.RelayConfig{Host: "gw.example", CertFile: "c.pem", KeyFile: "k.pem"}
	for _, tt := range []struct {
		edit func(*OutboundConfig)
		want string
	}{
		{func(c *OutboundConfig) { c.From = "" }, "outbound.from: required"},
		{func(c *OutboundConfig) { c.From = "not an address" }, "outbound.from:"},
		{func(c *OutboundConfig) { c.Gateway.Host = "" }, "outbound.gateway.host: required"},
		{func(c *OutboundConfig) { c.Gateway.TLS = smtpout.TLSNone }, "outbound.gateway.tls:"},
		{func(c *OutboundConfig) { c.Gateway.CertFile = "" }, "outbound.gateway.cert_file: required"},
		{func(c *OutboundConfig) { c.Gateway.KeyFile = "" }, "outbound.gateway.key_file: required"},
		{func(c *OutboundConfig) { c.MaxMessageBytes = -1 }, "outbound.max_message_bytes:"},
	} {
		c := OutboundConfig{From: "poststelle@kreis.de-mail.example", Gateway: gw}
		tt.edit(&c)
		err := (&Config{Outbound: &c}).Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
	if err := (&Config{Outbound: &OutboundConfig{From: "poststelle@kreis.de-mail.example", Gateway: gw}}).Validate(); err != nil {
		t.Errorf("valid outbound: %v", err)
	}
}
