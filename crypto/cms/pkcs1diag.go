package cms

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/sigalg"
)

// diagnosePKCS1 explains an RSA PKCS#1 v1.5 signature that did not verify
// although its encoded message is well-formed apart from the DigestInfo:
// a DigestInfo whose AlgorithmIdentifier omits the NULL parameter, which
// RFC 8017 appendix B.1 forbids in EMSA-PKCS1-v1_5 (crypto/rsa, like
// OpenSSL, compares with the encoding that has it). It returns "" when
// there is nothing more specific to say than "does not verify". candidates
// are the byte strings the signature may cover, by name; only the public
// operation is done, and nothing of the block is trusted beyond the report.
func diagnosePKCS1(pub crypto.PublicKey, h crypto.Hash, sig []byte, candidates map[string][]byte) string {
	k, ok := pub.(*rsa.PublicKey)
	if !ok || k.N == nil || len(sig) != (k.N.BitLen()+7)/8 || !h.Available() {
		return ""
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(k.N) >= 0 {
		return ""
	}
	em := s.Exp(s, big.NewInt(int64(k.E)), k.N).FillBytes(make([]byte, len(sig)))
	t, ok := pkcs1Payload(em)
	if !ok {
		return ""
	}
	in := cryptobyte.String(t)
	var di, ai, digest cryptobyte.String
	var oid cryptobyte.String
	if !in.ReadASN1(&di, cbasn1.SEQUENCE) || !in.Empty() || !di.ReadASN1(&ai, cbasn1.SEQUENCE) ||
		!ai.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) || !di.ReadASN1(&digest, cbasn1.OCTET_STRING) || !di.Empty() {
		return ""
	}
	if !ai.Empty() {
		return "" // parameters present: crypto/rsa judged the usual form
	}
	for _, name := range []string{EncodingTransmitted, EncodingNormalized, EncodingDERSorted} {
		c, ok := candidates[name]
		if !ok {
			continue
		}
		if bytes.Equal(hashOf(h, c), digest) {
			return "the signature's DigestInfo omits the NULL parameter of the " + sigalg.HashName(h) +
				" AlgorithmIdentifier, which RFC 8017 appendix B.1 forbids in EMSA-PKCS1-v1_5; its digest matches the signed attributes " + name
		}
	}
	return "the signature's DigestInfo omits the NULL parameter of its AlgorithmIdentifier (forbidden by RFC 8017 appendix B.1), and its digest matches none of the signed attribute encodings"
}

// pkcs1Payload returns T of an encoded message 0x00 0x01 PS 0x00 T with at
// least eight 0xff bytes of padding.
func pkcs1Payload(em []byte) ([]byte, bool) {
	if len(em) < 11 || em[0] != 0 || em[1] != 1 {
		return nil, false
	}
	i := 2
	for i < len(em) && em[i] == 0xff {
		i++
	}
	if i-2 < 8 || i >= len(em) || em[i] != 0 {
		return nil, false
	}
	return em[i+1:], true
}
