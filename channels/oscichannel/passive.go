package oscichannel

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// Passive is the passive recipient: an HTTP(S) listener the intermediary posts
// acceptDelivery and processDelivery to. Each request's body is stored as it came
// before anything is parsed; the answer is sent only once the receipt is recorded.
type Passive struct {
	c  *core
	ln net.Listener
}

// NewPassive builds the passive recipient of cfg, listening at once (so that a test
// or the assembly knows the address).
func NewPassive(cfg Config, deps gateway.IntakeDeps) (*Passive, error) {
	deps, err := deps.WithDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Passive == nil {
		return nil, errors.New("osci: no passive section")
	}
	c, err := newCore(cfg, deps)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Passive.Listen)
	if err != nil {
		return nil, fmt.Errorf("osci: passive recipient: %w", err)
	}
	if cfg.Passive.TLSCertFile != "" {
		kp, err := tls.LoadX509KeyPair(cfg.Passive.TLSCertFile, cfg.Passive.TLSKeyFile)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("osci: passive recipient TLS: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12})
	}
	return &Passive{c: c, ln: ln}, nil
}

// Addr is the listener's address.
func (p *Passive) Addr() net.Addr { return p.ln.Addr() }

// Run serves until ctx ends.
func (p *Passive) Run(ctx context.Context) error {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }, ErrorLog: nil}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(p.ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		return nil
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("osci: passive recipient: %w", err)
	}
}

// ServeHTTP takes one delivery.
func (p *Passive) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "OSCI requests are POSTed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	log := p.c.deps.Logger.With("channel", "egvp", "role", "passive", "remote", r.RemoteAddr)
	raw, err := p.c.deps.Blobs.Put(ctx, r.Body, p.c.cfg.maxBytes())
	if err != nil {
		code := osci.CodeRecipientInternal
		if errors.Is(err, blob.ErrTooLarge) {
			code = osci.CodeMessageTooLarge
		}
		log.Warn("delivery not stored", "code", code.String(), "err", err)
		p.fault(w, code)
		return
	}
	o := opened{remote: r.RemoteAddr}
	if r.TLS != nil {
		o.tls = tls.VersionName(r.TLS.Version) + " " + tls.CipherSuiteName(r.TLS.CipherSuite)
	}
	o.req, o.openErr = p.open(ctx, raw)
	if o.openErr == nil && o.req.Type() != osci.AcceptDelivery && o.req.Type() != osci.ProcessDelivery {
		// Not a delivery at all: nothing to record, refused as the protocol says.
		log.Warn("not a delivery", "type", o.req.Type())
		p.fault(w, osci.CodeInvalidRequest)
		return
	}
	v, rc, err := p.c.record(ctx, raw, o)
	switch v {
	case retryLater:
		log.Error("delivery not recorded; the intermediary is told to retry", "err", err)
		p.fault(w, osci.CodeRecipientInternal)
		return
	case refusedByLog:
		log.Error("delivery refused by the log", "err", err)
		p.fault(w, osci.CodeNotAccepted)
		return
	}
	log.Info("delivery recorded", "stream", rc.Stream, "duplicate", rc.Duplicate, "raw", raw.SHA256)
	if o.openErr != nil {
		// Recorded for triage; the intermediary learns why it was not understood.
		p.fault(w, osci.FeedbackCode(o.openErr))
		return
	}
	if err := p.answer(ctx, w, o.req); err != nil {
		log.Error("answering the intermediary", "err", err)
	}
}

func (p *Passive) open(ctx context.Context, raw blob.Ref) (*osci.Request, error) {
	rc, err := p.c.deps.Blobs.Open(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("osci: reopening the stored delivery: %w", err)
	}
	defer rc.Close()
	s := osci.Supplier{Decrypter: p.c.decrypter(), Limits: p.c.lim}
	return s.ReadRequest(ctx, rc, p.c.spool())
}

func (p *Passive) fault(w http.ResponseWriter, code osci.Code) {
	var b bytes.Buffer
	_ = osci.WriteFault(&b, code, "")
	w.Header().Set("Content-Type", "text/xml; charset=UTF-8")
	_, _ = w.Write(b.Bytes())
}

// answer is the recipient's signed response, transport-encrypted for the intermediary.
func (p *Passive) answer(ctx context.Context, w http.ResponseWriter, req *osci.Request) error {
	typ := osci.ResponseToAcceptDelivery
	if req.Type() == osci.ProcessDelivery {
		typ = osci.ResponseToProcessDelivery
	}
	cb := req.Envelope.ControlBlock
	m := osci.Message{Type: typ, Signed: true,
		Control:   osci.ControlBlock{Response: cb.Challenge, HasResponse: true, ConversationID: cb.ConversationID, SequenceNumber: cb.SequenceNumber, HasSequence: cb.HasSequence},
		Operation: osci.Operation{Feedback: []osci.FeedbackEntry{osci.Entry(0)}},
		NonIntermediaryCertificates: []osci.CertificateEntry{{Role: "SignatureCertificateAddressee",
			ID: osci.CertificateID("addressee", "signature", p.c.signature.Cert), Cert: p.c.signature.Cert}}}
	envelope, err := osci.ComposeEnvelope(&m)
	if err != nil {
		return fmt.Errorf("osci: composing %s: %w", typ, err)
	}
	if envelope, err = osci.SignEnvelope(ctx, envelope, osci.SignOptions{Signer: p.c.signature.Key, Method: p.c.cfg.method(),
		CertificateID: osci.CertificateID("addressee", "signature", p.c.signature.Cert), Limits: p.c.lim}); err != nil {
		return fmt.Errorf("osci: signing %s: %w", typ, err)
	}
	var inner, out bytes.Buffer
	if err := osci.WriteMessage(&inner, osci.NewBoundary(), true, envelope, nil); err != nil {
		return err
	}
	enc := osci.Encryptor{Recipients: []*x509.Certificate{p.c.interCipher}}
	if err := enc.EncryptTransport(ctx, &inner, &out, osci.NewBoundary(), true); err != nil {
		return fmt.Errorf("osci: encrypting %s: %w", typ, err)
	}
	w.Header().Set("Content-Type", "text/xml; charset=UTF-8")
	_, err = io.Copy(w, &out)
	return err
}
