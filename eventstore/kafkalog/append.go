package kafkalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// pending is one event of an Append call that must be produced.
type pending struct {
	index int // in the call's events
	nonce string
	ch    chan verdict
}

// Append implements eventstore.Log. It returns after the brokers have
// acknowledged the records (acks=all) and the fold has decided on them.
func (l *Log) Append(ctx context.Context, events ...eventstore.Event) ([]eventstore.Result, error) {
	select {
	case <-l.live.Done():
		return nil, eventstore.ErrClosed
	default:
	}
	if l.readOnly {
		return nil, errReadOnly
	}
	results := make([]eventstore.Result, len(events))
	var recs []produceRecord
	var waits []pending
	var stopErr error
	stopAt := len(events)
	now := time.Now()
	for i := range events {
		e := &events[i]
		if err := e.Validate(); err != nil {
			stopErr, stopAt = fmt.Errorf("kafkalog: append event %d: %w", i, err), i
			break
		}
		value := encodeEvent(e)
		key := recordKey(e.Tenant, e.Stream)
		p := partitionFor(key, l.cfg.Partitions)
		res, known, err := l.precheck(ctx, p, e, value)
		if err != nil {
			stopErr, stopAt = err, i
			break
		}
		if known {
			results[i] = res
			continue
		}
		w := pending{index: i, nonce: newNonce(), ch: make(chan verdict, 1)}
		waits = append(waits, w)
		recs = append(recs, produceRecord{partition: p, key: key, value: value, time: now, nonce: w.nonce})
	}
	if len(recs) > 0 {
		if err := l.produce(ctx, recs, waits); err != nil {
			return results[:waits[0].index], err
		}
	}
	for _, w := range waits {
		v, err := l.await(ctx, w)
		if err == nil {
			results[w.index], err = l.resultOf(ctx, &events[w.index], v)
		}
		if err != nil {
			return results[:w.index], err
		}
	}
	return results[:stopAt], stopErr
}

// precheck answers from the local fold when the event or its message key is
// known already, so that retries do not produce records at all.
func (l *Log) precheck(ctx context.Context, p int32, e *eventstore.Event, value []byte) (eventstore.Result, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for q, s := range l.parts {
		if prev, ok := s.ids[e.ID]; ok {
			if int32(q) != p || prev.digest != digest(value) {
				return eventstore.Result{}, false, fmt.Errorf("kafkalog: append %s: %w", e.ID, eventstore.ErrConflict)
			}
			return eventstore.Result{Position: eventstore.Position{Partition: p, Offset: prev.off}, Existing: true}, true, nil
		}
	}
	if e.MessageKey != "" {
		for q, s := range l.parts {
			if off, ok := s.keys[e.Tenant+"\x00"+e.MessageKey]; ok {
				return eventstore.Result{}, false, l.duplicateLocked(ctx, int32(q), off, e.MessageKey)
			}
		}
	}
	return eventstore.Result{}, false, nil
}

// produce writes the records and registers the waiters first, so that no
// verdict can arrive before its waiter.
func (l *Log) produce(ctx context.Context, recs []produceRecord, waits []pending) error {
	l.mu.Lock()
	for _, w := range waits {
		l.waiters[w.nonce] = w.ch
	}
	// Marked before the write: a failed produce may still have stored
	// records, and Close's final checkpoints must cover them.
	for _, r := range recs {
		l.wrote[r.partition] = true
	}
	l.mu.Unlock()
	err := l.write(ctx, recs)
	if err == nil {
		return nil
	}
	l.mu.Lock()
	for _, w := range waits {
		delete(l.waiters, w.nonce)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		return eventstore.ErrClosed
	default:
	}
	// Some records may have been stored; a retry of the same events is
	// idempotent and reports them as existing.
	return fmt.Errorf("kafkalog: produce %d records to %s: %w", len(recs), l.cfg.Topic, err)
}

// await waits for the fold's verdict on one produced record.
func (l *Log) await(ctx context.Context, w pending) (verdict, error) {
	select {
	case v := <-w.ch:
		return v, nil
	case <-ctx.Done():
	case <-l.done:
	}
	l.mu.Lock()
	delete(l.waiters, w.nonce)
	l.mu.Unlock()
	select {
	case v := <-w.ch: // it arrived while we gave up
		return v, nil
	case <-l.done:
		return verdict{}, eventstore.ErrClosed
	default:
		return verdict{}, fmt.Errorf("kafkalog: wait for the stored record to be folded: %w", ctx.Err())
	}
}

func (l *Log) resultOf(ctx context.Context, e *eventstore.Event, v verdict) (eventstore.Result, error) {
	switch v.kind {
	case accepted:
		return eventstore.Result{Position: v.pos}, nil
	case repeated:
		return eventstore.Result{Position: v.pos, Existing: true}, nil
	case conflict:
		return eventstore.Result{}, fmt.Errorf("kafkalog: append %s: %w", e.ID, eventstore.ErrConflict)
	case keyTaken:
		l.mu.Lock()
		defer l.mu.Unlock()
		return eventstore.Result{}, l.duplicateLocked(ctx, v.pos.Partition, v.pos.Offset, e.MessageKey)
	default:
		return eventstore.Result{}, fmt.Errorf("kafkalog: append %s: the stored record was rejected: %s", e.ID, v.detail)
	}
}

// duplicateLocked builds the DuplicateError naming the event at (p, off).
// It reads the event from Kafka with l.mu held only briefly.
func (l *Log) duplicateLocked(ctx context.Context, p int32, off int64, key string) error {
	l.mu.Unlock()
	evs, err := l.Read(ctx, p, off, 1)
	l.mu.Lock()
	if err != nil || len(evs) != 1 {
		return errors.Join(&eventstore.DuplicateError{Key: key}, fmt.Errorf("kafkalog: read the event holding key %s: %v", key, err))
	}
	return &eventstore.DuplicateError{Key: key, Existing: evs[0]}
}

func newNonce() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
