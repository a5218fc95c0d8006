package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/poststelle/poststelle/eventstore"
)

// EvidenceLink is one message or answer an id belongs to.
type EvidenceLink struct {
	Stream string
	// ReplyID is set when the id is one of an answer's.
	ReplyID string
	// Source names which of our ids it is: "senderMessageId",
	// "coordinates", "replyId", "replyMessageId".
	Source string
}

// EvidenceLinks finds the messages and answers an id of a channel belongs
// to. projection.References is the implementation the gateway runs: an
// index, kept from the log, of every MessageReceived's SenderMessageID and
// Transport.Coordinates and every answer's ReplyID and sent
// ChannelMessageID, per tenant and channel.
type EvidenceLinks interface {
	Links(ctx context.Context, tenant string, ch Channel, id string) ([]EvidenceLink, error)
}

// EvidenceRecorder appends delivery evidence to the stream of the message it
// is about. The zero value is not usable; Log and Links are required.
type EvidenceRecorder struct {
	Log   eventstore.Log
	Links EvidenceLinks
	// CatchUp, when set, brings Links up to date with the log. Record calls
	// it before it declares a reference unknown, so that evidence arriving
	// right after the answer it confirms is not sent to triage because the
	// index lagged.
	CatchUp func(ctx context.Context) error
}

// EvidenceReceipt is the outcome of recording evidence.
type EvidenceReceipt struct {
	EventID string
	// Stream is the stream the evidence went to: its message's, or for
	// unlinked evidence a stream of its own (in triage).
	Stream string
	// Linked is false when no message or answer matched; the evidence is
	// kept and in triage.
	Linked bool
	// Duplicate is true when the same evidence was recorded before; the
	// peer can be acknowledged all the same.
	Duplicate bool
}

// Limits on what a channel hands in: evidence comes from outside.
const (
	maxEvidenceRefs   = 8
	maxEvidenceIDSize = 998 // an RFC 5322 line
)

// unlinkedStreamPrefix starts the streams of evidence no message or answer
// matched.
const unlinkedStreamPrefix = "evd-"

// ErrEvidence reports evidence a channel must not hand in: an unknown kind,
// no identity (neither EvidenceID nor Evidence bytes), no reference.
var ErrEvidence = errors.New("gateway: invalid delivery evidence")

// EvidenceInspector completes linked evidence, before Record appends it,
// with what only the message or answer it is about can tell: a De-Mail
// confirmation's hash compared with the bytes that were sent, say. It may
// add to rec.Problems and rec.Verification; it must not change the
// references or the evidence's identity. It is not called for evidence that
// nothing links.
type EvidenceInspector func(ctx context.Context, link EvidenceLink, rec *DeliveryEvidenceRecorded)

// Record appends ev, a piece of delivery evidence the channel ev.Channel
// received, and returns once it is durable; the channel acknowledges or
// deletes the confirmation only after that.
//
// The channel fills every field but ReplyID, LinkedBy and Unlinked, which
// Record sets: it looks each of ev.References up, in order, among the ids of
// the channel's own messages and answers (see EvidenceLinks), and the first
// reference that matches exactly one message or answer links the evidence
// to it. The event goes into that message's stream, with ReplyID set when
// the match is an answer. Evidence no reference links, or whose reference
// matches more than one message, is not dropped: it goes into a stream of
// its own, with Unlinked saying why, and the mailroom sees it in triage.
//
// The evidence is identified by the channel and ev.EvidenceID, or, without
// one, by its kind, references and the hash of ev.Evidence. Recording the
// same evidence again (a confirmation fetched twice, a redelivery after a
// crash) appends nothing and returns Duplicate. Evidence must have an
// EvidenceID or Evidence bytes, at least one reference, and a valid Kind;
// otherwise Record returns an error wrapping ErrEvidence. References and
// ids over the size caps are recorded as problems and not looked up. Each
// inspector runs on linked evidence before it is appended.
func (r *EvidenceRecorder) Record(ctx context.Context, tenant string, ev *DeliveryEvidenceRecorded, inspect ...EvidenceInspector) (EvidenceReceipt, error) {
	if tenant == "" {
		tenant = DefaultTenant
	}
	if err := checkEvidence(ev); err != nil {
		return EvidenceReceipt{}, err
	}
	key := evidenceKey(ev)
	rec := *ev
	rec.ReplyID, rec.LinkedBy, rec.Unlinked = "", "", ""
	rec.Problems = slices.Clone(ev.Problems)
	link, why, err := r.link(ctx, tenant, &rec)
	if err != nil {
		return EvidenceReceipt{}, err
	}
	stream := link.Stream
	if stream == "" {
		rec.Unlinked = why
		stream = digestID(unlinkedStreamPrefix, tenant, key)
	} else {
		rec.ReplyID, rec.LinkedBy = link.ReplyID, link.Source
		if rec.Verification != nil {
			v := *rec.Verification
			rec.Verification = &v
		}
		for _, f := range inspect {
			f(ctx, link, &rec)
		}
	}
	// The id includes the stream, so that a second copy that would go to
	// another stream (unlinked first, linkable now) meets the message key
	// and learns where the first one went.
	e, err := Encode(Meta{ID: digestID("dev-", tenant, key, stream), Tenant: tenant, Stream: stream,
		MessageKey: key, CorrelationID: stream}, &rec)
	if err != nil {
		return EvidenceReceipt{}, err
	}
	out := EvidenceReceipt{EventID: e.ID, Stream: stream, Linked: link.Stream != ""}
	res, err := r.Log.Append(ctx, e)
	var dup *eventstore.DuplicateError
	switch {
	case errors.As(err, &dup):
		// Recorded before, possibly unlinked then and linkable now: the
		// first record stands, and triage resolves it.
		return EvidenceReceipt{EventID: dup.Existing.ID, Stream: dup.Existing.Stream, Linked: !strings.HasPrefix(dup.Existing.Stream, unlinkedStreamPrefix), Duplicate: true}, nil
	case errors.Is(err, eventstore.ErrConflict):
		// Same evidence, same stream, other details (a verdict reached
		// again differently): the first record stands.
		out.Duplicate = true
		return out, nil
	case err != nil:
		return EvidenceReceipt{}, fmt.Errorf("gateway: record %s evidence %s: %w", ev.Kind, key, err)
	}
	out.Duplicate = res[0].Existing
	return out, nil
}

func checkEvidence(ev *DeliveryEvidenceRecorded) error {
	switch {
	case !ev.Kind.Valid():
		return fmt.Errorf("%w: kind %q", ErrEvidence, ev.Kind)
	case ev.Channel == "":
		return fmt.Errorf("%w: no channel", ErrEvidence)
	case ev.EvidenceID == "" && ev.Evidence.SHA256 == "":
		return fmt.Errorf("%w: neither an evidence id nor evidence bytes", ErrEvidence)
	case len(ev.References) == 0:
		return fmt.Errorf("%w: no reference to the message it is about", ErrEvidence)
	}
	return nil
}

// evidenceKey identifies a piece of evidence within its tenant; it is the
// event's message key, so that the log refuses a second copy whatever
// stream it would go to.
func evidenceKey(ev *DeliveryEvidenceRecorded) string {
	if ev.EvidenceID != "" && len(ev.EvidenceID) <= maxEvidenceIDSize {
		return "evidence:" + string(ev.Channel) + ":id:" + ev.EvidenceID
	}
	parts := []string{string(ev.Channel), string(ev.Kind), ev.Evidence.SHA256, ev.EvidenceID}
	for _, ref := range ev.References {
		parts = append(parts, ref.Kind, ref.Value)
	}
	return "evidence:" + string(ev.Channel) + ":sum:" + digestID("", parts...)
}

// link finds the one message or answer rec is about; an empty link comes
// with the reason.
func (r *EvidenceRecorder) link(ctx context.Context, tenant string, rec *DeliveryEvidenceRecorded) (EvidenceLink, string, error) {
	link, why, err := r.lookup(ctx, tenant, rec)
	if err != nil || link.Stream != "" || r.CatchUp == nil {
		return link, why, err
	}
	if err := r.CatchUp(ctx); err != nil {
		return EvidenceLink{}, "", fmt.Errorf("gateway: bring the evidence links up to date: %w", err)
	}
	return r.lookup(ctx, tenant, rec)
}

func (r *EvidenceRecorder) lookup(ctx context.Context, tenant string, rec *DeliveryEvidenceRecorded) (EvidenceLink, string, error) {
	var tried []string
	for i, ref := range rec.References {
		if i == maxEvidenceRefs {
			rec.Problems = appendNew(rec.Problems, fmt.Sprintf("references: %d more not looked up", len(rec.References)-i))
			break
		}
		if ref.Value == "" {
			continue
		}
		if len(ref.Value) > maxEvidenceIDSize {
			rec.Problems = appendNew(rec.Problems, fmt.Sprintf("reference %s: %d bytes, over %d, not looked up", ref.Kind, len(ref.Value), maxEvidenceIDSize))
			continue
		}
		links, err := r.Links.Links(ctx, tenant, rec.Channel, ref.Value)
		if err != nil {
			return EvidenceLink{}, "", fmt.Errorf("gateway: look up %s %q: %w", ref.Kind, ref.Value, err)
		}
		switch distinct := distinctLinks(links); len(distinct) {
		case 0:
			tried = appendNew(tried, ref.Kind)
		case 1:
			return distinct[0], "", nil
		default:
			return EvidenceLink{}, fmt.Sprintf("%s %q names %d messages or answers on %s", ref.Kind, ref.Value, len(distinct), rec.Channel), nil
		}
	}
	if len(tried) == 0 {
		return EvidenceLink{}, "no usable reference", nil
	}
	return EvidenceLink{}, fmt.Sprintf("no message or answer on %s has this %s", rec.Channel, strings.Join(tried, " or ")), nil
}

// distinctLinks drops links to the same message or answer by another of its
// ids (a Message-ID that is also the coordinates).
func distinctLinks(links []EvidenceLink) []EvidenceLink {
	var out []EvidenceLink
	for _, l := range links {
		if !slices.ContainsFunc(out, func(o EvidenceLink) bool { return o.Stream == l.Stream && o.ReplyID == l.ReplyID }) {
			out = append(out, l)
		}
	}
	return out
}

func appendNew(l []string, add ...string) []string {
	for _, s := range add {
		if !slices.Contains(l, s) {
			l = append(l, s)
		}
	}
	return l
}
