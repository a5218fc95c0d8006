package outbox

import (
	"context"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// Effect states, as Steps report them and the Schedule keeps them.
const (
	StatePending = "pending" // asked for, first attempt not recorded yet
	StateRetry   = "retry"   // failed temporarily, due again at RetryAt
	StateDone    = "done"    // the peer accepted it
	StateFailed  = "failed"  // failed permanently; triage
)

// Step is what one event says about one effect.
type Step struct {
	// ID identifies the effect within its kind and tenant (a reply id, a
	// webhook delivery id).
	ID string
	// State is one of the State constants.
	State string
	// Attempt is the attempt the event records (0 for StatePending).
	Attempt int
	// RetryAt is when a StateRetry effect is due again.
	RetryAt time.Time
	Error   string
}

// Decoded is an event of an effect's stream with its payload.
type Decoded struct {
	Event   *eventstore.Event
	Payload gateway.Payload
}

// Job is one attempt the Scheduler asks an Effect to make.
type Job struct {
	Tenant string
	Stream string
	ID     string
	// Attempt is the attempt to make, from 1.
	Attempt int
	// Cause is the event that asked for the effect (first attempt) or the
	// failed attempt being retried.
	Cause Decoded
	// Detail is what Effect.Requested attached to the job; nil on retries,
	// where the failed attempt's payload (Cause) says what to retry.
	Detail any
	// History is the effect's stream in log order, decoded (events of
	// types the registry does not know are left out).
	History []Decoded
}

// Effect is one kind of outbound side effect. Its methods must be safe for
// concurrent use; the Scheduler calls them from the pipeline and from its
// retry loop.
type Effect interface {
	// Kind names the effect in the schedule ("reply", "webhook").
	Kind() string
	// Topic is the event type that asks for effects of this kind.
	Topic() string
	// HandlerName names the pipeline handler making first attempts, and
	// RetryName the appender of retries. Both are part of the ids of the
	// events recorded and must never change.
	HandlerName() string
	RetryName() string
	// Requested lists the effects a Topic event asks for; the Scheduler
	// fills in each job's stream, cause and attempt. The order must be the
	// same every time the same event is handled.
	Requested(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]Job, error)
	// Steps reports what e, with payload p, says about effects of this kind
	// (nil: nothing). It must depend on the event alone, so the schedule
	// rebuilds alike.
	Steps(e *eventstore.Event, p gateway.Payload) []Step
	// Attempt makes one attempt and returns the payloads recording its
	// success. An error is temporary (retried) unless marked Permanent. An
	// attempt must be safe to repeat after a crash: the peer must be able
	// to recognise the repetition (same Message-ID, same delivery id).
	Attempt(ctx context.Context, job Job) ([]gateway.Payload, error)
	// Failed returns the payload recording a failed attempt.
	Failed(job Job, f Failure) gateway.Payload
}
