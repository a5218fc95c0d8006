package kafkalog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"
	"github.com/segmentio/kafka-go/protocol/rawproduce"

	"github.com/poststelle/poststelle/eventstore"
)

// MirrorConfig says which streams Mirror copies to topics of their own, and
// how.
type MirrorConfig struct {
	// Name names the consumer group "<Config.Group>.<Name>" that shares the
	// work, and the group its positions are kept under (Offsets).
	Name string
	// Prefix selects the streams to mirror, e.g. "office/".
	Prefix string
	// Topic names the topic of a mirrored stream.
	Topic func(stream string) string
	// Record returns the record key and value of one event of a mirrored
	// stream; a nil value leaves the event out.
	Record func(e *eventstore.Event) (key, value []byte, err error)

	// transport, when set, carries the mirror's requests instead of the
	// log's transport: the tests inject faults with it.
	transport kafka.RoundTripper
}

// seqHeader carries an event's StreamSeq on a mirrored record: the
// record's place in the stream, for consumers and for Mirror itself.
const seqHeader = "seq"

// Mirror copies the events of the selected streams, in stream order, each
// once, to a topic per stream (one partition, created with the log's
// replication factor), until ctx ends. A stream lives on one partition of
// the log, and each partition has one owner in the group at a time, which
// shares the work out; an owner that takes a partition over reads the
// newest record of each of its streams' topics and copies only what comes
// after it.
//
// Ownership alone cannot keep a record from being written twice: a produce
// still on its way when the owner's generation ended, or one that timed out
// at the writer but was stored by the broker after all, lands after the next
// writer has read the topic without it. So the broker decides (copyOnce):
// every record of a mirror topic is produced as the next record of one
// idempotent producer per topic (the same producer id on every gateway,
// epoch 0, the producer sequence counting the topic's records), and a broker
// appends a batch only if its sequence follows the producer's last one. A
// write of record n after record n was stored by anyone is refused (Kafka
// answers DUPLICATE_SEQUENCE_NUMBER while it remembers the batch, the last
// five, and OUT_OF_ORDER_SEQUENCE_NUMBER after), and record n is by
// construction the event that follows record n-1 in the stream, so every
// writer that gets to write record n writes the same event. The topic
// therefore holds each selected event once, in stream order, under its own
// StreamSeq, whatever the interleaving of owners, retries and leader changes.
func (l *Log) Mirror(ctx context.Context, cfg MirrorConfig) error {
	if l.readOnly {
		return errReadOnly
	}
	rt := cmp.Or[kafka.RoundTripper](cfg.transport, l.client.Transport)
	m := &mirror{l: l, cfg: cfg, rt: rt, last: map[string]mirrorTail{}, part: map[string]int32{}, made: map[string]bool{}, src: map[string]string{},
		client: &kafka.Client{Addr: l.client.Addr, Timeout: l.client.Timeout, Transport: rt}}
	group := "mirror." + cfg.Name
	start := func(ctx context.Context, p int32) (int64, error) {
		m.forget(p)
		return l.Offsets().Load(ctx, group, p)
	}
	return l.Subscribe(ctx, cfg.Name, start, func(ctx context.Context, e eventstore.Event) error {
		if strings.HasPrefix(e.Stream, cfg.Prefix) {
			if err := m.copy(ctx, &e); err != nil {
				return err
			}
		} else if e.Position.Offset%500 != 0 {
			return nil
		}
		return l.Offsets().Save(ctx, group, e.Position.Partition, e.Position.Offset+1)
	})
}

type mirror struct {
	l      *Log
	cfg    MirrorConfig
	rt     kafka.RoundTripper
	client *kafka.Client

	mu   sync.Mutex
	last map[string]mirrorTail // topic -> its newest record, while this owner holds its partition
	part map[string]int32      // topic -> the log partition of its stream
	src  map[string]string     // topic -> the record key (tenant and stream) copied to it
	made map[string]bool       // topics known to exist
}

// mirrorTail is what a writer needs to know of a mirror topic's newest
// record: the StreamSeq it carries (0 for an empty topic), and the producer
// sequence that the next record takes.
type mirrorTail struct {
	seq  int64
	next int32
}

// forget drops what this owner knew of the streams of partition p: another
// owner may have copied more while p was not ours.
func (m *mirror) forget(p int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for t, q := range m.part {
		if q == p {
			delete(m.last, t)
		}
	}
}

// copy writes one event to its stream's topic unless the topic has it.
// After a failed write the topic's newest record is read again; the write
// that follows is safe whatever became of the failed one (see Mirror).
func (m *mirror) copy(ctx context.Context, e *eventstore.Event) error {
	topic := m.cfg.Topic(e.Stream)
	// One stream per topic: the records of a second one (another tenant's
	// stream of the same name) would compete for the same sequence.
	key := string(recordKey(e.Tenant, e.Stream))
	m.mu.Lock()
	src, seen := m.src[topic]
	if !seen {
		m.src[topic] = key
	}
	m.mu.Unlock()
	if seen && src != key {
		return fmt.Errorf("kafkalog: mirror: streams %q and %q both map to topic %s", src, key, topic)
	}
	for attempt := 0; ; attempt++ {
		tail, err := m.newest(ctx, topic, e.Position.Partition)
		if err != nil {
			return err
		}
		if e.StreamSeq <= tail.seq {
			return nil
		}
		key, value, err := m.cfg.Record(e)
		if err != nil || value == nil {
			return err
		}
		err = m.produce(ctx, topic, tail.next, e, key, value)
		m.mu.Lock()
		if err == nil {
			m.last[topic] = mirrorTail{seq: e.StreamSeq, next: nextSequence(tail.next)}
		} else {
			delete(m.last, topic)
		}
		m.mu.Unlock()
		if err == nil {
			return nil
		}
		if attempt >= mirrorAttempts || ctx.Err() != nil {
			return fmt.Errorf("kafkalog: mirror %s seq %d: %w", topic, e.StreamSeq, err)
		}
		if errors.Is(err, kafka.OutOfOrderSequenceNumber) {
			// Another writer stored this record and more: read on.
			m.l.log.Info("kafkalog: mirror record written by another owner; rereading the topic", "topic", topic, "seq", e.StreamSeq)
			continue
		}
		m.l.log.Warn("kafkalog: mirror write failed; rereading the topic", "topic", topic, "seq", e.StreamSeq, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
}

// mirrorAttempts bounds the writes of one record before Mirror gives up
// (and the caller restarts it).
const mirrorAttempts = 20

// mirrorWriteTimeout bounds one produce: the broker's wait for the
// replicas, and the round trip around it.
const mirrorWriteTimeout = 10 * time.Second

// produce writes one record as the producer sequence seq of the topic's
// producer, with acks=all. A batch the broker already holds under that
// sequence (DUPLICATE_SEQUENCE_NUMBER) counts as written: it is this event,
// stored by an earlier attempt or another owner, and the broker answers so
// only once it is replicated like any acknowledged write.
func (m *mirror) produce(ctx context.Context, topic string, seq int32, e *eventstore.Event, key, value []byte) error {
	batch := encodeProducerBatch(mirrorProducerID(topic), mirrorProducerEpoch, seq, e.RecordedAt, key, value,
		[]kafka.Header{{Key: seqHeader, Value: []byte(strconv.FormatInt(e.StreamSeq, 10))}})
	req := &rawproduce.Request{Acks: int16(kafka.RequireAll), Timeout: int32(mirrorWriteTimeout / time.Millisecond),
		Topics: []rawproduce.RequestTopic{{Topic: topic, Partitions: []rawproduce.RequestPartition{{Partition: 0,
			RecordSet: protocol.RawRecordSet{Reader: bytes.NewReader(batch)}}}}}}
	rctx, cancel := context.WithTimeout(ctx, mirrorWriteTimeout+5*time.Second)
	defer cancel()
	res, err := m.rt.RoundTrip(rctx, m.l.brokerAddr(), req)
	if err != nil {
		return err
	}
	pr, ok := res.(*produceAPI.Response)
	if !ok {
		return fmt.Errorf("unexpected response %T", res)
	}
	for _, t := range pr.Topics {
		for _, p := range t.Partitions {
			if t.Topic != topic || p.Partition != 0 {
				continue
			}
			switch code := kafka.Error(p.ErrorCode); code {
			case 0, kafka.DuplicateSequenceNumber:
				return nil
			default:
				return code
			}
		}
	}
	return errors.New("the partition is missing from the produce response")
}

// nextSequence is the producer sequence after s: Kafka's sequences wrap
// from the largest int32 to 0 (KIP-98).
func nextSequence(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

// mirrorProducerEpoch is the epoch of every mirror topic's producer; it
// never changes, so that writers never fence each other and the sequence
// alone orders the records.
const mirrorProducerEpoch = 0

// mirrorProducerID is the idempotent producer id under which every gateway
// writes the topic: derived from its name, so that all of them write as one
// producer without agreeing on anything. Brokers keep producer state per
// partition, accept an id they did not hand out for idempotent
// (non-transactional) batches, and hand out ids counting up from 0; the
// derived ids lie in [2^61, 2^62), far above those. Only the mirror writes
// its topics, so no other producer's state can meet this one.
func mirrorProducerID(topic string) int64 {
	h := fnv.New64a()
	h.Write([]byte("poststelle mirror\x00"))
	h.Write([]byte(topic))
	return int64(h.Sum64()>>3) | 1<<61
}

// newest returns the topic's newest record (a zero tail for none), creating
// the topic when missing.
func (m *mirror) newest(ctx context.Context, topic string, p int32) (mirrorTail, error) {
	m.mu.Lock()
	last, ok := m.last[topic]
	made := m.made[topic]
	m.mu.Unlock()
	if ok {
		return last, nil
	}
	if !made {
		if err := m.create(ctx, topic); err != nil {
			return mirrorTail{}, err
		}
	}
	last, err := m.read(ctx, topic)
	if err != nil {
		return mirrorTail{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[topic], m.part[topic], m.made[topic] = last, p, true
	return last, nil
}

func (m *mirror) create(ctx context.Context, topic string) error {
	res, err := m.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic,
		NumPartitions: 1, ReplicationFactor: m.l.cfg.ReplicationFactor}}})
	if err != nil {
		return fmt.Errorf("kafkalog: create mirror topic %s: %w", topic, err)
	}
	if terr := res.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
		return fmt.Errorf("kafkalog: create mirror topic %s: %w", topic, terr)
	}
	return nil
}

// read finds the topic's newest record, waiting for the new topic's leader.
func (m *mirror) read(ctx context.Context, topic string) (mirrorTail, error) {
	var err error
	for range 100 {
		var last mirrorTail
		if last, err = m.readOnce(ctx, topic); err == nil {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return mirrorTail{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return mirrorTail{}, fmt.Errorf("kafkalog: read the newest record of %s: %w", topic, err)
}

func (m *mirror) readOnce(ctx context.Context, topic string) (mirrorTail, error) {
	res, err := m.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		return mirrorTail{}, err
	}
	ps := res.Topics[topic]
	if len(ps) != 1 {
		return mirrorTail{}, fmt.Errorf("no offsets for %s", topic)
	}
	if ps[0].Error != nil {
		return mirrorTail{}, ps[0].Error
	}
	end := ps[0].LastOffset
	if end == 0 {
		return mirrorTail{}, nil
	}
	f, err := m.client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: 0, Offset: end - 1,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
	if err == nil {
		err = f.Error
	}
	if err != nil {
		return mirrorTail{}, err
	}
	return lastMirrored(f.Records, mirrorProducerID(topic), end-1)
}

// lastMirrored reads a fetched record set that reaches the offset want and
// returns what its newest record says: its seq header, and the producer
// sequence after it when the mirror's producer wrote it. A record from
// another producer (none but an older gateway that wrote without one) lets
// the next record start the producer at sequence 0, which a broker accepts
// from a producer it has no state for.
func lastMirrored(rr kafka.RecordReader, producerID int64, want int64) (mirrorTail, error) {
	var tail mirrorTail
	var off int64 = -1
	for _, b := range recordBatches(rr) {
		for {
			r, err := b.ReadRecord()
			if err != nil {
				break
			}
			var seq int64
			for _, h := range r.Headers {
				if h.Key == seqHeader {
					seq, _ = strconv.ParseInt(string(h.Value), 10, 64)
				}
			}
			if r.Value != nil {
				r.Value.Close()
			}
			if r.Key != nil {
				r.Key.Close()
			}
			off, tail.seq, tail.next = r.Offset, seq, 0
			if b.ProducerID == producerID && b.BaseSequence >= 0 {
				d := r.Offset - b.BaseOffset
				if d < 0 || d > math.MaxInt32 {
					return mirrorTail{}, fmt.Errorf("the record at %d lies outside its batch at %d", r.Offset, b.BaseOffset)
				}
				tail.next = nextSequence(int32((int64(b.BaseSequence) + d) % (math.MaxInt32 + 1)))
			}
		}
	}
	if off < want {
		return mirrorTail{}, fmt.Errorf("the fetch ended at offset %d before the newest record at %d", off, want)
	}
	if tail.seq <= 0 {
		return mirrorTail{}, fmt.Errorf("the record at %d has no valid %s header", off, seqHeader)
	}
	return tail, nil
}

// recordBatches lists the data batches of a fetched record set (kafka-go
// hands a v2 record set over as a stream of batches, or as one batch).
func recordBatches(rr kafka.RecordReader) []*protocol.RecordBatch {
	switch r := rr.(type) {
	case *protocol.RecordBatch:
		return []*protocol.RecordBatch{r}
	case *protocol.RecordStream:
		var out []*protocol.RecordBatch
		for _, x := range r.Records {
			out = append(out, recordBatches(x)...)
		}
		return out
	}
	return nil
}
