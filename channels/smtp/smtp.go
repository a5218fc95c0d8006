// Package smtp is the SMTP receiver: Poststelle as a mail exchanger or as
// the next hop of the authority's relay. It answers 250 to a message only
// after the raw bytes are in the blob store and the MessageReceived event
// is durable in the log, and 4xx whenever that could not be done, so that
// the sending server keeps the message and retries. The stored bytes are
// exactly what the sender transmitted: our own trace is recorded in the
// event's transport evidence instead of a Received header.
package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/mail/mailmsg"
)

// Config configures the receiver. The YAML names are those of the
// poststelle configuration file.
type Config struct {
	// Listen is the TCP address to listen on (default 127.0.0.1:2525).
	Listen string `yaml:"listen"`
	// Hostname is announced in the greeting and recorded as the receiving
	// host (default: the machine's host name).
	Hostname string `yaml:"hostname"`
	// MaxMessageBytes is announced with SIZE and enforced while DATA
	// streams in (default 32 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// MaxLineBytes caps one line of the dialogue and of the message
	// (default 64 KiB). RFC 5321 allows 1000, but mail in the wild has
	// longer lines, and refusing them would only bounce legitimate mail.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// MaxRecipients caps RCPT TO per message (default 100).
	MaxRecipients int `yaml:"max_recipients"`
	// MaxConnections caps concurrent sessions; more are told 421 (default 100).
	MaxConnections int `yaml:"max_connections"`
	// MemoryBudget caps, in bytes, what all sessions together may hold in
	// memory to write small parts in the background (default 16 MiB).
	// Everything else of a message is streamed; with the budget spent,
	// parts are streamed too, so senders never wait for it.
	MemoryBudget int64 `yaml:"memory_budget"`
	// TLSCertFile and TLSKeyFile (PEM) enable STARTTLS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// RequireTLS refuses MAIL FROM before STARTTLS.
	RequireTLS bool `yaml:"require_tls"`
	// AcceptAll accepts mail for every recipient (a catch-all).
	AcceptAll bool `yaml:"accept_all"`
	// AcceptDomains accepts every recipient in these domains.
	AcceptDomains []string `yaml:"accept_domains"`
	// AcceptAddresses accepts these recipients.
	AcceptAddresses []string `yaml:"accept_addresses"`
	// ReadTimeout and WriteTimeout bound each network read and write
	// (default 5 minutes, as RFC 5321 section 4.5.3.2 suggests).
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// ShutdownTimeout is how long Run waits for sessions to finish when its
	// context ends before it closes them (default 10 seconds).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Limits bound the MIME walk of each message.
	Limits mailmsg.Limits `yaml:"-"`
	// TLSConfig, when set, is used instead of the certificate files.
	TLSConfig *tls.Config `yaml:"-" json:"-"`
	// SharedBudget, when set, is the memory budget shared with other
	// intakes; otherwise the receiver makes its own of MemoryBudget.
	SharedBudget *mailmsg.MemoryBudget `yaml:"-" json:"-"`
	// Channel is the channel the receipts are recorded on and their
	// message keys are scoped to (default smtp); a channel that reuses
	// the receiver for its peer's deliveries (De-Mail) sets its own.
	Channel gateway.Channel `yaml:"-" json:"-"`
	// Adapt, when set, completes each receipt before it is recorded, from
	// the stored raw message; an error answers 451 so the peer retries.
	Adapt func(ctx context.Context, raw blob.Ref, rec *gateway.MessageReceived) error `yaml:"-" json:"-"`
	// ClientCAs, when set, admits only clients with a TLS client
	// certificate chaining to them: STARTTLS demands and verifies one, and
	// MAIL is refused without it, so that nothing else reaches the channel.
	ClientCAs *x509.CertPool `yaml:"-" json:"-"`
}

// Server is a running SMTP receiver.
type Server struct {
	cfg      Config
	deps     gateway.IntakeDeps
	accept   recipientPolicy
	srv      *gosmtp.Server
	ln       net.Listener
	budget   *mailmsg.MemoryBudget
	sessions atomic.Int64
}

// New checks the configuration and binds the listening socket, so that a
// busy port is reported at start-up and Addr is known before Run.
func New(cfg Config, deps gateway.IntakeDeps) (*Server, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	if deps, err = deps.WithDefaults(); err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	accept, err := newRecipientPolicy(cfg)
	if err != nil {
		return nil, err
	}
	tlsCfg := cfg.TLSConfig
	if tlsCfg == nil && cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("smtp: load TLS certificate %s: %w", cfg.TLSCertFile, err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.ClientCAs != nil {
		if tlsCfg == nil {
			return nil, errors.New("smtp: a required client certificate needs tls_cert_file and tls_key_file")
		}
		tlsCfg = tlsCfg.Clone()
		tlsCfg.ClientAuth = tls.RequireAndVerifyClientCert
		tlsCfg.ClientCAs = cfg.ClientCAs
		cfg.RequireTLS = true
	}
	if cfg.RequireTLS && tlsCfg == nil {
		return nil, errors.New("smtp: require_tls needs tls_cert_file and tls_key_file")
	}
	s := &Server{cfg: cfg, deps: deps, accept: accept, budget: cfg.SharedBudget}
	if s.budget == nil {
		s.budget = mailmsg.NewMemoryBudget(cfg.MemoryBudget)
	}
	s.srv = gosmtp.NewServer(s)
	s.srv.Domain = cfg.Hostname
	s.srv.MaxMessageBytes = cfg.MaxMessageBytes
	s.srv.MaxRecipients = cfg.MaxRecipients
	s.srv.MaxLineLength = cfg.MaxLineBytes
	s.srv.ReadTimeout = cfg.ReadTimeout
	s.srv.WriteTimeout = cfg.WriteTimeout
	s.srv.TLSConfig = tlsCfg
	s.srv.EnableSMTPUTF8 = true
	s.srv.ErrorLog = slogPrinter{deps.Logger}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("smtp: listen on %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	return s, nil
}

func withDefaults(cfg Config) (Config, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:2525"
	}
	if cfg.Channel == "" {
		cfg.Channel = gateway.ChannelSMTP
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		cfg.Hostname = h
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 32 << 20
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = 100
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = 64 << 10
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 100
	}
	if cfg.MemoryBudget <= 0 {
		cfg.MemoryBudget = 16 << 20
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Minute
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return cfg, errors.New("smtp: tls_cert_file and tls_key_file must be set together")
	}
	return cfg, nil
}

// Addr is the address the receiver listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then stops accepting, lets sessions finish for
// up to the shutdown timeout and closes the rest. A message whose DATA was
// cut off is not acknowledged, so its sender retries.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.deps.Logger.Info("smtp: receiving", "addr", s.ln.Addr().String(), "hostname", s.cfg.Hostname,
		"channel", s.cfg.Channel, "starttls", s.srv.TLSConfig != nil, "client_cert", s.cfg.ClientCAs != nil, "max_message_bytes", s.cfg.MaxMessageBytes)
	select {
	case err := <-errc:
		return fmt.Errorf("smtp: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, gosmtp.ErrServerClosed) {
		s.srv.Close()
	}
	// go-smtp closes only listeners Serve has registered: when ctx ends
	// before the goroutine above got there, Serve would accept forever.
	s.ln.Close()
	<-errc
	return nil
}

// NewSession implements gosmtp.Backend.
func (s *Server) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	if s.sessions.Add(1) > int64(s.cfg.MaxConnections) {
		s.sessions.Add(-1)
		return nil, &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: "too many connections, try again later"}
	}
	return &session{s: s, conn: c}, nil
}

// slogPrinter adapts go-smtp's error log to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Warn("smtp: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (p slogPrinter) Println(v ...any) {
	p.l.Warn("smtp: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
