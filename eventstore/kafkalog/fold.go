package kafkalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
	fetchAPI "github.com/segmentio/kafka-go/protocol/fetch"

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
	recent   recent // the newest events, decoded, for Read
}

type idEntry struct {
	off    int64
	digest [32]byte
}

func newPartitionState() *partitionState {
	return &partitionState{ids: map[string]idEntry{}, keys: map[string]int64{}, streams: map[string][]int64{}}
}

// decoded is the part of the fold that depends on one record alone, so that
// it can be computed before taking the lock.
type decoded struct {
	e      eventstore.Event
	digest [32]byte
	err    string // why the record is rejected; empty when it is an event
}

func decodeRecord(partition, partitions int32, r *rawRecord) decoded {
	e, err := decodeEvent(r.value)
	if err != nil {
		return decoded{err: err.Error()}
	}
	key := recordKey(e.Tenant, e.Stream)
	if string(key) != string(r.key) || partitionFor(key, partitions) != partition {
		return decoded{err: "record is on the wrong partition or its key does not match its stream"}
	}
	return decoded{e: e, digest: digest(r.value)}
}

// foldDecoded applies one record, decoded by decodeRecord. The rules, applied
// in order, decide alone what the log contains, so every reader of the topic
// derives the same log:
//  1. a value that does not decode, or a record whose key does not hash to
//     this partition, is rejected;
//  2. an id seen before in the partition is a repeat (same content) or a
//     conflict (other content) and is skipped;
//  3. a message key that an earlier event of the partition holds for the
//     same tenant is refused and the record skipped;
//  4. otherwise the record is the next event of the partition.
func (s *partitionState) foldDecoded(partition, partitions int32, r *rawRecord, dec decoded) (verdict, *eventstore.Event) {
	s.next = r.offset + 1
	if dec.err != "" {
		return verdict{kind: rejected, detail: dec.err}, nil
	}
	e, d := dec.e, dec.digest
	key := recordKey(e.Tenant, e.Stream)
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
	s.recent.add(e)
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

// tailMaxWait is how long a fetch waits at the broker for a new record. The
// broker answers as soon as any fetched partition has one (MinBytes 1), so it
// bounds only idle polling, not latency.
const tailMaxWait = 250 * time.Millisecond

// tail folds the records of every partition as they arrive until ctx ends.
// It sends one fetch request per leader broker covering all partitions that
// broker leads, rather than one per partition: under load one round trip
// then brings the records of every partition, which is what lets Append's
// wait for the fold keep up with the producer. When a fetcher fails (a
// leader moved, a broker restarted) the partitions are regrouped by their
// current leaders. Positions live in the fold (partitionState.next), so a
// regrouped fetcher resumes exactly where the fold stands.
func (l *Log) tail(ctx context.Context) {
	for ctx.Err() == nil {
		groups, _, err := l.leaderGroups(ctx)
		if err == nil {
			err = l.fetchGroups(ctx, groups)
		}
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("kafkalog: tail", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// leaderGroups groups the partitions by their leader in the transport's
// cached metadata, which is what routes the fetch requests.
func (l *Log) leaderGroups(ctx context.Context) ([][]int32, []int, error) {
	md, err := l.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{l.cfg.Topic}})
	if err != nil {
		return nil, nil, fmt.Errorf("kafkalog: metadata of %s: %w", l.cfg.Topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, nil, fmt.Errorf("kafkalog: metadata of %s: topic missing", l.cfg.Topic)
	}
	byLeader := map[int][]int32{}
	var leaders []int
	for _, p := range md.Topics[0].Partitions {
		if p.Error != nil || p.ID < 0 || p.ID >= int(l.cfg.Partitions) {
			return nil, nil, fmt.Errorf("kafkalog: metadata of %s/%d: %v", l.cfg.Topic, p.ID, p.Error)
		}
		if _, ok := byLeader[p.Leader.ID]; !ok {
			leaders = append(leaders, p.Leader.ID)
		}
		byLeader[p.Leader.ID] = append(byLeader[p.Leader.ID], int32(p.ID))
	}
	groups := make([][]int32, 0, len(leaders))
	n := 0
	for _, id := range leaders {
		groups = append(groups, byLeader[id])
		n += len(byLeader[id])
	}
	if n != int(l.cfg.Partitions) {
		return nil, nil, fmt.Errorf("kafkalog: metadata of %s lists %d of %d partitions", l.cfg.Topic, n, l.cfg.Partitions)
	}
	return groups, leaders, nil
}

// fetchGroups runs one fetcher per leader until the first one fails.
func (l *Log) fetchGroups(ctx context.Context, groups [][]int32) error {
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(groups))
	for _, ps := range groups {
		go func() { errs <- l.fetchLoop(gctx, ps) }()
	}
	err := <-errs
	cancel()
	for range len(groups) - 1 {
		<-errs
	}
	return err
}

// fetchLoop folds the records of partitions led by one broker until a fetch
// fails or ctx ends. (Sending the next fetch before folding the last
// response was measured slower: smaller responses, more requests.)
func (l *Log) fetchLoop(ctx context.Context, ps []int32) error {
	parts := make([]fetchAPI.RequestPartition, len(ps))
	for round := 0; ; round++ {
		// Rotate the order: a broker fills a response in request order, so a
		// long backlog on one partition must not starve the others.
		l.mu.Lock()
		for i := range ps {
			p := ps[(i+round)%len(ps)]
			parts[i] = fetchAPI.RequestPartition{Partition: p, CurrentLeaderEpoch: -1,
				FetchOffset: l.parts[p].next, LogStartOffset: -1, PartitionMaxBytes: 4 << 20}
		}
		l.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, tailMaxWait+30*time.Second)
		m, err := l.client.Transport.RoundTrip(rctx, l.brokerAddr(), &fetchAPI.Request{
			ReplicaID: -1, MaxWaitTime: int32(tailMaxWait / time.Millisecond), MinBytes: 1, MaxBytes: 16 << 20,
			SessionID: -1, SessionEpoch: -1,
			Topics: []fetchAPI.RequestTopic{{Topic: l.cfg.Topic, Partitions: parts}},
		})
		cancel()
		if err != nil {
			return fmt.Errorf("kafkalog: fetch %s: %w", l.cfg.Topic, err)
		}
		batches, err := l.readResponse(m)
		for _, b := range batches {
			l.apply(b.partition, b.recs)
		}
		if err != nil {
			return err
		}
	}
}

// partitionRecords are the records of one partition in a fetch response.
type partitionRecords struct {
	partition int32
	recs      []rawRecord
}

// readResponse returns the records of one fetch response, and the first
// error of a partition; the records read before an error are returned too.
func (l *Log) readResponse(m kafka.Response) ([]partitionRecords, error) {
	res, ok := m.(*fetchAPI.Response)
	if !ok {
		return nil, fmt.Errorf("kafkalog: fetch %s: unexpected response %T", l.cfg.Topic, m)
	}
	if res.ErrorCode != 0 {
		return nil, fmt.Errorf("kafkalog: fetch %s: %w", l.cfg.Topic, kafka.Error(res.ErrorCode))
	}
	var out []partitionRecords
	var firstErr error
	for _, t := range res.Topics {
		if t.Topic != l.cfg.Topic {
			continue
		}
		for _, pr := range t.Partitions {
			p := pr.Partition
			if p < 0 || p >= l.cfg.Partitions {
				continue
			}
			if pr.ErrorCode != 0 {
				firstErr = cmp.Or(firstErr, fmt.Errorf("kafkalog: fetch %s/%d: %w", l.cfg.Topic, p, kafka.Error(pr.ErrorCode)))
				continue
			}
			recs, err := l.readPartition(p, pr.RecordSet.Records)
			if len(recs) > 0 {
				out = append(out, partitionRecords{p, recs})
			}
			firstErr = cmp.Or(firstErr, err)
		}
	}
	return out, firstErr
}

// readPartition reads the records of one partition from a fetch response.
func (l *Log) readPartition(p int32, rr kafka.RecordReader) ([]rawRecord, error) {
	if rr == nil {
		return nil, nil
	}
	var recs []rawRecord
	for {
		r, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, fmt.Errorf("kafkalog: fetch %s/%d: read record: %w", l.cfg.Topic, p, err)
		}
		rec := rawRecord{offset: r.Offset, time: r.Time}
		if rec.key, err = readBytes(r.Key, maxFieldLen); err == nil {
			rec.value, err = readBytes(r.Value, maxRecordValue)
		}
		if err != nil {
			// Too large to be an event: the fold rejects it like any other
			// record that does not decode.
			rec.key, rec.value = nil, nil
		}
		for _, h := range r.Headers {
			if h.Key == nonceHeader && len(h.Value) <= 64 {
				rec.nonce = string(h.Value)
			}
		}
		recs = append(recs, rec)
	}
}

// apply folds records of one partition in order and wakes whoever waits for
// them. It takes the lock once per fetched batch, not per record.
func (l *Log) apply(partition int32, recs []rawRecord) {
	if len(recs) == 0 {
		return
	}
	decs := make([]decoded, len(recs))
	for i := range recs {
		decs[i] = decodeRecord(partition, l.cfg.Partitions, &recs[i])
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.parts[partition]
	for i := range recs {
		rec := &recs[i]
		if rec.offset < s.next {
			continue // fetched again after a reconnect, or before the fetch offset
		}
		v, _ := s.foldDecoded(partition, l.cfg.Partitions, rec, decs[i])
		if v.kind == rejected {
			l.log.Warn("kafkalog: record rejected by the fold", "partition", partition, "kafka_offset", rec.offset, "reason", v.detail)
		}
		if rec.nonce != "" {
			if ch, ok := l.waiters[rec.nonce]; ok {
				ch <- v
				delete(l.waiters, rec.nonce)
			}
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
