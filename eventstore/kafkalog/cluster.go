package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
)

// Follow implements eventstore.Follower: it delivers every partition to this
// process, outside any consumer group, so that each gateway folds the whole
// log into its own read models (see docs/architecture.md, "Every node serves
// every office"). Partitions are delivered concurrently, each in order.
func (l *Log) Follow(ctx context.Context, start eventstore.StartFunc, h eventstore.Handler) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(l.live, func() { cancel(eventstore.ErrClosed) })
	defer stop()
	var wg sync.WaitGroup
	for p := range l.cfg.Partitions {
		wg.Go(func() {
			if err := l.deliver(ctx, p, start, h); err != nil && ctx.Err() == nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return ctx.Err()
}

var _ eventstore.Follower = (*Log)(nil)

// Offsets keeps the positions of the pipeline's handlers (pubsub.Offsets) as
// committed offsets of the Kafka group "<Config.Group>.offsets.<group>",
// so that a gateway taking a partition over continues where the previous
// owner stopped however many state databases there are. The offsets are
// the fold's log offsets, not Kafka's; no consumer ever joins these groups.
type Offsets struct{ l *Log }

// Offsets returns the handler positions kept on the cluster.
func (l *Log) Offsets() *Offsets { return &Offsets{l: l} }

func (o *Offsets) group(g string) string { return o.l.cfg.Group + ".offsets." + g }

// Load returns the next offset of group on partition; 0 when none is stored.
func (o *Offsets) Load(ctx context.Context, group string, partition int32) (int64, error) {
	res, err := o.l.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: o.group(group),
		Topics: map[string][]int{o.l.cfg.Topic: {int(partition)}}})
	if err == nil {
		err = res.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		return 0, nil // nothing committed yet
	}
	if err != nil {
		return 0, fmt.Errorf("kafkalog: load offset of %s/%d: %w", group, partition, err)
	}
	for _, p := range res.Topics[o.l.cfg.Topic] {
		if p.Partition != int(partition) {
			continue
		}
		if p.Error != nil {
			return 0, fmt.Errorf("kafkalog: load offset of %s/%d: %w", group, partition, p.Error)
		}
		return max(p.CommittedOffset, 0), nil
	}
	return 0, nil
}

// Save stores next as group's position on partition. Kafka keeps the last
// commit, not the highest; only one member owns a partition at a time.
func (o *Offsets) Save(ctx context.Context, group string, partition int32, next int64) error {
	res, err := o.l.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: o.group(group), GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{o.l.cfg.Topic: {{Partition: int(partition), Offset: next}}}})
	if err != nil {
		return fmt.Errorf("kafkalog: save offset of %s/%d: %w", group, partition, err)
	}
	for _, p := range res.Topics[o.l.cfg.Topic] {
		if p.Error != nil {
			return fmt.Errorf("kafkalog: save offset of %s/%d: %w", group, partition, p.Error)
		}
	}
	return nil
}

// Ownership is this process's share of the partitions in the consumer group
// "<Config.Group>.<name>": a scheduler that must have one owner at a time
// (reply and webhook retries) acts only on the streams of partitions it
// owns. When a member dies, the coordinator gives its partitions to the
// others after SessionTimeout.
type Ownership struct {
	l    *Log
	name string
	mu   sync.Mutex
	own  map[int32]bool
}

// Ownership returns the share of group name; it owns nothing until Run has
// joined the group.
func (l *Log) Ownership(name string) *Ownership {
	return &Ownership{l: l, name: name, own: map[int32]bool{}}
}

// Run holds this process's membership until ctx ends.
func (o *Ownership) Run(ctx context.Context) error {
	err := o.l.eachPartition(ctx, o.l.cfg.Group+"."+o.name, func(ctx context.Context, p int32) {
		o.set(p, true)
		defer o.set(p, false)
		<-ctx.Done()
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (o *Ownership) set(p int32, v bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if v {
		o.own[p] = true
	} else {
		delete(o.own, p)
	}
}

// Owns reports whether the stream's partition is this process's now.
func (o *Ownership) Owns(tenant, stream string) bool {
	p := partitionFor(recordKey(tenant, stream), o.l.cfg.Partitions)
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.own[p]
}

// Owned returns how many partitions this process owns now.
func (o *Ownership) Owned() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.own)
}
