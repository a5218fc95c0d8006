package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

// rawRecord is one Kafka record as the fold and the readers see it.
type rawRecord struct {
	offset int64
	time   time.Time
	key    []byte
	value  []byte
	nonce  string
}

// verdict is the fold's decision on one record.
type verdict struct {
	kind   verdictKind
	pos    eventstore.Position // the accepted event, or the one it repeats
	detail string
}

type verdictKind int

const (
	accepted verdictKind = iota
	repeated             // same id, same content: an idempotent retry or a producer retry
	conflict             // same id, other content
	keyTaken             // message key held by another event of the tenant
	rejected             // malformed or misplaced record
)

// partitionState is the fold of one partition: the deterministic function of
// its raw records that every process computes alike. Records are accepted in
// Kafka offset order; an accepted record gets the next dense log offset.
type partitionState struct {
	next     int64              // next Kafka offset to fold
	koffs    []int64            // log offset -> Kafka offset
	leaves   [][32]byte         // log offset -> leaf hash
	seqs     []int64            // log offset -> stream sequence
	ids      map[string]idEntry // event id -> where it is
	keys     map[string]int64   // tenant "\x00" message key -> log offset
	streams  map[string][]int64 // record key -> log offsets
	frontier integrity.Frontier
}

type idEntry struct {
	off    int64
	digest [32]byte
}

func newPartitionState() *partitionState {
	return &partitionState{ids: map[string]idEntry{}, keys: map[string]int64{}, streams: map[string][]int64{}}
}

// fold applies one record. The rules, applied in order, decide alone what the
// log contains, so every reader of the topic derives the same log:
//  1. a value that does not decode, or a record whose key does not hash to
//     this partition, is rejected;
//  2. an id seen before in the partition is a repeat (same content) or a
//     conflict (other content) and is skipped;
//  3. a message key that an earlier event of the partition holds for the
//     same tenant is refused and the record skipped;
//  4. otherwise the record is the next event of the partition.
func (s *partitionState) fold(partition, partitions int32, r *rawRecord) (verdict, *eventstore.Event) {
	s.next = r.offset + 1
	e, err := decodeEvent(r.value)
	if err != nil {
		return verdict{kind: rejected, detail: err.Error()}, nil
	}
	key := recordKey(e.Tenant, e.Stream)
	if string(key) != string(r.key) || partitionFor(key, partitions) != partition {
		return verdict{kind: rejected, detail: "record is on the wrong partition or its key does not match its stream"}, nil
	}
	d := digest(r.value)
	if prev, ok := s.ids[e.ID]; ok {
		v := verdict{kind: repeated, pos: eventstore.Position{Partition: partition, Offset: prev.off}}
		if prev.digest != d {
			v.kind = conflict
		}
		return v, nil
	}
	if e.MessageKey != "" {
		if off, ok := s.keys[e.Tenant+"\x00"+e.MessageKey]; ok {
			return verdict{kind: keyTaken, pos: eventstore.Position{Partition: partition, Offset: off}}, nil
		}
	}
	off := int64(len(s.koffs))
	streamOffs := s.streams[string(key)]
	e.Position = eventstore.Position{Partition: partition, Offset: off}
	e.StreamSeq = int64(len(streamOffs)) + 1
	e.RecordedAt = r.time.UTC()
	if off > 0 {
		e.PrevHash = s.leaves[off-1]
	}
	leaf := integrity.LeafHash(&e)
	s.koffs = append(s.koffs, r.offset)
	s.leaves = append(s.leaves, leaf)
	s.seqs = append(s.seqs, e.StreamSeq)
	s.ids[e.ID] = idEntry{off: off, digest: d}
	if e.MessageKey != "" {
		s.keys[e.Tenant+"\x00"+e.MessageKey] = off
	}
	s.streams[string(key)] = append(streamOffs, off)
	s.frontier.Append(leaf)
	return verdict{kind: accepted, pos: e.Position}, &e
}

// decorate sets the fields the fold assigns on an event decoded from the
// record at log offset off. The caller holds l.mu.
func (s *partitionState) decorate(e *eventstore.Event, partition int32, off int64, t time.Time) {
	e.Position = eventstore.Position{Partition: partition, Offset: off}
	e.StreamSeq = s.seqs[off]
	e.RecordedAt = t.UTC()
	e.PrevHash = [32]byte{}
	if off > 0 {
		e.PrevHash = s.leaves[off-1]
	}
}

// tail folds a partition's records as they arrive until ctx ends. It reads
// with a partition reader (no consumer group), so it can start at offset 0.
func (l *Log) tail(ctx context.Context, partition int32) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        l.cfg.Brokers,
		Topic:          l.cfg.Topic,
		Partition:      int(partition),
		MinBytes:       1,
		MaxBytes:       16 << 20,
		MaxWait:        250 * time.Millisecond,
		ReadBackoffMin: 20 * time.Millisecond,
		ReadBackoffMax: 500 * time.Millisecond,
		Dialer:         l.cfg.Dialer,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			l.log.Debug("kafkalog: tail reader", "partition", partition, "msg", fmt.Sprintf(f, a...))
		}),
	})
	defer r.Close()
	l.mu.Lock()
	start := l.parts[partition].next
	l.mu.Unlock()
	if err := r.SetOffset(start); err != nil {
		l.log.Error("kafkalog: position tail reader", "partition", partition, "err", err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return
			}
			l.log.Warn("kafkalog: tail partition", "partition", partition, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		rec := rawRecord{offset: m.Offset, time: m.Time, key: m.Key, value: m.Value}
		for _, h := range m.Headers {
			if h.Key == nonceHeader {
				rec.nonce = string(h.Value)
			}
		}
		l.apply(partition, &rec)
	}
}

// apply folds one record and wakes whoever waits for it.
func (l *Log) apply(partition int32, rec *rawRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.parts[partition]
	if rec.offset < s.next {
		return // a reader re-delivered after a reconnect
	}
	v, _ := s.fold(partition, l.cfg.Partitions, rec)
	if v.kind == rejected {
		l.log.Warn("kafkalog: record rejected by the fold", "partition", partition, "kafka_offset", rec.offset, "reason", v.detail)
	}
	if rec.nonce != "" {
		if ch, ok := l.waiters[rec.nonce]; ok {
			ch <- v
			delete(l.waiters, rec.nonce)
		}
	}
	close(l.notify)
	l.notify = make(chan struct{})
}

// waitFolded blocks until every partition's fold has passed the given Kafka
// offsets (exclusive ends).
func (l *Log) waitFolded(ctx context.Context, ends map[int32]int64) error {
	for {
		l.mu.Lock()
		ch, done := l.notify, true
		for p, end := range ends {
			if l.parts[p].next < end {
				done = false
			}
		}
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafkalog: catch up with topic %s: %w", l.cfg.Topic, ctx.Err())
		case <-l.done:
			return eventstore.ErrClosed
		case <-ch:
		}
	}
}

// Sync waits until this process has folded every record that the brokers
// had acknowledged when Sync was called, so that reads afterwards see every
// append that finished before, in any process.
func (l *Log) Sync(ctx context.Context) error {
	ends, err := l.highWatermarks(ctx, l.cfg.Topic)
	for attempt := 1; err != nil && kafkaTemporary(err) && attempt < 50; attempt++ {
		// A new topic's partitions take a moment to get their leaders.
		select {
		case <-ctx.Done():
			return err
		case <-l.done:
			return eventstore.ErrClosed
		case <-time.After(time.Duration(min(attempt, 10)) * 50 * time.Millisecond):
		}
		ends, err = l.highWatermarks(ctx, l.cfg.Topic)
	}
	if err != nil {
		return err
	}
	return l.waitFolded(ctx, ends)
}

// highWatermarks asks the brokers for the end offset of every partition.
func (l *Log) highWatermarks(ctx context.Context, topic string) (map[int32]int64, error) {
	reqs := make([]kafka.OffsetRequest, l.cfg.Partitions)
	for p := range l.cfg.Partitions {
		reqs[p] = kafka.LastOffsetOf(int(p))
	}
	res, err := l.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("kafkalog: list end offsets of %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("kafkalog: end offset of %s/%d: %w", topic, po.Partition, po.Error)
		}
		ends[int32(po.Partition)] = po.LastOffset
	}
	if len(ends) != int(l.cfg.Partitions) {
		return nil, fmt.Errorf("kafkalog: end offsets of %s: got %d partitions, want %d", topic, len(ends), l.cfg.Partitions)
	}
	return ends, nil
}

// kafkaTemporary reports whether a Kafka error goes away by retrying.
func kafkaTemporary(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
