// Package intermediary is a stand-in OSCI-Transport 1.2 intermediary (Intermediär) for
// the interop tests: it serves the reference library and Poststelle's own OSCI client
// on 127.0.0.1 with the library's sample keys (osci_manager), keeps mailboxes by the
// addressee's cipher certificate, forwards to passive recipients and writes process
// cards with its own timestamps. It exists to test against; it is not a product.
//
// The protocol work (opening, checking and answering messages) is package osci's
// Supplier; this package keeps the state a real intermediary keeps in its database:
// dialogs, issued message ids, seen challenges, mailboxes and process cards.
package intermediary

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/xmlenc"
	"github.com/poststelle/poststelle/osci"
)

// Keys are the intermediary's: its cipher key opens requests, its signature key signs
// answers and its own requests to passive recipients. Roots are the CAs the inspection
// report checks certificates against; none leaves every check indeterminate.
type Keys struct {
	Cipher               crypto.Decrypter
	CipherCertificate    *x509.Certificate
	Signature            crypto.Signer
	SignatureCertificate *x509.Certificate
	Roots                []*x509.Certificate
}

// Config configures a Server.
type Config struct {
	// Addr is the listen address; default 127.0.0.1:0. Only loopback addresses are
	// accepted: this is a test fixture.
	Addr string
	Keys Keys
	// SignatureMethod is the SupplierSignature's; default rsa-sha256.
	SignatureMethod string
	// Passive maps an addressee's cipher certificate (CertificateKey) to the URL of its
	// passive recipient; a forwardDelivery to an addressee not in the map goes to the
	// request's ContentReceiver, which must be a loopback URL too.
	Passive map[string]string
	// SpoolDir holds attachments; default a fresh temporary directory removed by Close.
	SpoolDir string
	Limits   osci.Limits
	// Timestamps, when set, makes cryptographic timestamps (RFC 3161) where a
	// request's QualityOfTimestamp asks for them; without it they are plain.
	Timestamps *tsp.Client
	// HTTP posts acceptDelivery to passive recipients; default a 60 s client.
	HTTP   *http.Client
	Now    func() time.Time
	Logger *slog.Logger
}

// CertificateKey is how the intermediary names a certificate in its tables: the
// SHA-256 of its DER, in hex.
func CertificateKey(c *x509.Certificate) string { return derKey(c.Raw) }

func derKey(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Refusal is a request the intermediary refused, for tests to check the code.
type Refusal struct {
	Type osci.MessageType
	Code osci.Code
	Err  error
}

// Server is a running intermediary.
type Server struct {
	cfg      Config
	supplier osci.Supplier
	spool    osci.DirSpool
	ownSpool bool
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	done     chan struct{}

	mu    sync.Mutex
	state *state
	refs  []Refusal
}

// Start checks cfg, listens and serves until ctx ends or Close is called.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	k := cfg.Keys
	if k.Cipher == nil || k.CipherCertificate == nil || k.Signature == nil || k.SignatureCertificate == nil {
		return nil, errors.New("intermediary: cipher and signature keys with their certificates are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if err := loopbackAddr(cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	supplier, err := newSupplier(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, supplier: supplier, log: cfg.Logger, done: make(chan struct{}), state: newState()}
	if cfg.SpoolDir == "" {
		if cfg.SpoolDir, err = os.MkdirTemp("", "osci-intermediary-"); err != nil {
			return nil, fmt.Errorf("intermediary: spool: %w", err)
		}
		s.ownSpool = true
	}
	s.spool = osci.DirSpool{Dir: cfg.SpoolDir}
	s.cfg = cfg
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		s.removeSpool()
		return nil, fmt.Errorf("intermediary: listening: %w", err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("intermediary stopped", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.done:
		}
	}()
	s.log.Info("intermediary listening", "url", s.URL())
	return s, nil
}

func newSupplier(cfg Config) (osci.Supplier, error) {
	sig, err := cert.Parse(cfg.Keys.SignatureCertificate.Raw)
	if err != nil {
		return osci.Supplier{}, fmt.Errorf("intermediary: signature certificate: %w", err)
	}
	ciph, err := cert.Parse(cfg.Keys.CipherCertificate.Raw)
	if err != nil {
		return osci.Supplier{}, fmt.Errorf("intermediary: cipher certificate: %w", err)
	}
	return osci.Supplier{
		Decrypter:            osci.Decrypter{Key: cfg.Keys.Cipher, Certificate: cfg.Keys.CipherCertificate, Policy: xmlenc.OSCIPolicy()},
		Signer:               cfg.Keys.Signature,
		SignatureCertificate: sig,
		CipherCertificate:    ciph,
		Method:               cfg.SignatureMethod,
		Limits:               cfg.Limits,
	}, nil
}

func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("intermediary: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("intermediary: address %q is not a loopback address", addr)
	}
	return nil
}

// URL is where the intermediary takes requests.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Close stops serving and removes a spool the server made itself.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	s.removeSpool()
	return err
}

func (s *Server) removeSpool() {
	if s.ownSpool {
		_ = os.RemoveAll(s.cfg.SpoolDir)
	}
}

// Refusals lists the requests refused so far, oldest first.
func (s *Server) Refusals() []Refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Refusal(nil), s.refs...)
}

// Mailbox lists the message ids (as on the wire) waiting for an addressee, oldest
// first.
func (s *Server) Mailbox(addressee *x509.Certificate) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.state.mailboxes[CertificateKey(addressee)] {
		out = append(out, d.id)
	}
	return out
}

// ProcessCard returns the process card of a delivery by its message id.
func (s *Server) ProcessCard(messageID string) (osci.ProcessCardBundle, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.state.deliveries[messageID]
	if d == nil {
		return osci.ProcessCardBundle{}, false
	}
	return d.bundle(), true
}

// ServeHTTP answers one OSCI request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "OSCI requests are POSTed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	lim := s.cfg.Limits
	if lim.MaxMessageBytes == 0 {
		lim = osci.DefaultLimits()
	}
	body := http.MaxBytesReader(w, r.Body, lim.MaxMessageBytes+64<<10)
	var out bytes.Buffer
	typ, err := s.serve(ctx, body, &out)
	if err != nil {
		out.Reset()
		code := osci.FeedbackCode(err)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = osci.CodeMessageTooLarge
		}
		s.refuse(typ, code, err)
		if werr := osci.WriteFault(&out, code, ""); werr != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
	}
	// The library sends and expects text/xml with the MIME headers in the body.
	w.Header().Set("Content-Type", "text/xml; charset=UTF-8")
	_, _ = w.Write(out.Bytes())
}

func (s *Server) refuse(typ osci.MessageType, code osci.Code, err error) {
	s.log.Warn("intermediary refused a request", "type", typ, "code", code.String(), "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.refs) < 10000 {
		s.refs = append(s.refs, Refusal{Type: typ, Code: code, Err: err})
	}
}

// serve reads, handles and answers one request; the error's code is the answer.
func (s *Server) serve(ctx context.Context, body io.Reader, out io.Writer) (osci.MessageType, error) {
	req, err := s.supplier.ReadRequest(ctx, body, s.spool)
	if err != nil {
		return "", err
	}
	ans, kept, err := s.handle(ctx, req)
	if !kept {
		// A delivery stored keeps its attachments in the spool; nothing else does.
		defer func() { _ = osci.DirSpool{}.Remove(req.Message.Spooled()...) }()
	}
	if err != nil {
		return req.Type(), err
	}
	if err := s.supplier.WriteAnswer(ctx, out, ans); err != nil {
		return req.Type(), fmt.Errorf("intermediary: answering %s: %w", req.Type(), err)
	}
	return req.Type(), nil
}
