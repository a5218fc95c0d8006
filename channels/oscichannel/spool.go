package oscichannel

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/osci"
)

// blobSpool keeps what the osci package spools (answers as received, attachments,
// decrypted contents) in the gateway's blob store, so that a recorded part's blob is
// the very bytes read, and nothing goes through memory whole.
type blobSpool struct {
	blobs gateway.BlobStore
	max   int64
}

type spooledBlob struct {
	blobs gateway.BlobStore
	ref   blob.Ref
}

func (s spooledBlob) Open() (io.ReadCloser, error) {
	return s.blobs.Open(context.Background(), s.ref)
}

// Put implements osci.Spool.
func (s blobSpool) Put(ctx context.Context, name string, r io.Reader) (osci.Spooled, error) {
	ref, err := s.blobs.Put(ctx, r, s.max)
	if err != nil {
		if errors.Is(err, blob.ErrTooLarge) {
			return nil, fmt.Errorf("%w: %.40q: %w", osci.ErrTooLarge, name, err)
		}
		return nil, fmt.Errorf("osci channel: storing %.40q: %w", name, err)
	}
	return spooledBlob{blobs: s.blobs, ref: ref}, nil
}

// refOf is the blob of a part spooled here.
func refOf(s osci.Spooled) (blob.Ref, bool) {
	b, ok := s.(spooledBlob)
	return b.ref, ok
}

// limited returns r capped at n bytes, failing past them.
func limited(r io.Reader, n int64) io.Reader { return &capReader{r: r, left: n} }

type capReader struct {
	r    io.Reader
	left int64
}

var errCapped = errors.New("osci channel: input over its cap")

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errCapped
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errCapped
	}
	return n, err
}
