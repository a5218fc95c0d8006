package cryptblob

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// The ciphertext format, version 1:
//
//	header  "PSCB" | version 0x01 | chunk size, uint32 big-endian (65536)
//	chunks  AES-256-GCM(data key, nonce_i, plaintext chunk i, AAD = header)
//
// Every chunk but the last holds exactly chunk size bytes of plaintext; the
// last holds 0 to chunk size (0 only when the whole plaintext is empty). The
// nonce of chunk i is 3 zero bytes, i as uint64 big-endian and a flag byte,
// 1 for the last chunk and 0 otherwise: the STREAM construction (Hoang,
// Reyhanitabar, Rogaway and Vizár, "Online Authenticated-Encryption and its
// Nonce-Reuse Misuse-Resistance", CRYPTO 2015), so that chunks cannot be
// reordered, dropped, duplicated or cut off at a chunk boundary without a
// tag failing. Each blob has a fresh random data key, so the fixed nonce
// prefix never repeats under one key.
const (
	magic      = "PSCB"
	version    = 1
	headerSize = len(magic) + 1 + 4
	tagSize    = 16
	nonceSize  = 12
	// ChunkSize is the plaintext per chunk. It bounds what a reader holds
	// (two chunks) and what a reader hands out unauthenticated (nothing:
	// a chunk is released only after its tag verified).
	ChunkSize = 64 << 10
	keySize   = 32
)

// errAuth is a chunk whose tag does not verify: altered, moved, dropped,
// truncated, or sealed under another key.
var errAuth = errors.New("chunk fails authentication")

func header(chunk int) []byte {
	h := make([]byte, 0, headerSize)
	h = append(h, magic...)
	h = append(h, version)
	return binary.BigEndian.AppendUint32(h, uint32(chunk))
}

func nonce(i uint64, last bool) []byte {
	var n [nonceSize]byte
	binary.BigEndian.PutUint64(n[3:11], i)
	if last {
		n[11] = 1
	}
	return n[:]
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cryptblob: data key: %w", err)
	}
	return cipher.NewGCM(b)
}

// cipherSize is the ciphertext length of plain bytes of plaintext.
func cipherSize(plain int64, chunk int) int64 {
	chunks := max(1, (plain+int64(chunk)-1)/int64(chunk))
	return int64(headerSize) + plain + chunks*tagSize
}

// plainSize inverts cipherSize; ok is false for a length no plaintext
// encrypts to.
func plainSize(ciphertext int64, chunk int) (int64, bool) {
	body := ciphertext - int64(headerSize)
	if body < tagSize {
		return 0, false
	}
	chunks := (body + int64(chunk) + tagSize - 1) / (int64(chunk) + tagSize)
	p := body - chunks*tagSize
	return p, p >= 0 && cipherSize(p, chunk) == ciphertext
}

// encrypt streams src, at most maxSize bytes when maxSize > 0, to dst as the
// ciphertext under key, and returns the plaintext's reference. buf, of
// chunk+tagSize bytes, is the only buffer it uses (nil: it makes one).
func encrypt(ctx context.Context, dst io.Writer, src io.Reader, key, buf []byte, chunk int, maxSize int64) (blob.Ref, error) {
	aead, err := newGCM(key)
	if err != nil {
		return blob.Ref{}, err
	}
	if maxSize > 0 {
		src = io.LimitReader(src, maxSize+1)
	}
	if len(buf) < chunk+tagSize {
		buf = make([]byte, chunk+tagSize)
	}
	hdr := header(chunk)
	if _, err := dst.Write(hdr); err != nil {
		return blob.Ref{}, fmt.Errorf("cryptblob: write header: %w", err)
	}
	in := &chunkReader{r: &ctxReader{ctx: ctx, r: src}}
	h := sha256.New()
	var n int64
	for i := uint64(0); ; i++ {
		m, last, err := in.next(buf[:chunk])
		if err != nil {
			return blob.Ref{}, fmt.Errorf("cryptblob: read content: %w", err)
		}
		if n += int64(m); maxSize > 0 && n > maxSize {
			return blob.Ref{}, fmt.Errorf("%w (%d bytes)", blob.ErrTooLarge, maxSize)
		}
		h.Write(buf[:m])
		if _, err := dst.Write(aead.Seal(buf[:0], nonce(i, last), buf[:m], hdr)); err != nil {
			return blob.Ref{}, fmt.Errorf("cryptblob: write chunk %d: %w", i, err)
		}
		if last {
			return blob.Ref{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
		}
	}
}

// chunkReader cuts its input into chunks and tells the last: a full chunk
// is the last only when nothing follows it, which it learns by reading one
// byte ahead and carrying that byte into the next chunk.
type chunkReader struct {
	r        io.Reader
	carry    [1]byte
	hasCarry bool
}

func (c *chunkReader) next(buf []byte) (int, bool, error) {
	m := 0
	if c.hasCarry {
		buf[0], m, c.hasCarry = c.carry[0], 1, false
	}
	k, err := io.ReadFull(c.r, buf[m:])
	m += k
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return m, true, nil
	case err != nil:
		return m, false, err
	}
	switch _, err := io.ReadFull(c.r, c.carry[:]); {
	case err == io.EOF:
		return m, true, nil
	case err != nil:
		return m, false, err
	}
	c.hasCarry = true
	return m, false, nil
}

// decrypter reads the ciphertext of want and hands out its plaintext one
// authenticated chunk at a time. The last chunk is released only once the
// whole plaintext hashed to want, so a reader that reaches io.EOF has
// verified content, and one that stops at an error has read only bytes
// that chunk tags vouched for.
type decrypter struct {
	src   io.Closer
	br    *bufio.Reader
	aead  cipher.AEAD
	hdr   []byte
	chunk int
	want  blob.Ref
	buf   []byte
	out   []byte
	i     uint64
	n     int64
	h     hash.Hash
	begun bool
	err   error // sticky: io.EOF once the last chunk is out, or the failure
}

func newDecrypter(src io.ReadCloser, key []byte, chunk int, want blob.Ref) (*decrypter, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &decrypter{src: src, br: bufio.NewReaderSize(src, chunk+tagSize), aead: aead, hdr: header(chunk),
		chunk: chunk, want: want, buf: make([]byte, chunk+tagSize), h: sha256.New()}, nil
}

func (d *decrypter) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.err = d.next()
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

func (d *decrypter) Close() error { return d.src.Close() }

func (d *decrypter) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", blob.ErrCorrupt, d.want.SHA256, fmt.Sprintf(format, args...))
}

// next decrypts the next chunk into d.out; it returns io.EOF with the last.
func (d *decrypter) next() error {
	if !d.begun {
		if err := d.readHeader(); err != nil {
			return err
		}
		d.begun = true
	}
	m, err := io.ReadFull(d.br, d.buf)
	last := false
	switch {
	case err == io.EOF:
		return d.corrupt("ciphertext ends before its last chunk (chunk %d)", d.i)
	case err == io.ErrUnexpectedEOF:
		last = true
	case err != nil:
		return fmt.Errorf("cryptblob: read %s: %w", d.want.SHA256, err)
	default:
		if _, err := d.br.Peek(1); err == io.EOF {
			last = true
		} else if err != nil {
			return fmt.Errorf("cryptblob: read %s: %w", d.want.SHA256, err)
		}
	}
	if m < tagSize {
		return d.corrupt("chunk %d has %d bytes, less than its tag", d.i, m)
	}
	pt, err := d.aead.Open(d.buf[:0], nonce(d.i, last), d.buf[:m], d.hdr)
	if err != nil {
		return fmt.Errorf("%w: %s: chunk %d: %w", blob.ErrCorrupt, d.want.SHA256, d.i, errAuth)
	}
	d.i++
	if d.n += int64(len(pt)); d.n > d.want.Size {
		return d.corrupt("more than %d bytes of plaintext", d.want.Size)
	}
	d.h.Write(pt)
	if !last {
		d.out = pt
		return nil
	}
	if got := hex.EncodeToString(d.h.Sum(nil)); got != d.want.SHA256 || d.n != d.want.Size {
		return d.corrupt("decrypts to %s (%d bytes, want %d)", got, d.n, d.want.Size)
	}
	d.out = pt
	return io.EOF
}

func (d *decrypter) readHeader() error {
	got := make([]byte, headerSize)
	if _, err := io.ReadFull(d.br, got); err == io.EOF || err == io.ErrUnexpectedEOF {
		return d.corrupt("ciphertext shorter than its header")
	} else if err != nil {
		return fmt.Errorf("cryptblob: read %s: %w", d.want.SHA256, err)
	}
	if !bytes.Equal(got, d.hdr) {
		return d.corrupt("header %x, want %x (format %s version %d, chunks of %d bytes)", got, d.hdr, magic, version, d.chunk)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
