// Package outbox is the durable schedule of the gateway's outbound side
// effects: answers to senders (gateway/replies) and pushes to case systems
// (the office API's webhooks). Every kind of effect has the same shape:
//
//   - an event in the log asks for it (ReplyRequested, MessageRouted); a
//     pipeline handler makes the first attempt of each effect it asks for;
//   - every attempt is recorded as an event: success, a temporary failure
//     carrying the time of the next attempt, or a permanent failure, which
//     the office inbox turns into a triage item;
//   - the time of the next attempt is read from the log (through the
//     Schedule projection), so a restarted gateway picks up pending work at
//     the time the log names, and a rebuilt state database schedules alike;
//   - before every retry the effect's history is re-read from its stream,
//     so a stale schedule never attempts twice, and each retry is derived
//     from the failure it retries, so attempt n+1 is recorded at most once.
//
// An Effect supplies what differs between kinds: which events ask for it,
// how its events read as Steps, how one attempt is made and how its
// outcome is recorded. The Scheduler is the one retry loop.
package outbox

import (
	"errors"
	"fmt"
	"time"
)

// Policy tunes attempts and backoff of one kind of effect. Zero fields take
// the defaults of the effect's owner (see WithDefaults).
type Policy struct {
	// MaxAttempts is how often an effect is tried before it fails
	// permanently.
	MaxAttempts int `yaml:"max_attempts"`
	// FirstBackoff is the wait after the first failure; it doubles with
	// each further failure up to MaxBackoff.
	FirstBackoff time.Duration `yaml:"first_backoff"`
	MaxBackoff   time.Duration `yaml:"max_backoff"`
	// PollInterval is how often the scheduler looks for due retries.
	PollInterval time.Duration `yaml:"poll_interval"`
	// AttemptTimeout bounds one attempt.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
}

// WithDefaults returns p with each zero or negative field taken from d.
func (p Policy) WithDefaults(d Policy) Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.FirstBackoff <= 0 {
		p.FirstBackoff = d.FirstBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = d.MaxBackoff
	}
	if p.PollInterval <= 0 {
		p.PollInterval = d.PollInterval
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = d.AttemptTimeout
	}
	return p
}

func (p Policy) check() error {
	if p.MaxAttempts <= 0 || p.FirstBackoff <= 0 || p.MaxBackoff <= 0 || p.PollInterval <= 0 || p.AttemptTimeout <= 0 {
		return fmt.Errorf("outbox: policy %+v has unset fields (apply WithDefaults)", p)
	}
	return nil
}

// Backoff is the wait after the n-th failure: FirstBackoff doubled n-1
// times, at most MaxBackoff.
func (p Policy) Backoff(n int) time.Duration {
	d := p.FirstBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// Failure is the outcome of a failed attempt, as the Scheduler decided it.
type Failure struct {
	// Err is what the attempt returned.
	Err error
	// Error is the text to record: Err's, clipped, and naming the attempts
	// when the Scheduler gave up.
	Error string
	// Permanent is set when Err was marked Permanent or the attempts are
	// spent; RetryAt is then zero.
	Permanent bool
	RetryAt   time.Time
}

// maxErrorLen caps an error recorded in the log.
const maxErrorLen = 2000

// Clip cuts s to the length an error in the log may have.
func Clip(s string) string {
	if len(s) > maxErrorLen {
		return s[:maxErrorLen] + "…"
	}
	return s
}

// decide turns attempt n's error into a Failure.
func (p Policy) decide(n int, err error, now time.Time) Failure {
	f := Failure{Err: err, Error: Clip(err.Error()), Permanent: IsPermanent(err)}
	if !f.Permanent && n >= p.MaxAttempts {
		f.Permanent = true
		f.Error = Clip(fmt.Sprintf("giving up after %d attempts: %s", n, err))
	}
	if !f.Permanent {
		f.RetryAt = now.Add(p.Backoff(n)).UTC()
	}
	return f
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix (a refused recipient,
// a malformed request, a target that is not configured).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
