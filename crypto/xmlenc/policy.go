package xmlenc

import (
	"crypto"
	"errors"
	"fmt"
)

// Namespaces of XML Encryption 1.0/1.1 and of OSCI's IvLength extension.
const (
	NamespaceXEnc   = "http://www.w3.org/2001/04/xmlenc#"
	NamespaceXEnc11 = "http://www.w3.org/2009/xmlenc11#"
	NamespaceDSig   = "http://www.w3.org/2000/09/xmldsig#"
	// NamespaceOSCI128 holds osci128:IvLength, which the OSCI library
	// writes into an EncryptionMethod to give the AES-GCM IV length.
	NamespaceOSCI128 = "http://xoev.de/transport/osci12/8"
)

// Data encryption algorithm URIs.
const (
	AES128GCM     = NamespaceXEnc11 + "aes128-gcm"
	AES192GCM     = NamespaceXEnc11 + "aes192-gcm"
	AES256GCM     = NamespaceXEnc11 + "aes256-gcm"
	AES128CBC     = NamespaceXEnc + "aes128-cbc"
	AES192CBC     = NamespaceXEnc + "aes192-cbc"
	AES256CBC     = NamespaceXEnc + "aes256-cbc"
	TripleDESCBC  = NamespaceXEnc + "tripledes-cbc"
	RSAOAEPMGF1P  = NamespaceXEnc + "rsa-oaep-mgf1p"
	RSAOAEP       = NamespaceXEnc11 + "rsa-oaep"
	RSA15         = NamespaceXEnc + "rsa-1_5"
	MGF1SHA1      = NamespaceXEnc11 + "mgf1sha1"
	MGF1SHA224    = NamespaceXEnc11 + "mgf1sha224"
	MGF1SHA256    = NamespaceXEnc11 + "mgf1sha256"
	MGF1SHA384    = NamespaceXEnc11 + "mgf1sha384"
	MGF1SHA512    = NamespaceXEnc11 + "mgf1sha512"
	DigestSHA1    = NamespaceDSig + "sha1"
	DigestSHA256  = NamespaceXEnc + "sha256"
	DigestSHA384  = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	DigestSHA512  = NamespaceXEnc + "sha512"
	TransformB64  = NamespaceDSig + "base64"
	TypeElement   = NamespaceXEnc + "Element"
	TypeContent   = NamespaceXEnc + "Content"
	TypeEncrypted = NamespaceXEnc + "EncryptedKey"
)

// Errors, each wrapped with the details; a caller maps them to its own
// codes (OSCI feedback codes) with errors.Is or errors.As.
var (
	// ErrFormat: the structure is not XML Encryption as we accept it.
	ErrFormat = errors.New("xmlenc: malformed encrypted data")
	// ErrUnsupported: an algorithm we do not implement.
	ErrUnsupported = errors.New("xmlenc: unsupported algorithm")
	// ErrRefused: an algorithm we implement but the policy refuses;
	// a *RefusedError says which.
	ErrRefused = errors.New("xmlenc: algorithm refused by policy")
	// ErrNoKey: no EncryptedKey for the recipient, or none that its key
	// opens.
	ErrNoKey = errors.New("xmlenc: no key for this recipient")
	// ErrDecrypt: the ciphertext does not decrypt: a wrong key, a
	// tampered or truncated ciphertext, a failed GCM tag or bad CBC
	// padding. The causes are not told apart on purpose (padding oracles).
	ErrDecrypt = errors.New("xmlenc: decryption failed")
	// ErrTooLarge: a size limit of the Policy was exceeded.
	ErrTooLarge = errors.New("xmlenc: too large")
)

// RefusedError names an algorithm the policy refuses.
type RefusedError struct {
	Algorithm string
	Reason    string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("xmlenc: algorithm %s refused: %s", e.Algorithm, e.Reason)
}

// Unwrap lets errors.Is(err, ErrRefused) match.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Policy says which algorithms are accepted and bounds the work on
// hostile input. Use DefaultPolicy and change fields; the zero Policy
// refuses CBC and has the default limits.
type Policy struct {
	// AllowCBC accepts AES-CBC data (reported as legacy): OSCI senders
	// before library 1.9 send it.
	AllowCBC bool
	// AllowTripleDES accepts tripledes-cbc data (legacy).
	AllowTripleDES bool
	// AllowRSA15 accepts RSAES-PKCS1-v1_5 key transport (legacy; the
	// OSCI library has it deprecated since 2.3.0).
	AllowRSA15 bool
	// AllowGCM16ByteIV accepts AES-GCM with a 16 byte IV, which OSCI
	// library 1.9 to 2.0.0 sent by default (announced by osci128:IvLength).
	AllowGCM16ByteIV bool
	// GCMImplicitIVLength is the IV length of a GCM EncryptedData without
	// osci128:IvLength: 0 means 12, as XML Encryption 1.1 says; the OSCI
	// library reads 16 then (OSCIPolicy).
	GCMImplicitIVLength int
	// MaxCipherValue caps an inline CipherValue (decoded bytes).
	MaxCipherValue int
	// MaxStream caps the ciphertext read through a CipherReference.
	MaxStream int64
	// MaxEncryptedKeys caps the EncryptedKeys of one EncryptedData.
	MaxEncryptedKeys int
}

// DefaultPolicy accepts AES-GCM (12 and, for the OSCI library, 16 byte
// IVs), RSA-OAEP and, as legacy, AES-CBC; it refuses 3DES and RSA-1_5.
func DefaultPolicy() Policy {
	return Policy{AllowCBC: true, AllowGCM16ByteIV: true, MaxCipherValue: 64 << 20, MaxStream: 8 << 30, MaxEncryptedKeys: 64}
}

// OSCIPolicy is DefaultPolicy with the OSCI library's reading of a GCM
// EncryptionMethod without osci128:IvLength: a 16 byte IV, as its versions
// 1.9 to 2.0.0 sent by default (2.0.1 and later send 12 and say so).
func OSCIPolicy() Policy {
	p := DefaultPolicy()
	p.GCMImplicitIVLength = 16
	return p
}

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.MaxCipherValue <= 0 {
		p.MaxCipherValue = d.MaxCipherValue
	}
	if p.MaxStream <= 0 {
		p.MaxStream = d.MaxStream
	}
	if p.MaxEncryptedKeys <= 0 {
		p.MaxEncryptedKeys = d.MaxEncryptedKeys
	}
	if p.GCMImplicitIVLength == 0 {
		p.GCMImplicitIVLength = 12
	}
	return p
}

// dataAlg describes a data encryption algorithm.
type dataAlg struct {
	uri     string
	keyLen  int
	gcm     bool
	des     bool
	legacy  bool
	ivLen   int // default IV length
	blockSz int
}

func lookupData(uri string) (dataAlg, error) {
	switch uri {
	case AES128GCM:
		return dataAlg{uri: uri, keyLen: 16, gcm: true, ivLen: 12, blockSz: 16}, nil
	case AES192GCM:
		return dataAlg{uri: uri, keyLen: 24, gcm: true, ivLen: 12, blockSz: 16}, nil
	case AES256GCM:
		return dataAlg{uri: uri, keyLen: 32, gcm: true, ivLen: 12, blockSz: 16}, nil
	case AES128CBC:
		return dataAlg{uri: uri, keyLen: 16, legacy: true, ivLen: 16, blockSz: 16}, nil
	case AES192CBC:
		return dataAlg{uri: uri, keyLen: 24, legacy: true, ivLen: 16, blockSz: 16}, nil
	case AES256CBC:
		return dataAlg{uri: uri, keyLen: 32, legacy: true, ivLen: 16, blockSz: 16}, nil
	case TripleDESCBC:
		return dataAlg{uri: uri, keyLen: 24, des: true, legacy: true, ivLen: 8, blockSz: 8}, nil
	}
	return dataAlg{}, fmt.Errorf("%w: data encryption %q", ErrUnsupported, uri)
}

func (p Policy) checkData(a dataAlg, ivLen int) error {
	switch {
	case a.des && !p.AllowTripleDES:
		return &RefusedError{Algorithm: a.uri, Reason: "Triple-DES is not accepted"}
	case !a.gcm && !a.des && !p.AllowCBC:
		return &RefusedError{Algorithm: a.uri, Reason: "CBC mode is not accepted"}
	case a.gcm && ivLen == 16 && !p.AllowGCM16ByteIV:
		return &RefusedError{Algorithm: a.uri, Reason: "a 16 byte GCM IV is not accepted"}
	case a.gcm && ivLen != 12 && ivLen != 16:
		return fmt.Errorf("%w: GCM IV length %d", ErrFormat, ivLen)
	}
	return nil
}

func (p Policy) checkKeyTransport(uri string) error {
	switch uri {
	case RSAOAEP, RSAOAEPMGF1P:
		return nil
	case RSA15:
		if !p.AllowRSA15 {
			return &RefusedError{Algorithm: uri, Reason: "RSAES-PKCS1-v1_5 key transport is not accepted"}
		}
		return nil
	}
	return fmt.Errorf("%w: key transport %q", ErrUnsupported, uri)
}

func digestHash(uri string) (crypto.Hash, error) {
	switch uri {
	case DigestSHA1:
		return crypto.SHA1, nil
	case DigestSHA256:
		return crypto.SHA256, nil
	case DigestSHA384:
		return crypto.SHA384, nil
	case DigestSHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: OAEP digest %q", ErrUnsupported, uri)
}

func mgfHash(uri string) (crypto.Hash, error) {
	switch uri {
	case MGF1SHA1:
		return crypto.SHA1, nil
	case MGF1SHA224:
		return crypto.SHA224, nil
	case MGF1SHA256:
		return crypto.SHA256, nil
	case MGF1SHA384:
		return crypto.SHA384, nil
	case MGF1SHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: mask generation function %q", ErrUnsupported, uri)
}

func hashDigestURI(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return DigestSHA1
	case crypto.SHA384:
		return DigestSHA384
	case crypto.SHA512:
		return DigestSHA512
	}
	return DigestSHA256
}

func hashMGFURI(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return MGF1SHA1
	case crypto.SHA224:
		return MGF1SHA224
	case crypto.SHA384:
		return MGF1SHA384
	case crypto.SHA512:
		return MGF1SHA512
	}
	return MGF1SHA256
}

// Algorithms says what a decryption used, for the Prüfprotokoll.
type Algorithms struct {
	// Data is the data encryption URI; IVLength its IV in bytes.
	Data     string
	IVLength int
	// KeyTransport is the EncryptedKey's method ("" when the caller
	// supplied the key); OAEPDigest and MGF its OAEP parameters.
	KeyTransport string
	OAEPDigest   string
	MGF          string
	// Legacy is set when an algorithm is accepted only for old senders
	// (CBC, 3DES, RSA-1_5, a 16 byte GCM IV).
	Legacy bool
}
