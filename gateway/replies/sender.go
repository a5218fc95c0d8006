package replies

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/outbox"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Handler names; they are part of the ids of the events the Sender appends
// and must never change.
const (
	HandlerName = "replies"
	retryName   = "replies/retry"
	intentName  = "replies/intent"
	resolveName = "replies/resolve"
)

// Kind names answers in the outbox schedule (outbox.GetStatus).
const Kind = "reply"

// Config tunes retries: max_attempts (default 8), first_backoff (1 minute),
// doubling up to max_backoff (4 hours), poll_interval (5 seconds) and
// attempt_timeout (2 minutes, one Send).
type Config = outbox.Policy

var defaults = outbox.Policy{MaxAttempts: 8, FirstBackoff: time.Minute, MaxBackoff: 4 * time.Hour,
	PollInterval: 5 * time.Second, AttemptTimeout: 2 * time.Minute}

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
	// Owns limits retries to the streams this process owns (see
	// outbox.Deps.Owns); nil owns all.
	Owns outbox.OwnsFunc
}

// Sender sends requested replies and retries failed ones, on the outbox's
// durable schedule.
type Sender struct {
	sched *outbox.Scheduler
}

// New checks the configuration.
func New(cfg Config, deps Deps) (*Sender, error) {
	if deps.Log == nil || deps.Registry == nil || deps.State == nil {
		return nil, errors.New("replies: Deps.Log, Deps.Registry and Deps.State are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	sched, err := outbox.New(effect{outbound: deps.Outbound, logger: deps.Logger, log: deps.Log}, cfg.WithDefaults(defaults),
		outbox.Deps{Log: deps.Log, Registry: deps.Registry, State: deps.State, Logger: deps.Logger, Now: deps.Now, Owns: deps.Owns})
	if err != nil {
		return nil, fmt.Errorf("replies: %w", err)
	}
	return &Sender{sched: sched}, nil
}

// Handler is the pipeline handler making the first attempt of each
// ReplyRequested.
func (s *Sender) Handler() pipeline.Handler { return s.sched.Handler() }

// Schedule is the read model of every answer's state (kind Kind).
func (s *Sender) Schedule() outbox.Schedule { return s.sched.Schedule() }

// Run re-attempts due replies until ctx ends.
func (s *Sender) Run(ctx context.Context) error { return s.sched.Run(ctx) }

// RetryDue catches the schedule up with the log and re-attempts every reply
// that is due now.
func (s *Sender) RetryDue(ctx context.Context, runner *projection.Runner) error {
	return s.sched.RetryDue(ctx, runner)
}

// effect is answers as an outbox.Effect: ReplyRequested asks for one,
// ReplySent and ReplyFailed record its attempts.
type effect struct {
	outbound map[gateway.Channel]Outbound
	logger   *slog.Logger
	// log records the intent of an attempt on an AtMostOnce outbound.
	log eventstore.Log
}

func (effect) Kind() string        { return Kind }
func (effect) Topic() string       { return gateway.ReplyRequested{}.EventType() }
func (effect) HandlerName() string { return HandlerName }
func (effect) RetryName() string   { return retryName }

func (effect) Requested(_ context.Context, cause *eventstore.Event, p gateway.Payload) ([]outbox.Job, error) {
	req, ok := p.(*gateway.ReplyRequested)
	if !ok {
		return nil, fmt.Errorf("replies: %s is not a ReplyRequested", cause.ID)
	}
	return []outbox.Job{{ID: req.ReplyID}}, nil
}

func (effect) Steps(e *eventstore.Event, p gateway.Payload) []outbox.Step {
	switch m := p.(type) {
	case *gateway.ReplyRequested:
		return []outbox.Step{{ID: m.ReplyID, State: outbox.StatePending}}
	case *gateway.ReplySent:
		return []outbox.Step{{ID: m.ReplyID, State: outbox.StateDone, Attempt: m.Attempt}}
	case *gateway.ReplyFailed:
		st := outbox.Step{ID: m.ReplyID, State: outbox.StateRetry, Attempt: m.Attempt, RetryAt: m.RetryAt, Error: m.Error}
		if m.Permanent {
			st.State = outbox.StateFailed
		}
		return []outbox.Step{st}
	case *gateway.ReplyResendOrdered:
		// A person checked the peer after an uncertain attempt: due now.
		return []outbox.Step{{ID: m.ReplyID, State: outbox.StateRetry, Attempt: m.Attempt, RetryAt: e.RecordedAt,
			Error: "resend ordered by " + m.By}}
	}
	return nil
}

func (e effect) Attempt(ctx context.Context, j outbox.Job) ([]gateway.Payload, error) {
	req, original := story(j)
	if req == nil {
		return nil, outbox.Permanent(fmt.Errorf("the stream has no ReplyRequested %s", j.ID))
	}
	if original == nil {
		return nil, outbox.Permanent(errors.New("the message's stream has no MessageReceived to answer"))
	}
	out := e.outbound[req.Channel]
	if out == nil {
		return nil, outbox.Permanent(fmt.Errorf("%w: none is configured for %s", ErrNoOutbound, req.Channel))
	}
	amo, atMostOnce := out.(AtMostOnce)
	if atMostOnce {
		if err := e.recordIntent(ctx, j, req, amo); err != nil {
			return nil, err
		}
	}
	info, err := out.Send(ctx, req, original)
	var ms maybeSentError
	if err != nil && atMostOnce && errors.As(err, &ms) {
		peer, refs := amo.Intent(req)
		return nil, outbox.Permanent(&uncertainError{replyID: req.ReplyID, attempt: j.Attempt, peer: peer, refs: refs, cause: err})
	}
	if err != nil {
		return nil, err
	}
	e.logger.Info("reply sent", "reply", req.ReplyID, "channel", req.Channel, "attempt", j.Attempt, "channel_message_id", info.ChannelMessageID)
	return []gateway.Payload{&gateway.ReplySent{ReplyID: req.ReplyID, Channel: req.Channel, ChannelMessageID: info.ChannelMessageID,
		Attempt: j.Attempt, Response: outbox.Clip(info.Response), Sent: info.Sent}}, nil
}

func (effect) Failed(j outbox.Job, f outbox.Failure) gateway.Payload {
	var u *uncertainError
	return &gateway.ReplyFailed{ReplyID: j.ID, Attempt: j.Attempt, Error: f.Error, Permanent: f.Permanent, RetryAt: f.RetryAt,
		Uncertain: errors.As(f.Err, &u)}
}

// uncertainError is an attempt that must not be made: an earlier start of
// it may have reached the peer.
type uncertainError struct {
	replyID string
	attempt int
	peer    string
	refs    []gateway.EvidenceReference
	// cause is the hand-over's error when it failed with MaybeSent; nil when
	// an earlier start of the attempt has no outcome.
	cause error
}

func (u *uncertainError) Error() string {
	var ids []string
	for _, r := range u.refs {
		ids = append(ids, r.Kind+" "+r.Value)
	}
	what := "was handed over or about to be when the gateway stopped"
	if u.cause != nil {
		what = "went out, and its answer was lost: " + u.cause.Error()
	}
	return fmt.Sprintf("answer %s may have been sent — check %s (attempt %d %s; reply %s; %s); "+
		"then mark it sent or order a resend", u.replyID, u.peer, u.attempt, what, u.replyID, strings.Join(ids, ", "))
}

// recordIntent makes an attempt on an AtMostOnce outbound safe: an attempt
// of the reply started before without an outcome is uncertain (not sent
// again); otherwise a ReplyAttempted is recorded, durable, before the
// hand-over.
func (e effect) recordIntent(ctx context.Context, j outbox.Job, req *gateway.ReplyRequested, out AtMostOnce) error {
	if u := openIntent(j.History, req.ReplyID); u != nil {
		return outbox.Permanent(u)
	}
	peer, refs := out.Intent(req)
	p := &gateway.ReplyAttempted{ReplyID: req.ReplyID, Attempt: j.Attempt, Channel: req.Channel, Peer: peer, References: refs}
	if e.log == nil || j.Cause.Event == nil {
		return outbox.Permanent(fmt.Errorf("replies: no log to record the attempt on %s, which sends at most once", req.Channel))
	}
	ev, err := gateway.Follow(intentName, j.Cause.Event, j.Attempt, p)
	if err != nil {
		return err
	}
	res, err := e.log.Append(ctx, ev)
	if err != nil {
		return fmt.Errorf("replies: record attempt %d of %s before the hand-over: %w", j.Attempt, req.ReplyID, err)
	}
	if len(res) == 1 && res[0].Existing {
		// Recorded by a run whose history this one did not see yet.
		return outbox.Permanent(&uncertainError{replyID: req.ReplyID, attempt: j.Attempt, peer: peer, refs: refs})
	}
	return nil
}

// openIntent finds a ReplyAttempted of the reply whose attempt has no
// ReplySent or ReplyFailed.
func openIntent(hist []outbox.Decoded, replyID string) *uncertainError {
	var open *uncertainError
	for _, d := range hist {
		switch m := d.Payload.(type) {
		case *gateway.ReplyAttempted:
			if m.ReplyID == replyID {
				open = &uncertainError{replyID: replyID, attempt: m.Attempt, peer: m.Peer, refs: m.References}
			}
		case *gateway.ReplySent:
			if m.ReplyID == replyID && open != nil && m.Attempt >= open.attempt {
				open = nil
			}
		case *gateway.ReplyFailed:
			if m.ReplyID == replyID && open != nil && m.Attempt >= open.attempt {
				open = nil
			}
		}
	}
	return open
}

// story finds the reply's request and the message it answers.
func story(j outbox.Job) (*gateway.ReplyRequested, *gateway.MessageReceived) {
	var req *gateway.ReplyRequested
	var original *gateway.MessageReceived
	for _, d := range j.History {
		switch m := d.Payload.(type) {
		case *gateway.MessageReceived:
			if original == nil {
				original = m
			}
		case *gateway.ReplyRequested:
			if m.ReplyID == j.ID && req == nil {
				req = m
			}
		}
	}
	return req, original
}
