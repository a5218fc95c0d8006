package mailmsg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// genStore serves one generated message, a text part and a large base64
// attachment of zero bytes, without holding it in memory; Put hashes and
// discards.
type genStore struct{ size int64 }

func (g *genStore) rawRef() blob.Ref { return blob.Ref{SHA256: "generated", Size: g.size * 4 / 3} }

func (g *genStore) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	head := "From: a@example.org\r\nContent-Type: multipart/mixed; boundary=g\r\n\r\n--g\r\n\r\ntext\r\n--g\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	lines := g.size / 57
	return io.NopCloser(io.MultiReader(
		stringReader(head),
		&repeatReader{line: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n", n: lines},
		stringReader("\r\n--g--\r\n"))), nil
}

func (g *genStore) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return blob.Ref{}, err
	}
	return blob.Ref{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

type repeatReader struct {
	line string
	n    int64
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	total := 0
	for len(p) > 0 && r.n > 0 {
		c := copy(p, r.line[r.off:])
		p = p[c:]
		total += c
		r.off += c
		if r.off == len(r.line) {
			r.off = 0
			r.n--
		}
	}
	return total, nil
}

type stringReaderT struct{ s string }

func stringReader(s string) io.Reader { return &stringReaderT{s} }

func (r *stringReaderT) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}
