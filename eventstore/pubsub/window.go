package pubsub

import (
	"context"
	"slices"
	"sync"

	"github.com/poststelle/poststelle/eventstore"
)

// window lets several events of one partition be in flight at once while
// keeping two promises: events of one stream are handed over one at a time
// in order, and the saved position never passes an event that is not yet
// acknowledged (it is the first offset still in flight, or the next to read).
type window struct {
	max     int
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever a slot frees
	flying  []int64       // offsets in flight, ascending
	streams map[string]bool
	next    int64 // the offset after the newest event seen
	saved   int64
}

func newWindow(max int, from int64) *window {
	return &window{max: max, changed: make(chan struct{}), streams: map[string]bool{}, next: from, saved: from}
}

// seen records an event that needs no handling (another topic).
func (w *window) seen(off int64) {
	w.mu.Lock()
	w.next = off + 1
	w.mu.Unlock()
}

// acquire waits for a free slot and for the stream's previous event.
func (w *window) acquire(ctx context.Context, e *eventstore.Event) error {
	for {
		w.mu.Lock()
		if len(w.flying) < w.max && !w.streams[e.Stream] {
			w.flying = append(w.flying, e.Position.Offset)
			w.streams[e.Stream] = true
			w.next = e.Position.Offset + 1
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release marks an event acknowledged and returns the position that is
// now safe to save, and whether it moved.
func (w *window) release(e *eventstore.Event) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := slices.Index(w.flying, e.Position.Offset); i >= 0 {
		w.flying = slices.Delete(w.flying, i, i+1)
	}
	delete(w.streams, e.Stream)
	close(w.changed)
	w.changed = make(chan struct{})
	safe := w.next
	if len(w.flying) > 0 {
		safe = w.flying[0]
	}
	if safe <= w.saved {
		return w.saved, false
	}
	w.saved = safe
	return safe, true
}
