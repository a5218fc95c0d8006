package replies

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// The decisions on an answer that may have been sent.
const (
	// ResolveSent: the person found the answer at the peer; it is recorded
	// as sent (a ReplySent for the uncertain attempt).
	ResolveSent = "sent"
	// ResolveResend: the peer does not have it; it is sent again as the
	// next attempt (ReplyResendOrdered).
	ResolveResend = "resend"
)

// ErrNotUncertain means the answer's last outcome is not an uncertain
// attempt (never was, or a decision was recorded already).
var ErrNotUncertain = errors.New("replies: the answer has no attempt that may have been sent")

// Resolution is a person's decision on an answer that may have been sent.
type Resolution struct {
	Tenant, Stream, ReplyID string
	// Action is ResolveSent or ResolveResend.
	Action string
	// By is who checked the peer; Note what they found (optional).
	By, Note string
}

// ResolveUncertain records the decision on an answer whose last attempt
// failed as uncertain (ReplyFailed with Uncertain: it may have reached a
// peer that cannot recognise a resend). The event's id is derived from the
// uncertain failure, so a second decision on the same failure, the same or
// the other, records nothing and returns the first one's result (Existing).
func ResolveUncertain(ctx context.Context, log eventstore.Log, r Resolution) (eventstore.Result, error) {
	if r.Action != ResolveSent && r.Action != ResolveResend {
		return eventstore.Result{}, fmt.Errorf("replies: unknown decision %q (want %q or %q)", r.Action, ResolveSent, ResolveResend)
	}
	if strings.TrimSpace(r.By) == "" {
		return eventstore.Result{}, errors.New("replies: a decision on an uncertain answer needs the person who checked")
	}
	if r.Tenant == "" {
		r.Tenant = gateway.DefaultTenant
	}
	evs, err := log.ReadStream(ctx, r.Tenant, r.Stream)
	if err != nil {
		return eventstore.Result{}, fmt.Errorf("replies: read stream %s: %w", r.Stream, err)
	}
	reg := gateway.NewRegistry()
	var failed *eventstore.Event
	var failure *gateway.ReplyFailed
	var channel gateway.Channel
	for i := range evs {
		switch evs[i].Type {
		case "ReplyRequested", "ReplySent", "ReplyFailed":
		default:
			continue
		}
		p, err := reg.Decode(&evs[i])
		if err != nil {
			return eventstore.Result{}, fmt.Errorf("replies: %w", err)
		}
		switch m := p.(type) {
		case *gateway.ReplyRequested:
			if m.ReplyID == r.ReplyID {
				channel = m.Channel
			}
		case *gateway.ReplyFailed:
			if m.ReplyID == r.ReplyID {
				failed, failure = &evs[i], m
			}
		case *gateway.ReplySent:
			if m.ReplyID == r.ReplyID {
				failed, failure = nil, nil
			}
		}
	}
	// A resend ordered already leaves the failure the last outcome until
	// the retry is recorded: the same decision again is the same derived
	// event, which the log reports as existing.
	if failure == nil || !failure.Uncertain {
		return eventstore.Result{}, fmt.Errorf("%w: reply %s of %s", ErrNotUncertain, r.ReplyID, r.Stream)
	}
	var p gateway.Payload = &gateway.ReplyResendOrdered{ReplyID: r.ReplyID, Attempt: failure.Attempt, By: r.By, Note: r.Note}
	if r.Action == ResolveSent {
		resp := "marked sent by " + r.By + " after checking the peer"
		if r.Note != "" {
			resp += ": " + r.Note
		}
		p = &gateway.ReplySent{ReplyID: r.ReplyID, Channel: channel, Attempt: failure.Attempt, Response: resp}
	}
	ev, err := gateway.Follow(resolveName, failed, 0, p)
	if err != nil {
		return eventstore.Result{}, err
	}
	res, err := log.Append(ctx, ev)
	if err != nil {
		return eventstore.Result{}, fmt.Errorf("replies: record the decision on %s: %w", r.ReplyID, err)
	}
	return res[0], nil
}
