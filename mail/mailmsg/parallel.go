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
// inflight × maxBuffered per message and, across all messages, by the
// shared MemoryBudget: when the budget is spent, or a part is larger,
// the part is streamed to the store synchronously. Call Wait before
// relying on the parts.
type ParallelStore struct {
	store       Store
	maxBuffered int64
	budget      *MemoryBudget
	slots       chan struct{}
	wg          sync.WaitGroup

	mu      sync.Mutex
	pending map[string]chan struct{}
	err     error
}

// NewParallelStore wraps s with at most inflight background writes of parts
// up to maxBuffered bytes each, their buffers taken from budget (nil: no
// limit across messages).
func NewParallelStore(s Store, inflight int, maxBuffered int64, budget *MemoryBudget) *ParallelStore {
	return &ParallelStore{store: s, maxBuffered: maxBuffered, budget: budget, slots: make(chan struct{}, inflight),
		pending: map[string]chan struct{}{}}
}

// Put implements Store.
func (p *ParallelStore) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	// A buffer holds up to maxBuffered+1 bytes; bytes.Buffer may round its
	// capacity up to twice that.
	reserve := 2 * (p.maxBuffered + 1)
	if !p.budget.TryAcquire(reserve) {
		return p.store.Put(ctx, r, maxSize)
	}
	ref, background, err := p.buffered(ctx, r, maxSize, reserve)
	if !background {
		p.budget.Release(reserve)
	}
	return ref, err
}

// buffered reads a part into memory and, when it is small enough, starts
// its background write, which releases reserve from the budget when done.
func (p *ParallelStore) buffered(ctx context.Context, r io.Reader, maxSize, reserve int64) (ref blob.Ref, background bool, err error) {
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, r, p.maxBuffered+1)
	if err != nil && err != io.EOF {
		return blob.Ref{}, false, err
	}
	if n > p.maxBuffered {
		ref, err := p.store.Put(ctx, io.MultiReader(&buf, r), maxSize)
		return ref, false, err
	}
	if maxSize > 0 && n > maxSize {
		return blob.Ref{}, false, fmt.Errorf("%w (%d bytes)", blob.ErrTooLarge, maxSize)
	}
	sum := sha256.Sum256(buf.Bytes())
	ref = blob.Ref{SHA256: hex.EncodeToString(sum[:]), Size: n}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return blob.Ref{}, false, ctx.Err()
	}
	done := make(chan struct{})
	p.mu.Lock()
	if _, dup := p.pending[ref.SHA256]; dup {
		p.mu.Unlock()
		<-p.slots
		return ref, false, nil
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
		p.budget.Release(reserve)
	}()
	return ref, true, nil
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

// MemoryBudget is memory shared by every message being received at the
// same time, in bytes. Buffering is an optimisation, so a spent budget
// never makes anyone wait: the part is streamed instead. A nil budget has
// no limit.
type MemoryBudget struct {
	mu   sync.Mutex
	free int64
	size int64
}

// NewMemoryBudget returns a budget of size bytes.
func NewMemoryBudget(size int64) *MemoryBudget {
	return &MemoryBudget{free: size, size: size}
}

// TryAcquire takes n bytes if they are free.
func (b *MemoryBudget) TryAcquire(n int64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.free {
		return false
	}
	b.free -= n
	return true
}

// Release returns n bytes taken by TryAcquire.
func (b *MemoryBudget) Release(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.free = min(b.free+n, b.size)
	b.mu.Unlock()
}

// InUse reports the bytes currently taken.
func (b *MemoryBudget) InUse() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size - b.free
}
