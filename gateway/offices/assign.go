package offices

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// ErrAssigned means the triage cause was decided already, by another
// assignment with different content.
var ErrAssigned = errors.New("offices: the message was assigned already")

// Assigned is the outcome of Assign.
type Assigned struct {
	EventID  string
	Offices  []string
	Existing bool
}

// Assign routes a message in triage by hand: a MessageRouted naming the
// person who decided. Its id follows from the latest triage cause of the
// stream (RoutingFailed or ProcessingFailed), so each cause is decided once:
// repeating the same assignment reports Existing, another one is
// ErrAssigned. ErrNotFound means the stream has no triage cause. The offices
// must be checked against the directory by the caller.
func Assign(ctx context.Context, log eventstore.Log, tenant, stream, by string, offices []string, reason string) (Assigned, error) {
	cause, err := triageCause(ctx, log, tenant, stream)
	if err != nil {
		return Assigned{}, err
	}
	p := &gateway.MessageRouted{Offices: slices.Compact(slices.Clone(offices)), DecidedBy: by, Reason: reason}
	e, err := gateway.Follow("triage-assign", cause, 0, p)
	if err != nil {
		return Assigned{}, err
	}
	res, err := log.Append(ctx, e)
	switch {
	case errors.Is(err, eventstore.ErrConflict):
		return Assigned{}, ErrAssigned
	case err != nil:
		return Assigned{}, fmt.Errorf("offices: assign %s: %w", stream, err)
	}
	return Assigned{EventID: e.ID, Offices: p.Offices, Existing: res[0].Existing}, nil
}

// triageCause finds the latest event of the stream that sent it to triage.
func triageCause(ctx context.Context, log eventstore.Log, tenant, stream string) (*eventstore.Event, error) {
	if tenant == "" {
		tenant = gateway.DefaultTenant
	}
	evs, err := log.ReadStream(ctx, tenant, stream)
	if err != nil {
		return nil, fmt.Errorf("offices: read stream %s: %w", stream, err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if t := evs[i].Type; t == "RoutingFailed" || t == "ProcessingFailed" {
			return &evs[i], nil
		}
	}
	return nil, ErrNotFound
}
