package kafkalog

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

// maxCheckpointRecord caps one checkpoint record (integrity.ParseCheckpoint
// refuses more anyway).
const maxCheckpointRecord = 4096

// notary signs the heads of the partitions this process owns in the notary
// group until ctx ends.
func (l *Log) notary(ctx context.Context) {
	w := &kafka.Writer{
		Addr:         l.brokerAddr(),
		Topic:        l.cpTopic,
		Balancer:     checkpointBalancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		MaxAttempts:  10,
		Transport:    l.client.Transport,
	}
	defer w.Close()
	err := l.eachPartition(ctx, l.cfg.Group+".notary", func(ctx context.Context, p int32) {
		l.notarize(ctx, w, p)
	})
	if err != nil && ctx.Err() == nil {
		l.log.Error("kafkalog: notary stopped", "err", err)
	}
}

// notarize signs partition p's head whenever it grew, every CheckpointInterval.
func (l *Log) notarize(ctx context.Context, w *kafka.Writer, p int32) {
	var last int64
	if cps, err := l.Checkpoints(ctx, p); err == nil && len(cps) > 0 {
		last = cps[len(cps)-1].Size
	} else if err != nil && ctx.Err() == nil {
		l.log.Warn("kafkalog: notary: read checkpoints", "partition", p, "err", err)
	}
	t := time.NewTicker(l.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		s := l.parts[p]
		c := eventstore.Checkpoint{Partition: p, Size: s.frontier.Size(), Root: s.frontier.Root(), Time: time.Now().UTC()}
		l.mu.Unlock()
		if c.Size <= last {
			continue
		}
		if err := integrity.Sign(l.cfg.Signer, l.cfg.LogID, &c); err != nil {
			l.log.Error("kafkalog: notary: sign", "partition", p, "err", err)
			continue
		}
		msg := kafka.Message{Key: []byte(strconv.Itoa(int(p))), Value: integrity.FormatCheckpoint(l.cfg.LogID, &c), Time: c.Time}
		if err := w.WriteMessages(ctx, msg); err != nil {
			if ctx.Err() == nil {
				l.log.Warn("kafkalog: notary: write checkpoint", "partition", p, "size", c.Size, "err", err)
			}
			continue
		}
		last = c.Size
	}
}

// checkpointBalancer puts a checkpoint on the partition named by its key,
// which is the log partition it covers.
type checkpointBalancer struct{}

func (checkpointBalancer) Balance(msg kafka.Message, partitions ...int) int {
	p, err := strconv.Atoi(string(msg.Key))
	if err != nil || p < 0 || p >= len(partitions) {
		return partitions[0]
	}
	return partitions[p]
}

// Checkpoints implements eventstore.Heads: the signed heads of a partition in
// increasing size. Repeats of one head (two notaries during a handover) are
// merged; two different heads of one size are both returned, so that the
// verifier reports them. Records that are not checkpoints of this log are
// skipped; signatures are for the verifier to check.
func (l *Log) Checkpoints(ctx context.Context, partition int32) ([]eventstore.Checkpoint, error) {
	if err := l.checkPartition(partition); err != nil {
		return nil, err
	}
	var out []eventstore.Checkpoint
	for off := int64(0); ; {
		res, err := l.client.Fetch(ctx, &kafka.FetchRequest{Topic: l.cpTopic, Partition: int(partition),
			Offset: off, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 50 * time.Millisecond})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			return nil, fmt.Errorf("kafkalog: read checkpoints of partition %d at %d: %w", partition, off, err)
		}
		recs, err := readRecords(res.Records, res.HighWatermark)
		if err != nil {
			return nil, fmt.Errorf("kafkalog: read checkpoints of partition %d: %w", partition, err)
		}
		for _, r := range recs {
			if r.offset < off {
				continue
			}
			off = r.offset + 1
			if len(r.value) > maxCheckpointRecord {
				continue
			}
			logID, c, err := integrity.ParseCheckpoint(r.value)
			if err != nil || logID != l.cfg.LogID || c.Partition != partition {
				continue
			}
			out = append(out, c)
		}
		if off >= res.HighWatermark || len(recs) == 0 {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b eventstore.Checkpoint) int {
		if a.Size != b.Size {
			return int(min(max(a.Size-b.Size, -1), 1))
		}
		return bytes.Compare(a.Root[:], b.Root[:])
	})
	return slices.CompactFunc(out, func(a, b eventstore.Checkpoint) bool {
		return a.Size == b.Size && a.Root == b.Root
	}), nil
}

// CheckpointLag implements integrity.CheckpointLag: an event waits up to one
// CheckpointInterval for the notary's next tick, and the notary's fold, its
// write and the clocks of the processes that stamp CreateTime may add up to
// another, so an event is allowed to stay uncovered for two intervals.
// log verify fails an older uncovered tail. A gateway that was stopped
// leaves the events of its last interval uncovered until it runs again.
func (l *Log) CheckpointLag() time.Duration { return 2 * l.cfg.CheckpointInterval }
