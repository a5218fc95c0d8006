// Package officeimap is the offices' IMAP server: every office member logs in
// with a mail client and finds the office's routed messages in INBOX, each
// as a copy holding the original bytes unchanged (message/rfc822) and the
// Prüfprotokoll. The mailbox is a view of the office queue read model
// (gateway/offices.Inbox), which is a projection of the log: UIDs are the
// queue's per-office sequence numbers, so they are the same after a restart
// and after the read model was rebuilt by replay, and UIDVALIDITY never
// changes.
//
// Reading a message (a non-PEEK body fetch) or setting \Seen acknowledges it
// for the office (MessageAcknowledged in the log); \Seen is the only flag,
// derived from the acknowledgement. Nothing is ever deleted, moved or
// appended: received messages are evidence, so EXPUNGE removes nothing and
// \Deleted, COPY, MOVE and APPEND are refused.
package officeimap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/dialconf"
)

// TLS modes.
const (
	TLSStartTLS = "starttls" // STARTTLS offered; LOGIN only after it (default)
	TLSImplicit = "implicit" // TLS from the first byte
	TLSNone     = "none"     // plain text, loopback listeners only
)

// Config configures the server.
type Config struct {
	// Listen is the TCP address (default 127.0.0.1:1143).
	Listen string `yaml:"listen"`
	// TLS is "starttls" (default), "implicit" or "none".
	TLS string `yaml:"tls"`
	// CertFile and KeyFile (PEM) are the server's certificate; when both
	// are empty a self-signed one is made on first run in
	// <data_dir>/officeimap/ and reused afterwards.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MaxInlineBytes is the largest original served inside the copy
	// (default 64 MiB); larger ones are left to the office API.
	MaxInlineBytes int64 `yaml:"max_inline_bytes"`
	// PollInterval is how often an idle session looks for new messages and
	// acknowledgements (default 2 seconds).
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxConnections caps concurrent connections; more are greeted with
	// BYE (default 100).
	MaxConnections int `yaml:"max_connections"`
	// TLSConfig, when set, is used instead of the certificate files.
	TLSConfig *tls.Config `yaml:"-"`
}

// Directory authenticates office members; *offices.Directory is one.
type Directory interface {
	Authenticate(ctx context.Context, user, password string) (offices.Principal, error)
	Config() offices.Config
}

// Blobs reads originals; *blob.Store is one.
type Blobs interface {
	Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error)
}

// Deps are the server's collaborators.
type Deps struct {
	Directory Directory
	// State is the state database holding the office inbox read model.
	State *sql.DB
	// Log receives acknowledgements.
	Log   eventstore.Log
	Blobs Blobs
	// DataDir is where a self-signed certificate is kept.
	DataDir string
	Logger  *slog.Logger
	// Changed, when set, wakes idle sessions when the inbox read model
	// changed (offices.Notifier.Changed), besides polling.
	Changed func() <-chan struct{}
}

// Server is the office IMAP server.
type Server struct {
	cfg  Config
	deps Deps
	ln   net.Listener
	imap *imapserver.Server
}

// New checks the configuration, prepares TLS and listens.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Directory == nil || deps.State == nil || deps.Log == nil || deps.Blobs == nil {
		return nil, errors.New("officeimap: Deps.Directory, State, Log and Blobs are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:1143"
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.MaxInlineBytes <= 0 {
		cfg.MaxInlineBytes = 64 << 20
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 100
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("officeimap: listen %q: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, deps: deps}
	opts := &imapserver.Options{
		NewSession: s.newSession,
		Caps:       imap.CapSet{imap.CapIMAP4rev1: {}},
		Logger:     slogPrinter{deps.Logger},
	}
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit:
		if cfg.TLSConfig == nil {
			if cfg.TLSConfig, err = s.loadTLS(); err != nil {
				return nil, err
			}
		}
		if cfg.TLS == TLSStartTLS {
			opts.TLSConfig = cfg.TLSConfig
		}
	case TLSNone:
		if !dialconf.IsLoopback(host) {
			return nil, fmt.Errorf("officeimap: tls none is allowed only on a loopback address, not %s", host)
		}
		opts.InsecureAuth = true
	default:
		return nil, fmt.Errorf("officeimap: tls %q: want starttls, implicit or none", cfg.TLS)
	}
	s.cfg = cfg
	s.imap = imapserver.New(opts)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("officeimap: %w", err)
	}
	ln = &limitListener{Listener: ln, slots: make(chan struct{}, cfg.MaxConnections)}
	if cfg.TLS == TLSImplicit {
		ln = tls.NewListener(ln, cfg.TLSConfig)
	}
	s.ln = ln
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.deps.Logger.Info("office IMAP server listening", "addr", s.ln.Addr().String(), "tls", s.cfg.TLS)
	errc := make(chan error, 1)
	go func() { errc <- s.imap.Serve(s.ln) }()
	select {
	case <-ctx.Done():
		s.imap.Close()
		<-errc
		return ctx.Err()
	case err := <-errc:
		return fmt.Errorf("officeimap: serve: %w", err)
	}
}

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	return &session{srv: s, conn: c, ctx: context.Background()}, nil, nil
}

// loadTLS loads the configured certificate or the self-signed one, making
// it on first run.
func (s *Server) loadTLS() (*tls.Config, error) {
	certFile, keyFile := s.cfg.CertFile, s.cfg.KeyFile
	if certFile == "" && keyFile == "" {
		if s.deps.DataDir == "" {
			return nil, errors.New("officeimap: TLS needs cert_file/key_file or a data directory for a self-signed certificate")
		}
		dir := filepath.Join(s.deps.DataDir, "officeimap")
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := selfSign(dir, certFile, keyFile); err != nil {
				return nil, fmt.Errorf("officeimap: make self-signed certificate: %w", err)
			}
			s.deps.Logger.Info("made a self-signed certificate for the office IMAP server", "cert", certFile)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("officeimap: load certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func selfSign(dir, certFile, keyFile string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	names := []string{"localhost"}
	if host != "" && host != "localhost" {
		names = append(names, host)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "Poststelle office IMAP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(2, 0, 0),
		DNSNames: names, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Warn("office imap: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// limitListener refuses connections beyond a limit, so that idle clients
// cannot exhaust the server.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, free: func() { <-l.slots }}, nil
		default:
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write([]byte("* BYE too many connections, try again later\r\n"))
			c.Close()
		}
	}
}

type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	c.once.Do(c.free)
	return c.Conn.Close()
}
