package outbox

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

// Deps are the Scheduler's collaborators.
type Deps struct {
	Log      eventstore.Log
	Registry *gateway.Registry
	// State is the state database holding the Schedule projection.
	State  *sql.DB
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Owns, when set, says whether this process retries the effects of a
	// stream now (kafkalog.Ownership.Owns): with several gateways the
	// schedule has one owner per partition. Nil owns every stream.
	Owns OwnsFunc
}

// OwnsFunc reports whether this process owns a stream's schedule now.
type OwnsFunc func(tenant, stream string) bool

// Scheduler makes the first attempt of each effect of one kind (Handler, in
// the pipeline) and retries failed ones when the log says they are due
// (Run).
type Scheduler struct {
	effect Effect
	policy Policy
	deps   Deps
}

// dueBatch caps the retries of one round.
const dueBatch = 100

// New checks the collaborators; policy must have every field set (see
// Policy.WithDefaults).
func New(effect Effect, policy Policy, deps Deps) (*Scheduler, error) {
	if effect == nil || deps.Log == nil || deps.Registry == nil || deps.State == nil {
		return nil, errors.New("outbox: the effect and Deps.Log, Deps.Registry and Deps.State are required")
	}
	if err := policy.check(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Scheduler{effect: effect, policy: policy, deps: deps}, nil
}

// Schedule is the projection the Scheduler reads due retries from.
func (s *Scheduler) Schedule() Schedule { return Schedule{Effect: s.effect} }

// Handler is the pipeline handler making the first attempt of each effect
// a Topic event asks for.
func (s *Scheduler) Handler() pipeline.Handler {
	return pipeline.Handler{Name: s.effect.HandlerName(), Topic: s.effect.Topic(), Handle: s.handle}
}

func (s *Scheduler) handle(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
	jobs, err := s.effect.Requested(ctx, cause, p)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	hist, err := s.read(ctx, cause.Tenant, cause.Stream)
	if err != nil {
		return nil, err
	}
	var out []gateway.Payload
	for _, j := range jobs {
		if st := s.fold(hist, j.ID); st.attempts > 0 || st.done {
			continue // attempted before: a redelivery or a replay
		}
		j.Tenant, j.Stream, j.Attempt, j.History = cause.Tenant, cause.Stream, 1, hist
		j.Cause = Decoded{Event: cause, Payload: p}
		out = append(out, s.attempt(ctx, j)...)
	}
	return out, nil
}

// Run re-attempts due effects until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	runner := &projection.Runner{Log: s.deps.Log, DB: s.deps.State, Registry: s.deps.Registry, Logger: s.deps.Logger}
	t := time.NewTicker(s.policy.PollInterval)
	defer t.Stop()
	for {
		if err := s.RetryDue(ctx, runner); err != nil && ctx.Err() == nil {
			s.deps.Logger.Error("outbox: retry round failed", "kind", s.effect.Kind(), "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RetryDue catches the schedule up with the log and re-attempts every effect
// that is due now.
func (s *Scheduler) RetryDue(ctx context.Context, runner *projection.Runner) error {
	if err := runner.CatchUp(ctx, s.Schedule()); err != nil {
		return fmt.Errorf("outbox: catch up %s schedule: %w", s.effect.Kind(), err)
	}
	due, err := s.due(ctx)
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

// due returns up to dueBatch of this process's due effects. With an owner
// filter it reads further so that other owners' retries cannot crowd its own
// out of a round.
func (s *Scheduler) due(ctx context.Context) ([]Status, error) {
	now := s.deps.Now().UnixMilli()
	if s.deps.Owns == nil {
		return Due(ctx, s.deps.State, s.effect.Kind(), now, dueBatch)
	}
	all, err := Due(ctx, s.deps.State, s.effect.Kind(), now, ownedScan)
	if err != nil {
		return nil, err
	}
	mine := all[:0]
	for _, d := range all {
		if len(mine) < dueBatch && s.deps.Owns(d.Tenant, d.Stream) {
			mine = append(mine, d)
		}
	}
	return mine, nil
}

// ownedScan caps the due rows one round looks through for its own.
const ownedScan = 50 * dueBatch

// retry makes the next attempt of one effect, re-reading its history from
// the log first, so that a stale schedule never attempts twice.
func (s *Scheduler) retry(ctx context.Context, d Status) error {
	hist, err := s.read(ctx, d.Tenant, d.Stream)
	if err != nil {
		return err
	}
	st := s.fold(hist, d.ID)
	if st.done || st.lastFailed == nil || st.lastStep.RetryAt.After(s.deps.Now()) {
		return nil
	}
	j := Job{Tenant: d.Tenant, Stream: d.Stream, ID: d.ID, Attempt: st.attempts + 1, Cause: *st.lastFailed, History: hist}
	out := s.attempt(ctx, j)
	// The cause is the failure being retried: attempt n+1 is recorded once.
	evs := make([]eventstore.Event, 0, len(out))
	for i, p := range out {
		e, err := gateway.Follow(s.effect.RetryName(), st.lastFailed.Event, i, p)
		if err != nil {
			return err
		}
		evs = append(evs, e)
	}
	if _, err := s.deps.Log.Append(ctx, evs...); err != nil {
		return fmt.Errorf("outbox: record attempt %d of %s %s: %w", j.Attempt, s.effect.Kind(), d.ID, err)
	}
	return nil
}

// attempt makes one attempt and returns the events recording its outcome.
func (s *Scheduler) attempt(ctx context.Context, j Job) []gateway.Payload {
	log := s.deps.Logger.With("kind", s.effect.Kind(), "id", j.ID, "attempt", j.Attempt)
	actx, cancel := context.WithTimeout(ctx, s.policy.AttemptTimeout)
	out, err := s.effect.Attempt(actx, j)
	cancel()
	if err == nil {
		log.Info("outbound effect done")
		return out
	}
	f := s.policy.decide(j.Attempt, err, s.deps.Now())
	if f.Permanent {
		log.Warn("outbound effect failed permanently; it goes to triage", "err", err)
	} else {
		log.Warn("outbound effect failed; will retry", "retry_at", f.RetryAt, "err", err)
	}
	return []gateway.Payload{s.effect.Failed(j, f)}
}

// state is one effect's story as its stream tells it.
type state struct {
	attempts   int
	done       bool // done or failed permanently
	succeeded  bool
	lastStep   Step
	lastFailed *Decoded
}

// reopens reports whether step, at the attempt of a permanent failure, is
// a retry a person ordered after it (replies: an answer that may have been
// sent was checked and is sent again); any other step at the same attempt
// changes nothing.
func reopens(st state, step Step) bool {
	return step.State == StateRetry && step.Attempt == st.attempts && st.lastStep.State == StateFailed
}

// read decodes a stream; events of types the registry does not know are
// left out (an effect never depends on them).
func (s *Scheduler) read(ctx context.Context, tenant, stream string) ([]Decoded, error) {
	evs, err := s.deps.Log.ReadStream(ctx, tenant, stream)
	if err != nil {
		return nil, fmt.Errorf("outbox: read stream %s: %w", stream, err)
	}
	out := make([]Decoded, 0, len(evs))
	for i := range evs {
		if !s.deps.Registry.Known(evs[i].Type) {
			continue
		}
		p, err := s.deps.Registry.Decode(&evs[i])
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		out = append(out, Decoded{Event: &evs[i], Payload: p})
	}
	return out, nil
}

func (s *Scheduler) fold(hist []Decoded, id string) state {
	var st state
	for i := range hist {
		for _, step := range s.effect.Steps(hist[i].Event, hist[i].Payload) {
			if step.ID != id {
				continue
			}
			switch step.State {
			case StateDone:
				st.done, st.succeeded = true, true
				st.attempts = max(st.attempts, step.Attempt)
			case StateRetry, StateFailed:
				if step.Attempt > st.attempts || (!st.succeeded && reopens(st, step)) {
					st.attempts, st.lastStep, st.lastFailed = step.Attempt, step, &hist[i]
					st.done = st.succeeded || step.State == StateFailed
				}
			}
		}
	}
	return st
}
