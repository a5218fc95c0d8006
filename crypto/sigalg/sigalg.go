package sigalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	_ "crypto/sha1" // registers SHA-1 for legacy signatures
	_ "crypto/sha256"
	_ "crypto/sha3"
	_ "crypto/sha512"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrUnsupported is wrapped by every error about an algorithm, curve or
// parameter set that is recognised as valid ASN.1 but unsupported here.
var ErrUnsupported = errors.New("unsupported algorithm")

// ErrSignature is wrapped when a well-formed signature does not verify:
// the cryptographic failure (SIG_CRYPTO_FAILURE) as opposed to a format problem.
var ErrSignature = errors.New("signature does not verify")

// UnsupportedError names what is not supported, so that a report can show it.
type UnsupportedError struct {
	What string                // "signature algorithm", "digest algorithm", "curve", ...
	OID  asn1.ObjectIdentifier // may be nil
	Name string                // known name, if any
}

func (e *UnsupportedError) Error() string {
	s := "unsupported " + e.What
	if e.Name != "" {
		s += " " + e.Name
	}
	if e.OID != nil {
		s += " (" + e.OID.String() + ")"
	}
	return s
}

// Unwrap lets errors.Is(err, ErrUnsupported) match.
func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

// AlgorithmIdentifier is an X.509 AlgorithmIdentifier with its parameters kept raw.
type AlgorithmIdentifier struct {
	OID asn1.ObjectIdentifier
	// Parameters is the complete DER element of the parameters (tag and
	// length included), nil when absent.
	Parameters []byte
}

// HasNullOrNoParameters reports whether the parameters are absent or NULL.
func (a AlgorithmIdentifier) HasNullOrNoParameters() bool {
	return len(a.Parameters) == 0 || (len(a.Parameters) == 2 && a.Parameters[0] == 5 && a.Parameters[1] == 0)
}

// ReadAlgorithmIdentifier reads a DER AlgorithmIdentifier SEQUENCE from s.
func ReadAlgorithmIdentifier(s *cryptobyte.String, out *AlgorithmIdentifier) bool {
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return false
	}
	var oid asn1.ObjectIdentifier
	if !seq.ReadASN1ObjectIdentifier(&oid) {
		return false
	}
	var params []byte
	if !seq.Empty() {
		var p cryptobyte.String
		if !seq.ReadAnyASN1Element(&p, nil) || !seq.Empty() {
			return false
		}
		params = p
	}
	*out = AlgorithmIdentifier{OID: oid, Parameters: params}
	return true
}

// ParseAlgorithmIdentifier parses one DER AlgorithmIdentifier.
func ParseAlgorithmIdentifier(der []byte) (AlgorithmIdentifier, error) {
	s := cryptobyte.String(der)
	var ai AlgorithmIdentifier
	if !ReadAlgorithmIdentifier(&s, &ai) || !s.Empty() {
		return ai, errors.New("sigalg: malformed AlgorithmIdentifier")
	}
	return ai, nil
}

// DigestAlgorithm maps a digest AlgorithmIdentifier to a hash.
func DigestAlgorithm(ai AlgorithmIdentifier) (crypto.Hash, error) {
	for _, d := range digests {
		if d.oid.Equal(ai.OID) {
			if d.hash == 0 || !d.hash.Available() {
				return 0, &UnsupportedError{What: "digest algorithm", OID: ai.OID, Name: d.name}
			}
			if !ai.HasNullOrNoParameters() {
				return 0, fmt.Errorf("sigalg: digest algorithm %s with unexpected parameters", d.name)
			}
			return d.hash, nil
		}
	}
	return 0, &UnsupportedError{What: "digest algorithm", OID: ai.OID}
}

// DigestOID returns the object identifier of a hash, nil if we have none.
func DigestOID(h crypto.Hash) asn1.ObjectIdentifier {
	for _, d := range digests {
		if d.hash == h && h != 0 {
			return d.oid
		}
	}
	return nil
}

// HashName returns the name used in reports for h ("SHA-256", "SHA3-256").
func HashName(h crypto.Hash) string {
	for _, d := range digests {
		if d.hash == h && h != 0 {
			return d.name
		}
	}
	return h.String()
}

// PSSParams are the RSASSA-PSS-params of RFC 4055.
type PSSParams struct {
	Hash       crypto.Hash
	MGF1Hash   crypto.Hash
	SaltLength int
	Trailer    int
}

// Algorithm is a parsed signature algorithm.
type Algorithm struct {
	Identifier AlgorithmIdentifier
	Scheme     Scheme
	// Hash is the digest the signature scheme uses. It is 0 when the
	// identifier names only the key type (rsaEncryption, id-ecPublicKey,
	// which CMS permits); then call WithHash with the digest algorithm.
	Hash crypto.Hash
	PSS  *PSSParams // for SchemeRSAPSS
}

// Name returns a DSS-like name such as "SHA256withRSA", "SHA3-256withRSAandMGF1"
// or "SHA256withPLAIN-ECDSA".
func (a Algorithm) Name() string {
	h := "?"
	if a.Hash != 0 {
		h = HashName(a.Hash)
	}
	switch a.Scheme {
	case SchemeRSAPSS:
		return h + "withRSAandMGF1"
	case SchemeEd25519:
		return "Ed25519"
	}
	return h + "with" + a.Scheme.String()
}

// WithHash returns a with the digest set when the identifier did not name one.
// For an identifier that names its own digest, a is returned unchanged.
func (a Algorithm) WithHash(h crypto.Hash) Algorithm {
	if a.Hash == 0 && a.Scheme != SchemeEd25519 && a.Scheme != SchemeRSAPSS {
		a.Hash = h
	}
	return a
}

// ParseSignatureAlgorithm interprets a signature AlgorithmIdentifier.
func ParseSignatureAlgorithm(ai AlgorithmIdentifier) (Algorithm, error) {
	if name, ok := unsupportedSignatures[ai.OID.String()]; ok {
		return Algorithm{}, &UnsupportedError{What: "signature algorithm", OID: ai.OID, Name: name}
	}
	for _, e := range signatures {
		if !e.oid.Equal(ai.OID) {
			continue
		}
		a := Algorithm{Identifier: ai, Scheme: e.scheme, Hash: e.hash}
		switch e.scheme {
		case SchemeRSAPSS:
			p, err := ParsePSSParams(ai.Parameters)
			if err != nil {
				return Algorithm{}, err
			}
			a.PSS, a.Hash = p, p.Hash
		case SchemeRSAPKCS1v15:
			// NULL is required, absence is tolerated (seen in the wild).
			if !ai.HasNullOrNoParameters() {
				return Algorithm{}, errors.New("sigalg: RSA signature algorithm with unexpected parameters")
			}
		case SchemeEd25519:
			if len(ai.Parameters) != 0 {
				return Algorithm{}, errors.New("sigalg: Ed25519 with parameters")
			}
		}
		if a.Hash != 0 && !a.Hash.Available() {
			return Algorithm{}, &UnsupportedError{What: "digest algorithm", Name: a.Hash.String()}
		}
		return a, nil
	}
	return Algorithm{}, &UnsupportedError{What: "signature algorithm", OID: ai.OID}
}

// ParsePSSParams parses RSASSA-PSS-params (RFC 4055 section 3.1), applying its
// defaults (SHA-1, MGF1 with SHA-1, salt 20, trailer 1) for absent fields.
func ParsePSSParams(der []byte) (*PSSParams, error) {
	p := &PSSParams{Hash: crypto.SHA1, MGF1Hash: crypto.SHA1, SaltLength: 20, Trailer: 1}
	if len(der) == 0 {
		// RFC 4055 allows absent parameters only in SubjectPublicKeyInfo;
		// in a signature they are mandatory.
		return nil, errors.New("sigalg: RSASSA-PSS without parameters")
	}
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("sigalg: malformed RSASSA-PSS-params")
	}
	var hashSeq, mgfSeq, saltSeq, trailerSeq cryptobyte.String
	var hasHash, hasMGF, hasSalt, hasTrailer bool
	if !seq.ReadOptionalASN1(&hashSeq, &hasHash, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!seq.ReadOptionalASN1(&mgfSeq, &hasMGF, cbasn1.Tag(1).Constructed().ContextSpecific()) ||
		!seq.ReadOptionalASN1(&saltSeq, &hasSalt, cbasn1.Tag(2).Constructed().ContextSpecific()) ||
		!seq.ReadOptionalASN1(&trailerSeq, &hasTrailer, cbasn1.Tag(3).Constructed().ContextSpecific()) ||
		!seq.Empty() {
		return nil, errors.New("sigalg: malformed RSASSA-PSS-params")
	}
	if hasHash {
		var ai AlgorithmIdentifier
		if !ReadAlgorithmIdentifier(&hashSeq, &ai) || !hashSeq.Empty() {
			return nil, errors.New("sigalg: malformed RSASSA-PSS hashAlgorithm")
		}
		h, err := DigestAlgorithm(ai)
		if err != nil {
			return nil, fmt.Errorf("sigalg: RSASSA-PSS hash: %w", err)
		}
		p.Hash = h
	}
	if hasMGF {
		var ai AlgorithmIdentifier
		if !ReadAlgorithmIdentifier(&mgfSeq, &ai) || !mgfSeq.Empty() {
			return nil, errors.New("sigalg: malformed RSASSA-PSS maskGenAlgorithm")
		}
		if !ai.OID.Equal(OIDMGF1) {
			return nil, &UnsupportedError{What: "PSS mask generation function", OID: ai.OID}
		}
		hai, err := ParseAlgorithmIdentifier(ai.Parameters)
		if err != nil {
			return nil, fmt.Errorf("sigalg: RSASSA-PSS MGF1 parameters: %w", err)
		}
		h, err := DigestAlgorithm(hai)
		if err != nil {
			return nil, fmt.Errorf("sigalg: RSASSA-PSS MGF1 hash: %w", err)
		}
		p.MGF1Hash = h
	}
	if hasSalt {
		var salt int64
		if !saltSeq.ReadASN1Int64WithTag(&salt, cbasn1.INTEGER) || !saltSeq.Empty() || salt < 0 || salt > 1<<16 {
			return nil, errors.New("sigalg: malformed RSASSA-PSS saltLength")
		}
		p.SaltLength = int(salt)
	}
	if hasTrailer {
		var tr int64
		if !trailerSeq.ReadASN1Int64WithTag(&tr, cbasn1.INTEGER) || !trailerSeq.Empty() {
			return nil, errors.New("sigalg: malformed RSASSA-PSS trailerField")
		}
		p.Trailer = int(tr)
	}
	if p.Trailer != 1 {
		return nil, &UnsupportedError{What: fmt.Sprintf("PSS trailer field %d", p.Trailer)}
	}
	return p, nil
}

// Verify checks sig over message: the message is hashed with a.Hash
// (Ed25519 signs the message itself).
func (a Algorithm) Verify(pub crypto.PublicKey, message, sig []byte) error {
	if a.Scheme == SchemeEd25519 {
		return a.verifyEd25519(pub, message, sig)
	}
	if a.Hash == 0 || !a.Hash.Available() {
		return &UnsupportedError{What: "signature algorithm without digest", OID: a.Identifier.OID}
	}
	h := a.Hash.New()
	h.Write(message)
	return a.VerifyDigest(pub, h.Sum(nil), sig)
}

// VerifyDigest checks sig over a digest computed with a.Hash. It is not
// available for Ed25519, which signs messages, not digests.
func (a Algorithm) VerifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	if a.Hash == 0 {
		return &UnsupportedError{What: "signature algorithm without digest", OID: a.Identifier.OID}
	}
	if len(digest) != a.Hash.Size() {
		return fmt.Errorf("sigalg: digest has %d bytes, %s needs %d", len(digest), HashName(a.Hash), a.Hash.Size())
	}
	switch a.Scheme {
	case SchemeRSAPKCS1v15:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return keyMismatch(a, pub)
		}
		if err := rsa.VerifyPKCS1v15(k, a.Hash, digest, sig); err != nil {
			return fmt.Errorf("sigalg: %s: %w", a.Name(), ErrSignature)
		}
		return nil
	case SchemeRSAPSS:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return keyMismatch(a, pub)
		}
		if a.PSS == nil {
			return errors.New("sigalg: RSASSA-PSS without parameters")
		}
		if a.PSS.MGF1Hash != a.PSS.Hash {
			return &UnsupportedError{What: "RSASSA-PSS with MGF1 hash " + HashName(a.PSS.MGF1Hash) + " differing from hash " + HashName(a.PSS.Hash)}
		}
		opts := &rsa.PSSOptions{SaltLength: a.PSS.SaltLength, Hash: a.Hash}
		if a.PSS.SaltLength == 0 {
			// rsa.PSSSaltLengthAuto is 0; an explicit zero salt must
			// still be enforced exactly, which Go cannot express, so we
			// accept auto-detection here and document it.
			opts.SaltLength = rsa.PSSSaltLengthAuto
		}
		if err := rsa.VerifyPSS(k, a.Hash, digest, sig, opts); err != nil {
			return fmt.Errorf("sigalg: %s: %w", a.Name(), ErrSignature)
		}
		return nil
	case SchemeECDSA, SchemePlainECDSA:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return keyMismatch(a, pub)
		}
		var ok2 bool
		if a.Scheme == SchemeECDSA {
			ok2 = ecdsa.VerifyASN1(k, digest, sig)
		} else {
			n := (k.Curve.Params().N.BitLen() + 7) / 8
			if len(sig) != 2*n {
				return fmt.Errorf("sigalg: plain-ECDSA signature has %d bytes, want %d: %w", len(sig), 2*n, ErrSignature)
			}
			r := new(big.Int).SetBytes(sig[:n])
			s := new(big.Int).SetBytes(sig[n:])
			ok2 = ecdsa.Verify(k, digest, r, s)
		}
		if !ok2 {
			return fmt.Errorf("sigalg: %s: %w", a.Name(), ErrSignature)
		}
		return nil
	case SchemeEd25519:
		return errors.New("sigalg: Ed25519 signs messages, not digests")
	}
	return &UnsupportedError{What: "signature algorithm", OID: a.Identifier.OID}
}

func (a Algorithm) verifyEd25519(pub crypto.PublicKey, message, sig []byte) error {
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return keyMismatch(a, pub)
	}
	if !ed25519.Verify(k, message, sig) {
		return fmt.Errorf("sigalg: Ed25519: %w", ErrSignature)
	}
	return nil
}

func keyMismatch(a Algorithm, pub crypto.PublicKey) error {
	return fmt.Errorf("sigalg: %s signature with a %s key", a.Name(), KeyTypeName(pub))
}

// KeyTypeName describes a public key for reports, e.g. "RSA-2048" or "ECDSA brainpoolP256r1".
func KeyTypeName(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	case nil:
		return "no"
	}
	return fmt.Sprintf("%T", pub)
}
