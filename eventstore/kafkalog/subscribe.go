package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
)

// Subscribe implements eventstore.Log. Processes that subscribe with the same
// group share the partitions through the Kafka consumer group
// "<Config.Group>.<group>"; when one leaves or dies, the coordinator moves
// its partitions to the others after SessionTimeout. Nothing is committed to
// Kafka: each taken-over partition starts where start says.
func (l *Log) Subscribe(ctx context.Context, group string, start eventstore.StartFunc, h eventstore.Handler) error {
	if group == "" {
		return errors.New("kafkalog: subscribe: group is required")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(l.live, func() { cancel(eventstore.ErrClosed) })
	defer stop()
	err := l.eachPartition(ctx, l.cfg.Group+"."+group, func(ctx context.Context, p int32) {
		if err := l.deliver(ctx, p, start, h); err != nil && ctx.Err() == nil {
			cancel(err)
		}
	})
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// eachPartition joins a consumer group and runs fn for every partition
// assigned to this member, once per generation, until ctx ends. fn's context
// ends when the generation does (a rebalance) or ctx does.
func (l *Log) eachPartition(ctx context.Context, groupID string, fn func(context.Context, int32)) error {
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                groupID,
		Brokers:           l.cfg.Brokers,
		Dialer:            l.cfg.Dialer,
		Topics:            []string{l.cfg.Topic},
		HeartbeatInterval: l.cfg.SessionTimeout / 5,
		SessionTimeout:    l.cfg.SessionTimeout,
		RebalanceTimeout:  l.cfg.SessionTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		Timeout:           10 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			l.log.Debug("kafkalog: consumer group", "group", groupID, "msg", fmt.Sprintf(f, a...))
		}),
	})
	if err != nil {
		return fmt.Errorf("kafkalog: join consumer group %s: %w", groupID, err)
	}
	defer cg.Close()
	defer l.setAssigned(groupID, nil)
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return fmt.Errorf("kafkalog: consumer group %s: %w", groupID, err)
			}
			l.log.Warn("kafkalog: consumer group generation", "group", groupID, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		l.setAssigned(groupID, gen.Assignments[l.cfg.Topic])
		for _, a := range gen.Assignments[l.cfg.Topic] {
			p := int32(a.ID)
			gen.Start(func(gctx context.Context) {
				// The generation's context does not know ctx; join them.
				gctx, cancel := context.WithCancel(gctx)
				defer cancel()
				stop := context.AfterFunc(ctx, cancel)
				defer stop()
				fn(gctx, p)
			})
		}
	}
}

// deliver hands the partition's events to h from the offset start returns,
// waiting for more as the fold grows, until ctx ends or h fails.
func (l *Log) deliver(ctx context.Context, p int32, start eventstore.StartFunc, h eventstore.Handler) error {
	off, err := start(ctx, p)
	if err != nil {
		return fmt.Errorf("kafkalog: start offset of partition %d: %w", p, err)
	}
	for ctx.Err() == nil {
		l.mu.Lock()
		ch, end := l.notify, int64(len(l.parts[p].koffs))
		l.mu.Unlock()
		if off >= end {
			select {
			case <-ctx.Done():
				return nil
			case <-ch:
			}
			continue
		}
		evs, err := l.Read(ctx, p, off, 500)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for i := range evs {
			if ctx.Err() != nil {
				return nil
			}
			if err := h(ctx, evs[i]); err != nil {
				return fmt.Errorf("kafkalog: handle event %s at %d/%d: %w", evs[i].ID, p, evs[i].Position.Offset, err)
			}
			off = evs[i].Position.Offset + 1
		}
	}
	return nil
}

func (l *Log) setAssigned(groupID string, as []kafka.PartitionAssignment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if as == nil {
		delete(l.assigned, groupID)
		return
	}
	if l.assigned == nil {
		l.assigned = map[string][]int32{}
	}
	ps := make([]int32, 0, len(as))
	for _, a := range as {
		ps = append(ps, int32(a.ID))
	}
	slices.Sort(ps)
	l.assigned[groupID] = ps
}

// Assignments reports, for each consumer group this process is a member of
// (one per Subscribe), the partitions the group's current generation gave
// it: which node works on which partition, for the metrics.
func (l *Log) Assignments() map[string][]int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string][]int32, len(l.assigned))
	for g, ps := range l.assigned {
		out[g] = slices.Clone(ps)
	}
	return out
}
