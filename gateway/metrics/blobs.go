package metrics

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Blobs wraps a blob store to time its operations. A refused oversized
// message and a missing blob are answers, not store errors, so they do not
// count as errors.
// A store that can erase (eventstore/cryptblob) stays a blob.Eraser through
// the wrapper, and one that cannot does not become one, so that callers
// can tell by the type alone.
func (m *Metrics) Blobs(b blob.Backend) blob.Backend {
	t := &timedBlobs{b: b, m: m}
	if e, ok := b.(blob.Eraser); ok {
		return &timedErasingBlobs{timedBlobs: t, e: e}
	}
	return t
}

type timedBlobs struct {
	b blob.Backend
	m *Metrics
}

func (t *timedBlobs) done(op string, start time.Time, err error) {
	t.m.blobOps.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, blob.ErrTooLarge) && !errors.Is(err, blob.ErrNotFound) && !errors.Is(err, blob.ErrErased) && !errors.Is(err, context.Canceled) {
		t.m.blobErrors.WithLabelValues(op).Inc()
	}
}

func (t *timedBlobs) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	start := time.Now()
	ref, err := t.b.Put(ctx, r, maxSize)
	t.done("put", start, err)
	return ref, err
}

func (t *timedBlobs) PutBytes(ctx context.Context, b []byte) (blob.Ref, error) {
	start := time.Now()
	ref, err := t.b.PutBytes(ctx, b)
	t.done("put", start, err)
	return ref, err
}

// Open times the request that opens the blob, not the reading of it.
func (t *timedBlobs) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := t.b.Open(ctx, ref)
	t.done("open", start, err)
	return rc, err
}

func (t *timedBlobs) ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error) {
	start := time.Now()
	b, err := t.b.ReadAll(ctx, ref, max)
	t.done("read_all", start, err)
	return b, err
}

func (t *timedBlobs) Verify(ctx context.Context, ref blob.Ref) error {
	start := time.Now()
	err := t.b.Verify(ctx, ref)
	t.done("verify", start, err)
	return err
}

func (t *timedBlobs) Stat(ctx context.Context, ref blob.Ref) (blob.Ref, error) {
	start := time.Now()
	r, err := t.b.Stat(ctx, ref)
	t.done("stat", start, err)
	return r, err
}

func (t *timedBlobs) Ping(ctx context.Context) error {
	start := time.Now()
	err := t.b.Ping(ctx)
	t.done("ping", start, err)
	return err
}

// timedErasingBlobs is timedBlobs over a store that can erase.
type timedErasingBlobs struct {
	*timedBlobs
	e blob.Eraser
}

// Erase times the inner store's erasure.
func (t *timedErasingBlobs) Erase(ctx context.Context, ref blob.Ref) error {
	start := time.Now()
	err := t.e.Erase(ctx, ref)
	t.done("erase", start, err)
	return err
}

// Erasable passes the inner store's answer through (see
// retention.ErasableChecker); without one, every blob counts as erasable.
func (t *timedErasingBlobs) Erasable(ctx context.Context, ref blob.Ref) (bool, error) {
	if c, ok := t.e.(interface {
		Erasable(context.Context, blob.Ref) (bool, error)
	}); ok {
		return c.Erasable(ctx, ref)
	}
	return true, nil
}

// Close closes the inner store when it has anything to close.
func (t *timedBlobs) Close() error {
	if c, ok := t.b.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
