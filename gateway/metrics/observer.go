package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// Observer tails the log and turns what it says into metrics. It reads with
// Read, not Subscribe, so it needs no consumer group and sees every
// partition on every node.
type Observer struct {
	Log      eventstore.Log
	Registry *gateway.Registry
	Metrics  *Metrics
	Logger   *slog.Logger
	// Interval is how often it looks for new events (default 1s).
	Interval time.Duration
	// FromStart observes the whole log instead of starting at its head;
	// tests use it.
	FromStart bool

	next     []int64
	received receivedTimes
}

// readBatch bounds one Read.
const readBatch = 1000

// Run observes until ctx ends.
func (o *Observer) Run(ctx context.Context) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	interval := o.Interval
	if interval <= 0 {
		interval = time.Second
	}
	if err := o.start(ctx); err != nil {
		return err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := o.Poll(ctx); err != nil && ctx.Err() == nil {
			o.Logger.Warn("metrics: reading the log failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (o *Observer) start(ctx context.Context) error {
	if o.next != nil {
		return nil
	}
	n, err := o.Log.Partitions(ctx)
	if err != nil {
		return fmt.Errorf("metrics: count partitions: %w", err)
	}
	o.next = make([]int64, n)
	if o.FromStart {
		return nil
	}
	for p := range o.next {
		if o.next[p], err = o.Log.End(ctx, int32(p)); err != nil {
			return fmt.Errorf("metrics: end of partition %d: %w", p, err)
		}
	}
	return nil
}

// Poll reads and observes what was appended since the last call.
func (o *Observer) Poll(ctx context.Context) error {
	if err := o.start(ctx); err != nil {
		return err
	}
	for p := range o.next {
		for {
			events, err := o.Log.Read(ctx, int32(p), o.next[p], readBatch)
			if err != nil {
				return fmt.Errorf("metrics: read partition %d at %d: %w", p, o.next[p], err)
			}
			for i := range events {
				o.observe(&events[i])
			}
			o.next[p] += int64(len(events))
			o.Metrics.observed.WithLabelValues(strconv.Itoa(p)).Set(float64(o.next[p]))
			if len(events) < readBatch {
				break
			}
		}
	}
	return nil
}

func (o *Observer) observe(e *eventstore.Event) {
	m := o.Metrics
	typ := e.Type
	if !o.Registry.Known(typ) {
		typ = "unknown"
	}
	m.events.WithLabelValues(typ).Inc()
	p, err := o.Registry.Decode(e)
	if err != nil {
		o.Logger.Debug("metrics: event not decoded", "event", e.ID, "err", err)
		return
	}
	key := e.Tenant + "/" + e.Stream
	switch p := p.(type) {
	case *gateway.MessageReceived:
		ch := string(p.Channel)
		m.intake.WithLabelValues(ch).Inc()
		m.intakeBytes.WithLabelValues(ch).Add(float64(p.Raw.Size))
		o.received.put(key, p.ReceivedAt)
	case *gateway.SignaturesVerified:
		for _, s := range p.Signatures {
			m.signatures.WithLabelValues(s.Indication, s.Format).Inc()
		}
		m.writtenForm.WithLabelValues(strconv.FormatBool(p.WrittenFormSatisfied)).Inc()
	case *gateway.MessageRouted:
		by := "rules"
		if p.DecidedBy != "rules" {
			by = "triage" // a person: never a label value
		}
		m.routed.WithLabelValues(by).Inc()
		if at, ok := o.received.get(key); ok && by == "rules" {
			m.routingLag.Observe(lag(at, e.RecordedAt))
		}
	case *gateway.RoutingFailed:
		m.routingFailed.Inc()
	case *gateway.MessageDelivered:
		m.deliveries.WithLabelValues(p.Via).Inc()
		if at, ok := o.received.get(key); ok {
			m.deliveryLag.Observe(lag(at, e.RecordedAt))
		}
	case *gateway.ReplyRequested:
		m.answers.WithLabelValues("requested", string(p.Channel)).Inc()
	case *gateway.ReplySent:
		m.answers.WithLabelValues("sent", string(p.Channel)).Inc()
	case *gateway.ReplyFailed:
		outcome := "failed_retrying"
		if p.Permanent {
			outcome = "failed_permanently"
		}
		m.answers.WithLabelValues(outcome, "").Inc()
	case *gateway.ProcessingFailed:
		m.failures.WithLabelValues(p.Handler).Inc()
	}
}

func lag(from, to time.Time) float64 { return max(0, to.Sub(from).Seconds()) }

// receivedTimes remembers when recent messages arrived, for the lag
// histograms; the oldest entries go first once it holds maxReceived.
type receivedTimes struct {
	at    map[string]time.Time
	order []string
}

const maxReceived = 1 << 16

func (r *receivedTimes) put(key string, t time.Time) {
	if r.at == nil {
		r.at = map[string]time.Time{}
	}
	if _, ok := r.at[key]; ok {
		return
	}
	if len(r.order) >= maxReceived {
		delete(r.at, r.order[0])
		r.order = r.order[1:]
	}
	r.at[key] = t
	r.order = append(r.order, key)
}

func (r *receivedTimes) get(key string) (time.Time, bool) {
	t, ok := r.at[key]
	return t, ok
}
