// Package kafkalog is the event log on Apache Kafka, for installations that
// run several gateway processes against one cluster (see ARCHITECTURE.md).
//
// # Layout
//
// The log is one topic with a fixed number of partitions. An event's record
// key is its tenant and stream, and its partition is FNV-1a(key) mod
// partitions, so the events of one message stay in one partition, in order.
// The record value holds the fields the appender supplies (see record.go);
// the record's timestamp (CreateTime, set by the appender) is the event's
// RecordedAt. Checkpoints go to a second topic, "<topic>.checkpoints", with
// one partition per log partition.
//
// # The fold
//
// Kafka accepts any record on any partition from any producer, and kafka-go
// has no idempotent producer, so a retried produce can store a record twice.
// The log is therefore defined on the read side: every process folds each
// partition's records in Kafka offset order with deterministic rules
// (partitionState.fold): a repeated event id is skipped, a message key that
// an earlier event of the partition holds is refused, a record that does not
// decode or sits on the wrong partition is skipped. Each accepted record gets
// the next dense log offset (0, 1, 2, …), its stream sequence, and its
// integrity link to the previous accepted event of the partition; a
// partition's leaves are integrity.LeafHash over the accepted events with
// those positions. Because the fold is a pure function of the topic, all
// processes derive the same log, the same leaves and the same tree heads.
// Skipped records are not part of the log; an auditor replaying the topic
// with the same rules skips the same records.
//
// # Appending and idempotency
//
// Append checks the local fold (fast path for retries and known keys),
// produces the records with acks=all, and then waits until its own records
// (recognised by a per-call nonce header) come back through the fold; the
// fold's verdict is the result. Concurrent Append calls share their
// round trips: one producer sends everything queued in one produce request
// per leader broker (one request in flight; the next fills meanwhile), and
// one fetcher per leader folds all the partitions it leads from one fetch
// request (produce.go, fold.go). So across processes:
//   - a re-append of a known id returns Existing=true; the same id with other
//     content returns ErrConflict — guaranteed within a stream's partition,
//     and checked against the local fold across partitions;
//   - a MessageKey is unique per tenant within a partition: two processes
//     racing with the same key into the same partition get one success and
//     one DuplicateError, decided by Kafka's order. Across partitions the
//     check uses the local fold only, so two processes that append the same
//     key into two different streams at the same instant can both succeed.
//     Adapters that derive the stream of a new message from its message key
//     get the strict guarantee.
//
// Each process keeps its fold in memory and rebuilds it from the topic when
// it opens (about 150 bytes per event plus ids and keys).
//
// # Checkpoints
//
// A notary runs in every process, in the consumer group "<group>.notary":
// the member that owns a partition signs the tree head of its fold of that
// partition every CheckpointInterval and writes it to the checkpoints topic.
// Heads are deterministic, so a handover cannot produce two different heads
// of the same size unless the topic itself differs between readers. A
// member signs its partitions' heads once more when a rebalance takes them,
// and Close signs the heads of every partition the process owns or wrote
// to after its last produce requests completed, so only a crash leaves a
// tail that waits for the next owner's first tick.
//
// # Subscribing
//
// Subscribe joins the consumer group "<group>.<name>" with kafka-go's
// ConsumerGroup; for each partition assigned in a generation it asks the
// StartFunc for the log offset and delivers the fold's events from there.
// Offsets are never committed to Kafka: projections keep them with their
// read model, which is what makes a rebalance exactly-once in effect.
package kafkalog

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/poststelle/poststelle/eventstore"
)

// Config configures the Kafka log. The gateway's YAML maps onto it as
// eventstore: {backend: kafka, kafka: {brokers, topic, partitions, group,
// replication_factor, checkpoint_interval}}.
type Config struct {
	// Brokers are the bootstrap addresses, e.g. ["127.0.0.1:9092"].
	Brokers []string
	// Topic is the event topic; it is created when missing.
	Topic string
	// Partitions is the event topic's partition count (default 12). It is
	// part of the log's format: an existing topic must have exactly this many.
	Partitions int32
	// ReplicationFactor for topics this log creates (default 1; use 3 with
	// min.insync.replicas=2 in production).
	ReplicationFactor int
	// Group prefixes the consumer groups of Subscribe and of the notary
	// (default: Topic).
	Group string
	// LogID names the log in signed checkpoints (default "kafka:" + Topic).
	LogID string
	// Signer signs checkpoints; required.
	Signer crypto.Signer
	// CheckpointInterval is how often the notary signs heads (default 5 s).
	CheckpointInterval time.Duration
	// CloseTimeout bounds Close: how long it waits for appends in flight
	// and the final checkpoints before it abandons them (default 10 s).
	CloseTimeout time.Duration
	// SessionTimeout is how long the group coordinator waits for a silent
	// member before moving its partitions (default 10 s).
	SessionTimeout time.Duration
	// Dialer connects to the brokers (default kafka.DefaultDialer); set it
	// for TLS or SASL.
	Dialer *kafka.Dialer
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
	// SnapshotPath, when set, is where the fold is kept between starts
	// (snapshot.go): Open folds only the records after it. Empty folds the
	// whole topic at every start.
	SnapshotPath string
	// SnapshotInterval is how often the fold is written (default 1 min; it
	// is written at Close too).
	SnapshotInterval time.Duration
}

// Log is the Kafka event log. It implements eventstore.Log and eventstore.Heads.
type Log struct {
	cfg      Config
	log      *slog.Logger
	client   *kafka.Client
	readOnly bool
	cpTopic  string

	ctx     context.Context // ends when Close ends, or at its deadline
	cancel  context.CancelFunc
	live    context.Context // ends when Close begins: Append refuses new calls, subscriptions end
	endLive context.CancelFunc
	done    chan struct{} // closed when Close ends
	wg      sync.WaitGroup
	closed  sync.Once

	// Close stops the producer, then the notary, each before the next step;
	// the stop functions are nil on a reader.
	stopProducer, stopNotary context.CancelFunc
	producerDone, notaryDone chan struct{}
	notaries                 *notaryState

	mu      sync.Mutex
	parts   []*partitionState
	notify  chan struct{}           // closed and replaced after each folded record
	waiters map[string]chan verdict // nonce -> the appender waiting for it
	wrote   []bool                  // partition -> this process produced records to it
	// assigned is, per consumer group this process is a member of, the
	// partitions of its current generation (Assignments).
	assigned map[string][]int32

	resumed  int64            // events the fold snapshot held at Open
	produceQ chan *produceJob // Append calls waiting for the producer
	leaderMu sync.Mutex
	leaderOf []int // partition -> leader broker id, nil until known
}

var (
	_ eventstore.Log   = (*Log)(nil)
	_ eventstore.Heads = (*Log)(nil)
)

// Open connects to the cluster, creates the topics when missing, folds the
// existing records of every partition, and starts the notary.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Signer == nil {
		return nil, errors.New("kafkalog: config: a checkpoint signer is required")
	}
	return open(ctx, cfg, false)
}

// OpenReader opens an existing log for reading and auditing (log verify,
// log replay): it needs no signer, creates nothing, writes no checkpoints,
// and refuses appends. A zero Partitions takes the topic's count.
func OpenReader(ctx context.Context, cfg Config) (*Log, error) {
	return open(ctx, cfg, true)
}

// errReadOnly is returned by Append on a log opened with OpenReader.
var errReadOnly = errors.New("kafkalog: log opened read-only")

func open(ctx context.Context, cfg Config, readOnly bool) (*Log, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	transport := &kafka.Transport{Dial: cfg.Dialer.DialFunc, DialTimeout: 10 * time.Second, MetadataTTL: 10 * time.Second}
	if cfg.Dialer.TLS != nil {
		transport.TLS = cfg.Dialer.TLS
	}
	if cfg.Dialer.SASLMechanism != nil {
		transport.SASL = cfg.Dialer.SASLMechanism
	}
	l := &Log{
		cfg:      cfg,
		log:      cfg.Logger.With("topic", cfg.Topic),
		client:   &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 30 * time.Second, Transport: transport},
		cpTopic:  cfg.Topic + ".checkpoints",
		readOnly: readOnly,
		done:     make(chan struct{}),
		notify:   make(chan struct{}),
		waiters:  map[string]chan verdict{},
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.live, l.endLive = context.WithCancel(l.ctx)
	var err error
	if readOnly {
		err = l.discoverPartitions(ctx)
	} else {
		if l.cfg.Partitions == 0 {
			l.cfg.Partitions = defaultPartitions
		}
		err = l.ensureTopics(ctx)
	}
	if err != nil {
		l.cancel()
		return nil, err
	}
	for range l.cfg.Partitions {
		l.parts = append(l.parts, newPartitionState())
	}
	l.wrote = make([]bool, l.cfg.Partitions)
	if !readOnly {
		l.produceQ = make(chan *produceJob, produceQueue)
		var stop context.Context
		stop, l.stopProducer = context.WithCancel(l.ctx)
		l.producerDone = make(chan struct{})
		l.wg.Go(func() {
			defer close(l.producerDone)
			l.producer(stop)
		})
	}
	if !readOnly && cfg.SnapshotPath != "" {
		l.resume(ctx)
	}
	l.wg.Go(func() { l.tail(l.ctx) })
	if err := l.Sync(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("kafkalog: fold topic %s: %w", cfg.Topic, err)
	}
	if !readOnly {
		// Announced before Open returns, so that every log that may sign a
		// head has named its key to auditors.
		w := l.checkpointWriter()
		err := l.publishKey(ctx, w)
		w.Close()
		if err != nil {
			l.Close()
			return nil, err
		}
		var stop context.Context
		stop, l.stopNotary = context.WithCancel(l.ctx)
		l.notaryDone = make(chan struct{})
		l.notaries = newNotaryState(l.cfg.Partitions)
		l.wg.Go(func() {
			defer close(l.notaryDone)
			l.notary(stop)
		})
		if cfg.SnapshotPath != "" {
			l.wg.Go(func() { l.snapshots(l.live) })
		}
	}
	return l, nil
}

// resume installs the fold snapshot when it matches the topic, and folds
// from scratch otherwise.
func (l *Log) resume(ctx context.Context) {
	start := time.Now()
	n, err := l.loadSnapshot()
	if err == nil && n > 0 {
		err = l.checkSnapshot(ctx)
	}
	if err != nil {
		l.log.Warn("kafkalog: fold snapshot not used; folding the whole topic", "err", err)
		for p := range l.parts {
			l.parts[p] = newPartitionState()
		}
		return
	}
	l.resumed = n
	l.log.Info("kafkalog: fold resumed from snapshot", "events", n, "took", time.Since(start).Round(time.Millisecond))
}

// defaultPartitions is the event topic's partition count unless configured.
const defaultPartitions = 12

// discoverPartitions takes the partition count of an existing topic.
func (l *Log) discoverPartitions(ctx context.Context) error {
	md, err := l.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{l.cfg.Topic}})
	if err != nil {
		return fmt.Errorf("kafkalog: metadata of %s: %w", l.cfg.Topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return fmt.Errorf("kafkalog: topic %s: not found", l.cfg.Topic)
	}
	n := int32(len(md.Topics[0].Partitions))
	if l.cfg.Partitions != 0 && l.cfg.Partitions != n {
		return fmt.Errorf("%w: topic %s has %d partitions, the log is configured for %d", errPartitionCount, l.cfg.Topic, n, l.cfg.Partitions)
	}
	l.cfg.Partitions = n
	return nil
}

func (c *Config) defaults() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafkalog: config: brokers: at least one broker address is required")
	case c.Topic == "":
		return errors.New("kafkalog: config: topic is required")
	case c.Partitions < 0 || c.Partitions > 10000:
		return fmt.Errorf("kafkalog: config: partitions %d out of range 1..10000", c.Partitions)
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.Group == "" {
		c.Group = c.Topic
	}
	if c.LogID == "" {
		c.LogID = "kafka:" + c.Topic
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = 5 * time.Second
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = time.Minute
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 10 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.Dialer == nil {
		c.Dialer = kafka.DefaultDialer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// ensureTopics creates the event and checkpoint topics, or checks that the
// existing ones have the configured partition count.
func (l *Log) ensureTopics(ctx context.Context) error {
	// The log is evidence: never let Kafka delete or compact it.
	entries := []kafka.ConfigEntry{
		{ConfigName: "cleanup.policy", ConfigValue: "delete"},
		{ConfigName: "retention.ms", ConfigValue: "-1"},
		{ConfigName: "retention.bytes", ConfigValue: "-1"},
		{ConfigName: "message.timestamp.type", ConfigValue: "CreateTime"},
		{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(2 << 20)},
	}
	if l.cfg.ReplicationFactor >= 3 {
		// An acknowledged append must survive the loss of a broker.
		entries = append(entries, kafka.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: "2"})
	}
	var topics []kafka.TopicConfig
	for _, name := range []string{l.cfg.Topic, l.cpTopic} {
		topics = append(topics, kafka.TopicConfig{Topic: name, NumPartitions: int(l.cfg.Partitions),
			ReplicationFactor: l.cfg.ReplicationFactor, ConfigEntries: entries})
	}
	res, err := l.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("kafkalog: create topics %s: %w", l.cfg.Topic, err)
	}
	for name, terr := range res.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("kafkalog: create topic %s: %w", name, terr)
		}
	}
	// Metadata may lag behind creation; wait until every partition has a leader.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := l.checkTopics(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, errPartitionCount) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// errPartitionCount means an existing topic has another partition count: the
// count is part of the log's format (it places streams), so it cannot change.
var errPartitionCount = errors.New("kafkalog: partition count differs")

func (l *Log) checkTopics(ctx context.Context) error {
	md, err := l.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{l.cfg.Topic, l.cpTopic}})
	if err != nil {
		return fmt.Errorf("kafkalog: metadata of %s: %w", l.cfg.Topic, err)
	}
	for _, t := range md.Topics {
		if t.Error != nil {
			return fmt.Errorf("kafkalog: metadata of topic %s: %w", t.Name, t.Error)
		}
		if len(t.Partitions) != int(l.cfg.Partitions) {
			return fmt.Errorf("%w: topic %s has %d partitions, the log is configured for %d",
				errPartitionCount, t.Name, len(t.Partitions), l.cfg.Partitions)
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("kafkalog: topic %s partition %d has no leader yet", t.Name, p.ID)
			}
		}
	}
	if len(md.Topics) != 2 {
		return fmt.Errorf("kafkalog: metadata lists %d of 2 topics", len(md.Topics))
	}
	return nil
}

// LogID implements eventstore.Heads.
func (l *Log) LogID() string { return l.cfg.LogID }

// Partitions implements eventstore.Log.
func (l *Log) Partitions(context.Context) (int32, error) { return l.cfg.Partitions, nil }

// End implements eventstore.Log. It reports this process's fold; call Sync
// first to include appends other processes finished just now.
func (l *Log) End(_ context.Context, partition int32) (int64, error) {
	if err := l.checkPartition(partition); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.parts[partition].koffs)), nil
}

// checkPartition refuses a partition out of range, and every call once Close
// has ended.
func (l *Log) checkPartition(p int32) error {
	if p < 0 || p >= l.cfg.Partitions {
		return fmt.Errorf("kafkalog: partition %d out of range 0..%d", p, l.cfg.Partitions-1)
	}
	select {
	case <-l.done:
		return eventstore.ErrClosed
	default:
		return nil
	}
}

// Close stops the log. It refuses new appends, lets the producer finish
// the requests in flight, and then has the notary sign a final checkpoint
// of every partition it owns or this process wrote to (see notary.go), so
// that a log whose gateways were all stopped cleanly ends covered. Only
// then are the tails and the notary's writer torn down. Appends still
// waiting when Close ends fail with ErrClosed. After CloseTimeout, Close
// abandons whatever still waits for the cluster, and the events that the
// final checkpoints missed stay uncovered as after a crash.
func (l *Log) Close() error {
	l.closed.Do(func() {
		l.endLive()
		deadline := time.AfterFunc(l.cfg.CloseTimeout, l.cancel)
		defer deadline.Stop()
		if l.stopProducer != nil {
			l.stopProducer()
			<-l.producerDone
		}
		if l.stopNotary != nil {
			l.stopNotary()
			<-l.notaryDone
		}
		close(l.done)
		l.cancel()
		l.wg.Wait()
	})
	return nil
}

// brokerAddr is the first broker's address, for requests that need one.
func (l *Log) brokerAddr() net.Addr { return kafka.TCP(l.cfg.Brokers...) }
