package xmlenc

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Recipient is the reader who decrypts: its key, through crypto.Decrypter
// so that a PKCS#11 key works as well as an *rsa.PrivateKey, and its
// certificate, by which its EncryptedKey is found.
type Recipient struct {
	Key         crypto.Decrypter
	Certificate *x509.Certificate
	// TryAll also tries EncryptedKeys whose KeyInfo names another
	// certificate (senders that identify the certificate in a way we do
	// not match). RSA-OAEP tells a wrong key apart; RSA-1_5 does not, so
	// RSA-1_5 keys are tried only when they name the recipient or nobody.
	TryAll bool
}

// Matches reports whether the EncryptedKey's KeyInfo names cert: the
// same certificate, its serial number (with the issuer, compared loosely:
// producers spell distinguished names differently) or its subject key
// identifier.
func (k KeyIdentity) Matches(cert *x509.Certificate) bool {
	if cert == nil {
		return false
	}
	for _, c := range k.Certificates {
		if bytes.Equal(c, cert.Raw) {
			return true
		}
	}
	if k.Serial != nil && k.Serial.Cmp(cert.SerialNumber) == 0 {
		return true
	}
	if len(k.SKI) > 0 {
		if bytes.Equal(k.SKI, cert.SubjectKeyId) {
			return true
		}
		if bytes.Equal(k.SKI, publicKeySKI(cert.RawSubjectPublicKeyInfo)) {
			return true
		}
	}
	return false
}

// publicKeySKI is the RFC 5280 method 1 key identifier: SHA-1 of the
// subjectPublicKey bits (what xmlsec and openssl compute when the
// certificate has no SubjectKeyIdentifier).
func publicKeySKI(spki []byte) []byte {
	var info struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil
	}
	sum := sha1.Sum(info.PublicKey.Bytes)
	return sum[:]
}

// candidates orders the EncryptedKeys to try: those naming the recipient,
// then those naming nobody, then (TryAll) the rest.
func candidates(keys []*EncryptedKey, r Recipient) []*EncryptedKey {
	var named, anonymous, others []*EncryptedKey
	for _, k := range keys {
		switch {
		case r.Certificate == nil || k.Identity.Empty():
			anonymous = append(anonymous, k)
		case k.Identity.Matches(r.Certificate):
			named = append(named, k)
		case r.TryAll && k.Method.Algorithm != RSA15:
			others = append(others, k)
		}
	}
	return append(append(named, anonymous...), others...)
}

// unwrap decrypts one EncryptedKey into a data key of keyLen bytes.
func unwrap(ek *EncryptedKey, key crypto.Decrypter, keyLen int, p Policy) ([]byte, Algorithms, error) {
	alg := Algorithms{KeyTransport: ek.Method.Algorithm}
	if err := p.checkKeyTransport(ek.Method.Algorithm); err != nil {
		return nil, alg, err
	}
	var opts crypto.DecrypterOpts
	switch ek.Method.Algorithm {
	case RSA15:
		alg.Legacy = true
		if ek.Method.Digest != "" || ek.Method.MGF != "" {
			return nil, alg, fmt.Errorf("%w: OAEP parameters on rsa-1_5", ErrFormat)
		}
		// A random key instead of an error on bad padding, so that the
		// failure shows only at the data (Bleichenbacher).
		//lint:ignore SA1019 rsa-1_5 is legacy, off by default, kept for old OSCI senders
		opts = &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen}
	default:
		o, err := oaepOptions(ek.Method, &alg)
		if err != nil {
			return nil, alg, err
		}
		opts = o
	}
	out, err := key.Decrypt(rand.Reader, ek.CipherValue, opts)
	if err != nil {
		return nil, alg, fmt.Errorf("%w: key transport: %v", ErrDecrypt, err)
	}
	if len(out) != keyLen {
		return nil, alg, fmt.Errorf("%w: key transport gave %d bytes, the data algorithm needs %d", ErrDecrypt, len(out), keyLen)
	}
	return out, alg, nil
}

func oaepOptions(m EncryptionMethod, alg *Algorithms) (*rsa.OAEPOptions, error) {
	alg.OAEPDigest, alg.MGF = m.Digest, m.MGF
	if alg.OAEPDigest == "" {
		alg.OAEPDigest = DigestSHA1
	}
	h, err := digestHash(alg.OAEPDigest)
	if err != nil {
		return nil, err
	}
	mgf := crypto.SHA1
	switch {
	case m.Algorithm == RSAOAEPMGF1P && m.MGF != "":
		return nil, fmt.Errorf("%w: MGF on rsa-oaep-mgf1p, whose MGF is fixed", ErrFormat)
	case m.Algorithm == RSAOAEPMGF1P || m.MGF == "":
		alg.MGF = MGF1SHA1
	default:
		if mgf, err = mgfHash(m.MGF); err != nil {
			return nil, err
		}
	}
	return &rsa.OAEPOptions{Hash: h, MGFHash: mgf, Label: m.OAEPParams}, nil
}

// dataKey finds and opens the EncryptedKey for r among keys; the keys
// are tried in the order of candidates and the first that opens wins.
func dataKey(ctx context.Context, keys []*EncryptedKey, r Recipient, keyLen int, p Policy) ([]byte, Algorithms, *EncryptedKey, error) {
	if r.Key == nil {
		return nil, Algorithms{}, nil, fmt.Errorf("%w: no recipient key given", ErrNoKey)
	}
	cands := candidates(keys, r)
	if len(cands) == 0 {
		return nil, Algorithms{}, nil, fmt.Errorf("%w: %d EncryptedKeys, none for %s", ErrNoKey, len(keys), certName(r.Certificate))
	}
	var errs []error
	for _, ek := range cands {
		if err := ctx.Err(); err != nil {
			return nil, Algorithms{}, nil, err
		}
		key, alg, err := unwrap(ek, r.Key, keyLen, p)
		if err == nil {
			return key, alg, ek, nil
		}
		// A refused or unsupported algorithm on our own key is the
		// answer; on someone else's it is not our business.
		if !errors.Is(err, ErrDecrypt) && (len(cands) == 1 || ek.Identity.Matches(r.Certificate)) {
			return nil, alg, ek, err
		}
		errs = append(errs, err)
	}
	return nil, Algorithms{}, nil, fmt.Errorf("%w: no EncryptedKey opened with the key of %s: %w", ErrNoKey, certName(r.Certificate), errors.Join(errs...))
}

func certName(c *x509.Certificate) string {
	if c == nil {
		return "the recipient"
	}
	return strings.TrimSpace(c.Subject.String())
}

// wrap encrypts a data key for one certificate with RSA-OAEP.
func wrap(rnd io.Reader, dataKey []byte, cert *x509.Certificate, method string, digest, mgf crypto.Hash) ([]byte, error) {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("xmlenc: encrypt: certificate %s has no RSA key", certName(cert))
	}
	if method == RSAOAEPMGF1P {
		mgf = crypto.SHA1
	}
	ct, err := rsa.EncryptOAEPWithOptions(rnd, pub, dataKey, &rsa.OAEPOptions{Hash: digest, MGFHash: mgf})
	if err != nil {
		return nil, fmt.Errorf("xmlenc: encrypt: key transport to %s: %w", certName(cert), err)
	}
	return ct, nil
}
