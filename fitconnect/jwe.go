package fitconnect

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	jose "github.com/go-jose/go-jose/v4"
)

// FIT-Connect encrypts metadata, data and every attachment separately as a JWE in
// compact serialization (RFC 7516 §3.1), key management RSA-OAEP-256 and content
// encryption A256GCM ("Verschlüsselte Übertragung"; the BSI TR-02102-1 selection
// the docs derive it from allows nothing else). These are the only values we
// accept, so a downgrade or an exotic algorithm never reaches go-jose.
const (
	KeyAlgorithm       = "RSA-OAEP-256"
	ContentEncryption  = "A256GCM"
	SignatureAlgorithm = "PS512"
	// MinKeyBits is the RSA modulus FIT-Connect requires for encryption and
	// signature keys (the metadata schema 2.1.0 states n has at least 683
	// base64url characters, i.e. 4096 bits).
	MinKeyBits = 4096
	// DefaultMaxJWESize caps a compact JWE when the caller gives no cap: the
	// serialization is checked against it before anything is decoded.
	DefaultMaxJWESize = 64 << 20
	// maxJWKSize caps a key file; a 4096-bit private JWK is about 3.3 KiB.
	maxJWKSize = 64 << 10
	// maxHeaderSize caps the protected header; FIT-Connect's has five members.
	maxHeaderSize = 8 << 10
	// gcmTagSize is the A256GCM authentication tag length (RFC 7518 §5.3).
	gcmTagSize = 16
)

// Errors of JWE handling. All of them map to the problem encryption-issue
// (ProblemFor); errors.Is distinguishes them.
var (
	// ErrUnsupportedJWE: a header names an algorithm, encoding, compression or
	// critical extension FIT-Connect does not allow (*UnsupportedJWEError says which).
	ErrUnsupportedJWE = errors.New("fitconnect: unsupported JWE")
	// ErrMalformedJWE: not a five-part compact JWE with a decodable header.
	ErrMalformedJWE = errors.New("fitconnect: malformed JWE")
	// ErrDecryption: the key did not unwrap the CEK or the tag did not verify.
	ErrDecryption = errors.New("fitconnect: JWE decryption failed")
	// ErrJWETooLarge: the serialization exceeds the cap.
	ErrJWETooLarge = errors.New("fitconnect: JWE too large")
	// ErrInvalidKey: a JWK is not a key FIT-Connect allows for its purpose.
	ErrInvalidKey = errors.New("fitconnect: invalid key")
)

// UnsupportedJWEError says which header member made a JWE unacceptable.
type UnsupportedJWEError struct {
	Member string // "alg", "enc", "zip" or "crit"
	Value  string
}

func (e *UnsupportedJWEError) Error() string {
	return fmt.Sprintf("fitconnect: unsupported JWE: %s %q not allowed", e.Member, e.Value)
}

// Is makes errors.Is(err, ErrUnsupportedJWE) true.
func (e *UnsupportedJWEError) Is(target error) bool { return target == ErrUnsupportedJWE }

// Decrypter holds the destination's private decryption key: a private RSA JWK
// (the file the Self-Service-Portal hands out) or any crypto.Decrypter, such as
// a PKCS#11 key from crypto/pkcs11, which must do RSA-OAEP with SHA-256.
type Decrypter struct {
	kid string
	key any // *rsa.PrivateKey or jose.OpaqueKeyDecrypter
}

// KeyID is the kid of the key ("" when unknown).
func (d *Decrypter) KeyID() string { return d.kid }

// PublicJWK is the matching encryption key as a public JWK (kid, alg
// RSA-OAEP-256, use enc, key_ops wrapKey): what senders encrypt to.
func (d *Decrypter) PublicJWK() ([]byte, error) {
	var pub *rsa.PublicKey
	switch k := d.key.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case oaepDecrypter:
		pub, _ = k.d.Public().(*rsa.PublicKey)
	}
	if pub == nil {
		return nil, fmt.Errorf("%w: no public key", ErrInvalidKey)
	}
	return publicJWK(pub, d.kid, KeyAlgorithm, "enc", "wrapKey")
}

// NewJWKDecrypter reads a private RSA JWK. alg, when present, must be
// RSA-OAEP-256 and key_ops, when present, must allow unwrapKey (or decrypt).
func NewJWKDecrypter(jwk []byte) (*Decrypter, error) {
	if len(jwk) > maxJWKSize {
		return nil, fmt.Errorf("%w: JWK larger than %d bytes", ErrInvalidKey, maxJWKSize)
	}
	k, err := parseRSAJWK(jwk, KeyAlgorithm, []string{"unwrapKey", "decrypt"})
	if err != nil {
		return nil, err
	}
	priv, ok := k.Key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: decryption JWK has no private part", ErrInvalidKey)
	}
	return &Decrypter{kid: k.KeyID, key: priv}, nil
}

// LoadJWKDecrypter reads a private JWK file (capped at 64 KiB).
func LoadJWKDecrypter(path string) (*Decrypter, error) {
	b, err := readCapped(path, maxJWKSize)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: reading decryption key: %w", err)
	}
	d, err := NewJWKDecrypter(b)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: decryption key %s: %w", path, err)
	}
	return d, nil
}

// NewCryptoDecrypter wraps a crypto.Decrypter holding an RSA key (for example
// a *pkcs11.Key). kid is the key's id as registered with the destination.
func NewCryptoDecrypter(kid string, d crypto.Decrypter) (*Decrypter, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil decrypter", ErrInvalidKey)
	}
	if _, ok := d.Public().(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("%w: decrypter holds a %T, want an RSA key", ErrInvalidKey, d.Public())
	}
	return &Decrypter{kid: kid, key: oaepDecrypter{d}}, nil
}

// oaepDecrypter lets go-jose unwrap the CEK through a crypto.Decrypter; it is
// only reached for alg RSA-OAEP-256 because Decrypt refuses every other alg
// first, and it checks again so the key is never used for anything else.
type oaepDecrypter struct{ d crypto.Decrypter }

func (o oaepDecrypter) DecryptKey(encryptedKey []byte, h jose.Header) ([]byte, error) {
	if h.Algorithm != KeyAlgorithm {
		return nil, &UnsupportedJWEError{Member: "alg", Value: h.Algorithm}
	}
	return o.d.Decrypt(rand.Reader, encryptedKey, &rsa.OAEPOptions{Hash: crypto.SHA256})
}

// DecryptOptions bound and tune Decrypt.
type DecryptOptions struct {
	// MaxSize caps the compact serialization in bytes; 0 means DefaultMaxJWESize.
	MaxSize int64
	// AllowCompression accepts "zip":"DEF". FIT-Connect's Submission API v2
	// forbids zip, and we refuse it by default; the Python SDK fitconnect 0.4.2
	// (v1) always sets it, so a destination that must read what that SDK sends
	// turns this on. go-jose then inflates at most max(250 kB, 10 × the
	// ciphertext), so the plaintext stays bounded.
	AllowCompression bool
}

// Decrypted is the result of Decrypt.
type Decrypted struct {
	Plaintext []byte
	// AuthenticationTag is the fifth compact segment exactly as transmitted
	// (base64url): accept-submission lists these, and the platform's
	// submit-submission records them for the destination to compare.
	AuthenticationTag string
	KeyID             string // the header's kid ("" when absent)
	ContentType       string // the header's cty ("" when absent)
	Compressed        bool   // the header had zip DEF (only with AllowCompression)
}

// jweHeader is the part of the protected header we check before go-jose sees
// the token.
type jweHeader struct {
	Alg  string          `json:"alg"`
	Enc  string          `json:"enc"`
	Zip  *string         `json:"zip"`
	Crit json.RawMessage `json:"crit"`
	Kid  string          `json:"kid"`
	Cty  string          `json:"cty"`
}

// Decrypt decrypts a compact JWE with the destination's key. The size is checked
// before anything is decoded; alg, enc, zip and crit are checked before any key
// operation; only then does go-jose (restricted to RSA-OAEP-256/A256GCM as
// well) unwrap the key and verify the tag.
func Decrypt(compact []byte, d *Decrypter, opts DecryptOptions) (*Decrypted, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: no decryption key", ErrInvalidKey)
	}
	limit := opts.MaxSize
	if limit <= 0 {
		limit = DefaultMaxJWESize
	}
	if int64(len(compact)) > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrJWETooLarge, len(compact), limit)
	}
	compact = bytes.TrimSpace(compact)
	h, tag, err := inspectCompact(compact)
	if err != nil {
		return nil, err
	}
	if h.Alg != KeyAlgorithm {
		return nil, &UnsupportedJWEError{Member: "alg", Value: h.Alg}
	}
	if h.Enc != ContentEncryption {
		return nil, &UnsupportedJWEError{Member: "enc", Value: h.Enc}
	}
	if len(h.Crit) > 0 && string(h.Crit) != "null" {
		return nil, &UnsupportedJWEError{Member: "crit", Value: string(h.Crit)}
	}
	if h.Zip != nil && (!opts.AllowCompression || *h.Zip != "DEF") {
		return nil, &UnsupportedJWEError{Member: "zip", Value: *h.Zip}
	}
	if err := checkTag(tag); err != nil {
		return nil, err
	}
	obj, err := jose.ParseEncryptedCompact(string(compact),
		[]jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedJWE, err)
	}
	var key any
	switch k := d.key.(type) {
	case *rsa.PrivateKey:
		key = k
	case oaepDecrypter:
		key = jose.OpaqueKeyDecrypter(k)
	}
	pt, err := obj.Decrypt(key)
	if err != nil {
		var ue *UnsupportedJWEError
		if errors.As(err, &ue) {
			return nil, err
		}
		// go-jose answers ErrCryptoFailure for a bad key or tag and a plain
		// error for an oversized inflate; neither says more than "no".
		return nil, fmt.Errorf("%w: %v", ErrDecryption, err)
	}
	return &Decrypted{
		Plaintext:         pt,
		AuthenticationTag: tag,
		KeyID:             h.Kid,
		ContentType:       h.Cty,
		Compressed:        h.Zip != nil,
	}, nil
}

// inspectCompact splits a compact JWE into its five segments, decodes the
// protected header and checks the tag segment's shape.
func inspectCompact(compact []byte) (*jweHeader, string, error) {
	parts := bytes.Split(compact, []byte("."))
	if len(parts) != 5 {
		return nil, "", fmt.Errorf("%w: %d segments, want 5", ErrMalformedJWE, len(parts))
	}
	if base64.RawURLEncoding.DecodedLen(len(parts[0])) > maxHeaderSize {
		return nil, "", fmt.Errorf("%w: protected header larger than %d bytes", ErrMalformedJWE, maxHeaderSize)
	}
	raw, err := base64.RawURLEncoding.DecodeString(string(parts[0]))
	if err != nil {
		return nil, "", fmt.Errorf("%w: protected header: %v", ErrMalformedJWE, err)
	}
	var h jweHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, "", fmt.Errorf("%w: protected header: %v", ErrMalformedJWE, err)
	}
	return &h, string(parts[4]), nil
}

// checkTag insists on the 16-byte tag of A256GCM.
func checkTag(seg string) error {
	tag, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil || len(tag) != gcmTagSize {
		return fmt.Errorf("%w: authentication tag is not %d base64url bytes", ErrMalformedJWE, gcmTagSize)
	}
	return nil
}

// AuthenticationTag returns the fifth segment of a compact JWE (its
// authentication tag, base64url as transmitted) without decrypting it: the
// platform's submit-submission event and our accept-submission list these.
func AuthenticationTag(compact string) (string, error) {
	_, tag, err := inspectCompact(bytes.TrimSpace([]byte(compact)))
	if err != nil {
		return "", err
	}
	if err := checkTag(tag); err != nil {
		return "", err
	}
	return tag, nil
}

// PublicKey is an RSA public JWK FIT-Connect uses to encrypt to (a destination's
// encryption key, or the reply key a sender put in its metadata) or to verify
// with (a destination's or the platform's signature key).
type PublicKey struct {
	KeyID     string
	Algorithm string
	Key       *rsa.PublicKey
}

// Bits is the modulus length.
func (p *PublicKey) Bits() int { return p.Key.N.BitLen() }

// ParseEncryptionKey reads a public RSA JWK for encryption: alg, when present,
// RSA-OAEP-256; key_ops, when present, containing wrapKey (or encrypt). A
// private JWK is accepted and reduced to its public part. The key length is
// not checked here: compare Bits with MinKeyBits where the caller insists.
func ParseEncryptionKey(jwk []byte) (*PublicKey, error) {
	if len(jwk) > maxJWKSize {
		return nil, fmt.Errorf("%w: JWK larger than %d bytes", ErrInvalidKey, maxJWKSize)
	}
	k, err := parseRSAJWK(jwk, KeyAlgorithm, []string{"wrapKey", "encrypt"})
	if err != nil {
		return nil, err
	}
	return publicOf(k)
}

func publicOf(k *jose.JSONWebKey) (*PublicKey, error) {
	var pub *rsa.PublicKey
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		pub = key
	case *rsa.PrivateKey:
		pub = &key.PublicKey
	default:
		return nil, fmt.Errorf("%w: %T is not an RSA key", ErrInvalidKey, k.Key)
	}
	return &PublicKey{KeyID: k.KeyID, Algorithm: k.Algorithm, Key: pub}, nil
}

// EncryptOptions are the optional header members of Encrypt.
type EncryptOptions struct {
	// ContentType becomes cty. FIT-Connect's platform refuses metadata and
	// JSON data without cty application/json (observed on the v2 test
	// platform); attachments may leave it empty.
	ContentType string
}

// Encrypt encrypts plaintext to an RSA public key as a compact JWE with the
// header the SDKs write: alg RSA-OAEP-256, enc A256GCM, kid (the key's kid,
// when it has one), cty when given, never zip. It serves replies (encrypted to
// the reply key the sender named in replyChannel.fitConnect) and tests.
func Encrypt(plaintext []byte, to *PublicKey, opts EncryptOptions) (string, error) {
	if to == nil || to.Key == nil {
		return "", fmt.Errorf("%w: no recipient key", ErrInvalidKey)
	}
	eo := &jose.EncrypterOptions{}
	if opts.ContentType != "" {
		eo = eo.WithContentType(jose.ContentType(opts.ContentType))
	}
	enc, err := jose.NewEncrypter(jose.A256GCM,
		jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: to.Key, KeyID: to.KeyID}, eo)
	if err != nil {
		return "", fmt.Errorf("fitconnect: preparing JWE: %w", err)
	}
	obj, err := enc.Encrypt(plaintext)
	if err != nil {
		return "", fmt.Errorf("fitconnect: encrypting: %w", err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("fitconnect: serializing JWE: %w", err)
	}
	return s, nil
}

// parseRSAJWK decodes one JWK and checks kty RSA, alg (when present) and
// key_ops (when present, at least one of allowedOps).
func parseRSAJWK(b []byte, alg string, allowedOps []string) (*jose.JSONWebKey, error) {
	var probe struct {
		Kty    string   `json:"kty"`
		Alg    string   `json:"alg"`
		KeyOps []string `json:"key_ops"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if probe.Kty != "RSA" {
		return nil, fmt.Errorf("%w: kty %q, want RSA", ErrInvalidKey, probe.Kty)
	}
	if probe.Alg != "" && probe.Alg != alg {
		return nil, fmt.Errorf("%w: alg %q, want %s", ErrInvalidKey, probe.Alg, alg)
	}
	if len(probe.KeyOps) > 0 && !anyOf(probe.KeyOps, allowedOps) {
		return nil, fmt.Errorf("%w: key_ops %v allow none of %v", ErrInvalidKey, probe.KeyOps, allowedOps)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if !k.Valid() {
		return nil, fmt.Errorf("%w: JWK is not a valid RSA key", ErrInvalidKey)
	}
	return &k, nil
}

func anyOf(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

// readCapped reads a whole file but refuses one larger than limit.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
