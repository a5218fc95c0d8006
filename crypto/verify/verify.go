// Package verify decides on signed files as a whole: it recognises the
// format (CMS/CAdES attached or detached, S/MIME, RFC 3161 tokens), runs the
// cryptographic checks of crypto/cms and crypto/tsp, validates every signing
// and TSA certificate with crypto/trust at the validation time, using the
// certificates and revocation data the signature carries and the verified
// signature timestamps as proof of existence, and combines all of it into a
// crypto/report Report with the ETSI EN 319 102-1 indication, sub-indication
// and the eIDAS qualification of each signature.
//
// XML signatures (XML-DSig and XAdES, enveloped, enveloping or detached)
// are checked with crypto/xmldsig, their timestamps with crypto/tsp; ASiC-S
// and ASiC-E containers are opened with crypto/asic and each signature in
// them verified against the container's data objects. PDF signatures
// (PAdES, PKCS#7 in PDF, document timestamps) are read by crypto/pades.
package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// MaxInputSize caps a signed file, as crypto/cms caps an enveloping
// signature: the document travels inside it.
const MaxInputSize = cms.MaxSize

// Errors for input that cannot be verified at all. Callers map them to
// "unusable input" (exit status 2 of poststelle verify).
var (
	// ErrUnsupported is wrapped for formats that are recognised but not
	// verified here (XML, ZIP containers).
	ErrUnsupported = errors.New("verify: unsupported format")
	// ErrMalformed is wrapped for input that is no signature we can read.
	ErrMalformed = errors.New("verify: not a readable signature")
	// ErrContentRead is wrapped when Options.DetachedReader failed: the
	// signature was not judged, and the caller may try again.
	ErrContentRead = errors.New("verify: reading the signed content failed")
)

// Options control one verification.
type Options struct {
	// Trust holds the anchors and trusted lists; nil means none, so no
	// chain can be built.
	Trust *trust.Store
	// Time is the validation time; zero means now. It is never taken from
	// the signature.
	Time time.Time
	// Detached is the content of a detached signature (or the data a
	// standalone timestamp covers).
	Detached []byte
	// DetachedReader, used when Detached is nil, opens that content as a
	// stream: it is hashed as it is read, never held whole (see
	// cms.VerifyOptions.DetachedReader), and may be opened more than once.
	// A failure to read it makes Verify fail (wrapping ErrContentRead)
	// rather than judge the signature.
	DetachedReader func() (io.ReadCloser, error)
	// DetachedDigest and DetachedDigestAlgorithm stand in for Detached
	// when only the content's digest is known.
	DetachedDigest          []byte
	DetachedDigestAlgorithm crypto.Hash
	// MIMEContent marks Detached as a MIME entity (the signed part of a
	// multipart/signed): when its bytes as stored do not match, the
	// canonical CRLF form (RFC 8551 section 3.1.1) is tried too.
	MIMEContent bool
	// Name identifies the document in the report (a file name).
	Name string
	// Tool names the verifier in the report; default "poststelle".
	Tool        string
	WrittenForm report.WrittenFormPolicy
	// Policy is the validation policy; the zero value is DefaultPolicy.
	Policy Policy
}

// Verify verifies every signature in data and returns the report. An error
// (wrapping ErrMalformed or ErrUnsupported) means there was nothing to
// verify; a report with failed signatures is not an error.
func Verify(ctx context.Context, data []byte, opts Options) (*report.Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(data) > MaxInputSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d accepted", ErrMalformed, len(data), MaxInputSize)
	}
	policy, err := opts.Policy.Resolve()
	if err != nil {
		return nil, err
	}
	opts.Policy = policy
	v := newVerifier(opts)
	sum := sha256.Sum256(data)
	rep := &report.Report{
		Tool:           v.opts.Tool,
		ValidationTime: v.time,
		Policy:         policy.Report(),
		Document:       report.Document{Name: opts.Name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))},
		Signatures:     []report.Signature{},
	}
	switch f := Detect(data); f {
	case FormatCMS:
		err = v.cmsFile(rep, data)
	case FormatPEM:
		err = v.pemFile(rep, data)
	case FormatMIME:
		err = v.mime(rep, data)
	case FormatPDF:
		err = v.pdfFile(ctx, rep, data)
	case FormatXML:
		err = v.xmlFile(ctx, rep, data)
	case FormatZIP:
		err = v.asicFile(ctx, rep, data)
	default:
		err = fmt.Errorf("%w: neither CMS, S/MIME nor an RFC 3161 timestamp", ErrMalformed)
	}
	if err == nil && v.contentErr != nil {
		err = fmt.Errorf("%w: %w", ErrContentRead, v.contentErr)
	}
	if err != nil {
		return nil, err
	}
	rep.ApplyWrittenForm(opts.WrittenForm)
	return rep, nil
}

// AllPassed reports whether r holds at least one signature or standalone
// timestamp, every one of them passed and (for a container) every data
// object is covered: the exit status 0 of poststelle verify.
func AllPassed(r *report.Report) bool {
	if r == nil || len(r.Signatures)+len(r.Timestamps) == 0 {
		return false
	}
	if r.Container != nil && len(r.Container.Uncovered) > 0 {
		return false
	}
	for _, s := range r.Signatures {
		if s.Indication != report.TotalPassed {
			return false
		}
	}
	for _, t := range r.Timestamps {
		if t.Indication != report.Passed {
			return false
		}
	}
	return true
}

type verifier struct {
	opts  Options
	time  time.Time
	store *trust.Store
	// signatures numbers the top-level signatures across the entities of
	// one file.
	signatures int
	// contentErr is the first failure of opts.DetachedReader.
	contentErr error
	// signed is the SignedData whose signers are being evaluated.
	signed *cms.SignedData
}

func newVerifier(opts Options) *verifier {
	v := &verifier{opts: opts, time: opts.Time, store: opts.Trust}
	if v.time.IsZero() {
		v.time = time.Now()
	}
	v.time = v.time.UTC().Truncate(time.Second)
	if v.opts.Tool == "" {
		v.opts.Tool = "poststelle"
	}
	if v.store == nil {
		v.store = trust.NewStore()
	}
	return v
}

// cmsFile handles a DER/BER ContentInfo: SignedData, a bare timestamp token,
// or a TimeStampResp.
func (v *verifier) cmsFile(rep *report.Report, data []byte) error {
	sd, err := cms.Parse(data)
	if err != nil {
		resp, rerr := tsp.ParseResponse(data)
		if rerr != nil || resp.Token == nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		rep.Timestamps = append(rep.Timestamps, v.standaloneToken(resp.Token))
		return nil
	}
	if sd.EContentType.Equal(cms.OIDTSTInfo) {
		tok, err := tsp.ParseToken(data)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		rep.Timestamps = append(rep.Timestamps, v.standaloneToken(tok))
		return nil
	}
	if len(sd.Signers) == 0 {
		return fmt.Errorf("%w: SignedData without signers (certificates only)", ErrMalformed)
	}
	v.signedData(rep, sd, v.opts.Detached)
	return nil
}

// pemFile accepts a PEM-wrapped CMS object ("PKCS7" or "CMS" blocks).
func (v *verifier) pemFile(rep *report.Report, data []byte) error {
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("%w: unreadable PEM", ErrMalformed)
	}
	return v.cmsFile(rep, block.Bytes)
}

// signedData verifies every signer (and countersigner) of sd.
func (v *verifier) signedData(rep *report.Report, sd *cms.SignedData, content []byte) {
	v.signedDataResult(rep, sd, content)
}

// signedDataResult is signedData returning the CMS checks, in the order of
// sd's signers.
func (v *verifier) signedDataResult(rep *report.Report, sd *cms.SignedData, content []byte) *cms.Result {
	res, note := v.verifyCMS(sd, content)
	ev := newEvidence(sd)
	v.signed = sd
	for _, sr := range res.Signers {
		v.signatures++
		v.addSignature(rep, sr, ev, fmt.Sprintf("S-%d", v.signatures), "", note)
	}
	return res
}

// verifyCMS runs the CMS checks; for MIME content it retries with CRLF line
// ends when the bytes as stored do not match and the canonical form does.
// content nil with opts.DetachedReader set streams the detached content.
func (v *verifier) verifyCMS(sd *cms.SignedData, content []byte) (*cms.Result, string) {
	opts := cms.VerifyOptions{DetachedContent: content}
	streamed := content == nil && v.opts.DetachedReader != nil && !sd.HasContent
	switch {
	case streamed:
		opts.DetachedReader = v.opts.DetachedReader
	case content == nil && v.opts.DetachedDigest != nil:
		opts.DetachedDigest, opts.DetachedDigestAlgorithm = v.opts.DetachedDigest, v.opts.DetachedDigestAlgorithm
	}
	res := v.noteContentErr(sd.Verify(opts))
	if !v.opts.MIMEContent || sd.HasContent || (content == nil && !streamed) || !digestFailed(res) {
		return res, ""
	}
	var alt *cms.Result
	if streamed {
		open := v.opts.DetachedReader
		alt = v.noteContentErr(sd.Verify(cms.VerifyOptions{DetachedReader: func() (io.ReadCloser, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			return canonicalReader(rc), nil
		}}))
	} else {
		canon := canonicalLineEnds(content)
		if bytes.Equal(canon, content) {
			return res, ""
		}
		alt = sd.Verify(cms.VerifyOptions{DetachedContent: canon})
	}
	if digestFailed(alt) {
		return res, ""
	}
	return alt, "the signed MIME entity matched only after converting its line ends to CRLF (RFC 8551 section 3.1.1)"
}

// noteContentErr keeps the first failure to read streamed content.
func (v *verifier) noteContentErr(res *cms.Result) *cms.Result {
	if res.ContentErr != nil && v.contentErr == nil {
		v.contentErr = res.ContentErr
	}
	return res
}

func digestFailed(res *cms.Result) bool {
	for _, sr := range res.Signers {
		if c, ok := sr.Check(cms.CheckMessageDigest); ok && c.Outcome == cms.Failed {
			return true
		}
	}
	return false
}

// canonicalLineEnds turns bare LF into CRLF.
func canonicalLineEnds(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/32)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// canonicalReader turns bare LF into CRLF as the content streams, as
// canonicalLineEnds does for bytes in memory.
func canonicalReader(rc io.ReadCloser) io.ReadCloser {
	return &crlfReader{src: rc}
}

type crlfReader struct {
	src    io.ReadCloser
	buf    [32 << 10]byte
	conv   []byte // converted chunk
	out    []byte // the part of conv not yet returned
	lastCR bool   // the last byte converted was CR
	err    error
}

func (r *crlfReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.fill()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// fill reads a chunk from src and converts it into out.
func (r *crlfReader) fill() {
	n, err := r.src.Read(r.buf[:])
	r.conv = r.conv[:0]
	for _, c := range r.buf[:n] {
		if c == '\n' && !r.lastCR {
			r.conv = append(r.conv, '\r')
		}
		r.conv = append(r.conv, c)
		r.lastCR = c == '\r'
	}
	r.out, r.err = r.conv, err
}

func (r *crlfReader) Close() error { return r.src.Close() }
