package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/poststelle/poststelle/eventstore/pubsub"
)

// lazyOffsets keeps the newest position of each group and partition in
// memory and writes the ones that moved every interval, instead of one
// write per handled event: on the embedded log the positions live in the
// state database, whose one connection the projections and the office
// API's readers share, and at 1,000 messages/s the handlers saved about
// 5,000 positions a second there. A crash loses at most an interval of
// positions; the events after the saved ones are handled again, which
// appends events with the same derived ids (no-ops), as after any crash
// between append and acknowledgement.
type lazyOffsets struct {
	inner pubsub.Offsets
	mu    sync.Mutex
	// latest is the newest position saved per group and partition; dirty
	// those not yet written through.
	latest map[offsetKey]int64
	dirty  map[offsetKey]int64
}

type offsetKey struct {
	group string
	part  int32
}

func newLazyOffsets(inner pubsub.Offsets) *lazyOffsets {
	return &lazyOffsets{inner: inner, latest: map[offsetKey]int64{}, dirty: map[offsetKey]int64{}}
}

// Load implements pubsub.Offsets: a position not yet written through is
// this process's newest.
func (o *lazyOffsets) Load(ctx context.Context, group string, part int32) (int64, error) {
	o.mu.Lock()
	next, ok := o.latest[offsetKey{group, part}]
	o.mu.Unlock()
	if ok {
		return next, nil
	}
	return o.inner.Load(ctx, group, part)
}

// Save implements pubsub.Offsets; positions only move forward.
func (o *lazyOffsets) Save(_ context.Context, group string, part int32, next int64) error {
	k := offsetKey{group, part}
	o.mu.Lock()
	defer o.mu.Unlock()
	if cur, ok := o.latest[k]; !ok || next > cur {
		o.latest[k], o.dirty[k] = next, next
	}
	return nil
}

// flush writes the positions that moved through. One that fails to write
// stays dirty for the next flush.
func (o *lazyOffsets) flush(ctx context.Context) error {
	o.mu.Lock()
	dirty := o.dirty
	o.dirty = map[offsetKey]int64{}
	o.mu.Unlock()
	var errs []error
	for k, next := range dirty {
		if err := o.inner.Save(ctx, k.group, k.part, next); err != nil {
			errs = append(errs, fmt.Errorf("pipeline: write position of %s/%d: %w", k.group, k.part, err))
			o.mu.Lock()
			if _, newer := o.dirty[k]; !newer {
				o.dirty[k] = next
			}
			o.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// run flushes every interval until ctx ends.
func (o *lazyOffsets) run(ctx context.Context, interval time.Duration, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := o.flush(ctx); err != nil && ctx.Err() == nil {
				report(err)
			}
		}
	}
}
