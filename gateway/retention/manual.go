package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// Status is a message's retention as its stream tells it.
type Status struct {
	Stream string `json:"stream"`
	// Offices are those of the message's last routing; Office the one
	// whose rule decides (empty with the default rule or none).
	Offices []string `json:"offices"`
	Office  string   `json:"office,omitempty"`
	// Rule is the applicable rule in words, empty when none applies and
	// the message is kept for ever; RetainUntil is when it may be erased.
	Rule        string    `json:"rule,omitempty"`
	RetainUntil time.Time `json:"retainUntil,omitzero"`
	ReceivedAt  time.Time `json:"receivedAt"`
	Hold        bool      `json:"hold"`
	HoldCase    string    `json:"holdCase,omitempty"`
	Erased      bool      `json:"erased"`
	// Erasure is the recorded erasure, when there is one.
	Erasure *gateway.ContentErased `json:"erasure,omitempty"`
}

// Status reads a message's retention from the log.
func (s *Service) Status(ctx context.Context, tenant, stream string) (Status, error) {
	h, err := s.message(ctx, tenant, stream)
	if err != nil {
		return Status{}, err
	}
	st := Status{Stream: stream, Offices: h.offices, ReceivedAt: h.receivedAt.UTC(), Hold: h.held, HoldCase: h.holdCase,
		Erased: h.erased != nil, Erasure: h.erased}
	if st.Offices == nil {
		st.Offices = []string{}
	}
	if d, err := s.deps.Policy.Decide(h.offices, h.receivedAt); err == nil {
		st.Office, st.Rule, st.RetainUntil = d.Office, d.Text(), d.RetainUntil.UTC()
	}
	return st, nil
}

// Hold sets a legal hold: the message is not erased until Release.
func (s *Service) Hold(ctx context.Context, tenant, stream, reason, actor, caseRef string) error {
	if err := errors.Join(checkText("reason", reason, maxReason, true), checkText("actor", actor, maxActor, true),
		checkText("case", caseRef, maxCase, false)); err != nil {
		return err
	}
	h, err := s.message(ctx, tenant, stream)
	switch {
	case err != nil:
		return err
	case h.erased != nil:
		return ErrAlreadyErased
	case h.held:
		return ErrAlreadyHeld
	}
	return s.appendHold(ctx, tenant, stream, h, &gateway.LegalHoldSet{Reason: reason, Actor: actor, Case: caseRef,
		SetAt: s.deps.Now().UTC()})
}

// Release ends a legal hold; the retention period applies again, and a
// message whose period ended meanwhile is erased in the next round.
func (s *Service) Release(ctx context.Context, tenant, stream, reason, actor string) error {
	if err := errors.Join(checkText("reason", reason, maxReason, true), checkText("actor", actor, maxActor, true)); err != nil {
		return err
	}
	h, err := s.message(ctx, tenant, stream)
	switch {
	case err != nil:
		return err
	case !h.held:
		return ErrNotHeld
	}
	return s.appendHold(ctx, tenant, stream, h, &gateway.LegalHoldReleased{Reason: reason, Actor: actor,
		ReleasedAt: s.deps.Now().UTC()})
}

// appendHold appends the stream's next hold event under the id its number
// gives, so that of two concurrent changes one is refused.
func (s *Service) appendHold(ctx context.Context, tenant, stream string, h history, p gateway.Payload) error {
	e, err := gateway.Encode(gateway.Meta{ID: gateway.HoldEventID(tenant, stream, h.holdEvents), Tenant: tenant, Stream: stream,
		CorrelationID: h.received.CorrelationID, CausationID: h.received.ID}, p)
	if err != nil {
		return err
	}
	res, err := s.deps.Log.Append(ctx, e)
	switch {
	case errors.Is(err, eventstore.ErrConflict) || err == nil && res[0].Existing:
		return ErrConcurrent
	case err != nil:
		return fmt.Errorf("retention: record %s of %s: %w", p.EventType(), stream, err)
	}
	s.deps.Logger.Info("retention: "+p.EventType(), "stream", stream)
	return nil
}

// EraseNow erases a message's contents at once, whatever its period says,
// as a person ordered (reason empty: ReasonRequest). It is refused while the
// message is on legal hold.
func (s *Service) EraseNow(ctx context.Context, tenant, stream, reason, actor string) (*gateway.ContentErased, error) {
	if reason == "" {
		reason = ReasonRequest
	}
	if err := errors.Join(checkText("reason", reason, maxReason, true), checkText("actor", actor, maxActor, true)); err != nil {
		return nil, err
	}
	h, err := s.message(ctx, tenant, stream)
	switch {
	case err != nil:
		return nil, err
	case h.erased != nil:
		return nil, ErrAlreadyErased
	case h.held:
		return nil, ErrOnHold
	case s.deps.Eraser == nil:
		return nil, ErrCannotErase
	}
	ev := &gateway.ContentErased{ErasedAt: s.deps.Now().UTC(), Rule: RuleManual, Reason: reason, Actor: actor}
	if d, err := s.deps.Policy.Decide(h.offices, h.receivedAt); err == nil {
		ev.Office, ev.RetainUntil = d.Office, d.RetainUntil.UTC()
	}
	if err := s.erase(ctx, tenant, stream, h, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// message reads a message's history; a stream without a receipt is
// ErrNotFound.
func (s *Service) message(ctx context.Context, tenant, stream string) (history, error) {
	h, err := readHistory(ctx, s.deps.Log, s.deps.Registry, tenant, stream)
	if err != nil {
		return history{}, fmt.Errorf("retention: %w", err)
	}
	if h.received == nil {
		return history{}, ErrNotFound
	}
	return h, nil
}
