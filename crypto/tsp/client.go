package tsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// PKIStatus values of RFC 3161.
const (
	StatusGranted                = 0
	StatusGrantedWithMods        = 1
	StatusRejection              = 2
	StatusWaiting                = 3
	StatusRevocationWarning      = 4
	StatusRevocationNotification = 5
)

// Request is a TimeStampReq.
type Request struct {
	Hash          crypto.Hash
	HashedMessage []byte
	Policy        asn1.ObjectIdentifier // nil: TSA's default
	Nonce         *big.Int              // nil: no nonce
	CertReq       bool
}

// Marshal encodes the request in DER.
func (r *Request) Marshal() ([]byte, error) {
	oid := sigalg.DigestOID(r.Hash)
	if oid == nil || len(r.HashedMessage) != r.Hash.Size() {
		return nil, fmt.Errorf("tsp: request: digest of %d bytes for %v", len(r.HashedMessage), r.Hash)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oid)
				b.AddASN1NULL()
			})
			b.AddASN1OctetString(r.HashedMessage)
		})
		if r.Policy != nil {
			b.AddASN1ObjectIdentifier(r.Policy)
		}
		if r.Nonce != nil {
			b.AddASN1BigInt(r.Nonce)
		}
		if r.CertReq {
			b.AddASN1Boolean(true)
		}
	})
	return b.Bytes()
}

// ParseRequest parses a DER TimeStampReq (for TSA implementations and tests).
func ParseRequest(der []byte) (*Request, error) {
	s := cryptobyte.String(der)
	var seq, mi, hashed cryptobyte.String
	var version int64
	var ai sigalg.AlgorithmIdentifier
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() || !seq.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) || version != 1 ||
		!seq.ReadASN1(&mi, cbasn1.SEQUENCE) || !sigalg.ReadAlgorithmIdentifier(&mi, &ai) || !mi.ReadASN1(&hashed, cbasn1.OCTET_STRING) || !mi.Empty() {
		return nil, errors.New("tsp: malformed TimeStampReq")
	}
	h, err := sigalg.DigestAlgorithm(ai)
	if err != nil {
		return nil, fmt.Errorf("tsp: request: %w", err)
	}
	r := &Request{Hash: h, HashedMessage: hashed}
	if seq.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) && !seq.ReadASN1ObjectIdentifier(&r.Policy) {
		return nil, errors.New("tsp: malformed reqPolicy")
	}
	if seq.PeekASN1Tag(cbasn1.INTEGER) {
		r.Nonce = new(big.Int)
		if !seq.ReadASN1Integer(r.Nonce) {
			return nil, errors.New("tsp: malformed nonce")
		}
	}
	if seq.PeekASN1Tag(cbasn1.BOOLEAN) && !seq.ReadASN1Boolean(&r.CertReq) {
		return nil, errors.New("tsp: malformed certReq")
	}
	if !seq.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || !seq.Empty() {
		return nil, errors.New("tsp: malformed TimeStampReq")
	}
	return r, nil
}

// Response is a parsed TimeStampResp.
type Response struct {
	Status        int
	StatusStrings []string
	// FailInfo is the PKIFailureInfo bit string, nil when absent.
	FailInfo []byte
	// Token is set when the TSA granted the request.
	Token *Token
}

// ParseResponse parses a TimeStampResp.
func ParseResponse(data []byte) (*Response, error) {
	if len(data) > MaxTokenSize {
		return nil, fmt.Errorf("tsp: response of %d bytes exceeds %d", len(data), MaxTokenSize)
	}
	der, err := cms.NormalizeBER(data)
	if err != nil {
		return nil, fmt.Errorf("tsp: response: %w", err)
	}
	s := cryptobyte.String(der)
	var seq, status cryptobyte.String
	var st int64
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() || !seq.ReadASN1(&status, cbasn1.SEQUENCE) ||
		!status.ReadASN1Int64WithTag(&st, cbasn1.INTEGER) {
		return nil, errors.New("tsp: malformed TimeStampResp")
	}
	resp := &Response{Status: int(st)}
	if status.PeekASN1Tag(cbasn1.SEQUENCE) {
		var texts cryptobyte.String
		if !status.ReadASN1(&texts, cbasn1.SEQUENCE) {
			return nil, errors.New("tsp: malformed statusString")
		}
		for !texts.Empty() {
			var t cryptobyte.String
			if !texts.ReadASN1(&t, cbasn1.UTF8String) {
				return nil, errors.New("tsp: malformed statusString")
			}
			resp.StatusStrings = append(resp.StatusStrings, string(t))
		}
	}
	if status.PeekASN1Tag(cbasn1.BIT_STRING) {
		var bits asn1.BitString
		if !status.ReadASN1BitString(&bits) {
			return nil, errors.New("tsp: malformed failInfo")
		}
		resp.FailInfo = bits.Bytes
	}
	if !status.Empty() {
		return nil, errors.New("tsp: malformed PKIStatusInfo")
	}
	if !seq.Empty() {
		var tok cryptobyte.String
		if !seq.ReadASN1Element(&tok, cbasn1.SEQUENCE) || !seq.Empty() {
			return nil, errors.New("tsp: malformed timeStampToken")
		}
		t, err := ParseToken(tok)
		if err != nil {
			return nil, err
		}
		resp.Token = t
	}
	if (resp.Status == StatusGranted || resp.Status == StatusGrantedWithMods) != (resp.Token != nil) {
		return nil, fmt.Errorf("tsp: status %d with token present=%v", resp.Status, resp.Token != nil)
	}
	return resp, nil
}

// TSA is one time-stamping authority.
type TSA struct {
	Name string
	URL  string
	// Policy, if set, is requested and must be echoed.
	Policy asn1.ObjectIdentifier
}

// Client obtains timestamps from a list of TSAs, retrying each and falling
// back to the next.
type Client struct {
	TSAs []TSA
	// HTTP is used for requests; nil means a client with a 30 s timeout.
	HTTP *http.Client
	// Attempts per TSA (default 2) and the pause between them (default 1 s).
	Attempts   int
	RetryDelay time.Duration
	// MaxResponseSize caps the response body (default 64 KiB).
	MaxResponseSize int64
	Logger          *slog.Logger
}

// Stamp is a verified timestamp obtained from a TSA.
type Stamp struct {
	TSA   string // name or URL of the TSA that answered
	Token *Token
	// Raw is the token (ContentInfo) as received, to be stored.
	Raw    []byte
	Result *Result
}

// Timestamp obtains a token over a SHA-256 digest.
func (c *Client) Timestamp(ctx context.Context, digest []byte) (*Stamp, error) {
	if len(digest) != crypto.SHA256.Size() {
		return nil, fmt.Errorf("tsp: digest has %d bytes, want SHA-256", len(digest))
	}
	if len(c.TSAs) == 0 {
		return nil, errors.New("tsp: no TSA configured")
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 2
	}
	delay := c.RetryDelay
	if delay == 0 {
		delay = time.Second
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for _, tsa := range c.TSAs {
		name := tsa.Name
		if name == "" {
			name = tsa.URL
		}
		for i := 0; i < attempts; i++ {
			if i > 0 {
				select {
				case <-ctx.Done():
					return nil, errors.Join(append(errs, ctx.Err())...)
				case <-time.After(delay):
				}
			}
			st, err := c.once(ctx, tsa, digest)
			if err == nil {
				st.TSA = name
				log.Info("timestamp obtained", "tsa", name, "genTime", st.Token.Info.GenTime, "serial", st.Token.Info.SerialNumber)
				return st, nil
			}
			log.Warn("timestamp request failed", "tsa", name, "attempt", i+1, "err", err)
			errs = append(errs, fmt.Errorf("%s attempt %d: %w", name, i+1, err))
			if ctx.Err() != nil {
				return nil, errors.Join(errs...)
			}
		}
	}
	return nil, fmt.Errorf("tsp: no TSA issued a timestamp: %w", errors.Join(errs...))
}

func (c *Client) once(ctx context.Context, tsa TSA, digest []byte) (*Stamp, error) {
	nonceBytes := make([]byte, 16)
	if _, err := rand.Read(nonceBytes); err != nil {
		return nil, err
	}
	req := &Request{Hash: crypto.SHA256, HashedMessage: digest, Policy: tsa.Policy,
		Nonce: new(big.Int).SetBytes(nonceBytes), CertReq: true}
	body, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, tsa.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/timestamp-query")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	hresp, err := hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", hresp.Status)
	}
	limit := c.MaxResponseSize
	if limit <= 0 {
		limit = 64 << 10
	}
	data, err := io.ReadAll(io.LimitReader(hresp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("response exceeds %d bytes", limit)
	}
	resp, err := ParseResponse(data)
	if err != nil {
		return nil, err
	}
	if resp.Token == nil {
		return nil, fmt.Errorf("TSA refused: status %d %v", resp.Status, resp.StatusStrings)
	}
	info := resp.Token.Info
	switch {
	case info.Nonce == nil || info.Nonce.Cmp(req.Nonce) != 0:
		return nil, errors.New("nonce in the token does not match the request")
	case info.Hash != crypto.SHA256 || !bytes.Equal(info.HashedMessage, digest):
		return nil, errors.New("message imprint in the token does not match the request")
	case tsa.Policy != nil && !info.Policy.Equal(tsa.Policy):
		return nil, fmt.Errorf("policy %s, requested %s", info.Policy, tsa.Policy)
	}
	res := resp.Token.Verify(VerifyOptions{Digest: digest})
	if !res.Valid {
		return nil, fmt.Errorf("token does not verify: %v", failedChecks(res))
	}
	return &Stamp{Token: resp.Token, Raw: resp.Token.Raw, Result: res}, nil
}

func failedChecks(r *Result) []string {
	var out []string
	for _, c := range r.Checks {
		if c.Outcome != cms.Passed {
			out = append(out, fmt.Sprintf("%s %s: %s", c.ID, c.Outcome, c.Detail))
		}
	}
	return out
}
