package sigalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/ProtonMail/go-crypto/brainpool"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// MaxRSABits bounds the RSA modulus we accept; larger keys make verification
// a denial-of-service vector.
const MaxRSABits = 16384

// Curve returns the elliptic curve for a named-curve OID.
func Curve(oid asn1.ObjectIdentifier) (elliptic.Curve, error) {
	switch {
	case oid.Equal(OIDCurveP224):
		return elliptic.P224(), nil
	case oid.Equal(OIDCurveP256):
		return elliptic.P256(), nil
	case oid.Equal(OIDCurveP384):
		return elliptic.P384(), nil
	case oid.Equal(OIDCurveP521):
		return elliptic.P521(), nil
	case oid.Equal(OIDCurveBrainpoolP256r1):
		return brainpool.P256r1(), nil
	case oid.Equal(OIDCurveBrainpoolP384r1):
		return brainpool.P384r1(), nil
	case oid.Equal(OIDCurveBrainpoolP512r1):
		return brainpool.P512r1(), nil
	}
	return nil, &UnsupportedError{What: "elliptic curve", OID: oid}
}

// CurveOID returns the named-curve OID of c, nil if unknown.
func CurveOID(c elliptic.Curve) asn1.ObjectIdentifier {
	for _, oid := range []asn1.ObjectIdentifier{OIDCurveP224, OIDCurveP256, OIDCurveP384, OIDCurveP521,
		OIDCurveBrainpoolP256r1, OIDCurveBrainpoolP384r1, OIDCurveBrainpoolP512r1} {
		if k, _ := Curve(oid); k != nil && k.Params().Name == c.Params().Name {
			return oid
		}
	}
	return nil
}

// PublicKeyInfo is a parsed SubjectPublicKeyInfo.
type PublicKeyInfo struct {
	Algorithm AlgorithmIdentifier
	// Key is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Key crypto.PublicKey
	// PSS holds the key's RSASSA-PSS restriction when the key's algorithm is
	// id-RSASSA-PSS with parameters; nil otherwise.
	PSS *PSSParams
}

// ParsePublicKeyInfo parses a DER SubjectPublicKeyInfo. Unsupported key
// types or curves yield an error wrapping ErrUnsupported.
func ParsePublicKeyInfo(der []byte) (*PublicKeyInfo, error) {
	s := cryptobyte.String(der)
	var spki cryptobyte.String
	if !s.ReadASN1(&spki, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("sigalg: malformed SubjectPublicKeyInfo")
	}
	var ai AlgorithmIdentifier
	var bits asn1.BitString
	if !ReadAlgorithmIdentifier(&spki, &ai) || !spki.ReadASN1BitString(&bits) || !spki.Empty() {
		return nil, errors.New("sigalg: malformed SubjectPublicKeyInfo")
	}
	if bits.BitLength%8 != 0 {
		return nil, errors.New("sigalg: public key bit string is not whole bytes")
	}
	info := &PublicKeyInfo{Algorithm: ai}
	var err error
	switch {
	case ai.OID.Equal(OIDRSAEncryption):
		if !ai.HasNullOrNoParameters() {
			return nil, errors.New("sigalg: rsaEncryption key with parameters")
		}
		info.Key, err = parseRSAKey(bits.Bytes)
	case ai.OID.Equal(OIDRSASSAPSS):
		if len(ai.Parameters) > 0 {
			if info.PSS, err = ParsePSSParams(ai.Parameters); err != nil {
				return nil, err
			}
		}
		info.Key, err = parseRSAKey(bits.Bytes)
	case ai.OID.Equal(OIDECPublicKey):
		info.Key, err = parseECKey(ai.Parameters, bits.Bytes)
	case ai.OID.Equal(OIDEd25519):
		if len(ai.Parameters) != 0 || len(bits.Bytes) != ed25519.PublicKeySize {
			return nil, errors.New("sigalg: malformed Ed25519 public key")
		}
		info.Key = ed25519.PublicKey(append([]byte(nil), bits.Bytes...))
	default:
		name := ""
		if ai.OID.Equal(OIDDSA) {
			name = "DSA"
		} else if ai.OID.Equal(OIDEd448) {
			name = "Ed448"
		}
		return nil, &UnsupportedError{What: "public key algorithm", OID: ai.OID, Name: name}
	}
	if err != nil {
		return nil, err
	}
	return info, nil
}

func parseRSAKey(der []byte) (*rsa.PublicKey, error) {
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	n, e := new(big.Int), new(big.Int)
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() ||
		!seq.ReadASN1Integer(n) || !seq.ReadASN1Integer(e) || !seq.Empty() {
		return nil, errors.New("sigalg: malformed RSA public key")
	}
	if n.Sign() <= 0 || e.Sign() <= 0 {
		return nil, errors.New("sigalg: RSA modulus or exponent not positive")
	}
	if n.BitLen() > MaxRSABits {
		return nil, &UnsupportedError{What: fmt.Sprintf("RSA key size %d bits", n.BitLen())}
	}
	if !e.IsInt64() || e.Int64() > 1<<31-1 || e.Int64() < 3 {
		return nil, &UnsupportedError{What: "RSA public exponent " + e.String()}
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

func parseECKey(params, point []byte) (*ecdsa.PublicKey, error) {
	curve, err := ecCurve(params)
	if err != nil {
		return nil, err
	}
	if len(point) == 0 || point[0] != 4 {
		return nil, &UnsupportedError{What: "compressed or malformed EC point"}
	}
	if isNIST(curve) {
		k, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("sigalg: EC point on %s: %w", curve.Params().Name, err)
		}
		return k, nil
	}
	// Brainpool curves are in neither crypto/ecdh nor ecdsa's point
	// encoding; their keys exist only as big.Int coordinates.
	//lint:ignore SA1019 brainpool: ParseUncompressedPublicKey takes NIST curves only
	x, y := elliptic.Unmarshal(curve, point)
	if x == nil {
		return nil, fmt.Errorf("sigalg: EC point not on %s", curve.Params().Name)
	}
	//lint:ignore SA1019 brainpool: an ecdsa.PublicKey on a non-NIST curve is built from its coordinates
	return &ecdsa.PublicKey{Curve: curve, X: x, Y: y}, nil
}

// ecCurve reads ECParameters (RFC 3279, section 2.3.5): a named curve, or
// explicit parameters (SEC 1, section C.2) as some older signature cards and
// the OSCI library's ECDSA test certificates carry them. Explicit parameters
// are accepted only when they describe a curve we know by name, and the key
// is then used on that named curve.
func ecCurve(params []byte) (elliptic.Curve, error) {
	ps := cryptobyte.String(params)
	if ps.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
		var oid asn1.ObjectIdentifier
		if !ps.ReadASN1ObjectIdentifier(&oid) || !ps.Empty() {
			return nil, errors.New("sigalg: malformed named curve")
		}
		return Curve(oid)
	}
	e, err := parseExplicitCurve(ps)
	if err != nil {
		return nil, err
	}
	for _, oid := range []asn1.ObjectIdentifier{OIDCurveP256, OIDCurveP384, OIDCurveP521, OIDCurveP224,
		OIDCurveBrainpoolP256r1, OIDCurveBrainpoolP384r1, OIDCurveBrainpoolP512r1} {
		c, err := Curve(oid)
		if err == nil && e.is(c) {
			return c, nil
		}
	}
	return nil, &UnsupportedError{What: "elliptic curve given by explicit parameters that name no known curve"}
}

// explicitCurve holds the parts of SEC 1 explicit parameters that identify
// a prime curve.
type explicitCurve struct {
	p, a, b, gx, gy, n *big.Int
	cofactor           *big.Int
}

// oidPrimeField is SEC 1's prime-field (ANSI X9.62 1.2.840.10045.1.1).
var oidPrimeField = asn1.ObjectIdentifier{1, 2, 840, 10045, 1, 1}

func parseExplicitCurve(s cryptobyte.String) (*explicitCurve, error) {
	bad := errors.New("sigalg: malformed explicit EC parameters")
	var seq, field, curve cryptobyte.String
	var version int64
	var fieldType asn1.ObjectIdentifier
	var aBytes, bBytes, base []byte
	e := &explicitCurve{p: new(big.Int), n: new(big.Int)}
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() ||
		!seq.ReadASN1Integer(&version) || version != 1 ||
		!seq.ReadASN1(&field, cbasn1.SEQUENCE) ||
		!field.ReadASN1ObjectIdentifier(&fieldType) ||
		!seq.ReadASN1(&curve, cbasn1.SEQUENCE) ||
		!curve.ReadASN1Bytes(&aBytes, cbasn1.OCTET_STRING) ||
		!curve.ReadASN1Bytes(&bBytes, cbasn1.OCTET_STRING) ||
		!seq.ReadASN1Bytes(&base, cbasn1.OCTET_STRING) ||
		!seq.ReadASN1Integer(e.n) {
		return nil, bad
	}
	if !fieldType.Equal(oidPrimeField) {
		return nil, &UnsupportedError{What: "elliptic curve over a field that is not a prime field"}
	}
	if !field.ReadASN1Integer(e.p) || !field.Empty() || e.p.Sign() <= 0 || e.p.BitLen() > 521 {
		return nil, bad
	}
	// The seed (a BIT STRING) may follow a and b; it does not identify the curve.
	if !seq.Empty() {
		e.cofactor = new(big.Int)
		if !seq.ReadASN1Integer(e.cofactor) || !seq.Empty() {
			return nil, bad
		}
	}
	size := (e.p.BitLen() + 7) / 8
	if len(base) != 1+2*size || base[0] != 4 {
		return nil, &UnsupportedError{What: "explicit EC parameters with a compressed or malformed base point"}
	}
	e.a = new(big.Int).SetBytes(aBytes)
	e.b = new(big.Int).SetBytes(bBytes)
	e.gx = new(big.Int).SetBytes(base[1 : 1+size])
	e.gy = new(big.Int).SetBytes(base[1+size:])
	return e, nil
}

// is reports whether e describes c: the same field, base point, order and
// cofactor 1, and a base point on y² = x³ + ax + b. For the NIST curves a is
// p-3 and b is known, so they are compared too; for the brainpool curves
// (whose b the implementation does not expose) the base point and order
// pin the curve, and the key is used on the named curve either way.
func (e *explicitCurve) is(c elliptic.Curve) bool {
	cp := c.Params()
	if e.p.Cmp(cp.P) != 0 || e.n.Cmp(cp.N) != 0 || e.gx.Cmp(cp.Gx) != 0 || e.gy.Cmp(cp.Gy) != 0 {
		return false
	}
	if e.cofactor != nil && e.cofactor.Cmp(big.NewInt(1)) != 0 {
		return false
	}
	if isNIST(c) {
		if e.a.Cmp(new(big.Int).Sub(cp.P, big.NewInt(3))) != 0 || e.b.Cmp(cp.B) != 0 {
			return false
		}
	}
	lhs := new(big.Int).Exp(e.gy, big.NewInt(2), e.p)
	rhs := new(big.Int).Exp(e.gx, big.NewInt(3), e.p)
	rhs.Add(rhs, new(big.Int).Mul(e.a, e.gx))
	rhs.Add(rhs, e.b)
	rhs.Mod(rhs, e.p)
	return lhs.Cmp(rhs) == 0
}

// isNIST reports whether c is one of the NIST curves the standard library
// implements in constant time (and encodes with ecdsa.PublicKey.Bytes).
func isNIST(c elliptic.Curve) bool {
	return c == elliptic.P224() || c == elliptic.P256() || c == elliptic.P384() || c == elliptic.P521()
}

// ecPoint encodes k's point uncompressed (SEC 1, section 2.3.3).
func ecPoint(k *ecdsa.PublicKey) ([]byte, error) {
	if isNIST(k.Curve) {
		p, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("sigalg: encoding %s public key: %w", k.Curve.Params().Name, err)
		}
		return p, nil
	}
	//lint:ignore SA1019 brainpool: PublicKey.Bytes takes NIST curves only, so the point comes from its coordinates
	return elliptic.Marshal(k.Curve, k.X, k.Y), nil
}

// MarshalPublicKeyInfo encodes a public key as SubjectPublicKeyInfo. It
// exists for tests and for computing key identifiers; brainpool keys are
// supported, unlike in crypto/x509.
func MarshalPublicKeyInfo(pub crypto.PublicKey) ([]byte, error) {
	var b cryptobyte.Builder
	switch k := pub.(type) {
	case *rsa.PublicKey:
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDRSAEncryption)
				b.AddASN1NULL()
			})
			b.AddASN1BitString(func() []byte {
				var kb cryptobyte.Builder
				kb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1BigInt(k.N)
					b.AddASN1Int64(int64(k.E))
				})
				return kb.BytesOrPanic()
			}())
		})
	case *ecdsa.PublicKey:
		oid := CurveOID(k.Curve)
		if oid == nil {
			return nil, &UnsupportedError{What: "elliptic curve " + k.Curve.Params().Name}
		}
		point, err := ecPoint(k)
		if err != nil {
			return nil, err
		}
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDECPublicKey)
				b.AddASN1ObjectIdentifier(oid)
			})
			b.AddASN1BitString(point)
		})
	case ed25519.PublicKey:
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDEd25519)
			})
			b.AddASN1BitString(k)
		})
	default:
		return nil, &UnsupportedError{What: fmt.Sprintf("public key type %T", pub)}
	}
	return b.Bytes()
}
