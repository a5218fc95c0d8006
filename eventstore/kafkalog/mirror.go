package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

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
}

// seqHeader carries an event's StreamSeq on a mirrored record: the
// record's place in the stream, for consumers and for Mirror itself.
const seqHeader = "seq"

// Mirror copies the events of the selected streams, in stream order, each
// once, to a topic per stream (one partition, created with the log's
// replication factor), until ctx ends. A stream lives on one partition of
// the log, and each partition has one owner in the group at a time; an
// owner that takes a partition over reads the newest record of each of its
// streams' topics first and copies only what comes after it, so a crash
// between a copy and its saved position copies nothing twice.
func (l *Log) Mirror(ctx context.Context, cfg MirrorConfig) error {
	if l.readOnly {
		return errReadOnly
	}
	m := &mirror{l: l, cfg: cfg, last: map[string]int64{}, made: map[string]bool{}, w: &kafka.Writer{
		Addr: l.brokerAddr(), RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		MaxAttempts: 1, WriteTimeout: 10 * time.Second, Transport: l.client.Transport}}
	defer m.w.Close()
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
	l   *Log
	cfg MirrorConfig
	w   *kafka.Writer

	mu   sync.Mutex
	last map[string]int64 // topic -> StreamSeq of its newest record, while this owner holds its partition
	part map[string]int32 // topic -> the log partition of its stream
	made map[string]bool  // topics known to exist
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

// copy writes one event to its stream's topic unless the topic has it. A
// write is sent once (the writer does not retry): a retried produce whose
// first attempt landed after all would store the record twice. After a
// failed write the topic's newest record is read again before the next
// attempt, so a write that did land is not repeated.
func (m *mirror) copy(ctx context.Context, e *eventstore.Event) error {
	topic := m.cfg.Topic(e.Stream)
	for attempt := 0; ; attempt++ {
		last, err := m.newest(ctx, topic, e.Position.Partition)
		if err != nil {
			return err
		}
		if e.StreamSeq <= last {
			return nil
		}
		key, value, err := m.cfg.Record(e)
		if err != nil || value == nil {
			return err
		}
		msg := kafka.Message{Topic: topic, Key: key, Value: value, Time: e.RecordedAt,
			Headers: []kafka.Header{{Key: seqHeader, Value: []byte(strconv.FormatInt(e.StreamSeq, 10))}}}
		err = m.w.WriteMessages(ctx, msg)
		m.mu.Lock()
		if err == nil {
			m.last[topic] = e.StreamSeq
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

// newest returns the StreamSeq of the topic's newest record (0 for none),
// creating the topic when missing.
func (m *mirror) newest(ctx context.Context, topic string, p int32) (int64, error) {
	m.mu.Lock()
	last, ok := m.last[topic]
	made := m.made[topic]
	m.mu.Unlock()
	if ok {
		return last, nil
	}
	if !made {
		if err := m.create(ctx, topic); err != nil {
			return 0, err
		}
	}
	last, err := m.read(ctx, topic)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.part == nil {
		m.part = map[string]int32{}
	}
	m.last[topic], m.part[topic], m.made[topic] = last, p, true
	return last, nil
}

func (m *mirror) create(ctx context.Context, topic string) error {
	res, err := m.l.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic,
		NumPartitions: 1, ReplicationFactor: m.l.cfg.ReplicationFactor}}})
	if err != nil {
		return fmt.Errorf("kafkalog: create mirror topic %s: %w", topic, err)
	}
	if terr := res.Errors[topic]; terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
		return fmt.Errorf("kafkalog: create mirror topic %s: %w", topic, terr)
	}
	return nil
}

// read finds the seq header of the topic's newest record, waiting for the
// new topic's leader.
func (m *mirror) read(ctx context.Context, topic string) (int64, error) {
	var err error
	for range 100 {
		var last int64
		if last, err = m.readOnce(ctx, topic); err == nil {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("kafkalog: read the newest record of %s: %w", topic, err)
}

func (m *mirror) readOnce(ctx context.Context, topic string) (int64, error) {
	res, err := m.l.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		return 0, err
	}
	ps := res.Topics[topic]
	if len(ps) != 1 {
		return 0, fmt.Errorf("no offsets for %s", topic)
	}
	if ps[0].Error != nil {
		return 0, ps[0].Error
	}
	end := ps[0].LastOffset
	if end == 0 {
		return 0, nil
	}
	f, err := m.l.client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: 0, Offset: end - 1,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
	if err == nil {
		err = f.Error
	}
	if err != nil {
		return 0, err
	}
	var last int64
	for f.Records != nil {
		r, err := f.Records.ReadRecord()
		if err != nil {
			break
		}
		for _, h := range r.Headers {
			if h.Key == seqHeader {
				if n, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && n > last {
					last = n
				}
			}
		}
	}
	if last == 0 {
		return 0, fmt.Errorf("the record at %d of %s has no %s header", end-1, topic, seqHeader)
	}
	return last, nil
}
