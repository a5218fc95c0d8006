// Package pubsub adapts the event log to Watermill's Publisher and Subscriber,
// so that the gateway's pipeline can use Watermill's router and middleware
// while the log stays the single source of truth.
//
// A Watermill topic is an event type. Publishing appends one event per
// message (the message UUID is the event ID, so a retried publish is
// idempotent); subscribing follows the log and hands over the events of that
// type, one at a time per partition, waiting for each Ack before the next.
// A Nack redelivers the same event. Consumer-group positions are kept in an
// Offsets store and saved after each Ack, so a restarted subscriber continues
// where its group stopped: delivery is at least once, and handlers that
// append events with deterministic IDs make it exactly once in effect.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/poststelle/poststelle/eventstore"
)

// Metadata keys that carry the event's envelope through a Watermill message.
const (
	// MetaEventID, when present, is the log event ID verbatim. Without it a
	// message's event ID is "<topic>:<UUID>": Watermill lets one message be
	// published to several topics, and in the log each is its own event.
	MetaEventID     = "ps.eventId"
	MetaTenant      = "ps.tenant"
	MetaStream      = "ps.stream"
	MetaVersion     = "ps.version"
	MetaMessageKey  = "ps.messageKey"
	MetaCorrelation = "ps.correlation"
	MetaCausation   = "ps.causation"
	MetaPartition   = "ps.partition"
	MetaOffset      = "ps.offset"
	MetaRecordedAt  = "ps.recordedAt"
)

// envelopeKeys are carried in dedicated event fields, not in Event.Metadata.
var envelopeKeys = []string{MetaEventID, MetaTenant, MetaStream, MetaVersion, MetaMessageKey, MetaCorrelation, MetaCausation, MetaPartition, MetaOffset, MetaRecordedAt}

// DefaultTenant is used for messages published without a tenant.
const DefaultTenant = "default"

// Publisher appends Watermill messages to the log.
type Publisher struct {
	log    eventstore.Log
	mu     sync.RWMutex
	closed bool
}

// NewPublisher returns a publisher on the log. Closing it does not close the log.
func NewPublisher(l eventstore.Log) *Publisher { return &Publisher{log: l} }

// Publish implements message.Publisher. It returns after every message is
// durable in the log.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errors.New("pubsub: publisher closed")
	}
	evs := make([]eventstore.Event, len(msgs))
	for i, m := range msgs {
		e, err := ToEvent(topic, m)
		if err != nil {
			return err
		}
		evs[i] = e
	}
	ctx := context.Background()
	if len(msgs) > 0 {
		ctx = msgs[0].Context()
	}
	if _, err := p.log.Append(ctx, evs...); err != nil {
		return fmt.Errorf("pubsub: publish to %s: %w", topic, err)
	}
	return nil
}

// Close implements message.Publisher.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

// ToEvent converts a message published to topic into a log event.
func ToEvent(topic string, m *message.Message) (eventstore.Event, error) {
	md := m.Metadata
	id := md.Get(MetaEventID)
	if id == "" {
		id = topic + ":" + m.UUID
	}
	e := eventstore.Event{ID: id, Type: topic, Tenant: md.Get(MetaTenant), Stream: md.Get(MetaStream),
		MessageKey: md.Get(MetaMessageKey), CorrelationID: md.Get(MetaCorrelation), CausationID: md.Get(MetaCausation),
		Version: 1, Data: m.Payload}
	if e.Tenant == "" {
		e.Tenant = DefaultTenant
	}
	if e.Stream == "" {
		e.Stream = "topic-" + topic
	}
	if v := md.Get(MetaVersion); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return e, fmt.Errorf("pubsub: message %s: bad %s %q", m.UUID, MetaVersion, v)
		}
		e.Version = n
	}
	for k, v := range md {
		if !isEnvelopeKey(k) {
			if e.Metadata == nil {
				e.Metadata = map[string]string{}
			}
			e.Metadata[k] = v
		}
	}
	return e, nil
}

func isEnvelopeKey(k string) bool {
	for _, e := range envelopeKeys {
		if k == e {
			return true
		}
	}
	return false
}

// ToMessage converts a log event into a Watermill message whose metadata
// carries the event's envelope, so that handlers can rebuild the event.
func ToMessage(e *eventstore.Event) *message.Message {
	uuid, generic := strings.CutPrefix(e.ID, e.Type+":")
	m := message.NewMessage(uuid, e.Data)
	for k, v := range e.Metadata {
		m.Metadata.Set(k, v)
	}
	if !generic {
		m.Metadata.Set(MetaEventID, e.ID)
	}
	m.Metadata.Set(MetaTenant, e.Tenant)
	m.Metadata.Set(MetaStream, e.Stream)
	m.Metadata.Set(MetaVersion, strconv.Itoa(e.Version))
	setIf(m, MetaMessageKey, e.MessageKey)
	setIf(m, MetaCorrelation, e.CorrelationID)
	setIf(m, MetaCausation, e.CausationID)
	m.Metadata.Set(MetaPartition, strconv.Itoa(int(e.Position.Partition)))
	m.Metadata.Set(MetaOffset, strconv.FormatInt(e.Position.Offset, 10))
	m.Metadata.Set(MetaRecordedAt, e.RecordedAt.Format(time.RFC3339Nano))
	return m
}

func setIf(m *message.Message, k, v string) {
	if v != "" {
		m.Metadata.Set(k, v)
	}
}

// FromMessage rebuilds the log event a subscribed message was made from.
func FromMessage(topic string, m *message.Message) (eventstore.Event, error) {
	e, err := ToEvent(topic, m)
	if err != nil {
		return e, err
	}
	p, err1 := strconv.Atoi(m.Metadata.Get(MetaPartition))
	off, err2 := strconv.ParseInt(m.Metadata.Get(MetaOffset), 10, 64)
	at, err3 := time.Parse(time.RFC3339Nano, m.Metadata.Get(MetaRecordedAt))
	if err := errors.Join(err1, err2, err3); err != nil {
		return e, fmt.Errorf("pubsub: message %s lacks its log position: %w", m.UUID, err)
	}
	e.Position = eventstore.Position{Partition: int32(p), Offset: off}
	e.RecordedAt = at
	return e, nil
}

// Offsets stores consumer-group positions: the next offset to deliver.
type Offsets interface {
	Load(ctx context.Context, group string, partition int32) (int64, error)
	Save(ctx context.Context, group string, partition int32, next int64) error
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Group names the consumer group; subscribers of one group share a
	// position per topic. Without a group the subscriber is ephemeral: it
	// reads each topic from the start and remembers its position in memory.
	Group string
	// Offsets keeps the group's positions; required with a group.
	Offsets Offsets
	// NackDelay waits before redelivering a nacked message (default 100 ms).
	NackDelay time.Duration
	// MaxInFlight is how many events of a partition may await their Ack at
	// once (default 1: strictly one at a time). Above 1, events of
	// different streams are handled concurrently, while each stream's events
	// still go one at a time, in order.
	MaxInFlight int
	// Logger receives operational messages.
	Logger *slog.Logger
}

// Subscriber follows the log for Watermill.
type Subscriber struct {
	log     eventstore.Log
	cfg     SubscriberConfig
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// NewSubscriber returns a subscriber on the log. Closing it does not close the log.
func NewSubscriber(l eventstore.Log, cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.Group == "" {
		cfg.Group = "ephemeral-" + watermill.NewUUID()
		cfg.Offsets = &MemoryOffsets{}
	}
	if cfg.Offsets == nil {
		return nil, errors.New("pubsub: a subscriber group needs an offsets store")
	}
	if cfg.NackDelay == 0 {
		cfg.NackDelay = 100 * time.Millisecond
	}
	if cfg.MaxInFlight < 1 {
		cfg.MaxInFlight = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Subscriber{log: l, cfg: cfg, closing: make(chan struct{})}, nil
}

// Subscribe implements message.Subscriber. The channel closes when ctx ends
// or the subscriber is closed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	select {
	case <-s.closing:
		return nil, errors.New("pubsub: subscriber closed")
	default:
	}
	out := make(chan *message.Message)
	ctx, cancel := context.WithCancel(ctx)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	go func() {
		defer s.wg.Done()
		defer close(out)
		s.follow(ctx, topic, out)
	}()
	return out, nil
}

// follow runs the log subscription, restarting it after errors until ctx ends.
func (s *Subscriber) follow(ctx context.Context, topic string, out chan<- *message.Message) {
	group := s.cfg.Group + "/" + topic
	for backoff := 100 * time.Millisecond; ctx.Err() == nil; backoff = min(2*backoff, 5*time.Second) {
		err := s.subscribeOnce(ctx, group, topic, out)
		if ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("subscription interrupted; resuming", "group", group, "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
}

// subscribeOnce follows the log until ctx ends or something fails. Each
// partition gets a window of events in flight; each event is handed over by
// its own goroutine until acknowledged.
func (s *Subscriber) subscribeOnce(ctx context.Context, group, topic string, out chan<- *message.Message) error {
	ctx, cancel := context.WithCancelCause(ctx)
	var mu sync.Mutex
	windows := map[int32]*window{}
	var flying sync.WaitGroup
	// Events still in flight when the subscription ends are abandoned (and
	// delivered again on resumption: their position was never saved).
	defer func() { cancel(nil); flying.Wait() }()
	start := func(ctx context.Context, p int32) (int64, error) {
		off, err := s.cfg.Offsets.Load(ctx, group, p)
		if err == nil {
			mu.Lock()
			windows[p] = newWindow(s.cfg.MaxInFlight, off)
			mu.Unlock()
		}
		return off, err
	}
	err := s.log.Subscribe(ctx, group, start, func(ctx context.Context, e eventstore.Event) error {
		mu.Lock()
		w := windows[e.Position.Partition]
		mu.Unlock()
		if e.Type != topic {
			w.seen(e.Position.Offset)
			return nil
		}
		if err := w.acquire(ctx, &e); err != nil {
			return err
		}
		flying.Go(func() {
			if err := s.deliver(ctx, &e, out); err != nil {
				cancel(err)
				return
			}
			if safe, moved := w.release(&e); moved {
				if err := s.cfg.Offsets.Save(ctx, group, e.Position.Partition, safe); err != nil {
					cancel(err)
				}
			}
		})
		return context.Cause(ctx)
	})
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// deliver hands one event over until it is acknowledged.
func (s *Subscriber) deliver(ctx context.Context, e *eventstore.Event, out chan<- *message.Message) error {
	for {
		m := ToMessage(e)
		msgCtx, cancel := context.WithCancel(ctx)
		m.SetContext(msgCtx)
		select {
		case out <- m:
		case <-ctx.Done():
			cancel()
			return ctx.Err()
		}
		select {
		case <-m.Acked():
			cancel()
			return nil
		case <-m.Nacked():
			cancel()
			select {
			case <-time.After(s.cfg.NackDelay):
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-ctx.Done():
			cancel()
			return ctx.Err()
		}
	}
}

// Close implements message.Subscriber: it ends every subscription and waits
// for them.
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	s.wg.Wait()
	return nil
}
