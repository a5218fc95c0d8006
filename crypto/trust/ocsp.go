package trust

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/asn1time"
	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// MaxOCSPSize caps an OCSP response.
const MaxOCSPSize = 1 << 20

const (
	maxOCSPSingles = 1024
	maxOCSPCerts   = 16
)

var oidOCSPBasic = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}

// Certificate status values of an OCSP SingleResponse.
const (
	OCSPGood    = "good"
	OCSPRevoked = "revoked"
	OCSPUnknown = "unknown"
)

// OCSPResponse is a parsed BasicOCSPResponse (RFC 6960).
type OCSPResponse struct {
	Raw                []byte // the BasicOCSPResponse DER
	RawTBS             []byte
	SignatureAlgorithm sigalg.AlgorithmIdentifier
	Signature          []byte
	// ResponderName (raw Name) or ResponderKeyHash (SHA-1 of the key) is set.
	ResponderName    []byte
	ResponderKeyHash []byte
	ProducedAt       time.Time
	Responses        []OCSPSingle
	Certificates     []*cert.Certificate
}

// OCSPSingle is one SingleResponse.
type OCSPSingle struct {
	HashAlgorithm  crypto.Hash
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	Serial         *big.Int
	Status         string
	RevocationTime time.Time
	Reason         int // -1 when absent
	ThisUpdate     time.Time
	NextUpdate     time.Time // zero if absent
}

// ParseOCSPResponse parses a complete OCSPResponse (as in PAdES DSS
// dictionaries); only successful basic responses are accepted.
func ParseOCSPResponse(der []byte) (*OCSPResponse, error) {
	if len(der) > MaxOCSPSize {
		return nil, fmt.Errorf("trust: OCSP response of %d bytes exceeds %d", len(der), MaxOCSPSize)
	}
	in := cryptobyte.String(der)
	var seq, rb, basic cryptobyte.String
	var status int
	var typ asn1.ObjectIdentifier
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() || !seq.ReadASN1Enum(&status) {
		return nil, errors.New("trust: parse OCSP response: malformed OCSPResponse")
	}
	if status != 0 {
		return nil, fmt.Errorf("trust: parse OCSP response: responseStatus %d is not successful", status)
	}
	if !seq.ReadASN1(&rb, cbasn1.Tag(0).Constructed().ContextSpecific()) || !seq.Empty() ||
		!rb.ReadASN1(&rb, cbasn1.SEQUENCE) || !rb.ReadASN1ObjectIdentifier(&typ) ||
		!rb.ReadASN1(&basic, cbasn1.OCTET_STRING) || !rb.Empty() {
		return nil, errors.New("trust: parse OCSP response: malformed responseBytes")
	}
	if !typ.Equal(oidOCSPBasic) {
		return nil, fmt.Errorf("trust: parse OCSP response: response type %s is not id-pkix-ocsp-basic", typ)
	}
	return ParseBasicOCSPResponse(basic)
}

// ParseBasicOCSPResponse parses a BasicOCSPResponse (as in CAdES
// revocation values).
func ParseBasicOCSPResponse(der []byte) (*OCSPResponse, error) {
	if len(der) > MaxOCSPSize {
		return nil, fmt.Errorf("trust: OCSP response of %d bytes exceeds %d", len(der), MaxOCSPSize)
	}
	r, err := parseBasic(bytes.Clone(der))
	if err != nil {
		return nil, fmt.Errorf("trust: parse OCSP response: %w", err)
	}
	return r, nil
}

func parseBasic(der []byte) (*OCSPResponse, error) {
	r := &OCSPResponse{Raw: der}
	in := cryptobyte.String(der)
	var seq, tbs cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() || !seq.ReadASN1Element(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed BasicOCSPResponse")
	}
	r.RawTBS = tbs
	if !sigalg.ReadAlgorithmIdentifier(&seq, &r.SignatureAlgorithm) || !seq.ReadASN1BitStringAsBytes(&r.Signature) {
		return nil, errors.New("malformed signature")
	}
	if seq.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var certs cryptobyte.String
		if !seq.ReadASN1(&certs, cbasn1.Tag(0).Constructed().ContextSpecific()) || !certs.ReadASN1(&certs, cbasn1.SEQUENCE) {
			return nil, errors.New("malformed certs")
		}
		for !certs.Empty() {
			var c cryptobyte.String
			if len(r.Certificates) >= maxOCSPCerts || !certs.ReadASN1Element(&c, cbasn1.SEQUENCE) {
				return nil, errors.New("malformed or too many certs")
			}
			pc, err := cert.Parse(c)
			if err != nil {
				return nil, fmt.Errorf("certificate %d: %w", len(r.Certificates)+1, err)
			}
			r.Certificates = append(r.Certificates, pc)
		}
	}
	if !seq.Empty() {
		return nil, errors.New("trailing data in BasicOCSPResponse")
	}
	if err := r.parseTBS(tbs); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *OCSPResponse) parseTBS(tbs cryptobyte.String) error {
	if !tbs.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return errors.New("malformed ResponseData")
	}
	if tbs.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var v cryptobyte.String
		var ver int
		if !tbs.ReadASN1(&v, cbasn1.Tag(0).Constructed().ContextSpecific()) || !v.ReadASN1Integer(&ver) || ver != 0 {
			return errors.New("unsupported ResponseData version")
		}
	}
	switch {
	case tbs.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()):
		var n, name cryptobyte.String
		if !tbs.ReadASN1(&n, cbasn1.Tag(1).Constructed().ContextSpecific()) || !n.ReadASN1Element(&name, cbasn1.SEQUENCE) || !n.Empty() {
			return errors.New("malformed responderID byName")
		}
		r.ResponderName = name
	case tbs.PeekASN1Tag(cbasn1.Tag(2).Constructed().ContextSpecific()):
		var k, hash cryptobyte.String
		if !tbs.ReadASN1(&k, cbasn1.Tag(2).Constructed().ContextSpecific()) || !k.ReadASN1(&hash, cbasn1.OCTET_STRING) || !k.Empty() {
			return errors.New("malformed responderID byKey")
		}
		r.ResponderKeyHash = hash
	default:
		return errors.New("missing responderID")
	}
	var err error
	if r.ProducedAt, err = readOCSPTime(&tbs); err != nil {
		return fmt.Errorf("producedAt: %w", err)
	}
	var singles cryptobyte.String
	if !tbs.ReadASN1(&singles, cbasn1.SEQUENCE) {
		return errors.New("malformed responses")
	}
	for !singles.Empty() {
		if len(r.Responses) >= maxOCSPSingles {
			return errors.New("too many responses")
		}
		s, err := parseSingle(&singles)
		if err != nil {
			return fmt.Errorf("response %d: %w", len(r.Responses)+1, err)
		}
		r.Responses = append(r.Responses, s)
	}
	// responseExtensions (nonce etc.) are not needed offline.
	tbs.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific())
	if !tbs.Empty() {
		return errors.New("trailing data in ResponseData")
	}
	return nil
}

func parseSingle(in *cryptobyte.String) (OCSPSingle, error) {
	s := OCSPSingle{Serial: new(big.Int), Reason: -1}
	var seq, certID cryptobyte.String
	var hashAlg sigalg.AlgorithmIdentifier
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&certID, cbasn1.SEQUENCE) ||
		!sigalg.ReadAlgorithmIdentifier(&certID, &hashAlg) ||
		!certID.ReadASN1Bytes(&s.IssuerNameHash, cbasn1.OCTET_STRING) ||
		!certID.ReadASN1Bytes(&s.IssuerKeyHash, cbasn1.OCTET_STRING) ||
		!certID.ReadASN1Integer(s.Serial) || !certID.Empty() {
		return s, errors.New("malformed CertID")
	}
	h, err := sigalg.DigestAlgorithm(hashAlg)
	if err != nil {
		return s, fmt.Errorf("CertID hash: %w", err)
	}
	s.HashAlgorithm = h
	var status cryptobyte.String
	var tag cbasn1.Tag
	if !seq.ReadAnyASN1(&status, &tag) {
		return s, errors.New("malformed certStatus")
	}
	switch tag {
	case cbasn1.Tag(0).ContextSpecific():
		s.Status = OCSPGood
	case cbasn1.Tag(1).Constructed().ContextSpecific():
		s.Status = OCSPRevoked
		if s.RevocationTime, err = readOCSPTime(&status); err != nil {
			return s, fmt.Errorf("revocationTime: %w", err)
		}
		if status.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
			var reason cryptobyte.String
			if !status.ReadASN1(&reason, cbasn1.Tag(0).Constructed().ContextSpecific()) || !reason.ReadASN1Enum(&s.Reason) {
				return s, errors.New("malformed revocationReason")
			}
		}
	case cbasn1.Tag(2).ContextSpecific():
		s.Status = OCSPUnknown
	default:
		return s, errors.New("unknown certStatus choice")
	}
	if s.ThisUpdate, err = readOCSPTime(&seq); err != nil {
		return s, fmt.Errorf("thisUpdate: %w", err)
	}
	if seq.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var nu cryptobyte.String
		if !seq.ReadASN1(&nu, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return s, errors.New("malformed nextUpdate")
		}
		if s.NextUpdate, err = readOCSPTime(&nu); err != nil || !nu.Empty() {
			return s, fmt.Errorf("malformed nextUpdate: %v", err)
		}
	}
	seq.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific())
	if !seq.Empty() {
		return s, errors.New("trailing data in SingleResponse")
	}
	return s, nil
}

// Find returns the SingleResponse about c issued by issuer.
func (r *OCSPResponse) Find(c, issuer *cert.Certificate) (OCSPSingle, bool) {
	for _, s := range r.Responses {
		if s.Serial.Cmp(c.SerialNumber) != 0 || !s.HashAlgorithm.Available() {
			continue
		}
		nh := s.HashAlgorithm.New()
		nh.Write(issuer.RawSubject)
		kh, err := keyHash(issuer, s.HashAlgorithm)
		if err != nil {
			continue
		}
		if bytes.Equal(nh.Sum(nil), s.IssuerNameHash) && bytes.Equal(kh, s.IssuerKeyHash) {
			return s, true
		}
	}
	return OCSPSingle{}, false
}

// keyHash hashes the subjectPublicKey BIT STRING contents, as CertID and
// ResponderID byKey do.
func keyHash(c *cert.Certificate, h crypto.Hash) ([]byte, error) {
	spki := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var seq cryptobyte.String
	var key []byte
	if !spki.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitStringAsBytes(&key) {
		return nil, errors.New("malformed subjectPublicKeyInfo")
	}
	hh := h.New()
	hh.Write(key)
	return hh.Sum(nil), nil
}

// CheckSignature verifies the response's signature: made by issuer itself,
// or by a delegated responder certificate from the response that issuer
// signed and that carries id-kp-OCSPSigning. It returns the signer.
func (r *OCSPResponse) CheckSignature(issuer *cert.Certificate) (*cert.Certificate, error) {
	alg, err := sigalg.ParseSignatureAlgorithm(r.SignatureAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("trust: OCSP signature algorithm: %w", err)
	}
	candidates := append([]*cert.Certificate{issuer}, r.Certificates...)
	var lastErr error = errors.New("trust: no OCSP responder certificate matches the responderID")
	for i, c := range candidates {
		if !r.responderIs(c) || c.PublicKey == nil {
			continue
		}
		if i > 0 && !c.Equal(issuer) {
			if err := delegatedResponderOK(c, issuer); err != nil {
				lastErr = err
				continue
			}
		}
		if err := alg.Verify(c.PublicKey, r.RawTBS, r.Signature); err != nil {
			lastErr = fmt.Errorf("trust: OCSP signature: %w", err)
			continue
		}
		return c, nil
	}
	return nil, lastErr
}

func (r *OCSPResponse) responderIs(c *cert.Certificate) bool {
	if r.ResponderName != nil {
		return cert.NameEqual(r.ResponderName, c.RawSubject)
	}
	kh, err := keyHash(c, crypto.SHA1)
	return err == nil && bytes.Equal(kh, r.ResponderKeyHash)
}

func delegatedResponderOK(responder, issuer *cert.Certificate) error {
	if !responder.HasExtKeyUsage(cert.OIDEKUOCSPSigning) {
		return errors.New("trust: delegated OCSP responder lacks id-kp-OCSPSigning")
	}
	if err := responder.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("trust: delegated OCSP responder not issued by the CA: %w", err)
	}
	return nil
}

// readOCSPTime reads an OCSP GeneralizedTime. RFC 6960 §4.2.2.1 points to
// the whole-second form of RFC 5280 §4.1.2.5.2; a fraction of a second is
// accepted all the same (as cryptobyte did before), because refusing a
// responder's otherwise valid answer over it would leave the revocation
// status indeterminate. Offsets and missing seconds are refused.
func readOCSPTime(s *cryptobyte.String) (time.Time, error) {
	return asn1time.ReadGeneralizedFraction(s)
}
