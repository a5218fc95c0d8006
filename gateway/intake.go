package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
)

// Intake records inbound messages. Adapters store the raw bytes in the blob
// store first, then call Record, and acknowledge the sender only after Record
// returned without error: the receipt is then durable.
type Intake struct {
	Log eventstore.Log
}

// Receipt is the outcome of recording a message.
type Receipt struct {
	EventID  string
	Stream   string
	Position eventstore.Position
	// Duplicate is true when the message was recorded before (a redelivery);
	// the sender can be acknowledged all the same.
	Duplicate bool
}

// Record appends the MessageReceived event of a message identified by
// messageKey (see MessageKey). A redelivered message is recognised by its key
// and reported as Duplicate instead of becoming a second message.
func (in *Intake) Record(ctx context.Context, tenant, messageKey string, msg *MessageReceived) (Receipt, error) {
	e, err := NewReceived(tenant, messageKey, msg)
	if err != nil {
		return Receipt{}, err
	}
	res, err := in.Log.Append(ctx, e)
	var dup *eventstore.DuplicateError
	switch {
	case errors.As(err, &dup):
		return Receipt{EventID: dup.Existing.ID, Stream: dup.Existing.Stream, Position: dup.Existing.Position, Duplicate: true}, nil
	case errors.Is(err, eventstore.ErrConflict):
		// Same key and id but other content: the message was recorded
		// before with other evidence (another delivery of the same bytes).
		return Receipt{EventID: e.ID, Stream: e.Stream, Duplicate: true}, nil
	case err != nil:
		return Receipt{}, fmt.Errorf("gateway: record %s: %w", messageKey, err)
	}
	return Receipt{EventID: e.ID, Stream: e.Stream, Position: res[0].Position, Duplicate: res[0].Existing}, nil
}
