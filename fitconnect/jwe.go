package fitconnect

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
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
	// ErrPlaintextTooLarge: the decrypted (inflated) content exceeds
	// DecryptOptions.MaxPlaintext.
	ErrPlaintextTooLarge = errors.New("fitconnect: decrypted content too large")
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
	// key unwraps the content encryption key; *rsa.PrivateKey is one too.
	key crypto.Decrypter
}

// KeyID is the kid of the key ("" when unknown).
func (d *Decrypter) KeyID() string { return d.kid }

// Public is the key's public half (nil when the key holds none), e.g. to
// check its length against a policy.
func (d *Decrypter) Public() *rsa.PublicKey {
	pub, _ := d.key.Public().(*rsa.PublicKey)
	return pub
}

// PublicJWK is the matching encryption key as a public JWK (kid, alg
// RSA-OAEP-256, use enc, key_ops wrapKey): what senders encrypt to.
func (d *Decrypter) PublicJWK() ([]byte, error) {
	pub := d.Public()
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
// a *pkcs11.Key). kid is the key's id as registered with the destination. The
// key is only ever asked for RSA-OAEP with SHA-256 (RFC 7518 §4.3), because
// every other alg is refused before a key is touched.
func NewCryptoDecrypter(kid string, d crypto.Decrypter) (*Decrypter, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil decrypter", ErrInvalidKey)
	}
	if _, ok := d.Public().(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("%w: decrypter holds a %T, want an RSA key", ErrInvalidKey, d.Public())
	}
	return &Decrypter{kid: kid, key: d}, nil
}

// DecryptOptions bound and tune decryption.
type DecryptOptions struct {
	// MaxSize caps the compact serialization in bytes; 0 means DefaultMaxJWESize.
	// Reading stops with ErrJWETooLarge as soon as the input passes it.
	MaxSize int64
	// MaxPlaintext caps the decrypted content, after inflating; 0 means the
	// serialization's cap (MaxSize or its default). Past it, decryption fails
	// with ErrPlaintextTooLarge.
	MaxPlaintext int64
	// Size is the serialization's length when the caller knows it (a file's
	// size, a Content-Length): the ciphertext buffer is then allocated once at
	// its final size. 0 means unknown (a bytes.Reader or strings.Reader is
	// measured; other readers grow the buffer as they are read).
	Size int64
	// AllowCompression accepts "zip":"DEF". FIT-Connect's Submission API v2
	// forbids zip, and we refuse it by default; the Python SDK fitconnect 0.4.2
	// (v1) always sets it, so a destination that must read what that SDK sends
	// turns this on. The inflated content stays within MaxPlaintext.
	AllowCompression bool
}

// Decrypted is the result of a decryption.
type Decrypted struct {
	// Plaintext is the decrypted content (nil from OpenJWE, which hands out a
	// reader instead).
	Plaintext []byte
	// AuthenticationTag is the fifth compact segment exactly as transmitted
	// (base64url): accept-submission lists these, and the platform's
	// submit-submission records them for the destination to compare.
	AuthenticationTag string
	KeyID             string // the header's kid ("" when absent)
	ContentType       string // the header's cty ("" when absent)
	Compressed        bool   // the header had zip DEF (only with AllowCompression)
}

// jweHeader is the part of the protected header we check before any key
// operation.
type jweHeader struct {
	Alg  string          `json:"alg"`
	Enc  string          `json:"enc"`
	Zip  *string         `json:"zip"`
	Crit json.RawMessage `json:"crit"`
	Kid  string          `json:"kid"`
	Cty  string          `json:"cty"`
}

// check refuses every header FIT-Connect does not allow: another alg or enc,
// a crit member (RFC 7516 §4.1.13: we understand no extension), or zip other
// than DEF, and DEF unless allowed.
func (h *jweHeader) check(allowZip bool) error {
	switch {
	case h.Alg != KeyAlgorithm:
		return &UnsupportedJWEError{Member: "alg", Value: h.Alg}
	case h.Enc != ContentEncryption:
		return &UnsupportedJWEError{Member: "enc", Value: h.Enc}
	case len(h.Crit) > 0 && string(h.Crit) != "null":
		return &UnsupportedJWEError{Member: "crit", Value: string(h.Crit)}
	case h.Zip != nil && (!allowZip || *h.Zip != "DEF"):
		return &UnsupportedJWEError{Member: "zip", Value: *h.Zip}
	}
	return nil
}

// Decrypt decrypts a compact JWE held in memory with the destination's key
// (DecryptReader over the bytes: there is one decryption path).
func Decrypt(compact []byte, d *Decrypter, opts DecryptOptions) (*Decrypted, error) {
	if opts.Size == 0 {
		opts.Size = int64(len(compact))
	}
	return DecryptReader(bytes.NewReader(compact), d, opts)
}

// DecryptReader reads a compact JWE from r and decrypts it with the
// destination's key, within the bounds of opts; see OpenJWE for the order of
// the checks. Plaintext is the whole content, for an uncompressed JWE in the
// very buffer the ciphertext was decoded into.
func DecryptReader(r io.Reader, d *Decrypter, opts DecryptOptions) (*Decrypted, error) {
	info, pt, err := decryptCompact(r, d, opts)
	if err != nil {
		return nil, err
	}
	if info.Compressed {
		if pt, err = io.ReadAll(inflater(pt, plaintextCap(opts))); err != nil {
			return nil, err
		}
	}
	info.Plaintext = pt
	return info, nil
}

// OpenJWE reads a compact JWE from r, decrypts it and returns a reader of the
// plaintext (inflated as it is read when the header says zip DEF; reading
// fails with ErrPlaintextTooLarge past MaxPlaintext) and what the JWE says
// about itself. It reads as a stream: the protected header, encrypted key and
// IV are small and capped, the ciphertext is base64-decoded into one buffer of
// its own size and decrypted in place, so a JWE of n bytes costs about 3n/4
// bytes of memory, never the copies of a string-based JOSE library. The input
// is capped before it is decoded; alg, enc, zip and crit are checked before
// any key operation; a failed key unwrap goes on with a random key (RFC 7516
// §11.5), so that a wrong key and a tampered token fail alike, at the tag.
//
// The returned *Decrypted is never nil: on an error it holds what was read
// before it (the header's kid and cty, and the tag once the whole token was
// read), which a receipt may name. Its Plaintext is nil.
func OpenJWE(r io.Reader, d *Decrypter, opts DecryptOptions) (io.Reader, *Decrypted, error) {
	info, pt, err := decryptCompact(r, d, opts)
	if err != nil {
		return nil, info, err
	}
	if info.Compressed {
		return inflater(pt, plaintextCap(opts)), info, nil
	}
	return bytes.NewReader(pt), info, nil
}

const (
	// maxHeaderSegment caps the protected header's base64url (maxHeaderSize
	// decoded bytes).
	maxHeaderSegment = (maxHeaderSize*4 + 2) / 3
	// maxKeySegment caps the encrypted key: an RSA key of 16384 bits gives
	// 2048 bytes, 2731 characters.
	maxKeySegment = 4 << 10
	// gcmIVSize is the A256GCM IV length (RFC 7518 §5.3).
	gcmIVSize = 12
	// cekSize is the A256GCM key length.
	cekSize = 32
)

func serializationCap(opts DecryptOptions) int64 {
	if opts.MaxSize > 0 {
		return opts.MaxSize
	}
	return DefaultMaxJWESize
}

func plaintextCap(opts DecryptOptions) int64 {
	if opts.MaxPlaintext > 0 {
		return opts.MaxPlaintext
	}
	return serializationCap(opts)
}

// decryptCompact is the one decryption path: it returns the header's facts
// (never nil) and the GCM plaintext, still compressed when info.Compressed.
func decryptCompact(r io.Reader, d *Decrypter, opts DecryptOptions) (*Decrypted, []byte, error) {
	info := &Decrypted{}
	if d == nil || d.key == nil {
		return info, nil, fmt.Errorf("%w: no decryption key", ErrInvalidKey)
	}
	limit := serializationCap(opts)
	size := opts.Size
	if size == 0 {
		if l, ok := r.(interface{ Len() int }); ok {
			size = int64(l.Len())
		}
	}
	if size > limit {
		return info, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrJWETooLarge, size, limit)
	}
	lr := &capReader{r: r, left: limit}
	br := bufio.NewReaderSize(lr, 64<<10)

	// RFC 7516 §7.1: BASE64URL(header) . key . iv . ciphertext . tag. The
	// in-memory form used to be trimmed; a stream may start with white space
	// as well.
	skipSpace(br)
	protected, more, err := readSegment(br, maxHeaderSegment)
	if err != nil {
		return info, nil, lr.wrap(fmt.Errorf("%w: protected header: %v", ErrMalformedJWE, err))
	}
	if !more {
		return info, nil, fmt.Errorf("%w: 1 segment, want 5", ErrMalformedJWE)
	}
	raw, err := base64.RawURLEncoding.DecodeString(string(protected))
	if err != nil {
		return info, nil, fmt.Errorf("%w: protected header: %v", ErrMalformedJWE, err)
	}
	var h jweHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return info, nil, fmt.Errorf("%w: protected header: %v", ErrMalformedJWE, err)
	}
	info.KeyID, info.ContentType, info.Compressed = h.Kid, h.Cty, h.Zip != nil
	if err := h.check(opts.AllowCompression); err != nil {
		return info, nil, err
	}
	ek, err := readB64Segment(br, maxKeySegment, "encrypted key")
	if err != nil {
		return info, nil, lr.wrap(err)
	}
	iv, err := readB64Segment(br, 64, "initialization vector")
	if err != nil {
		return info, nil, lr.wrap(err)
	}
	if len(iv) != gcmIVSize {
		return info, nil, fmt.Errorf("%w: initialization vector of %d bytes, want %d", ErrMalformedJWE, len(iv), gcmIVSize)
	}
	// The ciphertext and the tag go into one buffer in the layout
	// cipher.AEAD.Open takes, and are decrypted in place. The margin covers
	// bytes.Buffer's last read (it grows when fewer than 512 bytes are free)
	// and the tag appended.
	est := int64(0)
	if size > 0 {
		est = size*3/4 + 512 + gcmTagSize
	}
	buf := bytes.NewBuffer(make([]byte, 0, est))
	seg := &segmentReader{r: br}
	if _, err := io.Copy(buf, base64.NewDecoder(base64.RawURLEncoding, seg)); err != nil {
		return info, nil, lr.wrap(fmt.Errorf("%w: ciphertext: %v", ErrMalformedJWE, err))
	}
	tagSeg, more, err := readSegment(br, 64)
	if err != nil {
		return info, nil, lr.wrap(fmt.Errorf("%w: authentication tag: %v", ErrMalformedJWE, err))
	}
	tagSeg = bytes.TrimRight(tagSeg, " \t\r\n")
	if rest, _ := br.Peek(1); more || len(rest) > 0 {
		return info, nil, lr.wrap(fmt.Errorf("%w: more than five segments", ErrMalformedJWE))
	}
	if lr.over {
		return info, nil, fmt.Errorf("%w: more than %d bytes", ErrJWETooLarge, limit)
	}
	if err := checkTag(string(tagSeg)); err != nil {
		return info, nil, err
	}
	info.AuthenticationTag = string(tagSeg)
	tag, _ := base64.RawURLEncoding.DecodeString(string(tagSeg))

	cek, err := d.key.Decrypt(rand.Reader, ek, &rsa.OAEPOptions{Hash: crypto.SHA256})
	if err != nil || len(cek) != cekSize {
		// RFC 7516 §11.5: no oracle on the key unwrap.
		cek = make([]byte, cekSize)
		_, _ = rand.Read(cek)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return info, nil, fmt.Errorf("%w: %v", ErrDecryption, err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return info, nil, fmt.Errorf("%w: %v", ErrDecryption, err)
	}
	ct := append(buf.Bytes(), tag...)
	// RFC 7516 §5.2 step 14: the AAD is the ASCII of the encoded header.
	pt, err := gcm.Open(ct[:0], iv, ct, protected)
	if err != nil {
		return info, nil, fmt.Errorf("%w: the key does not open the content or the tag does not verify", ErrDecryption)
	}
	if !info.Compressed && int64(len(pt)) > plaintextCap(opts) {
		return info, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrPlaintextTooLarge, len(pt), plaintextCap(opts))
	}
	return info, pt, nil
}

// capReader passes at most left bytes and then reports over (one byte more is
// read to tell "exactly the cap" from "more").
type capReader struct {
	r    io.Reader
	left int64
	over bool
	// ioErr is a read error of the input: the caller's trouble (a file, a
	// connection), not a malformed token.
	ioErr error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		c.over = true
		return 0, ErrJWETooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		c.over = true
		n += int(c.left) // hand out no byte past the cap
		return n, ErrJWETooLarge
	}
	if err != nil && !errors.Is(err, io.EOF) {
		c.ioErr = err
	}
	return n, err
}

// wrap turns err into ErrJWETooLarge when the input ran past the cap, and
// into the read error itself when reading failed (the segment readers see
// only a read error; neither is a malformed token).
func (c *capReader) wrap(err error) error {
	if c.ioErr != nil {
		return fmt.Errorf("fitconnect: reading the JWE: %w", c.ioErr)
	}
	if c.over {
		return fmt.Errorf("%w: the input passes the cap", ErrJWETooLarge)
	}
	return err
}

func skipSpace(br *bufio.Reader) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return
		}
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			_ = br.UnreadByte()
			return
		}
	}
}

// readSegment reads up to the next '.' (more true) or the end of the input,
// at most limit bytes.
func readSegment(br *bufio.Reader, limit int) (seg []byte, more bool, err error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('.')
		switch {
		case err == nil:
			out = append(out, chunk[:len(chunk)-1]...)
		case errors.Is(err, bufio.ErrBufferFull), errors.Is(err, io.EOF):
			out = append(out, chunk...)
		default:
			return nil, false, err
		}
		if len(out) > limit {
			return nil, false, fmt.Errorf("segment longer than %d bytes", limit)
		}
		if err == nil {
			return out, true, nil
		}
		if errors.Is(err, io.EOF) {
			return out, false, nil
		}
	}
}

// readB64Segment reads one of the inner segments, which a '.' must end.
func readB64Segment(br *bufio.Reader, limit int, what string) ([]byte, error) {
	s, more, err := readSegment(br, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformedJWE, what, err)
	}
	if !more {
		return nil, fmt.Errorf("%w: the input ends in the %s", ErrMalformedJWE, what)
	}
	b, err := base64.RawURLEncoding.DecodeString(string(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformedJWE, what, err)
	}
	return b, nil
}

// segmentReader reads one segment of a compact serialization, up to its '.'.
type segmentReader struct {
	r       *bufio.Reader
	pending []byte
	end     bool
}

func (s *segmentReader) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		if s.end {
			return 0, io.EOF
		}
		chunk, err := s.r.ReadSlice('.')
		switch {
		case err == nil:
			chunk, s.end = chunk[:len(chunk)-1], true
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return 0, fmt.Errorf("%w: the ciphertext is the last segment", io.ErrUnexpectedEOF)
		default:
			return 0, err
		}
		s.pending = chunk
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// inflater inflates zip DEF content (RFC 7516 §4.1.3, RFC 1951), at most
// limit bytes.
func inflater(pt []byte, limit int64) io.Reader {
	return &inflateReader{r: flate.NewReader(bytes.NewReader(pt)), left: limit, limit: limit}
}

// inflateReader fails with ErrPlaintextTooLarge past the cap and turns a
// corrupt stream into ErrMalformedJWE.
type inflateReader struct {
	r           io.Reader
	left, limit int64
}

func (c *inflateReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: more than %d bytes inflated", ErrPlaintextTooLarge, c.limit)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("%w: zip DEF content: %v", ErrMalformedJWE, err)
	}
	return n, err
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
