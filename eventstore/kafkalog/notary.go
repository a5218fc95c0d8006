package kafkalog

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

// maxCheckpointRecord caps one checkpoint record (integrity.ParseCheckpoint
// refuses more anyway).
const maxCheckpointRecord = 4096

// notary signs the heads of the partitions this process owns in the notary
// group until ctx ends: every CheckpointInterval while it owns one, and once
// more when it gives one up, at a rebalance or at Close (handOver). When ctx
// ends, it also signs the heads of the partitions this process wrote to but
// did not own (finalCheckpoints), so that when Close returns every event
// this process appended is covered, whoever owned its partition.
func (l *Log) notary(ctx context.Context) {
	w := l.checkpointWriter()
	defer w.Close()
	// eachPartition returns after every notarize has returned, and so after
	// their hand-overs: the consumer group waits for them before it leaves.
	err := l.eachPartition(ctx, l.cfg.Group+".notary", func(ctx context.Context, p int32) {
		l.notarize(ctx, w, p)
	})
	if err != nil && ctx.Err() == nil {
		l.log.Error("kafkalog: notary stopped", "err", err)
	}
	l.finalCheckpoints(w)
}

// checkpointWriter writes to the checkpoints topic, each record to the
// partition its key names.
func (l *Log) checkpointWriter() *kafka.Writer {
	return &kafka.Writer{
		Addr:         l.brokerAddr(),
		Topic:        l.cpTopic,
		Balancer:     checkpointBalancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		MaxAttempts:  10,
		Transport:    l.client.Transport,
	}
}

// notaryState is what the notary's partition loops share: per partition
// the size of the newest head known to be signed (-1 until known) and
// whether a loop owns it now.
type notaryState struct {
	mu     sync.Mutex
	signed []int64
	owned  []bool
}

func newNotaryState(partitions int32) *notaryState {
	st := &notaryState{signed: make([]int64, partitions), owned: make([]bool, partitions)}
	for i := range st.signed {
		st.signed[i] = -1
	}
	return st
}

// newestSigned returns the size of p's newest signed head, reading the
// checkpoints topic when this process has not learnt it yet or reread is
// set (another process may have signed since).
func (l *Log) newestSigned(ctx context.Context, p int32, reread bool) (int64, error) {
	st := l.notaries
	st.mu.Lock()
	n := st.signed[p]
	st.mu.Unlock()
	if n >= 0 && !reread {
		return n, nil
	}
	cps, err := l.Checkpoints(ctx, p)
	if err != nil {
		return 0, err
	}
	n = 0
	if len(cps) > 0 {
		n = cps[len(cps)-1].Size
	}
	return l.noteSigned(p, n), nil
}

// noteSigned records that a head of size n of partition p is signed and
// returns the newest size known.
func (l *Log) noteSigned(p int32, n int64) int64 {
	st := l.notaries
	st.mu.Lock()
	defer st.mu.Unlock()
	st.signed[p] = max(st.signed[p], n)
	return st.signed[p]
}

// notarize signs partition p's head whenever it grew, every
// CheckpointInterval, while this process owns p. A new owner thus covers
// what the previous one left on its first tick.
func (l *Log) notarize(ctx context.Context, w *kafka.Writer, p int32) {
	st := l.notaries
	st.mu.Lock()
	st.owned[p] = true
	st.mu.Unlock()
	defer func() {
		l.handOver(w, p)
		st.mu.Lock()
		st.owned[p] = false
		st.mu.Unlock()
	}()
	if _, err := l.newestSigned(ctx, p, true); err != nil && ctx.Err() == nil {
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
		if err := l.signHead(ctx, w, p); err != nil && ctx.Err() == nil {
			l.log.Warn("kafkalog: notary: checkpoint", "partition", p, "err", err)
		}
	}
}

// handOver signs p's head once more when this process gives p up, so that
// the events of its last interval need not wait for the next owner's first
// tick, or, at Close, for a gateway to run again. The consumer group waits
// for it before it rejoins or leaves, so it is bounded well within the
// session timeout; at Close, Close's deadline bounds it too.
func (l *Log) handOver(w *kafka.Writer, p int32) {
	if l.ctx.Err() != nil {
		return // Close's deadline passed: abandon, as after a crash
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.SessionTimeout/2)
	defer cancel()
	// Fold what the cluster holds now, so that the head includes the
	// records this process's producer stored last. A head short of them is
	// still a true one, so a failed catch-up does not stop the signing.
	if err := l.Sync(ctx); err != nil && l.ctx.Err() == nil {
		l.log.Warn("kafkalog: notary: catch up before the final checkpoint", "partition", p, "err", err)
	}
	if err := l.signHead(ctx, w, p); err != nil && l.ctx.Err() == nil {
		l.log.Warn("kafkalog: notary: final checkpoint", "partition", p, "err", err)
	}
}

// finalCheckpoints signs, at Close, the heads of the partitions this
// process wrote to that the notary did not own: an appender's events then
// need no other process's notary. Heads are deterministic, so a head signed
// here and one signed by the partition's owner never disagree.
func (l *Log) finalCheckpoints(w *kafka.Writer) {
	l.mu.Lock()
	var parts []int32
	for p, wrote := range l.wrote {
		if wrote {
			parts = append(parts, int32(p))
		}
	}
	l.mu.Unlock()
	if len(parts) == 0 {
		return
	}
	ctx := l.ctx // Close's deadline ends it
	if err := l.Sync(ctx); err != nil && ctx.Err() == nil {
		l.log.Warn("kafkalog: notary: catch up before the final checkpoints", "err", err)
	}
	for _, p := range parts {
		if err := l.signHead(ctx, w, p); err != nil && ctx.Err() == nil {
			l.log.Warn("kafkalog: notary: final checkpoint", "partition", p, "err", err)
		}
	}
}

// signHead signs the head of this process's fold of p and writes it to the
// checkpoints topic, unless no event came since the newest signed head.
func (l *Log) signHead(ctx context.Context, w *kafka.Writer, p int32) error {
	last, err := l.newestSigned(ctx, p, false)
	if err != nil {
		return err
	}
	l.mu.Lock()
	s := l.parts[p]
	c := eventstore.Checkpoint{Partition: p, Size: s.frontier.Size(), Root: s.frontier.Root(), Time: time.Now().UTC()}
	l.mu.Unlock()
	if c.Size <= last {
		return nil
	}
	if err := integrity.Sign(l.cfg.Signer, l.cfg.LogID, &c); err != nil {
		return fmt.Errorf("sign the head at size %d: %w", c.Size, err)
	}
	msg := kafka.Message{Key: []byte(strconv.Itoa(int(p))), Value: integrity.FormatCheckpoint(l.cfg.LogID, &c), Time: c.Time}
	// kafka-go's Writer queues the record even on a cancelled context and
	// only stops waiting for it; a notary told to stop must not write.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.WriteMessages(ctx, msg); err != nil {
		return fmt.Errorf("write the checkpoint at size %d: %w", c.Size, err)
	}
	l.noteSigned(p, c.Size)
	return nil
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
// log verify fails an older uncovered tail. A gateway that is closed signs
// its final heads first (Close), so only one that crashed or lost the
// cluster leaves its last interval uncovered, until another process's
// notary takes the partition over.
func (l *Log) CheckpointLag() time.Duration { return 2 * l.cfg.CheckpointInterval }
