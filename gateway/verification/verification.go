// Package verification holds the gateway's projections that decide what a
// received message is worth legally: every signature in it is verified
// (SignaturesVerified, with the JSON report and the HTML Prüfprotokoll as
// blobs, and the written-form flag), and the raw message gets a trusted RFC
// 3161 timestamp from the configured TSAs (TimestampApplied).
package verification

import (
	"bytes"
	"context"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/revocation"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
)

// Handler names. They name consumer groups and enter the ids of appended
// events, so they never change.
const (
	HandlerVerify    = "verify-signatures"
	HandlerTimestamp = "timestamp-receipt"
)

// DefaultMaxPartSize caps the bytes of one signature part read for
// verification (enveloping signatures carry the document).
const DefaultMaxPartSize = 64 << 20

// DefaultMemoryBudget is what all messages being verified at once may hold
// in memory together: one enveloping signature of the usual 32 MiB e-mail
// limit at a time.
const DefaultMemoryBudget = 32 << 20

// streamOverhead is what a streamed detached content costs in memory
// (read buffers and hash state), charged against the budget.
const streamOverhead = 64 << 10

// Part kinds of mail/mailmsg this package relies on.
const (
	kindSignature     = "signature"
	kindSignedData    = "signed-data"
	kindSignedContent = "signed-content"
)

// Config configures verification and timestamping (the `verification:`
// section of poststelle's YAML configuration).
type Config struct {
	// TrustAnchors are certificate files or directories (PEM/DER).
	TrustAnchors []string `yaml:"trust_anchors"`
	// TrustedLists are ETSI TS 119 612 lists (*.xml) or directories of them
	// (an offline copy of the LOTL and the national lists).
	TrustedLists []string `yaml:"trusted_lists"`
	// TLSigners are PEM files with the certificates allowed to sign the
	// trusted lists given (the LOTL's signers from the Official Journal).
	TLSigners []string `yaml:"tl_signers"`
	// Policy is the validation policy (docs/verification.md); unset
	// settings take DSS's default policy's values.
	Policy verify.Policy `yaml:"policy"`
	// AcceptSeal lets a qualified seal satisfy the written form.
	AcceptSeal bool `yaml:"accept_seal"`
	// MaxPartSize caps one signature part (default DefaultMaxPartSize).
	MaxPartSize int64 `yaml:"max_part_size"`
	// MemoryBudget caps, in bytes, what the messages being verified at
	// once hold in memory together (default DefaultMemoryBudget). A
	// signature part is read whole and charged its size; the detached
	// content it signs is streamed through the digest and charged a small
	// buffer. A message whose parts do not fit waits for others to finish
	// (one larger than the budget runs alone); none is dropped or failed.
	MemoryBudget int64 `yaml:"memory_budget"`
	// TSAs obtain the receipt timestamp, tried in order; none: no
	// timestamping handler.
	TSAs []TSAConfig `yaml:"tsas"`
	// TSAAttempts per TSA (default 2) and the pause between them (default 1s).
	TSAAttempts   int           `yaml:"tsa_attempts"`
	TSARetryDelay time.Duration `yaml:"tsa_retry_delay"`
	// Online fetches missing revocation data (OCSP, CRLs); off by default.
	Online revocation.Config `yaml:"online"`
	// TrustedListRefresh fetches the LOTL and the national lists on a
	// schedule (trusted_lists above stays the offline copy); off by default.
	TrustedListRefresh trustedlist.RefreshConfig `yaml:"trusted_list_refresh"`
}

// TSAConfig is one time-stamping authority.
type TSAConfig struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Policy is the TSA policy OID to request, e.g. "1.2.3.4"; empty: the
	// TSA's default.
	Policy string `yaml:"policy"`
}

// Blobs is what the handlers need of the blob store (*blob.Store).
type Blobs interface {
	// Open reads a blob, failing at its end if the bytes do not match ref.
	Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error)
	PutBytes(ctx context.Context, b []byte) (blob.Ref, error)
}

// Deps are the handlers' collaborators.
type Deps struct {
	Blobs  Blobs
	Logger *slog.Logger
	// HTTP is used for TSA requests; nil: tsp's default client.
	HTTP *http.Client
	// Verifier names the software in SignaturesVerified (e.g. "poststelle 0.3.0").
	Verifier string
}

// Handlers builds the verification handler and, when TSAs are configured,
// the timestamping handler. Loading the trust configuration can fail, which
// is a configuration error for serve.
func Handlers(ctx context.Context, cfg Config, deps Deps) ([]pipeline.Handler, error) {
	if deps.Blobs == nil {
		return nil, errors.New("verification: no blob store")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Verifier == "" {
		deps.Verifier = "poststelle"
	}
	if cfg.MaxPartSize <= 0 {
		cfg.MaxPartSize = DefaultMaxPartSize
	}
	if cfg.MemoryBudget < 0 {
		return nil, fmt.Errorf("verification: memory_budget: %d is negative", cfg.MemoryBudget)
	}
	if cfg.MemoryBudget == 0 {
		cfg.MemoryBudget = DefaultMemoryBudget
	}
	policy, err := cfg.Policy.Resolve()
	if err != nil {
		return nil, fmt.Errorf("verification: %w", err)
	}
	cfg.Policy = policy
	store, err := verify.LoadTrust(ctx, verify.TrustConfig{
		Paths:     append(append([]string(nil), cfg.TrustAnchors...), cfg.TrustedLists...),
		TLSigners: cfg.TLSigners,
	})
	if err != nil {
		return nil, fmt.Errorf("verification: trust: %w", err)
	}
	v := &verifier{cfg: cfg, deps: deps, trust: store, budget: newMemoryBudget(cfg.MemoryBudget)}
	if err := v.startOnline(ctx, cfg); err != nil {
		return nil, err
	}
	hs := []pipeline.Handler{{Name: HandlerVerify, Topic: "MessageReceived", Handle: v.handle}}
	if len(cfg.TSAs) > 0 {
		ts, err := newStamper(cfg, deps)
		if err != nil {
			return nil, err
		}
		hs = append(hs, pipeline.Handler{Name: HandlerTimestamp, Topic: "MessageReceived", Handle: ts.handle})
	}
	return hs, nil
}

type verifier struct {
	cfg    Config
	deps   Deps
	trust  *trust.Store
	budget *memoryBudget
	// live replaces trust after a trusted-list refresh; online is the
	// revocation client when verification.online is enabled.
	live   atomic.Pointer[trust.Store]
	online *revocation.Client
}

// handle verifies every signature part of a received message.
func (v *verifier) handle(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
	m, ok := p.(*gateway.MessageReceived)
	if !ok {
		return nil, fmt.Errorf("verification: %T is not MessageReceived", p)
	}
	// The written form is decided for the moment of receipt; it also makes
	// a replay produce the same report.
	at := m.ReceivedAt
	if at.IsZero() {
		at = cause.RecordedAt
	}
	at = at.UTC().Truncate(time.Second)
	rep := &report.Report{
		Tool: v.deps.Verifier, ValidationTime: at, Policy: v.cfg.Policy.Report(),
		Document:   report.Document{Name: m.Subject, SHA256: m.Raw.SHA256, Size: m.Raw.Size},
		Signatures: []report.Signature{},
	}
	sums, err := v.verifyParts(ctx, m, rep, at)
	if err != nil {
		return nil, err
	}
	// The route decides too: an EGVP message on a secure route with VHN
	// satisfies the written form without a QES.
	rep.Transmission = transmission(m)
	rep.ApplyWrittenForm(report.WrittenFormPolicy{AcceptSeal: v.cfg.AcceptSeal})
	out := &gateway.SignaturesVerified{
		Signatures:           sums,
		WrittenFormSatisfied: rep.WrittenFormSatisfied,
		WrittenFormReason:    rep.WrittenFormReason,
		ValidationTime:       at,
		Verifier:             v.deps.Verifier,
	}
	if out.Signatures == nil {
		out.Signatures = []gateway.SignatureSummary{}
		if rep.Transmission == nil {
			out.WrittenFormReason = "no signature"
		}
	}
	if out.Report, out.ReportHTML, err = v.storeReport(ctx, rep); err != nil {
		return nil, err
	}
	return []gateway.Payload{out}, nil
}

// verifyParts verifies every signature part of m into rep, holding the
// message's share of the memory budget meanwhile.
func (v *verifier) verifyParts(ctx context.Context, m *gateway.MessageReceived, rep *report.Report, at time.Time) ([]gateway.SignatureSummary, error) {
	// Documents are looked into by streaming them once for their marker,
	// outside the budget: only signed ones are then read whole, so an
	// unsigned PDF costs no memory and never waits for the budget.
	docs, err := v.signedDocuments(ctx, m)
	if err != nil {
		return nil, err
	}
	var need int64
	candidates := 0
	for i := range m.Parts {
		if p := &m.Parts[i]; isSignaturePart(p) || docs[i] {
			candidates++
			if p.Blob.Size <= v.cfg.MaxPartSize {
				need += p.Blob.Size + streamOverhead
			}
		}
	}
	if candidates == 0 {
		return nil, nil
	}
	held, err := v.budget.acquire(ctx, need)
	if err != nil {
		return nil, err
	}
	defer v.budget.release(held)
	var sums []gateway.SignatureSummary
	for i := range m.Parts {
		part := &m.Parts[i]
		var sigs []report.Signature
		var err error
		switch {
		case isSignaturePart(part):
			sigs, err = v.verifyPart(ctx, m, part, at)
		case docs[i]:
			sigs, err = v.verifyDocument(ctx, part, at)
		}
		if err != nil {
			return nil, err
		}
		for _, s := range sigs {
			rep.Signatures = append(rep.Signatures, s)
			sums = append(sums, summary(m.Channel, part, s))
		}
	}
	return sums, nil
}

// isSignaturePart: CMS parts as mail/mailmsg classifies them, and
// .p7s/.p7m files it may have left as plain attachments.
func isSignaturePart(p *gateway.Part) bool {
	switch p.Kind {
	case kindSignature, kindSignedData:
		return true
	case kindSignedContent:
		return false
	}
	switch strings.ToLower(path.Ext(p.Filename)) {
	case ".p7s", ".p7m":
		return true
	}
	return false
}

// Documents that may carry signatures of their own, by what a part says
// it is: signed PDFs (PAdES), XML with an XML signature (XAdES, XJustiz,
// XRechnung), ASiC containers.
const (
	docPDF  = "pdf"
	docXML  = "xml"
	docASiC = "asic"
)

// documentKind names the kind of document p may be, "" for none.
func documentKind(p *gateway.Part) string {
	if p.Kind == kindSignedContent {
		return ""
	}
	mt := strings.ToLower(p.MediaType)
	switch ext := strings.ToLower(path.Ext(p.Filename)); {
	case mt == "application/pdf" || ext == ".pdf":
		return docPDF
	case strings.HasPrefix(mt, "application/vnd.etsi.asic-") || ext == ".asice" || ext == ".asics" || ext == ".sce" || ext == ".scs":
		return docASiC
	case mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml") || ext == ".xml":
		return docXML
	}
	return ""
}

// signedMarker is what a document of each kind contains when it is signed;
// a document without it carries no signature and is not reported.
var signedMarker = map[string][]byte{
	docPDF:  []byte("/ByteRange"),
	docXML:  []byte("http://www.w3.org/2000/09/xmldsig#"),
	docASiC: []byte("META-INF/"),
}

// verifyDocument verifies the signatures a document part carries itself: a
// signed PDF, an XML document with an XML signature, an ASiC container.
// Documents without a signature add nothing to the report; one too large
// to look into is reported as not checked, so that nobody takes its
// silence for "unsigned".
func (v *verifier) verifyDocument(ctx context.Context, part *gateway.Part, at time.Time) ([]report.Signature, error) {
	kind := documentKind(part)
	if part.Blob.Size > v.cfg.MaxPartSize {
		return []report.Signature{unverifiable(part, report.Indeterminate, fmt.Sprintf("%s of %d bytes not checked for signatures: larger than the limit of %d bytes",
			kind, part.Blob.Size, v.cfg.MaxPartSize))}, nil
	}
	data, err := v.readPart(ctx, part.Blob)
	if err != nil {
		return nil, fmt.Errorf("verification: read part %s: %w: %w", part.Path, verify.ErrContentRead, err)
	}
	return v.verifyData(ctx, part, data, at, nil)
}

// signedDocuments marks the document parts of m that are to be verified:
// those that contain their kind's signature marker, and those too large to
// look into (reported as not checked).
func (v *verifier) signedDocuments(ctx context.Context, m *gateway.MessageReceived) (map[int]bool, error) {
	docs := map[int]bool{}
	for i := range m.Parts {
		p := &m.Parts[i]
		kind := documentKind(p)
		if kind == "" || isSignaturePart(p) {
			continue
		}
		if p.Blob.Size > v.cfg.MaxPartSize {
			docs[i] = true
			continue
		}
		found, err := v.containsMarker(ctx, p.Blob, signedMarker[kind])
		if err != nil {
			// The document is content too: failing to read it is retried.
			return nil, fmt.Errorf("verification: read part %s: %w: %w", p.Path, verify.ErrContentRead, err)
		}
		docs[i] = found
	}
	return docs, nil
}

// containsMarker streams ref once, holding one buffer, and reports whether
// marker occurs in it.
func (v *verifier) containsMarker(ctx context.Context, ref blob.Ref, marker []byte) (bool, error) {
	rc, err := v.deps.Blobs.Open(ctx, ref)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	keep := 0 // bytes carried over, so that a marker across two reads is found
	for {
		n, err := rc.Read(buf[keep:])
		if bytes.Contains(buf[:keep+n], marker) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if end := keep + n; end >= len(marker) {
			keep = copy(buf, buf[end-len(marker)+1:end])
		} else {
			keep = end
		}
	}
}

// verifyPart verifies one signature part; its signatures' ids are prefixed
// with the part path so that they are unique in the message's report.
func (v *verifier) verifyPart(ctx context.Context, m *gateway.MessageReceived, part *gateway.Part, at time.Time) ([]report.Signature, error) {
	if part.Blob.Size > v.cfg.MaxPartSize {
		return []report.Signature{unverifiable(part, report.Indeterminate, fmt.Sprintf("part of %d bytes exceeds the limit of %d bytes", part.Blob.Size, v.cfg.MaxPartSize))}, nil
	}
	data, err := v.readPart(ctx, part.Blob)
	if err != nil {
		return nil, fmt.Errorf("verification: read part %s: %w", part.Path, err)
	}
	var detached *gateway.Part
	var mimeContent bool
	if part.Kind != kindSignedData {
		detached, mimeContent = v.detachedContent(m, part)
	}
	return v.verifyData(ctx, part, data, at, func(opts *verify.Options) {
		if detached != nil {
			opts.DetachedReader = func() (io.ReadCloser, error) { return v.deps.Blobs.Open(ctx, detached.Blob) }
			opts.MIMEContent = mimeContent
		}
	})
}

// verifyData verifies the signatures in data, the bytes of part; their ids
// are prefixed with the part's path.
func (v *verifier) verifyData(ctx context.Context, part *gateway.Part, data []byte, at time.Time, with func(*verify.Options)) ([]report.Signature, error) {
	opts := verify.Options{Time: at, Name: partName(part), Tool: v.deps.Verifier, Policy: v.cfg.Policy}
	if with != nil {
		with(&opts)
	}
	opts.Trust = v.trustFor(ctx)
	rep, err := verify.Verify(ctx, data, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, verify.ErrContentRead) {
			return nil, fmt.Errorf("verification: part %s: %w", part.Path, err)
		}
		return []report.Signature{unverifiable(part, report.TotalFailed, err.Error())}, nil
	}
	for i := range rep.Signatures {
		s := &rep.Signatures[i]
		s.ID = "part " + part.Path + " " + s.ID
		if s.CounterSignatureOf != "" {
			s.CounterSignatureOf = "part " + part.Path + " " + s.CounterSignatureOf
		}
	}
	return rep.Signatures, nil
}

// detachedContent finds what a detached signature signs: for S/MIME the
// multipart/signed entity's first part, which mail/mailmsg stores
// byte-exact as a signed-content part at the multipart's path (or at
// "<path>.0" for a message's top level) while the signature is its second
// part "<path>.2"; for an attachment "x.p7s" the attachment "x". Nil when
// none is found: the signature is then reported without content. The
// content is streamed from the blob store, so its size costs no memory.
func (v *verifier) detachedContent(m *gateway.MessageReceived, sig *gateway.Part) (*gateway.Part, bool) {
	parent, last := "", sig.Path
	if i := strings.LastIndexByte(sig.Path, '.'); i >= 0 {
		parent, last = sig.Path[:i], sig.Path[i+1:]
	}
	if last == "2" {
		var content *gateway.Part
		for i := range m.Parts {
			p := &m.Parts[i]
			if p.Kind == kindSignedContent && (p.Path == parent || p.Path == join(parent, "0")) {
				content = p
			}
		}
		if content != nil {
			return content, true
		}
	}
	if sig.Filename != "" {
		base := strings.TrimSuffix(sig.Filename, path.Ext(sig.Filename))
		for i := range m.Parts {
			p := &m.Parts[i]
			if p != sig && p.Filename == base {
				return p, false
			}
		}
	}
	return nil, false
}

// readPart reads a signature part whole into a buffer of its exact size:
// the budget charged its size, and growing a buffer would hold more.
func (v *verifier) readPart(ctx context.Context, ref blob.Ref) ([]byte, error) {
	if ref.Size < 0 || ref.Size > v.cfg.MaxPartSize {
		return nil, fmt.Errorf("blob %s: size %d out of range", ref.SHA256, ref.Size)
	}
	rc, err := v.deps.Blobs.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, ref.Size)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, err
	}
	// Reading on to the end lets the store check the hash and the size.
	if n, err := rc.Read(make([]byte, 1)); n > 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("blob %s is longer than its %d bytes", ref.SHA256, ref.Size)
		}
		return nil, err
	}
	return b, nil
}

func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

func partName(p *gateway.Part) string {
	if p.Filename != "" {
		return p.Filename
	}
	return "part " + p.Path
}

// unverifiable stands for a signature part we could not read at all.
func unverifiable(part *gateway.Part, ind report.Indication, why string) report.Signature {
	sub := report.FormatFailure
	if ind == report.Indeterminate {
		sub = report.NoSubIndication
	}
	return report.Signature{
		ID: "part " + part.Path, Indication: ind, SubIndication: sub,
		Qualification: report.QualificationNotApplicable,
		Timestamps:    []report.Timestamp{}, Chain: []report.Certificate{},
		Checks: []report.Check{{ID: "part.readable", Description: "the part holds a signature we can read", Result: report.CheckFailed, Detail: why}},
	}
}

// summary names the signature's format by its family (PAdES, XAdES, CAdES,
// as the verifier found it) and S/MIME for the e-mail channels' CMS parts;
// an EGVP file labelled application/pkcs7-signature is no S/MIME.
func summary(ch gateway.Channel, part *gateway.Part, s report.Signature) gateway.SignatureSummary {
	format := "CAdES"
	for _, f := range []string{"PAdES", "XAdES"} {
		if strings.HasPrefix(s.Format, f) {
			format = f
		}
	}
	if ch != gateway.ChannelEGVP && (part.Kind == kindSignature && (part.MediaType == "application/pkcs7-signature" || part.MediaType == "application/x-pkcs7-signature") ||
		strings.HasPrefix(part.MediaType, "application/pkcs7-mime") || strings.HasPrefix(part.MediaType, "application/x-pkcs7-mime")) {
		format = "S/MIME"
	}
	out := gateway.SignatureSummary{
		Part: part.Path, Format: format,
		Indication: string(s.Indication), SubIndication: string(s.SubIndication), Qualification: string(s.Qualification),
	}
	if s.Signer != nil {
		out.Signer = s.Signer.Subject
	}
	if s.SigningTime != nil {
		out.SigningTime = *s.SigningTime
	}
	return out
}

func (v *verifier) storeReport(ctx context.Context, rep *report.Report) (blob.Ref, blob.Ref, error) {
	var js, html bytes.Buffer
	if err := report.WriteJSON(&js, rep); err != nil {
		return blob.Ref{}, blob.Ref{}, fmt.Errorf("verification: render report: %w", err)
	}
	if err := report.WriteHTML(&html, rep); err != nil {
		return blob.Ref{}, blob.Ref{}, fmt.Errorf("verification: render Prüfprotokoll: %w", err)
	}
	// Both are written at once: each write waits for its fsyncs, and this
	// handler runs one message at a time.
	var jr, hr blob.Ref
	var jerr, herr error
	var wg sync.WaitGroup
	wg.Go(func() { jr, jerr = v.deps.Blobs.PutBytes(ctx, js.Bytes()) })
	hr, herr = v.deps.Blobs.PutBytes(ctx, html.Bytes())
	wg.Wait()
	if jerr != nil {
		return blob.Ref{}, blob.Ref{}, fmt.Errorf("verification: store report: %w", jerr)
	}
	if herr != nil {
		return blob.Ref{}, blob.Ref{}, fmt.Errorf("verification: store Prüfprotokoll: %w", herr)
	}
	return jr, hr, nil
}

// stamper obtains receipt timestamps.
type stamper struct {
	client *tsp.Client
	deps   Deps
}

func newStamper(cfg Config, deps Deps) (*stamper, error) {
	c := &tsp.Client{HTTP: deps.HTTP, Attempts: cfg.TSAAttempts, RetryDelay: cfg.TSARetryDelay, Logger: deps.Logger}
	for i, t := range cfg.TSAs {
		if t.URL == "" {
			return nil, fmt.Errorf("verification: TSA %d has no url", i+1)
		}
		tsa := tsp.TSA{Name: t.Name, URL: t.URL}
		if tsa.Name == "" {
			tsa.Name = t.URL
		}
		if t.Policy != "" {
			oid, err := parseOID(t.Policy)
			if err != nil {
				return nil, fmt.Errorf("verification: TSA %s policy: %w", tsa.Name, err)
			}
			tsa.Policy = oid
		}
		c.TSAs = append(c.TSAs, tsa)
	}
	return &stamper{client: c, deps: deps}, nil
}

// handle timestamps the raw message's SHA-256. A failure of every TSA is
// returned, so the pipeline retries and finally records ProcessingFailed.
func (s *stamper) handle(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
	m, ok := p.(*gateway.MessageReceived)
	if !ok {
		return nil, fmt.Errorf("verification: %T is not MessageReceived", p)
	}
	digest, err := hex.DecodeString(m.Raw.SHA256)
	if err != nil || len(digest) != 32 {
		s.deps.Logger.Warn("message without raw bytes reference; not timestamped", "stream", cause.Stream)
		return nil, nil
	}
	stamp, err := s.client.Timestamp(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("verification: timestamp: %w", err)
	}
	ref, err := s.deps.Blobs.PutBytes(ctx, stamp.Raw)
	if err != nil {
		return nil, fmt.Errorf("verification: store timestamp token: %w", err)
	}
	info := stamp.Token.Info
	out := &gateway.TimestampApplied{TSA: stamp.TSA, Token: ref, GenTime: info.GenTime.UTC(), Imprint: m.Raw.SHA256}
	if info.SerialNumber != nil {
		out.Serial = info.SerialNumber.String()
	}
	if info.Policy != nil {
		out.Policy = info.Policy.String()
	}
	return []gateway.Payload{out}, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, f := range strings.Split(s, ".") {
		n := 0
		if f == "" || len(f) > 9 {
			return nil, fmt.Errorf("malformed OID %q", s)
		}
		for _, c := range f {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("malformed OID %q", s)
			}
			n = n*10 + int(c-'0')
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("malformed OID %q", s)
	}
	return oid, nil
}
