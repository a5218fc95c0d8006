package blobtest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// buffering is a store that holds each blob whole in memory on its way in,
// as a careless backend would.
type buffering struct{ *blob.Store }

func (b buffering) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	all, err := io.ReadAll(r)
	if err != nil {
		return blob.Ref{}, err
	}
	return b.Store.Put(ctx, bytes.NewReader(all), maxSize)
}

// TestLargeCatchesBuffering: the heap measurement of the large-blob test
// tells a streaming store from one that buffers.
func TestLargeCatchesBuffering(t *testing.T) {
	s, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const size = 48 << 20
	streamed, err := streamLarge(context.Background(), s, s, size)
	if err != nil {
		t.Fatal(err)
	}
	buffered, err := streamLarge(context.Background(), buffering{s}, s, size)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 32 << 20
	if streamed > limit || buffered <= limit {
		t.Fatalf("heap growth: streaming %d MiB, buffering %d MiB; the limit %d MiB must lie between", streamed>>20, buffered>>20, limit>>20)
	}
}
