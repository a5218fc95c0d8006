package replies

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Handler names; they are part of the ids of the events the Sender appends
// and must never change.
const (
	HandlerName = "replies"
	retryName   = "replies/retry"
)

// Config tunes retries.
type Config struct {
	// MaxAttempts is how often a reply is tried before it fails
	// permanently (default 8).
	MaxAttempts int `yaml:"max_attempts"`
	// FirstBackoff is the wait after the first failure (default 1 minute);
	// it doubles with each further failure up to MaxBackoff (default 4 hours).
	FirstBackoff time.Duration `yaml:"first_backoff"`
	MaxBackoff   time.Duration `yaml:"max_backoff"`
	// PollInterval is how often the scheduler looks for due retries
	// (default 5 seconds).
	PollInterval time.Duration `yaml:"poll_interval"`
	// AttemptTimeout bounds one Send (default 2 minutes).
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
}

// Deps are the Sender's collaborators.
type Deps struct {
	Log      eventstore.Log
	Registry *gateway.Registry
	// State is the state database holding the schedule projection.
	State *sql.DB
	// Outbound maps each reply channel to its adapter. A reply on a channel
	// missing here fails permanently.
	Outbound map[gateway.Channel]Outbound
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Sender sends requested replies and retries failed ones.
type Sender struct {
	cfg  Config
	deps Deps
}

// maxErrorLen caps an error recorded in the log.
const maxErrorLen = 2000

// New checks the configuration.
func New(cfg Config, deps Deps) (*Sender, error) {
	if deps.Log == nil || deps.Registry == nil || deps.State == nil {
		return nil, errors.New("replies: Deps.Log, Deps.Registry and Deps.State are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.FirstBackoff <= 0 {
		cfg.FirstBackoff = time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 4 * time.Hour
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 2 * time.Minute
	}
	return &Sender{cfg: cfg, deps: deps}, nil
}

// Handler is the pipeline handler making the first attempt of each
// ReplyRequested.
func (s *Sender) Handler() pipeline.Handler {
	return pipeline.Handler{Name: HandlerName, Topic: gateway.ReplyRequested{}.EventType(), Handle: s.handle}
}

func (s *Sender) handle(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
	req, ok := p.(*gateway.ReplyRequested)
	if !ok {
		return nil, fmt.Errorf("replies: %s is not a ReplyRequested", cause.ID)
	}
	h, err := s.history(ctx, cause.Tenant, cause.Stream, req.ReplyID)
	if err != nil {
		return nil, err
	}
	if h.attempts > 0 || h.done {
		return nil, nil // attempted before: a redelivery or a replay
	}
	return []gateway.Payload{s.attempt(ctx, req, h.original, 1)}, nil
}

// Run re-attempts due replies until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	runner := &projection.Runner{Log: s.deps.Log, DB: s.deps.State, Registry: s.deps.Registry, Logger: s.deps.Logger}
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := s.RetryDue(ctx, runner); err != nil && ctx.Err() == nil {
			s.deps.Logger.Error("replies: retry round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RetryDue catches the schedule up with the log and re-attempts every reply
// that is due now.
func (s *Sender) RetryDue(ctx context.Context, runner *projection.Runner) error {
	if err := runner.CatchUp(ctx, Schedule{}); err != nil {
		return fmt.Errorf("replies: catch up schedule: %w", err)
	}
	due, err := Due(ctx, s.deps.State, s.deps.Now().UnixMilli(), 100)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range due {
		if err := s.retry(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// retry makes the next attempt of one reply, re-reading its state from the
// log first, so that a stale schedule never sends twice.
func (s *Sender) retry(ctx context.Context, d Status) error {
	h, err := s.history(ctx, d.Tenant, d.Stream, d.ReplyID)
	if err != nil {
		return err
	}
	if h.done || h.lastFailed == nil || h.request == nil || h.lastFailed.RetryAt.After(s.deps.Now()) {
		return nil
	}
	out := s.attempt(ctx, h.request, h.original, h.attempts+1)
	// The cause is the failure being retried: attempt n+1 can be recorded once.
	e, err := gateway.Follow(retryName, h.lastFailedEvent, 0, out)
	if err != nil {
		return err
	}
	if _, err := s.deps.Log.Append(ctx, e); err != nil {
		return fmt.Errorf("replies: record attempt %d of %s: %w", h.attempts+1, d.ReplyID, err)
	}
	return nil
}

// attempt sends once and returns the event recording the outcome.
func (s *Sender) attempt(ctx context.Context, req *gateway.ReplyRequested, original *gateway.MessageReceived, n int) gateway.Payload {
	log := s.deps.Logger.With("reply", req.ReplyID, "channel", req.Channel, "attempt", n)
	info, err := s.send(ctx, req, original)
	if err == nil {
		log.Info("reply sent", "channel_message_id", info.ChannelMessageID)
		return &gateway.ReplySent{ReplyID: req.ReplyID, Channel: req.Channel, ChannelMessageID: info.ChannelMessageID,
			Attempt: n, Response: clip(info.Response)}
	}
	f := &gateway.ReplyFailed{ReplyID: req.ReplyID, Attempt: n, Error: clip(err.Error()), Permanent: IsPermanent(err)}
	if !f.Permanent && n >= s.cfg.MaxAttempts {
		f.Permanent = true
		f.Error = clip(fmt.Sprintf("giving up after %d attempts: %s", n, err))
	}
	if f.Permanent {
		log.Warn("reply failed permanently; it goes to triage", "err", err)
		return f
	}
	f.RetryAt = s.deps.Now().Add(s.backoff(n)).UTC()
	log.Warn("reply failed; will retry", "retry_at", f.RetryAt, "err", err)
	return f
}

func (s *Sender) send(ctx context.Context, req *gateway.ReplyRequested, original *gateway.MessageReceived) (SentInfo, error) {
	if original == nil {
		return SentInfo{}, Permanent(errors.New("the message's stream has no MessageReceived to answer"))
	}
	out := s.deps.Outbound[req.Channel]
	if out == nil {
		return SentInfo{}, Permanent(fmt.Errorf("%w: none is configured for %s", ErrNoOutbound, req.Channel))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	return out.Send(ctx, req, original)
}

// backoff is the wait after the n-th failure.
func (s *Sender) backoff(n int) time.Duration {
	d := s.cfg.FirstBackoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
}

func clip(s string) string {
	if len(s) > maxErrorLen {
		return s[:maxErrorLen] + "…"
	}
	return s
}

// history is one reply's story as the log tells it.
type history struct {
	original        *gateway.MessageReceived
	request         *gateway.ReplyRequested
	attempts        int
	done            bool // sent or failed permanently
	lastFailed      *gateway.ReplyFailed
	lastFailedEvent *eventstore.Event
}

// history reads the message's stream and folds the reply's events.
func (s *Sender) history(ctx context.Context, tenant, stream, replyID string) (*history, error) {
	evs, err := s.deps.Log.ReadStream(ctx, tenant, stream)
	if err != nil {
		return nil, fmt.Errorf("replies: read stream %s: %w", stream, err)
	}
	h := &history{}
	for i := range evs {
		e := &evs[i]
		switch e.Type {
		case "MessageReceived", "ReplyRequested", "ReplySent", "ReplyFailed":
		default:
			continue
		}
		p, err := s.deps.Registry.Decode(e)
		if err != nil {
			return nil, fmt.Errorf("replies: %w", err)
		}
		switch m := p.(type) {
		case *gateway.MessageReceived:
			if h.original == nil {
				h.original = m
			}
		case *gateway.ReplyRequested:
			if m.ReplyID == replyID && h.request == nil {
				h.request = m
			}
		case *gateway.ReplySent:
			if m.ReplyID == replyID {
				h.done = true
				h.attempts = max(h.attempts, m.Attempt)
			}
		case *gateway.ReplyFailed:
			if m.ReplyID == replyID && m.Attempt > h.attempts {
				h.attempts, h.lastFailed, h.lastFailedEvent = m.Attempt, m, e
				h.done = h.done || m.Permanent
			}
		}
	}
	return h, nil
}
