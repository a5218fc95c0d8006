package portal

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
)

// FIT-Connect encrypts metadata, data and every attachment as a JWE in compact
// serialization (RFC 7516 § 7.1) with RSA-OAEP-256 key encryption and A256GCM
// content encryption (docs.fitko.de, "Verschlüsselte Übertragung"); nothing
// else is accepted.
//
// decryptJWE reads a compact JWE from a stream, within bounds: the header,
// key and IV segments are small and capped, the ciphertext is decoded into
// one buffer of its own size and decrypted in place, so that an attachment
// of n bytes costs n bytes of memory, not the four copies a string-based
// JOSE library makes. It is the channel's own for that reason.
const (
	jweAlg = "RSA-OAEP-256"
	jweEnc = "A256GCM"
	// maxJWEHeader caps the protected header segment, maxJWEKey the encrypted
	// key (a 8192-bit RSA key's ciphertext is 1366 characters).
	maxJWEHeader = 16 << 10
	maxJWEKey    = 4 << 10
)

// Errors of the JWE handling; each is the problem encryption-issue.
var (
	errMalformedJWE   = errors.New("malformed JWE")
	errUnsupportedJWE = errors.New("unsupported JWE")
	errDecryption     = errors.New("JWE does not decrypt with the destination's key")
	errPlainTooLarge  = errors.New("decrypted content exceeds max_submission_size")
)

// jweInfo is what a decrypted JWE says about itself.
type jweInfo struct {
	// Tag is the fifth segment as transmitted (base64url), the
	// authentication tag accept-submission names.
	Tag string
	Kid string
	Cty string
	Zip bool
}

// jweHeader is the protected header's members this channel reads.
type jweHeader struct {
	Alg  string          `json:"alg"`
	Enc  string          `json:"enc"`
	Zip  *string         `json:"zip"`
	Crit json.RawMessage `json:"crit"`
	Kid  string          `json:"kid"`
	Cty  string          `json:"cty"`
}

// decryptJWE decrypts the compact JWE of size bytes r holds with key (RSA,
// OAEP with SHA-256) and returns a reader of the plaintext, inflated when the
// header says zip DEF, which ends in errPlainTooLarge after maxPlain bytes.
func decryptJWE(r io.Reader, size int64, key crypto.Decrypter, maxPlain int64) (io.Reader, jweInfo, error) {
	var info jweInfo
	br := bufio.NewReaderSize(r, 64<<10)
	protected, err := readSegment(br, maxJWEHeader)
	if err != nil {
		return nil, info, fmt.Errorf("%w: protected header: %v", errMalformedJWE, err)
	}
	hdrJSON, err := base64.RawURLEncoding.DecodeString(string(protected))
	if err != nil {
		return nil, info, fmt.Errorf("%w: protected header: %v", errMalformedJWE, err)
	}
	var h jweHeader
	if err := json.Unmarshal(hdrJSON, &h); err != nil {
		return nil, info, fmt.Errorf("%w: protected header: %v", errMalformedJWE, err)
	}
	info.Kid, info.Cty = h.Kid, h.Cty
	switch {
	case h.Alg != jweAlg:
		return nil, info, fmt.Errorf("%w: alg %q, want %s", errUnsupportedJWE, h.Alg, jweAlg)
	case h.Enc != jweEnc:
		return nil, info, fmt.Errorf("%w: enc %q, want %s", errUnsupportedJWE, h.Enc, jweEnc)
	case len(h.Crit) > 0 && string(h.Crit) != "null":
		return nil, info, fmt.Errorf("%w: crit %s", errUnsupportedJWE, h.Crit)
	case h.Zip != nil && *h.Zip != "DEF":
		return nil, info, fmt.Errorf("%w: zip %q", errUnsupportedJWE, *h.Zip)
	}
	// The Python SDK fitconnect 0.4.2 (through jwcrypto) always compresses;
	// the inflated size is capped below.
	info.Zip = h.Zip != nil
	ek, err := readB64Segment(br, maxJWEKey)
	if err != nil {
		return nil, info, fmt.Errorf("%w: encrypted key: %v", errMalformedJWE, err)
	}
	iv, err := readB64Segment(br, 64)
	if err != nil || len(iv) != 12 {
		return nil, info, fmt.Errorf("%w: initialization vector of %d bytes (%v)", errMalformedJWE, len(iv), err)
	}
	// The ciphertext and the tag go into one buffer, in the layout
	// cipher.AEAD.Open takes, and are decrypted in place.
	est := max(size, 0)*3/4 + 16
	buf := bytes.NewBuffer(make([]byte, 0, est))
	seg := &segment{r: br}
	if _, err := io.Copy(buf, base64.NewDecoder(base64.RawURLEncoding, seg)); err != nil {
		return nil, info, fmt.Errorf("%w: ciphertext: %v", errMalformedJWE, err)
	}
	tagB64, err := readSegment(br, 64)
	if err != nil {
		return nil, info, fmt.Errorf("%w: authentication tag: %v", errMalformedJWE, err)
	}
	tagB64 = bytes.TrimRight(tagB64, " \t\r\n")
	tag, err := base64.RawURLEncoding.DecodeString(string(tagB64))
	if err != nil || len(tag) != 16 {
		return nil, info, fmt.Errorf("%w: authentication tag of %d bytes (%v)", errMalformedJWE, len(tag), err)
	}
	if rest, _ := br.Peek(1); len(rest) > 0 {
		return nil, info, fmt.Errorf("%w: more than five segments", errMalformedJWE)
	}
	info.Tag = string(tagB64)
	cek, err := key.Decrypt(rand.Reader, ek, &rsa.OAEPOptions{Hash: crypto.SHA256})
	if err != nil || len(cek) != 32 {
		// RFC 7516 § 11.5: go on with a random key, so that a wrong key and a
		// tampered ciphertext fail alike, at the tag.
		cek = make([]byte, 32)
		_, _ = rand.Read(cek)
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, info, fmt.Errorf("%w: %v", errDecryption, err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, info, fmt.Errorf("%w: %v", errDecryption, err)
	}
	ct := append(buf.Bytes(), tag...)
	// RFC 7516 § 5.2 step 14: the AAD is the ASCII of the encoded header.
	pt, err := gcm.Open(ct[:0], iv, ct, protected)
	if err != nil {
		return nil, info, errDecryption
	}
	if !info.Zip {
		if int64(len(pt)) > maxPlain {
			return nil, info, errPlainTooLarge
		}
		return bytes.NewReader(pt), info, nil
	}
	return &cappedReader{r: flate.NewReader(bytes.NewReader(pt)), left: maxPlain}, info, nil
}

// readSegment reads up to the next '.' or the end, at most limit bytes.
func readSegment(br *bufio.Reader, limit int) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('.')
		switch {
		case err == nil:
			out = append(out, chunk[:len(chunk)-1]...)
		case errors.Is(err, bufio.ErrBufferFull):
			out = append(out, chunk...)
		case errors.Is(err, io.EOF):
			out = append(out, chunk...)
		default:
			return nil, err
		}
		if len(out) > limit {
			return nil, fmt.Errorf("segment longer than %d bytes", limit)
		}
		if err == nil || errors.Is(err, io.EOF) {
			return out, nil
		}
	}
}

func readB64Segment(br *bufio.Reader, limit int) ([]byte, error) {
	s, err := readSegment(br, limit)
	if err != nil {
		return nil, err
	}
	return base64.RawURLEncoding.DecodeString(string(s))
}

// segment reads one segment of a compact serialization, up to its '.'.
type segment struct {
	r       *bufio.Reader
	pending []byte
	end     bool
}

func (s *segment) Read(p []byte) (int, error) {
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

// cappedReader ends in errPlainTooLarge after left bytes.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, _ := c.r.Read(one[:]); n > 0 {
			return 0, errPlainTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
