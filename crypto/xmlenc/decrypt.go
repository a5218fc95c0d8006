package xmlenc

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Resolver opens the content a CipherReference names (in OSCI a cid:
// MIME part); it is the same type xmldsig.Sign takes.
type Resolver = xmldsig.Resolver

// DecryptOptions control Decrypt and DecryptTo.
type DecryptOptions struct {
	Policy    Policy
	Recipient Recipient
	// Key is the data key when the caller has it already (an attachment
	// encrypted with its message's key); no EncryptedKey is opened then.
	Key []byte
	// Keys are EncryptedKeys found elsewhere (a SOAP header), tried
	// after those inside the EncryptedData.
	Keys []*EncryptedKey
	// Document resolves ds:RetrievalMethod URIs ("#id") to EncryptedKeys.
	Document *xmldsig.Document
	// Resolver opens CipherReference URIs.
	Resolver Resolver
}

// Result says how an EncryptedData was decrypted.
type Result struct {
	Algorithms Algorithms
	// Key is the data key, for attachments encrypted with the same key.
	Key []byte
	// EncryptedKey is the one that opened (nil when DecryptOptions.Key
	// was given).
	EncryptedKey *EncryptedKey
	// Bytes is the length of the plaintext.
	Bytes int64
}

// Decrypt decrypts ed into memory. The ciphertext, inline or through the
// Resolver, is bounded by Policy.MaxCipherValue.
func Decrypt(ctx context.Context, ed *EncryptedData, opts DecryptOptions) ([]byte, *Result, error) {
	var buf bytes.Buffer
	p := opts.Policy.withDefaults()
	opts.Policy = p
	opts.Policy.MaxStream = int64(p.MaxCipherValue)
	res, err := DecryptTo(ctx, ed, &buf, opts)
	if err != nil {
		return nil, res, err
	}
	return buf.Bytes(), res, nil
}

// DecryptTo decrypts ed into w, streaming: memory stays bounded whatever
// the size of a referenced ciphertext. Plaintext is written before the
// GCM tag (or the CBC padding) at the end has been checked, so what w
// received is valid only when DecryptTo returns nil; on an error the
// caller must discard it (write to a spool file and delete it).
func DecryptTo(ctx context.Context, ed *EncryptedData, w io.Writer, opts DecryptOptions) (*Result, error) {
	p := opts.Policy.withDefaults()
	alg, err := lookupData(ed.Method.Algorithm)
	if err != nil {
		return nil, err
	}
	ivLen := alg.ivLen
	switch {
	case alg.gcm && ed.Method.IVLength != 0:
		ivLen = ed.Method.IVLength
	case alg.gcm:
		ivLen = p.GCMImplicitIVLength
	}
	if err := p.checkData(alg, ivLen); err != nil {
		return nil, err
	}
	if ed.Method.KeySize != 0 && ed.Method.KeySize != alg.keyLen*8 {
		return nil, fmt.Errorf("%w: KeySize %d for %s", ErrFormat, ed.Method.KeySize, alg.uri)
	}
	res := &Result{Algorithms: Algorithms{Data: alg.uri, IVLength: ivLen, Legacy: alg.legacy || ivLen == 16}}
	if err := res.findKey(ctx, ed, alg, opts, p); err != nil {
		return res, err
	}
	src, closeSrc, err := cipherSource(ctx, ed, opts.Resolver)
	if err != nil {
		return res, err
	}
	defer closeSrc()
	n, err := decryptStream(ctx, alg, res.Key, ivLen, src, w, p.MaxStream)
	res.Bytes = n
	return res, err
}

func (res *Result) findKey(ctx context.Context, ed *EncryptedData, alg dataAlg, opts DecryptOptions, p Policy) error {
	if opts.Key != nil {
		if len(opts.Key) != alg.keyLen {
			return fmt.Errorf("%w: the given key has %d bytes, %s needs %d", ErrDecrypt, len(opts.Key), alg.uri, alg.keyLen)
		}
		res.Key = opts.Key
		return nil
	}
	keys := append(append([]*EncryptedKey(nil), ed.EncryptedKeys...), opts.Keys...)
	for _, uri := range ed.RetrievalURIs {
		ek, err := retrieve(opts.Document, uri, p)
		if err != nil {
			return err
		}
		keys = append(keys, ek)
	}
	if len(keys) > p.MaxEncryptedKeys {
		return fmt.Errorf("%w: %d EncryptedKeys, limit %d", ErrTooLarge, len(keys), p.MaxEncryptedKeys)
	}
	key, kt, ek, err := dataKey(ctx, keys, opts.Recipient, alg.keyLen, p)
	res.Algorithms.KeyTransport, res.Algorithms.OAEPDigest, res.Algorithms.MGF = kt.KeyTransport, kt.OAEPDigest, kt.MGF
	res.Algorithms.Legacy = res.Algorithms.Legacy || kt.Legacy
	if err != nil {
		return err
	}
	res.Key, res.EncryptedKey = key, ek
	return nil
}

func retrieve(doc *xmldsig.Document, uri string, p Policy) (*EncryptedKey, error) {
	id, ok := strings.CutPrefix(uri, "#")
	if !ok || id == "" || doc == nil {
		return nil, fmt.Errorf("%w: RetrievalMethod %q cannot be followed", ErrNoKey, uri)
	}
	e, err := doc.ElementByID(id)
	if err != nil {
		return nil, fmt.Errorf("%w: RetrievalMethod: %v", ErrNoKey, err)
	}
	return ParseEncryptedKey(e, p)
}

func cipherSource(ctx context.Context, ed *EncryptedData, resolve Resolver) (io.Reader, func(), error) {
	if ed.CipherReference == "" {
		return bytes.NewReader(ed.CipherValue), func() {}, nil
	}
	if resolve == nil {
		return nil, nil, fmt.Errorf("%w: no resolver for CipherReference %q", ErrFormat, ed.CipherReference)
	}
	rc, err := resolve(ctx, ed.CipherReference)
	if err != nil {
		return nil, nil, fmt.Errorf("xmlenc: opening CipherReference %q: %w", ed.CipherReference, err)
	}
	var r io.Reader = rc
	if ed.Base64 {
		r = base64.NewDecoder(base64.StdEncoding, rc)
	}
	return r, func() { rc.Close() }, nil
}

// streamChunk is how much ciphertext is processed at a time.
const streamChunk = 64 << 10

// decryptStream reads IV||ciphertext (GCM: ||tag) from r and writes the
// plaintext to w, holding back the tail (tag or last CBC block) until the
// end is known.
func decryptStream(ctx context.Context, alg dataAlg, key []byte, ivLen int, r io.Reader, w io.Writer, max int64) (int64, error) {
	var block cipher.Block
	var err error
	if alg.des {
		block, err = des.NewTripleDESCipher(key)
	} else {
		block, err = aes.NewCipher(key)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	iv := make([]byte, ivLen)
	if _, err := io.ReadFull(r, iv); err != nil {
		return 0, readErr("IV", err)
	}
	var d tailDecrypter
	if alg.gcm {
		s, err := newGCMStream(block, iv, true)
		if err != nil {
			return 0, err
		}
		d = &gcmTail{s: s}
	} else {
		d = &cbcTail{mode: cipher.NewCBCDecrypter(block, iv), bs: block.BlockSize()}
	}
	return runTail(ctx, d, r, w, max-int64(ivLen))
}

func readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: ciphertext truncated in the %s", ErrDecrypt, what)
	}
	var corrupt base64.CorruptInputError
	if errors.As(err, &corrupt) {
		return fmt.Errorf("%w: CipherReference content is not base64: %v", ErrFormat, err)
	}
	return fmt.Errorf("xmlenc: reading ciphertext: %w", err)
}

// tailDecrypter decrypts a stream whose last tail() bytes are special.
type tailDecrypter interface {
	tail() int
	// body decrypts p in place and returns how much of it is plaintext
	// ready to write (CBC works in whole blocks).
	body(p []byte) (int, error)
	// final checks the held-back tail and returns the last plaintext.
	final(rest, tail []byte) ([]byte, error)
}

func runTail(ctx context.Context, d tailDecrypter, r io.Reader, w io.Writer, max int64) (int64, error) {
	t := d.tail()
	buf := make([]byte, streamChunk+2*t)
	have := 0
	var total, read int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := r.Read(buf[have:])
		have += n
		read += int64(n)
		if read > max {
			return total, fmt.Errorf("%w: ciphertext over %d bytes", ErrTooLarge, max)
		}
		if have > t {
			ready, derr := d.body(buf[:have-t])
			if derr != nil {
				return total, derr
			}
			if _, werr := w.Write(buf[:ready]); werr != nil {
				return total, fmt.Errorf("xmlenc: writing plaintext: %w", werr)
			}
			total += int64(ready)
			have = copy(buf, buf[ready:have])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, readErr("data", err)
		}
	}
	if have < t {
		return total, fmt.Errorf("%w: ciphertext truncated", ErrDecrypt)
	}
	last, err := d.final(buf[:have-t], buf[have-t:have])
	if err != nil {
		return total, err
	}
	if _, err := w.Write(last); err != nil {
		return total, fmt.Errorf("xmlenc: writing plaintext: %w", err)
	}
	return total + int64(len(last)), nil
}

type gcmTail struct{ s *gcmStream }

func (g *gcmTail) tail() int { return gcmTagSize }

func (g *gcmTail) body(p []byte) (int, error) {
	if err := g.s.xorKeyStream(p, p); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return len(p), nil
}

func (g *gcmTail) final(rest, tag []byte) ([]byte, error) {
	if len(rest) != 0 {
		return nil, errors.New("xmlenc: internal: GCM data left over")
	}
	if !g.s.verify(tag) {
		return nil, fmt.Errorf("%w: GCM authentication tag does not match", ErrDecrypt)
	}
	return nil, nil
}

type cbcTail struct {
	mode cipher.BlockMode
	bs   int
}

func (c *cbcTail) tail() int { return c.bs }

func (c *cbcTail) body(p []byte) (int, error) {
	n := len(p) - len(p)%c.bs
	c.mode.CryptBlocks(p[:n], p[:n])
	return n, nil
}

// final checks XML Encryption's padding: the last byte counts the
// padding bytes, 1 to the block size (their values are arbitrary).
func (c *cbcTail) final(rest, last []byte) ([]byte, error) {
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: CBC ciphertext is not a whole number of blocks", ErrDecrypt)
	}
	c.mode.CryptBlocks(last, last)
	pad := int(last[len(last)-1])
	if pad < 1 || pad > c.bs {
		return nil, fmt.Errorf("%w: bad CBC padding", ErrDecrypt)
	}
	return last[:c.bs-pad], nil
}
