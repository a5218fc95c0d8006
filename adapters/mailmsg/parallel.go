package mailmsg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// ParallelStore lets a walk go on while the parts it has read are still
// being made durable: small parts are buffered and written to the
// underlying store in the background, so that their fsyncs overlap instead
// of adding up on the path to the sender's 250. Memory stays bounded by
// inflight × maxBuffered; larger parts are stored synchronously. Call Wait
// before relying on the parts.
type ParallelStore struct {
	store       Store
	maxBuffered int64
	slots       chan struct{}
	wg          sync.WaitGroup

	mu      sync.Mutex
	pending map[string]chan struct{}
	err     error
}

// NewParallelStore wraps s with at most inflight background writes of parts
// up to maxBuffered bytes each.
func NewParallelStore(s Store, inflight int, maxBuffered int64) *ParallelStore {
	return &ParallelStore{store: s, maxBuffered: maxBuffered, slots: make(chan struct{}, inflight),
		pending: map[string]chan struct{}{}}
}

// Put implements Store.
func (p *ParallelStore) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, p.maxBuffered+1)
	if err != nil && err != io.EOF {
		return blob.Ref{}, err
	}
	if n > p.maxBuffered {
		return p.store.Put(ctx, io.MultiReader(&buf, r), maxSize)
	}
	if maxSize > 0 && n > maxSize {
		return blob.Ref{}, fmt.Errorf("%w (%d bytes)", blob.ErrTooLarge, maxSize)
	}
	sum := sha256.Sum256(buf.Bytes())
	ref := blob.Ref{SHA256: hex.EncodeToString(sum[:]), Size: n}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return blob.Ref{}, ctx.Err()
	}
	done := make(chan struct{})
	p.mu.Lock()
	if _, dup := p.pending[ref.SHA256]; dup {
		p.mu.Unlock()
		<-p.slots
		return ref, nil
	}
	p.pending[ref.SHA256] = done
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, err := p.store.Put(ctx, &buf, 0)
		p.mu.Lock()
		if err != nil && p.err == nil {
			p.err = fmt.Errorf("store part %s: %w", ref.SHA256, err)
		}
		delete(p.pending, ref.SHA256)
		p.mu.Unlock()
		close(done)
		<-p.slots
	}()
	return ref, nil
}

// Open implements Store; it waits for a part still being written.
func (p *ParallelStore) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	p.mu.Lock()
	done := p.pending[ref.SHA256]
	p.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return p.store.Open(ctx, ref)
}

// Wait waits for the background writes and returns the first failure.
func (p *ParallelStore) Wait() error {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
