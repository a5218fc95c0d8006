// Package tsa is an RFC 3161 time-stamping authority: an http.Handler that
// answers application/timestamp-query requests with signed TimeStampResps,
// and an in-process Stamp for callers that hold the server.
//
// It issues tokens with the policy of its configuration, serial numbers
// that stay unique and increasing across restarts (SerialFile), the
// request's nonce echoed, the TSA certificate included when certReq asks
// for it, and an ESSCertIDv2 (RFC 5816) binding the token to that
// certificate. Requests are parsed by tsp.ParseRequest after a size cap;
// what it cannot serve it refuses with the PKIStatus and PKIFailureInfo
// RFC 3161 section 2.4.2 names.
package tsa

import (
	"context"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// MaxRequestSize caps a TimeStampReq; one with a SHA-512 imprint, a policy,
// a nonce and a few extensions is a few hundred bytes.
const MaxRequestSize = 16 << 10

// OIDKPTimeStamping is id-kp-timeStamping, the extended key usage a TSA
// certificate must carry as its only, critical, EKU (RFC 3161 section 2.3).
var OIDKPTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

// PKIFailureInfo bits (RFC 3161 section 2.4.2).
const (
	FailBadAlg              = 0
	FailBadRequest          = 2
	FailBadDataFormat       = 5
	FailTimeNotAvailable    = 14
	FailUnacceptedPolicy    = 15
	FailUnacceptedExtension = 16
	FailSystemFailure       = 25
)

// acceptedHashes are the imprint algorithms served. SHA-1 and the like are
// refused (badAlg): a token over a weak digest proves little.
var acceptedHashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512,
	crypto.SHA3_256, crypto.SHA3_384, crypto.SHA3_512}

// Serials hands out serial numbers. Next must never return the same number
// twice for one TSA, also across restarts.
type Serials interface {
	Next(ctx context.Context) (*big.Int, error)
}

// Config configures a Server.
type Config struct {
	// Signer is the TSA's key (a file key or a PKCS#11 key).
	Signer crypto.Signer
	// Certificates are DER: the TSA certificate first (with the critical
	// timeStamping EKU), then its chain, all included when certReq is set.
	Certificates [][]byte
	// CRLs (DER) go into tokens with the certificates, so that the TSA
	// certificate's status can be checked offline.
	CRLs [][]byte
	// Policy is the TSA policy OID put in every TSTInfo; a request asking
	// for another policy is refused (unacceptedPolicy).
	Policy asn1.ObjectIdentifier
	// Serials issues serial numbers, for example a SerialFile.
	Serials Serials
	// Hash is the digest of the token's signature; default SHA-256.
	Hash crypto.Hash
	// Accuracy, when not zero, is stated in the TSTInfo (to milliseconds).
	Accuracy time.Duration
	// Clock gives genTime; default time.Now.
	Clock func() time.Time
	// Logger receives one line per request; default discards.
	Logger *slog.Logger
}

// Server is a time-stamping authority.
type Server struct {
	cfg  Config
	cert *cert.Certificate
	// mu orders serial issuance and genTime, so that a later serial never
	// carries an earlier time.
	mu sync.Mutex
}

// New checks the configuration and returns the server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Signer == nil:
		return nil, errors.New("tsa: no signer")
	case len(cfg.Certificates) == 0:
		return nil, errors.New("tsa: no TSA certificate")
	case len(cfg.Policy) == 0:
		return nil, errors.New("tsa: no policy OID")
	case cfg.Serials == nil:
		return nil, errors.New("tsa: no serial number source")
	}
	c, err := cert.Parse(cfg.Certificates[0])
	if err != nil {
		return nil, fmt.Errorf("tsa: TSA certificate: %w", err)
	}
	if !c.ExtKeyUsageCritical || len(c.ExtKeyUsage) != 1 || !c.ExtKeyUsage[0].Equal(OIDKPTimeStamping) {
		return nil, errors.New("tsa: the TSA certificate must have timeStamping as its only, critical, extended key usage (RFC 3161 section 2.3)")
	}
	if cfg.Hash == 0 {
		cfg.Hash = crypto.SHA256
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, cert: c}
	// A signature now catches a key that does not fit the certificate at
	// start, not at the first request.
	if _, err := s.token(context.Background(), crypto.SHA256, make([]byte, 32), nil, false, big.NewInt(0), cfg.Clock()); err != nil {
		return nil, fmt.Errorf("tsa: test signature: %w", err)
	}
	return s, nil
}

// Certificate returns the TSA certificate.
func (s *Server) Certificate() *cert.Certificate { return s.cert }

// RequestError is a refusal with its PKIFailureInfo bit.
type RequestError struct {
	FailInfo int
	Text     string
}

func (e *RequestError) Error() string { return "tsa: " + e.Text }

// Stamp issues a token over digest (made with h) for an in-process caller:
// the DER TimeStampToken with the certificates included.
func (s *Server) Stamp(ctx context.Context, h crypto.Hash, digest []byte) ([]byte, error) {
	return s.issue(ctx, &tsp.Request{Hash: h, HashedMessage: digest, CertReq: true})
}

// Respond answers a DER TimeStampReq with a DER TimeStampResp: a token, or
// a rejection saying why.
func (s *Server) Respond(ctx context.Context, der []byte) []byte {
	if len(der) > MaxRequestSize {
		return rejection(FailBadRequest, fmt.Sprintf("request of %d bytes exceeds %d", len(der), MaxRequestSize))
	}
	req, err := tsp.ParseRequest(der)
	if err != nil {
		if errors.Is(err, sigalg.ErrUnsupported) {
			return rejection(FailBadAlg, "unsupported hash algorithm")
		}
		return rejection(FailBadDataFormat, "malformed TimeStampReq")
	}
	if hasExtensions(der) {
		return rejection(FailUnacceptedExtension, "request extensions are not supported")
	}
	tok, err := s.issue(ctx, req)
	var re *RequestError
	switch {
	case errors.As(err, &re):
		return rejection(re.FailInfo, re.Text)
	case err != nil:
		s.cfg.Logger.Error("timestamp not issued", "err", err)
		return rejection(FailSystemFailure, "the TSA could not issue a token")
	}
	return granted(tok)
}

func (s *Server) issue(ctx context.Context, req *tsp.Request) ([]byte, error) {
	if !slices.Contains(acceptedHashes, req.Hash) {
		return nil, &RequestError{FailBadAlg, "hash algorithm " + sigalg.HashName(req.Hash) + " is not accepted"}
	}
	if len(req.HashedMessage) != req.Hash.Size() {
		return nil, &RequestError{FailBadDataFormat, fmt.Sprintf("imprint of %d bytes for %s", len(req.HashedMessage), sigalg.HashName(req.Hash))}
	}
	if req.Policy != nil && !req.Policy.Equal(s.cfg.Policy) {
		return nil, &RequestError{FailUnacceptedPolicy, "policy " + req.Policy.String() + " is not offered"}
	}
	s.mu.Lock()
	serial, err := s.cfg.Serials.Next(ctx)
	genTime := s.cfg.Clock()
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	tok, err := s.token(ctx, req.Hash, req.HashedMessage, req.Nonce, !req.CertReq, serial, genTime)
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.Info("timestamp issued", "serial", serial, "genTime", genTime.UTC(), "hash", sigalg.HashName(req.Hash))
	return tok, nil
}

func (s *Server) token(ctx context.Context, h crypto.Hash, digest []byte, nonce *big.Int, omitCerts bool, serial *big.Int, genTime time.Time) ([]byte, error) {
	info, err := s.tstInfo(h, digest, nonce, serial, genTime)
	if err != nil {
		return nil, err
	}
	tok, err := cms.Sign(ctx, info, cms.SignOptions{
		Signer: s.cfg.Signer, Certificates: s.cfg.Certificates, CRLs: s.cfg.CRLs, OmitCertificates: omitCerts,
		Hash: s.cfg.Hash, ContentType: cms.OIDTSTInfo, SigningTime: genTime,
	})
	if err != nil {
		return nil, fmt.Errorf("sign token: %w", err)
	}
	return tok, nil
}

// tstInfo encodes the TSTInfo (RFC 3161 section 2.4.2) in DER.
func (s *Server) tstInfo(h crypto.Hash, digest []byte, nonce, serial *big.Int, genTime time.Time) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(s.cfg.Policy)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(sigalg.DigestOID(h))
				b.AddASN1NULL()
			})
			b.AddASN1OctetString(digest)
		})
		b.AddASN1BigInt(serial)
		b.AddASN1(cbasn1.GeneralizedTime, func(b *cryptobyte.Builder) {
			b.AddBytes([]byte(generalizedTime(genTime)))
		})
		if acc := s.cfg.Accuracy; acc > 0 {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if sec := int64(acc / time.Second); sec > 0 {
					b.AddASN1Int64(sec)
				}
				if ms := int64(acc%time.Second) / int64(time.Millisecond); ms > 0 {
					b.AddASN1Int64WithTag(ms, cbasn1.Tag(0).ContextSpecific())
				}
			})
		}
		// ordering DEFAULT FALSE is omitted, as DER requires.
		if nonce != nil {
			b.AddASN1BigInt(nonce)
		}
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(4).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddBytes(s.cert.RawSubject)
			})
		})
	})
	return b.Bytes()
}

// generalizedTime formats t in UTC to milliseconds, trailing zeros of the
// fraction dropped as DER requires (X.690 section 11.7).
func generalizedTime(t time.Time) string {
	t = t.UTC().Truncate(time.Millisecond)
	out := t.Format("20060102150405")
	if ms := t.Nanosecond() / int(time.Millisecond); ms > 0 {
		out += "." + strings.TrimRight(fmt.Sprintf("%03d", ms), "0")
	}
	return out + "Z"
}

// hasExtensions reports whether a well-formed request carries extensions,
// the [0] after the optional fields.
func hasExtensions(der []byte) bool {
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return false
	}
	for !seq.Empty() {
		var tag cbasn1.Tag
		var el cryptobyte.String
		if !seq.ReadAnyASN1Element(&el, &tag) {
			return false
		}
		if tag == cbasn1.Tag(0).Constructed().ContextSpecific() {
			return true
		}
	}
	return false
}

func granted(token []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(tsp.StatusGranted) })
		b.AddBytes(token)
	})
	return b.BytesOrPanic()
}

func rejection(failBit int, text string) []byte {
	bits := make([]byte, failBit/8+1)
	bits[failBit/8] = 0x80 >> (failBit % 8)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(tsp.StatusRejection)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(text)) })
			})
			b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
				b.AddUint8(uint8(7 - failBit%8)) // unused bits: trailing zeros are dropped in DER
				b.AddBytes(bits)
			})
		})
	})
	return b.BytesOrPanic()
}

// ServeHTTP answers POSTed application/timestamp-query bodies (RFC 3161
// section 3.4).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a TimeStampReq", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/timestamp-query" {
		http.Error(w, "Content-Type must be application/timestamp-query", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestSize+1))
	if err != nil {
		http.Error(w, "reading the request failed", http.StatusBadRequest)
		return
	}
	resp := s.Respond(r.Context(), body)
	w.Header().Set("Content-Type", "application/timestamp-reply")
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	_, _ = w.Write(resp)
}
