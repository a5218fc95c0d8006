// Package pipeline runs the gateway's handlers: each consumes one event type
// from the log and appends the events it leads to (verification, routing,
// delivery, replies). It is a Watermill router over the log (package
// eventstore/pubsub) with middleware for panic recovery, retry with backoff,
// correlation ids in the logs, and a poison queue: an event a handler keeps
// failing on is recorded as a ProcessingFailed event for triage instead of
// blocking the stream behind it.
//
// Handlers append with ids derived from the handler name and the cause
// (gateway.Follow), so a handler that runs twice on one event — after a
// crash between append and acknowledgement, or on replay — changes nothing:
// delivery is at least once, the effect exactly once.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/gateway"
)

// Handler reacts to one event type.
type Handler struct {
	// Name identifies the handler; it names its consumer group and is part
	// of the ids of the events it appends, so it must never change.
	Name string
	// Group names the handler's consumer group (its position in the log)
	// when it is not Name. A new Group starts at the beginning of the log:
	// a handler that learns to append something more (queue entries) gets
	// a new Group, so that it handles the events before it once more and
	// appends only what is missing, its other events keeping their
	// derived ids.
	Group string
	// Topic is the event type consumed, e.g. "MessageReceived".
	Topic string
	// Handle returns the payloads to append in the cause's stream. An error
	// is retried; a panic is recovered and retried.
	Handle func(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error)
}

// Config configures the pipeline.
type Config struct {
	Log      eventstore.Log
	Offsets  pubsub.Offsets
	Registry *gateway.Registry
	Logger   *slog.Logger
	// MaxRetries before an event goes to the poison queue (default 5).
	MaxRetries int
	// RetryInterval is the first backoff (default 200 ms), doubled up to 10 s.
	RetryInterval time.Duration
	// MaxInFlight is how many events each handler works on at once (default
	// 16); events of one message are still handled one at a time, in order.
	// Handlers wait mostly on durable appends, which concurrent handlers
	// share through the log's group commit.
	MaxInFlight int
	// OffsetWriteInterval, when set, keeps the handlers' positions in
	// memory and writes those that moved at this interval and when Run
	// ends, instead of once per handled event; a crash then redoes at most
	// this interval's events (their appends are no-ops). For positions in
	// a local database shared with the projections; not for positions
	// that other processes take over (Kafka's groups).
	OffsetWriteInterval time.Duration
}

// Pipeline is a running set of handlers.
type Pipeline struct {
	cfg    Config
	router *message.Router
	pub    *pubsub.Publisher
	subs   []*pubsub.Subscriber
	// lazy is the write-behind of the positions (OffsetWriteInterval).
	lazy *lazyOffsets
}

// New builds a pipeline for the handlers.
func New(cfg Config, handlers ...Handler) (*Pipeline, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 5
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 200 * time.Millisecond
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 16
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second},
		watermill.NewSlogLoggerWithLevelMapping(cfg.Logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}))
	if err != nil {
		return nil, fmt.Errorf("pipeline: create router: %w", err)
	}
	p := &Pipeline{cfg: cfg, router: router, pub: pubsub.NewPublisher(cfg.Log)}
	if cfg.OffsetWriteInterval > 0 && cfg.Offsets != nil {
		p.lazy = newLazyOffsets(cfg.Offsets)
		p.cfg.Offsets = p.lazy
	}
	for _, h := range handlers {
		if err := p.add(h); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Pipeline) add(h Handler) error {
	if h.Name == "" || h.Topic == "" || h.Handle == nil {
		return errors.New("pipeline: handler needs a name, a topic and a function")
	}
	group := h.Group
	if group == "" {
		group = h.Name
	}
	sub, err := pubsub.NewSubscriber(p.cfg.Log, pubsub.SubscriberConfig{Group: "pipeline/" + group, Offsets: p.cfg.Offsets,
		Logger: p.cfg.Logger, MaxInFlight: p.cfg.MaxInFlight})
	if err != nil {
		return err
	}
	p.subs = append(p.subs, sub)
	rh := p.router.AddConsumerHandler(h.Name, h.Topic, sub, func(m *message.Message) error { return p.run(h, m) })
	retry := middleware.Retry{MaxRetries: p.cfg.MaxRetries, InitialInterval: p.cfg.RetryInterval,
		MaxInterval: 10 * time.Second, Multiplier: 2, Logger: watermill.NewSlogLogger(p.cfg.Logger)}
	// First added is outermost: poison(retry(recover(correlation(handler)))).
	rh.AddMiddleware(p.poison(h), retry.Middleware, middleware.Recoverer, middleware.CorrelationID)
	return nil
}

// run decodes the message back into its event and appends what the handler returns.
func (p *Pipeline) run(h Handler, m *message.Message) error {
	cause, err := pubsub.FromMessage(h.Topic, m)
	if err != nil {
		return err
	}
	payload, err := p.cfg.Registry.Decode(&cause)
	if err != nil {
		return err
	}
	ctx := m.Context()
	out, err := h.Handle(ctx, &cause, payload)
	if err != nil {
		return fmt.Errorf("%s on %s %s: %w", h.Name, cause.Type, cause.ID, err)
	}
	return p.append(ctx, h.Name, &cause, out)
}

func (p *Pipeline) append(ctx context.Context, handler string, cause *eventstore.Event, out []gateway.Payload) error {
	if len(out) == 0 {
		return nil
	}
	evs := make([]eventstore.Event, len(out))
	for i, pl := range out {
		e, err := gateway.Follow(handler, cause, i, pl)
		if err != nil {
			return err
		}
		evs[i] = e
	}
	if _, err := p.cfg.Log.Append(ctx, evs...); err != nil {
		return fmt.Errorf("%s: append %d events caused by %s: %w", handler, len(evs), cause.ID, err)
	}
	return nil
}

// poison turns an error that outlived the retries into a ProcessingFailed
// event, so the stream moves on and triage sees the message.
func (p *Pipeline) poison(h Handler) message.HandlerMiddleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(m *message.Message) ([]*message.Message, error) {
			out, err := next(m)
			if err == nil {
				return out, nil
			}
			if m.Context().Err() != nil {
				// The subscription ended (a rebalance took the partition, or
				// shutdown): the next owner handles the event again, so it
				// is no failure of the handler.
				return nil, err
			}
			cause, cerr := pubsub.FromMessage(h.Topic, m)
			if cerr != nil {
				return nil, errors.Join(err, cerr)
			}
			p.cfg.Logger.Error("handler failed; event moved to triage", "handler", h.Name, "event", cause.ID,
				"stream", cause.Stream, "correlation", cause.CorrelationID, "err", err)
			failed := &gateway.ProcessingFailed{Handler: h.Name, EventID: cause.ID, Type: cause.Type,
				Attempts: p.cfg.MaxRetries + 1, Error: err.Error()}
			if aerr := p.append(m.Context(), "poison/"+h.Name, &cause, []gateway.Payload{failed}); aerr != nil {
				return nil, errors.Join(err, aerr) // nack: the log itself is failing
			}
			return nil, nil
		}
	}
}

// Run runs the handlers until ctx ends. With OffsetWriteInterval the
// positions reached are written when the handlers have stopped.
func (p *Pipeline) Run(ctx context.Context) error {
	var flushed sync.WaitGroup
	stop := func() {}
	if p.lazy != nil {
		var fctx context.Context
		fctx, stop = context.WithCancel(ctx)
		defer stop()
		flushed.Go(func() {
			p.lazy.run(fctx, p.cfg.OffsetWriteInterval, func(err error) {
				p.cfg.Logger.Error("pipeline: positions not written; retrying", "err", err)
			})
		})
	}
	err := p.router.Run(ctx)
	for _, s := range p.subs {
		s.Close()
	}
	if p.lazy != nil {
		stop()
		flushed.Wait()
		// ctx has ended: the last write gets a context of its own.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, p.lazy.flush(wctx))
	}
	return err
}

// Running is closed when every handler has started.
func (p *Pipeline) Running() chan struct{} { return p.router.Running() }
