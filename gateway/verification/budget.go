package verification

import (
	"context"
	"sync"
)

// memoryBudget bounds the bytes that the verification handler's events in
// flight hold in memory together: an event waits until its share is free
// instead of the process growing. Waiters are served in arrival order, so
// a large message is not passed over forever by small ones, and a request
// larger than the whole budget takes all of it, so it still runs, alone.
type memoryBudget struct {
	mu      sync.Mutex
	size    int64
	free    int64
	waiters []*budgetWaiter
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newMemoryBudget(size int64) *memoryBudget {
	return &memoryBudget{size: size, free: size}
}

// acquire waits for n bytes (at most the whole budget) and returns what it
// took, to be given back with release. It fails only when ctx ends.
func (b *memoryBudget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 0), b.size)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while ctx ended: hand it back.
			b.free += n
		default:
			for i, x := range b.waiters {
				if x == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
		}
		b.grant()
		b.mu.Unlock()
		return 0, ctx.Err()
	}
}

// release gives back what acquire took.
func (b *memoryBudget) release(n int64) {
	b.mu.Lock()
	b.free += n
	b.grant()
	b.mu.Unlock()
}

// grant wakes the waiters at the head of the queue that now fit; b.mu is held.
func (b *memoryBudget) grant() {
	for len(b.waiters) > 0 && b.waiters[0].n <= b.free {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.free -= w.n
		close(w.ready)
	}
}
