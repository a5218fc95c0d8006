// Package smtpout answers e-mail: it renders an office's reply as an RFC 5322
// message threaded to the original (In-Reply-To, References) and hands it
// to the authority's configured relay with an SMTP client. It is the e-mail
// Outbound of gateway/replies.
//
// Everything an office supplies that ends up in a header (recipient, subject,
// attachment names) is validated: a CR, LF or NUL is refused, addresses must
// parse with net/mail, and non-ASCII text is RFC 2047 encoded, so that no
// office input can add a header or a recipient. The Message-ID is derived
// from the ReplyID, so a resend after a crash is recognisable as the same
// message.
//
// The package also runs the offices' SMTP submission endpoint (see
// Submission): an office member's mail client may answer by sending mail.
package smtpout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/dialconf"
)

// TLS modes towards the relay.
const (
	TLSStartTLS      = "starttls"      // STARTTLS required (default)
	TLSOpportunistic = "opportunistic" // STARTTLS when offered, verified
	TLSImplicit      = "implicit"      // TLS from the first byte (port 465)
	TLSNone          = "none"          // loopback relays only
)

// Config configures the relay and the sender.
type Config struct {
	// From is the authority's address replies are sent from, e.g.
	// "Stadt Musterstadt <poststelle@musterstadt.de>".
	From string `yaml:"from"`
	// EnvelopeFrom is the MAIL FROM address (default: From's address).
	EnvelopeFrom string `yaml:"envelope_from"`
	// Hostname is announced with EHLO (default: the machine's host name).
	Hostname string `yaml:"hostname"`
	// MessageIDDomain is the right-hand side of reply Message-IDs
	// (default: From's domain).
	MessageIDDomain string      `yaml:"message_id_domain"`
	Relay           RelayConfig `yaml:"relay"`
	// Maildir, instead of Relay, delivers every reply into this local
	// Maildir directory (tmp/, new/, cur/ made when missing): the demo
	// set-up's outbox, or a hand-over to a program that reads Maildirs.
	// Nothing leaves the machine.
	Maildir string `yaml:"maildir"`
	// MaxMessageBytes caps one rendered reply (default 25 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// SMIME, when set, signs every reply with the authority's seal.
	SMIME *SMIMEConfig `yaml:"smime"`
}

// RelayConfig is the SMTP relay replies go through.
type RelayConfig struct {
	Host string `yaml:"host"`
	// Port defaults to 587 (465 for implicit TLS, 25 for none).
	Port int    `yaml:"port"`
	TLS  string `yaml:"tls"`
	// CAFile adds PEM roots for a relay with a private CA.
	CAFile string `yaml:"ca_file"`
	// Username enables AUTH PLAIN; the password comes from PasswordFile or
	// PasswordEnv, is read at each connection and never logged. AUTH is
	// only ever sent over TLS or to a loopback relay.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// Timeout bounds connecting and each command (default 1 minute).
	Timeout time.Duration `yaml:"timeout"`
	// CertFile and KeyFile (PEM), when set, are the client certificate
	// presented in the TLS handshake, for a relay that authenticates its
	// senders by certificate (a De-Mail provider gateway).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Deps are the Outbound's collaborators.
type Deps struct {
	Blobs  Blobs
	Logger *slog.Logger
	// Now is the clock for Date headers (default time.Now).
	Now func() time.Time
	// Fields, when set, returns header fields added to every reply after
	// the threading fields, for a channel that speaks e-mail with headers
	// of its own (De-Mail's dispatch options). Names and values with a CR,
	// LF or NUL make the reply fail permanently.
	Fields func(req *gateway.ReplyRequested, orig *gateway.MessageReceived) ([]Field, error)
}

// Field is one header field Deps.Fields adds.
type Field struct {
	Name, Value string
}

// Outbound sends replies by e-mail. It implements replies.Outbound.
type Outbound struct {
	cfg          Config
	deps         Deps
	from         gateway.Address
	envelopeFrom string
	domain       string
	tls          *tls.Config
	smime        *smimeSigner
	maildir      *maildir // instead of the relay
}

var _ replies.Outbound = (*Outbound)(nil)

// New checks the configuration.
func New(cfg Config, deps Deps) (*Outbound, error) {
	if deps.Blobs == nil {
		return nil, errors.New("smtpout: Deps.Blobs is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	o := &Outbound{deps: deps}
	from, err := replies.ParseMailbox(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtpout: from %q: %w", cfg.From, err)
	}
	o.from = from
	o.envelopeFrom = from.Address
	if cfg.EnvelopeFrom != "" {
		ef, err := replies.ParseMailbox(cfg.EnvelopeFrom)
		if err != nil {
			return nil, fmt.Errorf("smtpout: envelope_from: %w", err)
		}
		o.envelopeFrom = ef.Address
	}
	o.domain = cfg.MessageIDDomain
	if o.domain == "" {
		o.domain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	}
	if !replies.ValidMessageID("<x@" + o.domain + ">") {
		return nil, fmt.Errorf("smtpout: message_id_domain %q is not usable in a Message-ID", o.domain)
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.Hostname == "" || strings.ContainsAny(cfg.Hostname, " \r\n") {
		cfg.Hostname = "localhost"
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 25 << 20
	}
	if cfg.Maildir != "" {
		if cfg.Relay != (RelayConfig{}) {
			return nil, errors.New("smtpout: maildir and relay exclude each other: configure one")
		}
		if o.maildir, err = openMaildir(cfg.Maildir); err != nil {
			return nil, fmt.Errorf("smtpout: %w", err)
		}
	} else if o.tls, err = relayDefaults(&cfg.Relay); err != nil {
		return nil, fmt.Errorf("smtpout: relay: %w", err)
	}
	if cfg.SMIME != nil {
		if o.smime, err = loadSMIME(*cfg.SMIME); err != nil {
			return nil, fmt.Errorf("smtpout: smime: %w", err)
		}
	}
	o.cfg = cfg
	return o, nil
}

func relayDefaults(r *RelayConfig) (*tls.Config, error) {
	if r.Host == "" {
		return nil, errors.New("host is required")
	}
	if r.TLS == "" {
		r.TLS = TLSStartTLS
	}
	switch r.TLS {
	case TLSStartTLS, TLSOpportunistic:
		if r.Port == 0 {
			r.Port = 587
		}
	case TLSImplicit:
		if r.Port == 0 {
			r.Port = 465
		}
	case TLSNone:
		if !dialconf.IsLoopback(r.Host) {
			return nil, fmt.Errorf("tls: none is allowed only for a loopback relay, not %s", r.Host)
		}
		if r.Port == 0 {
			r.Port = 25
		}
	default:
		return nil, fmt.Errorf("tls %q: want starttls, opportunistic, implicit or none", r.TLS)
	}
	if r.Username != "" && (r.PasswordFile == "") == (r.PasswordEnv == "") {
		return nil, errors.New("username needs exactly one of password_file and password_env")
	}
	if r.Timeout <= 0 {
		r.Timeout = time.Minute
	}
	cfg, err := dialconf.ClientTLS(r.Host, r.CAFile)
	if err != nil {
		return nil, err
	}
	if err := dialconf.ClientCertificate(cfg, r.CertFile, r.KeyFile); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (r RelayConfig) password() (string, error) {
	return dialconf.Password(r.PasswordFile, r.PasswordEnv)
}

// Send implements replies.Outbound.
func (o *Outbound) Send(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (replies.SentInfo, error) {
	th := o.threadingOf(ctx, req, orig)
	raw, msgID, err := o.build(ctx, req, orig, th)
	if err != nil {
		return replies.SentInfo{}, replies.Permanent(fmt.Errorf("smtpout: render reply %s: %w", req.ReplyID, err))
	}
	// The bytes are kept before they leave, so that ReplySent can name
	// exactly what the peer accepted: a provider's confirmation hashes them,
	// an evidence bundle carries them.
	sent, err := o.deps.Blobs.PutBytes(ctx, raw)
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("smtpout: keep reply %s: %w", req.ReplyID, err)
	}
	if o.maildir != nil {
		rel, err := o.maildir.deliver(msgID, raw)
		if err != nil {
			return replies.SentInfo{}, fmt.Errorf("smtpout: deliver reply %s to %s: %w", req.ReplyID, o.cfg.Maildir, err)
		}
		return replies.SentInfo{ChannelMessageID: msgID, Response: "maildir " + filepath.Join(o.cfg.Maildir, rel), Sent: sent}, nil
	}
	resp, err := o.deliver(ctx, req.To.Address, raw)
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("smtpout: deliver reply %s via %s: %w", req.ReplyID, o.relayAddr(), err)
	}
	return replies.SentInfo{ChannelMessageID: msgID, Response: resp, Sent: sent}, nil
}

// Render returns the message Send would deliver, for previews and tests.
func (o *Outbound) Render(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) ([]byte, error) {
	raw, _, err := o.build(ctx, req, orig, o.threadingOf(ctx, req, orig))
	return raw, err
}

func (o *Outbound) relayAddr() string {
	return net.JoinHostPort(o.cfg.Relay.Host, strconv.Itoa(o.cfg.Relay.Port))
}

// Deliver sends a ready message to one recipient through the relay, for
// other senders of the gateway's mail (eventstore/witness mails log heads).
func (o *Outbound) Deliver(ctx context.Context, rcpt string, raw []byte) (string, error) {
	return o.deliver(ctx, rcpt, raw)
}

// deliver runs one SMTP transaction. Refusals of the recipient or the
// message (5xx) are permanent; everything else may pass on a later try.
func (o *Outbound) deliver(ctx context.Context, rcpt string, raw []byte) (string, error) {
	c, greeted, err := o.dial(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.CommandTimeout = o.cfg.Relay.Timeout
	c.SubmissionTimeout = 2 * o.cfg.Relay.Timeout
	if !greeted {
		if err := c.Hello(o.cfg.Hostname); err != nil {
			return "", fmt.Errorf("ehlo: %w", err)
		}
	}
	if err := o.auth(c); err != nil {
		return "", err
	}
	opts := &gosmtp.MailOptions{Size: int64(len(raw))}
	if !isASCII(rcpt) || !isASCII(o.envelopeFrom) {
		opts.UTF8 = true
	}
	if err := c.Mail(o.envelopeFrom, opts); err != nil {
		return "", fmt.Errorf("mail from: %w", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return "", classify(fmt.Errorf("rcpt to: %w", err))
	}
	w, err := c.Data()
	if err != nil {
		return "", classify(fmt.Errorf("data: %w", err))
	}
	if _, err := w.Write(raw); err != nil {
		return "", fmt.Errorf("write message: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", classify(fmt.Errorf("end of data: %w", err))
	}
	c.Quit()
	return "250 " + resp.StatusText, nil
}

// dial connects to the relay; greeted reports that EHLO was already said.
func (o *Outbound) dial(ctx context.Context) (c *gosmtp.Client, greeted bool, err error) {
	d := &net.Dialer{Timeout: o.cfg.Relay.Timeout}
	addr := o.relayAddr()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("connect: %w", err)
	}
	switch o.cfg.Relay.TLS {
	case TLSImplicit:
		tc := tls.Client(conn, o.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, false, fmt.Errorf("tls: %w", err)
		}
		return gosmtp.NewClient(tc), false, nil
	case TLSStartTLS:
		c, err = gosmtp.NewClientStartTLS(conn, o.tls)
		if err != nil {
			return nil, false, fmt.Errorf("starttls (required): %w", err)
		}
		return c, false, nil
	case TLSOpportunistic:
		probe := gosmtp.NewClient(conn)
		probe.CommandTimeout = o.cfg.Relay.Timeout
		if err := probe.Hello(o.cfg.Hostname); err != nil {
			probe.Close()
			return nil, false, fmt.Errorf("ehlo: %w", err)
		}
		if ok, _ := probe.Extension("STARTTLS"); !ok {
			return probe, true, nil
		}
		probe.Close()
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, false, fmt.Errorf("connect: %w", err)
		}
		c, err = gosmtp.NewClientStartTLS(conn, o.tls)
		if err != nil {
			return nil, false, fmt.Errorf("starttls: %w", err)
		}
		return c, false, nil
	default:
		return gosmtp.NewClient(conn), false, nil
	}
}

func (o *Outbound) auth(c *gosmtp.Client) error {
	r := o.cfg.Relay
	if r.Username == "" {
		return nil
	}
	if _, isTLS := c.TLSConnectionState(); !isTLS && !dialconf.IsLoopback(r.Host) {
		return errors.New("auth: refusing to send credentials without TLS")
	}
	pw, err := r.password()
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", r.Username, pw)); err != nil {
		return fmt.Errorf("auth as %s: %w", r.Username, err)
	}
	return nil
}

// classify marks 5xx answers as permanent.
func classify(err error) error {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 && se.Code < 600 {
		return replies.Permanent(err)
	}
	return err
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
