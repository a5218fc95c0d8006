package trust

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Some German qualified CAs (D-TRUST 2008 generation) use RSA public
// exponents above 2^31, which crypto/rsa and therefore crypto/sigalg
// refuse. Until sigalg handles them, path building falls back to this
// PKCS#1 v1.5 check: it recomputes the expected encoded message and
// compares it with s^e mod n in constant time, so nothing of the
// decrypted block is parsed.

// maxLargeExponentBits bounds the exponent (cost is linear in its size).
const maxLargeExponentBits = 64

// pkcs1Prefixes are the DigestInfo DER prefixes of RFC 8017 section 9.2.
var pkcs1Prefixes = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
}

// checkSignatureLargeExponent verifies child's PKCS#1 v1.5 signature with
// parent's RSA key when only the exponent size kept sigalg from it.
func checkSignatureLargeExponent(child, parent *cert.Certificate) error {
	if parent.PublicKey != nil || !errors.Is(parent.PublicKeyError, sigalg.ErrUnsupported) ||
		!parent.PublicKeyAlgorithm.OID.Equal(sigalg.OIDRSAEncryption) {
		return errors.New("not applicable")
	}
	alg, err := sigalg.ParseSignatureAlgorithm(child.SignatureAlgorithm)
	if err != nil || alg.Scheme != sigalg.SchemeRSAPKCS1v15 {
		return errors.New("not applicable")
	}
	prefix, ok := pkcs1Prefixes[alg.Hash]
	if !ok || !alg.Hash.Available() {
		return &sigalg.UnsupportedError{What: "digest " + sigalg.HashName(alg.Hash) + " with a large RSA exponent"}
	}
	n, e, err := rsaKey(parent.RawSubjectPublicKeyInfo)
	if err != nil {
		return err
	}
	k := (n.BitLen() + 7) / 8
	if len(child.Signature) != k || k > sigalg.MaxRSABits/8 || e.BitLen() > maxLargeExponentBits {
		return fmt.Errorf("trust: RSA signature of %d bytes for a %d-bit key: %w", len(child.Signature), n.BitLen(), sigalg.ErrSignature)
	}
	s := new(big.Int).SetBytes(child.Signature)
	if s.Cmp(n) >= 0 {
		return fmt.Errorf("trust: RSA signature out of range: %w", sigalg.ErrSignature)
	}
	em := s.Exp(s, e, n).FillBytes(make([]byte, k))
	h := alg.Hash.New()
	h.Write(child.RawTBSCertificate)
	t := append(bytes.Clone(prefix), h.Sum(nil)...)
	if k < len(t)+11 {
		return fmt.Errorf("trust: RSA key too short: %w", sigalg.ErrSignature)
	}
	want := make([]byte, k)
	want[1] = 1
	for i := 2; i < k-len(t)-1; i++ {
		want[i] = 0xff
	}
	copy(want[k-len(t):], t)
	if subtle.ConstantTimeCompare(em, want) != 1 {
		return fmt.Errorf("trust: %s with large exponent: %w", alg.Name(), sigalg.ErrSignature)
	}
	return nil
}

func rsaKey(spki []byte) (*big.Int, *big.Int, error) {
	s := cryptobyte.String(spki)
	var seq, key cryptobyte.String
	var bits []byte
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.SEQUENCE) || !seq.ReadASN1BitStringAsBytes(&bits) {
		return nil, nil, errors.New("trust: malformed RSA subjectPublicKeyInfo")
	}
	key = bits
	n, e := new(big.Int), new(big.Int)
	if !key.ReadASN1(&key, cbasn1.SEQUENCE) || !key.ReadASN1Integer(n) || !key.ReadASN1Integer(e) || !key.Empty() || n.Sign() <= 0 || e.Sign() <= 0 {
		return nil, nil, errors.New("trust: malformed RSA public key")
	}
	return n, e, nil
}
