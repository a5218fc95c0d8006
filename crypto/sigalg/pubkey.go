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
	ps := cryptobyte.String(params)
	var oid asn1.ObjectIdentifier
	if !ps.ReadASN1ObjectIdentifier(&oid) || !ps.Empty() {
		return nil, &UnsupportedError{What: "elliptic curve given by explicit parameters"}
	}
	curve, err := Curve(oid)
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
