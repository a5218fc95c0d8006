//go:build integration

package demail

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/channels/demail/demailtest"
)

// provider is the Go half of the stand-in De-Mail provider: it stamps
// messages with the provider's signature certificate from the openssl
// PKI that peer.sh made, delivers them into the gateway's mailbox
// (Dovecot) by IMAP APPEND with our client certificate, and builds the
// confirmations.
type provider struct {
	pki        string
	key        crypto.Signer // provider-sign.key
	cert       []byte        // provider-sign.pem, DER
	foreignKey crypto.Signer
	foreignDER []byte
	client     tls.Certificate // the authority's client certificate at the gateway
	stranger   tls.Certificate // a client certificate of another CA
	roots      *x509.CertPool  // the provider CA, which issued the gateway's server certificate
	ca         *x509.Certificate
}

func newProvider(t testing.TB) *provider {
	t.Helper()
	p := &provider{pki: filepath.Join(env(t, envDir), "pki")}
	p.key, p.cert = p.signer(t, "provider-sign")
	p.foreignKey, p.foreignDER = p.signer(t, "foreign-sign")
	var err error
	if p.client, err = tls.LoadX509KeyPair(p.file("client.pem"), p.file("client.key")); err != nil {
		t.Fatal(err)
	}
	if p.stranger, err = tls.LoadX509KeyPair(p.file("stranger.pem"), p.file("stranger.key")); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(p.file("provider-ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(ca)
	if block == nil {
		t.Fatal("provider-ca.pem holds no PEM block")
	}
	if p.ca, err = x509.ParseCertificate(block.Bytes); err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.ca)
	return p
}

func (p *provider) file(name string) string { return filepath.Join(p.pki, name) }

// signer loads a signature certificate and its key made by openssl.
func (p *provider) signer(t testing.TB, name string) (crypto.Signer, []byte) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(p.file(name+".pem"), p.file(name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return pair.PrivateKey.(crypto.Signer), pair.Certificate[0]
}

// stamp protects a message as the provider does before delivery, with its
// own signature certificate or, foreign, with the other CA's.
func (p *provider) stamp(t testing.TB, fields [][2]string, body string, foreign bool) []byte {
	t.Helper()
	s := demailtest.Stamp{Fields: fields, Body: body, Alg: "sha256/rsa", Key: p.key, Cert: p.cert}
	if foreign {
		s.Key, s.Cert = p.foreignKey, p.foreignDER
	}
	msg, err := s.Message()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// confirmation is the provider's signed confirmation about msg, stamped.
func (p *provider) confirmation(c demailtest.Confirmation) ([]byte, error) {
	fields, err := c.Fields()
	if err != nil {
		return nil, err
	}
	doc, err := c.XML()
	if err != nil {
		return nil, err
	}
	if doc, err = demailtest.SignXML(doc, p.key, p.cert); err != nil {
		return nil, err
	}
	return demailtest.Stamp{Fields: fields, Body: demailtest.Body(doc), Alg: "sha256/rsa", Key: p.key, Cert: p.cert}.Message()
}

// dial opens the gateway mailbox over implicit TLS with cert as the
// client certificate (none when nil) and logs in as u.
func (p *provider) dial(u mailbox, cert *tls.Certificate) (*imapclient.Client, error) {
	cfg := &tls.Config{RootCAs: p.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := imapclient.DialTLS(imapsAddr(), &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		return nil, fmt.Errorf("dial the gateway mailbox: %w", err)
	}
	if err := c.Login(u.user, u.password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login as %s: %w", u.user, err)
	}
	return c, nil
}

// deliver appends msg to u's INBOX, as the provider's delivery does.
func (p *provider) deliver(u mailbox, msg []byte) error {
	c, err := p.dial(u, &p.client)
	if err != nil {
		return err
	}
	defer c.Close()
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return c.Logout().Wait()
}

func (p *provider) mustDeliver(t testing.TB, u mailbox, msg []byte) {
	t.Helper()
	if err := p.deliver(u, msg); err != nil {
		t.Fatal(err)
	}
}

// inbox counts the messages in u's INBOX.
func (p *provider) inbox(t testing.TB, u mailbox) int {
	t.Helper()
	c, err := p.dial(u, &p.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sel, err := c.Select("INBOX", &goimap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return int(sel.NumMessages)
}

// submission is one message the sink received, with what TLS said.
type submission struct {
	from    string
	rcpt    []string
	data    []byte
	peer    []*x509.Certificate
	tlsVers uint16
	// release answers the end of data: nil is 250, an error its refusal.
	release chan error
}

// sink is the provider gateway's SMTP submission endpoint: STARTTLS with
// the gateway's server certificate, and only clients with a certificate
// of the provider's CA. Each message is handed to the test, which decides
// when and how the sink answers.
type sink struct {
	addr string
	got  chan *submission
	srv  *gosmtp.Server
}

func startSink(t testing.TB, p *provider) *sink {
	t.Helper()
	gw, err := tls.LoadX509KeyPair(p.file("gateway.pem"), p.file("gateway.key"))
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{got: make(chan *submission, 4)}
	s.srv = gosmtp.NewServer(sinkBackend{s})
	s.srv.Domain = "submit.provider.de-mail.example"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 30*time.Second, 30*time.Second
	s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{gw}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: p.roots, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() { s.srv.Serve(ln) })
	t.Cleanup(func() { s.srv.Close(); wg.Wait() })
	return s
}

type sinkBackend struct{ s *sink }

func (b sinkBackend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return &sinkSession{s: b.s, conn: c}, nil
}

type sinkSession struct {
	s    *sink
	conn *gosmtp.Conn
	sub  *submission
}

// Mail admits only a TLS session with a verified client certificate (RFC
// 3207 section 4.1): the gateway knows the account by it.
func (ss *sinkSession) Mail(from string, _ *gosmtp.MailOptions) error {
	st, ok := ss.conn.TLSConnectionState()
	if !ok {
		return &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "STARTTLS first"}
	}
	if len(st.VerifiedChains) == 0 {
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "client certificate required"}
	}
	ss.sub = &submission{from: from, peer: st.PeerCertificates, tlsVers: st.Version, release: make(chan error, 1)}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if ss.sub == nil {
		return errors.New("RCPT before MAIL")
	}
	ss.sub.rcpt = append(ss.sub.rcpt, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 32<<20))
	if err != nil {
		return err
	}
	ss.sub.data = b
	ss.s.got <- ss.sub
	select {
	case err := <-ss.sub.release:
		return err
	case <-time.After(60 * time.Second):
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "the test never answered"}
	}
}

func (ss *sinkSession) Reset()        { ss.sub = nil }
func (ss *sinkSession) Logout() error { return nil }

// next waits for the next submission.
func (s *sink) next(t testing.TB) *submission {
	t.Helper()
	select {
	case sub := <-s.got:
		return sub
	case <-time.After(60 * time.Second):
		t.Fatal("the provider gateway received no submission within 60 s")
		return nil
	}
}

// bodyOf is msg after its header section.
func bodyOf(msg []byte) string {
	_, b, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	return string(b)
}

// deliverSMTP delivers msg to the authority's demail.smtp receiver as the
// provider gateway does when it delivers by SMTP: STARTTLS, verifying our
// server certificate (the authority's own CA), with cert as its client
// certificate (none when nil).
func (p *provider) deliverSMTP(t testing.TB, addr string, cert *tls.Certificate, to string, msg []byte) error {
	t.Helper()
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(p.file("kreis-ca.pem"))
	if err != nil || !roots.AppendCertsFromPEM(ca) {
		t.Fatalf("kreis CA: %v", err)
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := gosmtp.DialStartTLS(addr, cfg)
	if err != nil {
		return fmt.Errorf("STARTTLS: %w", err)
	}
	defer c.Close()
	if err := c.Mail("versand@"+demailtest.ProviderName, nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return c.Quit()
}
