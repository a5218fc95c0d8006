package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
)

// maxReadLimit caps one Read, so one call's memory stays bounded.
const maxReadLimit = 10000

// Read implements eventstore.Log: up to limit events of the partition from
// log offset from, as far as this process has folded (see Sync).
func (l *Log) Read(ctx context.Context, partition int32, from int64, limit int) ([]eventstore.Event, error) {
	if err := l.checkPartition(partition); err != nil {
		return nil, err
	}
	if from < 0 {
		return nil, fmt.Errorf("kafkalog: read partition %d from negative offset %d", partition, from)
	}
	limit = min(max(limit, 1), maxReadLimit)
	l.mu.Lock()
	s := l.parts[partition]
	end := min(int64(len(s.koffs)), from+int64(limit))
	if evs, ok := s.recent.get(from, end); ok {
		l.mu.Unlock()
		return evs, nil
	}
	l.mu.Unlock()
	return l.readFetched(ctx, partition, from, limit)
}

// readFetched is Read for a range the window of recent events does not
// hold: it fetches the records from the brokers and decodes them again.
func (l *Log) readFetched(ctx context.Context, partition int32, from int64, limit int) ([]eventstore.Event, error) {
	l.mu.Lock()
	s := l.parts[partition]
	end := min(int64(len(s.koffs)), from+int64(limit))
	var koffs []int64
	if from < end {
		koffs = append(koffs, s.koffs[from:end]...)
	}
	l.mu.Unlock()
	if len(koffs) == 0 {
		return nil, nil
	}
	out := make([]eventstore.Event, 0, len(koffs))
	for len(out) < len(koffs) {
		recs, err := l.fetch(ctx, partition, koffs[len(out)], koffs[len(koffs)-1])
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			i := len(out)
			if i == len(koffs) || r.offset < koffs[i] {
				continue // skipped by the fold, or before the first wanted record
			}
			if r.offset > koffs[i] {
				return nil, fmt.Errorf("kafkalog: partition %d: record at Kafka offset %d is gone (log offset %d): the topic was truncated or compacted", partition, koffs[i], from+int64(i))
			}
			e, err := decodeEvent(r.value)
			if err != nil {
				return nil, fmt.Errorf("kafkalog: partition %d log offset %d: %w", partition, from+int64(i), err)
			}
			l.mu.Lock()
			l.parts[partition].decorate(&e, partition, from+int64(i), r.time)
			l.mu.Unlock()
			out = append(out, e)
		}
	}
	return out, nil
}

// fetch returns raw records of a partition starting at Kafka offset from (and
// maybe a few before it), stopping after last when the response reaches it.
func (l *Log) fetch(ctx context.Context, partition int32, from, last int64) ([]rawRecord, error) {
	maxBytes := min(max((last-from+1)*2048, 64<<10), 8<<20) // Kafka returns at least one batch anyway
	var lastErr error
	for attempt := range 20 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("kafkalog: fetch %s/%d at %d: %w (last error: %v)", l.cfg.Topic, partition, from, ctx.Err(), lastErr)
			case <-l.done:
				return nil, eventstore.ErrClosed
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		res, err := l.client.Fetch(ctx, &kafka.FetchRequest{Topic: l.cfg.Topic, Partition: int(partition),
			Offset: from, MinBytes: 1, MaxBytes: maxBytes, MaxWait: 100 * time.Millisecond})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			lastErr = err
			continue
		}
		recs, err := readRecords(res.Records, last)
		if err != nil {
			lastErr = err
			continue
		}
		if len(recs) == 0 {
			lastErr = errors.New("empty response")
			continue
		}
		return recs, nil
	}
	return nil, fmt.Errorf("kafkalog: fetch %s/%d at %d: %w", l.cfg.Topic, partition, from, lastErr)
}

func readRecords(rr kafka.RecordReader, last int64) ([]rawRecord, error) {
	if rr == nil {
		return nil, nil
	}
	var out []rawRecord
	for {
		r, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read record: %w", err)
		}
		rec := rawRecord{offset: r.Offset, time: r.Time}
		if rec.key, err = readBytes(r.Key, 64<<10); err == nil {
			rec.value, err = readBytes(r.Value, maxRecordValue)
		}
		if err != nil {
			return out, fmt.Errorf("record at %d: %w", r.Offset, err)
		}
		out = append(out, rec)
		if r.Offset >= last {
			return out, nil
		}
	}
}

func readBytes(b kafka.Bytes, max int) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	defer b.Close()
	n := b.Len()
	if n > max {
		return nil, fmt.Errorf("%d bytes exceed %d", n, max)
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadStream implements eventstore.Log.
func (l *Log) ReadStream(ctx context.Context, tenant, stream string) ([]eventstore.Event, error) {
	key := recordKey(tenant, stream)
	p := partitionFor(key, l.cfg.Partitions)
	if err := l.checkPartition(p); err != nil {
		return nil, err
	}
	l.mu.Lock()
	offs := append([]int64(nil), l.parts[p].streams[string(key)]...)
	l.mu.Unlock()
	out := make([]eventstore.Event, 0, len(offs))
	for i := 0; i < len(offs); {
		// Read runs of consecutive offsets in one call.
		j := i + 1
		for j < len(offs) && offs[j] == offs[j-1]+1 && j-i < maxReadLimit {
			j++
		}
		evs, err := l.Read(ctx, p, offs[i], j-i)
		if err != nil {
			return nil, fmt.Errorf("kafkalog: read stream %s/%s: %w", tenant, stream, err)
		}
		out = append(out, evs...)
		i = j
	}
	return out, nil
}
