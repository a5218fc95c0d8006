// Package retention erases messages at the end of their retention period
// (Aufbewahrungsfrist) and holds them while a legal hold (Sperrvermerk)
// stands. Erasure is crypto-shredding: the blob store destroys the keys of a
// message's content blobs (blob.Eraser, eventstore/cryptblob), so the bytes
// are gone on every node and in every backup at once, while the log, its
// hashes, the timestamp tokens and the evidence records stay verifiable.
//
// Every erasure is recorded before it is done: a ContentErased event in the
// message's stream (when, under which rule, why, which blobs were erased and
// which kept) is appended first, then the keys are destroyed. A crash in
// between is completed by the erasure handler (Service.Handler), which
// destroys the keys every ContentErased lists, on whichever node handles it.
//
// The periods are configuration: one rule per office (offices[].retention)
// and a default for messages never routed to an office (Config.Default).
// A message with no applicable rule is never erased by time.
package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
	"unicode/utf8"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
)

// The reasons ContentErased records.
const (
	// ReasonExpired: the retention period ended.
	ReasonExpired = "retention-expired"
	// ReasonRequest: a person ordered the erasure (e.g. a request under
	// Art. 17 GDPR) and gave no reason of their own.
	ReasonRequest = "request"
	// RuleManual is the rule of an erasure a person ordered.
	RuleManual = "manual"
)

// HandlerName is the erasure handler's name and consumer group.
const HandlerName = "retention/erase"

// Errors of the manual actions; the office API maps them to answers.
var (
	ErrNotFound       = errors.New("retention: no such message")
	ErrOnHold         = errors.New("retention: the message is on legal hold")
	ErrAlreadyHeld    = errors.New("retention: the message is already on legal hold")
	ErrNotHeld        = errors.New("retention: the message is not on legal hold")
	ErrAlreadyErased  = errors.New("retention: the message's contents are already erased")
	ErrConcurrent     = errors.New("retention: the message's hold changed meanwhile; read it again")
	ErrCannotErase    = errors.New("retention: the blob store cannot erase (encryption at rest is off)")
	ErrInvalidRequest = errors.New("retention: invalid request")
)

// ErasableChecker is implemented by an Eraser that can tell beforehand
// whether it can erase a blob (one stored in plaintext before encryption
// at rest cannot). Such blobs are then listed as kept in ContentErased;
// with an Eraser that cannot tell, they are listed as erased and the
// handler logs blob.ErrNotErasable.
type ErasableChecker interface {
	Erasable(ctx context.Context, ref blob.Ref) (bool, error)
}

// Deps are the Service's collaborators.
type Deps struct {
	Log      eventstore.Log
	Registry *gateway.Registry
	// State is the state database holding the Model projection.
	State *sql.DB
	// Eraser destroys blobs' keys; nil when the blob store cannot, which
	// allows holds and status but no erasure (and refuses Enabled).
	Eraser blob.Eraser
	Policy *Policy
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Owns, when set, says whether this process erases a stream's
	// contents now (outbox.Deps.Owns, kafkalog.Ownership.Owns): in a
	// cluster only the owner of a stream's partition runs its schedule.
	// Nil owns every stream.
	Owns func(tenant, stream string) bool
	// Metrics, when set, counts erasures (metrics.Retention).
	Metrics Observer
}

// Observer is told what the service erased, for the operator's metrics.
type Observer interface {
	Erased(reason string, blobs int)
	EraseFailed(n int)
}

// Service runs the retention schedule and the manual actions.
type Service struct {
	cfg    Config
	deps   Deps
	runner *projection.Runner
}

// New checks the configuration and the collaborators.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	if deps.Log == nil || deps.Registry == nil || deps.State == nil || deps.Policy == nil {
		return nil, errors.New("retention: Deps.Log, Registry, State and Policy are required")
	}
	if cfg.Enabled && deps.Eraser == nil {
		return nil, errors.New("retention: enabled, but the blob store cannot erase; turn on encryption at rest")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Service{cfg: cfg.WithDefaults(), deps: deps,
		runner: &projection.Runner{Log: deps.Log, DB: deps.State, Registry: deps.Registry, Logger: deps.Logger}}, nil
}

// Model is the projection to run with the other read models.
func (s *Service) Model() Model { return Model{} }

// Run erases due messages every Interval until ctx ends. Without Enabled
// it only waits: nothing is erased by time.
func (s *Service) Run(ctx context.Context) error {
	if !s.cfg.Enabled {
		s.deps.Logger.Info("retention: not enabled; no message is erased by time")
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.drain(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// drain runs rounds until one erases less than a full batch: a backlog
// (retention switched on over years of messages) goes in one go, a batch
// at a time, instead of one batch per interval.
func (s *Service) drain(ctx context.Context) {
	total := 0
	for ctx.Err() == nil {
		n, err := s.EraseDue(ctx)
		total += n
		if err != nil && ctx.Err() == nil {
			s.deps.Logger.Error("retention: round failed", "erased", n, "err", err)
		}
		if err != nil || n < s.cfg.Batch {
			break
		}
	}
	if total > 0 {
		s.deps.Logger.Info("retention: erased messages whose retention period ended", "erased", total)
	}
}

// scanFactor bounds the rows a round looks through per erasure it may
// make, so that other owners' due messages cannot crowd this process's own
// out of a round for long and a round stays bounded.
const scanFactor = 50

// EraseDue catches the read model up with the log and erases up to Batch
// of this process's messages whose retention period is over; it returns how
// many it erased.
func (s *Service) EraseDue(ctx context.Context) (int, error) {
	if s.deps.Eraser == nil {
		return 0, ErrCannotErase
	}
	if err := s.runner.CatchUp(ctx, Model{}); err != nil {
		return 0, fmt.Errorf("retention: catch up: %w", err)
	}
	all, err := sets(ctx, s.deps.State)
	if err != nil {
		return 0, err
	}
	now := s.deps.Now()
	erased, scanned := 0, 0
	var errs []error
	for _, st := range all {
		if _, err := s.deps.Policy.Decide(splitOffices(st.offices), now); err != nil {
			continue // kept for ever
		}
		n, m, err := s.eraseSet(ctx, st, now, s.cfg.Batch-erased, s.cfg.Batch*scanFactor-scanned)
		erased, scanned = erased+n, scanned+m
		if err != nil {
			errs = append(errs, err)
		}
		if erased >= s.cfg.Batch || scanned >= s.cfg.Batch*scanFactor || ctx.Err() != nil {
			break
		}
	}
	return erased, errors.Join(errs...)
}

// eraseSet erases the due messages of one set of offices, oldest first:
// their rule is one, so the due ones come before the first that is not.
func (s *Service) eraseSet(ctx context.Context, st set, now time.Time, budget, scanBudget int) (erased, scanned int, err error) {
	offices := splitOffices(st.offices)
	after := candidate{receivedMS: math.MinInt64}
	var errs []error
	for erased < budget && scanned < scanBudget {
		page, err := oldest(ctx, s.deps.State, st, after, min(s.cfg.Batch, scanBudget-scanned))
		if err != nil || len(page) == 0 {
			return erased, scanned, errors.Join(append(errs, err)...)
		}
		for _, c := range page {
			after = c
			scanned++
			d, err := s.deps.Policy.Decide(offices, time.UnixMilli(c.receivedMS))
			if err != nil || d.RetainUntil.After(now) {
				return erased, scanned, errors.Join(errs...)
			}
			if s.deps.Owns != nil && !s.deps.Owns(c.tenant, c.stream) {
				continue
			}
			ok, err := s.expire(ctx, c.tenant, c.stream, now)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				if erased++; erased >= budget {
					break
				}
			}
		}
	}
	return erased, scanned, errors.Join(errs...)
}

// expire erases one message if the log confirms what the read model said:
// received, not erased, not held, and its period over.
func (s *Service) expire(ctx context.Context, tenant, stream string, now time.Time) (bool, error) {
	h, err := readHistory(ctx, s.deps.Log, s.deps.Registry, tenant, stream)
	if err != nil {
		return false, fmt.Errorf("retention: %w", err)
	}
	if h.received == nil || h.erased != nil || h.held {
		return false, nil
	}
	d, err := s.deps.Policy.Decide(h.offices, h.receivedAt)
	if err != nil || d.RetainUntil.After(now) {
		return false, nil
	}
	ev := &gateway.ContentErased{ErasedAt: now.UTC(), Rule: d.Text(), Reason: ReasonExpired, Office: d.Office,
		RetainUntil: d.RetainUntil.UTC()}
	err = s.erase(ctx, tenant, stream, h, ev)
	if errors.Is(err, ErrAlreadyErased) {
		return false, nil
	}
	return err == nil, err
}

// erase records the erasure and then destroys the keys. The event's id
// follows from the stream, so a rerun after a crash, another node or a
// manual erasure cannot record a second one. Once the erasure is
// recorded, a failure to destroy a key is logged and left to the handler,
// which destroys them all again from the event.
func (s *Service) erase(ctx context.Context, tenant, stream string, h history, ev *gateway.ContentErased) error {
	if err := s.record(ctx, tenant, stream, h, ev); err != nil {
		return err
	}
	if s.deps.Metrics != nil {
		s.deps.Metrics.Erased(ev.Reason, len(ev.Blobs))
	}
	if err := s.eraseBlobs(ctx, stream, ev.Blobs); err != nil {
		if s.deps.Metrics != nil {
			s.deps.Metrics.EraseFailed(len(ev.Blobs))
		}
		s.deps.Logger.Warn("retention: erasure recorded, keys not all destroyed yet; the erasure handler completes it",
			"stream", stream, "err", err)
	}
	return nil
}

// record appends the ContentErased, with the blobs partitioned on the
// read model, caught up first so that a message received since the round
// began keeps a blob it shares.
func (s *Service) record(ctx context.Context, tenant, stream string, h history, ev *gateway.ContentErased) error {
	if err := s.runner.CatchUp(ctx, Model{}); err != nil {
		return fmt.Errorf("retention: catch up: %w", err)
	}
	var err error
	if ev.Blobs, ev.Kept, err = s.partition(ctx, tenant, stream, h.contents); err != nil {
		return err
	}
	e, err := gateway.Encode(gateway.Meta{ID: gateway.ErasureEventID(tenant, stream), Tenant: tenant, Stream: stream,
		CorrelationID: h.received.CorrelationID, CausationID: h.received.ID}, ev)
	if err != nil {
		return err
	}
	if _, err := s.deps.Log.Append(ctx, e); err != nil {
		if errors.Is(err, eventstore.ErrConflict) {
			return ErrAlreadyErased
		}
		return fmt.Errorf("retention: record erasure of %s: %w", stream, err)
	}
	s.deps.Logger.Info("retention: erasure recorded", "stream", stream, "rule", ev.Rule, "reason", ev.Reason,
		"erased", len(ev.Blobs), "kept", len(ev.Kept))
	return nil
}

// partition splits a message's content blobs into those to erase and
// those to keep: shared with a message still retained or with evidence,
// or not erasable.
func (s *Service) partition(ctx context.Context, tenant, stream string, contents []blob.Ref) (erase, keep []blob.Ref, err error) {
	check, _ := s.deps.Eraser.(ErasableChecker)
	for _, r := range contents {
		shared, err := sharedElsewhere(ctx, s.deps.State, r.SHA256, tenant, stream)
		if err != nil {
			return nil, nil, err
		}
		if !shared && check != nil {
			ok, err := check.Erasable(ctx, r)
			if err != nil && !errors.Is(err, blob.ErrNotFound) && !errors.Is(err, blob.ErrErased) {
				return nil, nil, fmt.Errorf("retention: can %s be erased: %w", r.SHA256, err)
			}
			shared = err == nil && !ok
		}
		if shared {
			keep = append(keep, r)
		} else {
			erase = append(erase, r)
		}
	}
	return erase, keep, nil
}

// eraseBlobs destroys the blobs' keys. Erase is idempotent, so the
// handler may repeat what the scheduler did. A blob that cannot be erased
// is logged and left: retrying cannot change that.
func (s *Service) eraseBlobs(ctx context.Context, stream string, refs []blob.Ref) error {
	if s.deps.Eraser == nil {
		return ErrCannotErase
	}
	var errs []error
	for _, r := range refs {
		err := s.deps.Eraser.Erase(ctx, r)
		switch {
		case errors.Is(err, blob.ErrNotErasable):
			s.deps.Logger.Warn("retention: blob cannot be erased (stored before encryption at rest); it stays",
				"stream", stream, "blob", r.SHA256)
		case errors.Is(err, blob.ErrNotFound):
			s.deps.Logger.Warn("retention: blob to erase is not in the store", "stream", stream, "blob", r.SHA256)
		case err != nil:
			errs = append(errs, fmt.Errorf("retention: erase blob %s of %s: %w", r.SHA256, stream, err))
		}
	}
	return errors.Join(errs...)
}

// Handler is the pipeline handler that destroys the keys every
// ContentErased lists, so that an erasure recorded but interrupted before
// the keys were gone completes after a restart or on another node. It
// appends nothing.
func (s *Service) Handler() pipeline.Handler {
	return pipeline.Handler{Name: HandlerName, Topic: "ContentErased",
		Handle: func(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
			m, ok := p.(*gateway.ContentErased)
			if !ok {
				return nil, nil
			}
			return nil, s.eraseBlobs(ctx, cause.Stream, m.Blobs)
		}}
}

// Limits of the manual actions' texts.
const (
	maxReason = 1000
	maxActor  = 128
	maxCase   = 200
)

func checkText(name, v string, max int, required bool) error {
	switch {
	case required && v == "":
		return fmt.Errorf("%w: %s is required", ErrInvalidRequest, name)
	case len(v) > max:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidRequest, name, max)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalidRequest, name)
	}
	return nil
}
