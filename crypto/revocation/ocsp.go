package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	_ "crypto/sha1" // CertID hash, RFC 6960 4.1.1
	_ "crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
)

// nonceLength is what RFC 8954 section 2.1 recommends (and the most it allows).
const nonceLength = 32

// maxGETRequest is the encoded request size below which GET may be used
// (RFC 5019 section 5).
const maxGETRequest = 255

var (
	oidNonce  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
)

// ErrNonce is wrapped when a responder answers with a nonce other than the
// one sent (a replayed or misdirected response).
var ErrNonce = errors.New("revocation: OCSP nonce mismatch")

// ErrResponder is wrapped when the response is not signed by the CA or by a
// responder the CA authorised.
var ErrResponder = errors.New("revocation: OCSP responder not authorised")

// ErrStale is wrapped when fetched data is not fresh at fetch time.
var ErrStale = errors.New("revocation: data not fresh")

// Request is an OCSP request for one certificate.
type Request struct {
	DER   []byte
	Nonce []byte
	Hash  crypto.Hash
}

// NewRequest builds an unsigned OCSPRequest (RFC 6960 4.1.1) for c issued
// by issuer with a CertID hashed with h (SHA-1 or SHA-256) and, when nonce
// is not empty, a nonce extension (RFC 8954).
func NewRequest(c, issuer *cert.Certificate, h crypto.Hash, nonce []byte) (*Request, error) {
	var oid asn1.ObjectIdentifier
	switch h {
	case crypto.SHA1:
		oid = oidSHA1
	case crypto.SHA256:
		oid = oidSHA256
	default:
		return nil, fmt.Errorf("revocation: CertID hash %v not supported", h)
	}
	if len(nonce) > nonceLength {
		return nil, fmt.Errorf("revocation: nonce of %d bytes exceeds %d (RFC 8954)", len(nonce), nonceLength)
	}
	key, err := subjectPublicKey(issuer)
	if err != nil {
		return nil, err
	}
	nameHash, keyHash := digest(h, issuer.RawSubject), digest(h, key)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(req *cryptobyte.Builder) { // OCSPRequest
		req.AddASN1(cbasn1.SEQUENCE, func(tbs *cryptobyte.Builder) { // TBSRequest
			tbs.AddASN1(cbasn1.SEQUENCE, func(list *cryptobyte.Builder) { // requestList
				list.AddASN1(cbasn1.SEQUENCE, func(one *cryptobyte.Builder) { // Request
					one.AddASN1(cbasn1.SEQUENCE, func(id *cryptobyte.Builder) { // CertID
						id.AddASN1(cbasn1.SEQUENCE, func(alg *cryptobyte.Builder) {
							alg.AddASN1ObjectIdentifier(oid)
							alg.AddASN1NULL()
						})
						id.AddASN1OctetString(nameHash)
						id.AddASN1OctetString(keyHash)
						id.AddASN1BigInt(c.SerialNumber)
					})
				})
			})
			if len(nonce) > 0 {
				tbs.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(x *cryptobyte.Builder) {
					x.AddASN1(cbasn1.SEQUENCE, func(exts *cryptobyte.Builder) {
						exts.AddASN1(cbasn1.SEQUENCE, func(ext *cryptobyte.Builder) {
							ext.AddASN1ObjectIdentifier(oidNonce)
							ext.AddASN1(cbasn1.OCTET_STRING, func(v *cryptobyte.Builder) {
								v.AddASN1OctetString(nonce)
							})
						})
					})
				})
			}
		})
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("revocation: encode OCSP request: %w", err)
	}
	return &Request{DER: der, Nonce: bytes.Clone(nonce), Hash: h}, nil
}

func digest(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// subjectPublicKey returns the subjectPublicKey BIT STRING contents, which
// CertID's issuerKeyHash hashes.
func subjectPublicKey(c *cert.Certificate) ([]byte, error) {
	spki := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var seq cryptobyte.String
	var key []byte
	if !spki.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitStringAsBytes(&key) {
		return nil, errors.New("revocation: issuer certificate has a malformed subjectPublicKeyInfo")
	}
	return key, nil
}

func (c *Client) hash() crypto.Hash {
	if strings.EqualFold(c.cfg.OCSPHash, "sha256") {
		return crypto.SHA256
	}
	return crypto.SHA1
}

func (c *Client) nonce() ([]byte, error) {
	r := c.random
	if r == nil {
		r = rand.Reader
	}
	n := make([]byte, nonceLength)
	if _, err := io.ReadFull(r, n); err != nil {
		return nil, fmt.Errorf("revocation: nonce: %w", err)
	}
	return n, nil
}

// OCSP asks the responder at responderURL about leaf and checks the answer
// (see CheckOCSP). The evidence is returned whenever a response was
// received, also when it was refused, so the report can show it.
func (c *Client) OCSP(ctx context.Context, responderURL string, leaf, issuer *cert.Certificate) (*trust.OCSPResponse, *trust.FetchedEvidence, error) {
	u, err := httpURL(responderURL)
	if err != nil {
		return nil, nil, fmt.Errorf("revocation: OCSP: %w", err)
	}
	nonce, err := c.nonce()
	if err != nil {
		return nil, nil, err
	}
	req, err := NewRequest(leaf, issuer, c.hash(), nonce)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	hr, err := c.ocspHTTPRequest(ctx, u, req.DER)
	if err != nil {
		return nil, nil, fmt.Errorf("revocation: OCSP %s: %w", responderURL, err)
	}
	start := c.now()
	body, err := c.do(ctx, hr, c.cfg.MaxOCSPBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("revocation: OCSP %s: %w", responderURL, err)
	}
	ev := &trust.FetchedEvidence{Kind: trust.EvidenceOCSP, Subject: subjectName(leaf), URL: responderURL, FetchedAt: start.UTC(), DER: body}
	r, notes, err := CheckOCSP(body, req, leaf, issuer, c.policy(start))
	ev.Notes = notes
	if err != nil {
		c.log.WarnContext(ctx, "OCSP response refused", "url", responderURL, "subject", ev.Subject, "err", err)
		return nil, ev, fmt.Errorf("revocation: OCSP %s: %w", responderURL, err)
	}
	c.log.DebugContext(ctx, "OCSP response", "url", responderURL, "subject", ev.Subject, "status", r.Responses[0].Status)
	return r, ev, nil
}

func (c *Client) ocspHTTPRequest(ctx context.Context, u *url.URL, der []byte) (*http.Request, error) {
	if c.cfg.OCSPGet && len(der) < maxGETRequest {
		// RFC 6960 A.1: the base64 is URL-encoded as one path segment.
		enc := url.PathEscape(base64.StdEncoding.EncodeToString(der))
		target := strings.TrimSuffix(u.String(), "/") + "/" + enc
		return http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(der))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	hr.Header.Set("Accept", "application/ocsp-response")
	return hr, nil
}

// Policy is what CheckOCSP and CheckCRL require of fetched data.
type Policy struct {
	// Now is the fetch time.
	Now          time.Time
	MaxAge       time.Duration
	ClockSkew    time.Duration
	RequireNonce bool
}

func (c *Client) policy(now time.Time) Policy {
	return Policy{Now: now, MaxAge: c.cfg.MaxAge, ClockSkew: c.cfg.ClockSkew, RequireNonce: c.cfg.RequireNonce}
}

// CheckOCSP parses an OCSPResponse received for req and checks it: a
// successful basic response with a SingleResponse for leaf, signed by
// issuer or by a delegated responder that issuer issued with
// id-kp-OCSPSigning and that is valid now, the request's nonce echoed (or
// noted as missing), and fresh at p.Now. The notes record what was
// accepted with a remark.
func CheckOCSP(body []byte, req *Request, leaf, issuer *cert.Certificate, p Policy) (*trust.OCSPResponse, []string, error) {
	if status, err := ResponseStatus(body); err != nil {
		return nil, nil, err
	} else if status != 0 {
		return nil, nil, fmt.Errorf("responder answered %s", statusName(status))
	}
	r, err := trust.ParseOCSPResponse(body)
	if err != nil {
		return nil, nil, err
	}
	single, ok := r.Find(leaf, issuer)
	if !ok {
		return nil, nil, errors.New("response has no status for the certificate asked about")
	}
	signer, err := r.CheckSignature(issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrResponder, err)
	}
	var notes []string
	if !signer.Equal(issuer) {
		n, err := checkDelegated(signer, issuer, p.Now)
		if err != nil {
			return nil, nil, err
		}
		notes = append(notes, n)
	}
	n, err := checkNonce(r, req.Nonce, p.RequireNonce)
	if err != nil {
		return nil, nil, err
	}
	if n != "" {
		notes = append(notes, n)
	}
	if err := fresh(p, r.ProducedAt, single.ThisUpdate, single.NextUpdate); err != nil {
		return nil, notes, err
	}
	// Keep only the answer asked for: trust evaluates every SingleResponse
	// it finds for the certificate, and a responder may add others.
	r.Responses = []trust.OCSPSingle{single}
	return r, notes, nil
}

// checkDelegated applies RFC 6960 4.2.2.2 beyond what trust already checks
// (signature by the CA, id-kp-OCSPSigning): issued directly by the CA by
// name, valid at the fetch time; id-pkix-ocsp-nocheck is noted.
func checkDelegated(signer, issuer *cert.Certificate, now time.Time) (string, error) {
	name := subjectName(signer)
	if !cert.NameEqual(signer.RawIssuer, issuer.RawSubject) {
		return "", fmt.Errorf("%w: delegated responder %s not issued by %s", ErrResponder, name, subjectName(issuer))
	}
	if !signer.ValidAt(now) {
		return "", fmt.Errorf("%w: delegated responder %s not valid at %s (valid %s to %s)", ErrResponder, name,
			now.UTC().Format(time.RFC3339), signer.NotBefore.Format(time.RFC3339), signer.NotAfter.Format(time.RFC3339))
	}
	if _, ok := signer.Extension(cert.OIDExtOCSPNoCheck); ok {
		return "delegated responder " + name + " carries id-pkix-ocsp-nocheck: its own revocation is not checked", nil
	}
	return "delegated responder " + name + " has no id-pkix-ocsp-nocheck; its own revocation status was not fetched", nil
}

func checkNonce(r *trust.OCSPResponse, sent []byte, required bool) (string, error) {
	if len(sent) == 0 {
		return "", nil
	}
	got, present, err := ResponseNonce(r.RawTBS)
	if err != nil {
		return "", err
	}
	switch {
	case !present && required:
		return "", fmt.Errorf("%w: responder did not echo the nonce", ErrNonce)
	case !present:
		return "responder did not echo the nonce (pre-produced response)", nil
	case !bytes.Equal(got, sent):
		return "", fmt.Errorf("%w: sent %x, received %x", ErrNonce, sent, got)
	}
	return "", nil
}

// fresh checks RFC 6960 4.2.2.1 timing at the fetch time: nothing from the
// future, nextUpdate not passed, and without nextUpdate not older than MaxAge.
func fresh(p Policy, produced, this, next time.Time) error {
	late := p.Now.Add(p.ClockSkew)
	if produced.After(late) || this.After(late) {
		return fmt.Errorf("%w: thisUpdate %s or producedAt %s is in the future", ErrStale, this.Format(time.RFC3339), produced.Format(time.RFC3339))
	}
	if !next.IsZero() {
		if next.Add(p.ClockSkew).Before(p.Now) {
			return fmt.Errorf("%w: nextUpdate %s has passed", ErrStale, next.Format(time.RFC3339))
		}
		return nil
	}
	if p.Now.Sub(this) > p.MaxAge+p.ClockSkew {
		return fmt.Errorf("%w: thisUpdate %s is older than %s and there is no nextUpdate", ErrStale, this.Format(time.RFC3339), p.MaxAge)
	}
	return nil
}

func statusName(s int) string {
	switch s {
	case 1:
		return "malformedRequest"
	case 2:
		return "internalError"
	case 3:
		return "tryLater"
	case 5:
		return "sigRequired"
	case 6:
		return "unauthorized"
	}
	return fmt.Sprintf("responseStatus %d", s)
}

func subjectName(c *cert.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}
