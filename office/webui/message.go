package webui

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/office/httpserve"
)

// timelineEntry is one event of a message's history as the page shows it.
type timelineEntry struct {
	At     time.Time
	Type   string
	Detail string
	By     string
}

// messageView is everything the message page shows, read from the log
// (the receipt, the verification, the timeline, the notes) and the inbox
// (answers and their state).
type messageView struct {
	Hit      Hit
	Received *gateway.MessageReceived
	Verified *gateway.SignaturesVerified
	Evidence []offices.Evidence
	Timeline []timelineEntry
	Notes    []timelineEntry
	Replies  []offices.Reply
	Triage   *offices.TriageItem
	// EEB is the court's eEB request as the office's task; nil when the
	// message asks for none. EEBRefusable is false for an XJustiz 2.x
	// request, which can only be acknowledged; Today is the form's date.
	EEB          *offices.EEBTask
	EEBRefusable bool
	Today        string
	// ActOffice is the office the viewer acts for, empty when they cannot
	// acknowledge or answer.
	ActOffice    string
	Acknowledged bool
	CanNote      bool
	CanProve     bool
	CanBundle    bool
	Key          string
	// Erased is the message's erasure, nil while its contents are kept;
	// Hold is its legal hold while one lasts.
	Erased *gateway.ContentErased
	Hold   *gateway.LegalHoldSet
}

// Gone reports whether the message's contents were erased and ref is not
// among the blobs the erasure kept, so that the page shows the erasure
// instead of a link that answers 410 Gone. A blob the erasure neither
// lists as erased nor as kept counts as gone: a link to it is not promised.
func (v *messageView) Gone(ref blob.Ref) bool {
	if v.Erased == nil {
		return false
	}
	return !slices.ContainsFunc(v.Erased.Kept, func(k blob.Ref) bool { return k.SHA256 == ref.SHA256 })
}

// RawGone is Gone of the raw message; false before the receipt is read.
func (v *messageView) RawGone() bool {
	return v.Received != nil && v.Gone(v.Received.Raw)
}

func (s *Server) message(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	stream := r.PathValue("stream")
	h, ok, err := s.visible(r, stream)
	if err != nil {
		s.internal(w, r, "message", err)
		return
	}
	if !ok {
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	v, err := s.loadMessage(r, h)
	if err != nil {
		s.internal(w, r, "message", err)
		return
	}
	s.render(w, r, http.StatusOK, "message", v)
}

func (s *Server) loadMessage(r *request, h Hit) (*messageView, error) {
	ctx := r.Context()
	v := &messageView{Hit: h, Key: randomToken(), CanNote: noteRoles(r.p()), CanProve: auditRoles(r.p()) && s.deps.Audited != nil,
		CanBundle: s.deps.Bundle != nil}
	evs, err := s.deps.Log.ReadStream(ctx, h.Tenant, h.Stream)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", h.Stream, err)
	}
	for i := range evs {
		e := &evs[i]
		p, err := s.registry.Decode(e)
		if err != nil {
			v.Timeline = append(v.Timeline, timelineEntry{At: e.RecordedAt, Type: e.Type, Detail: "cannot decode: " + err.Error()})
			continue
		}
		entry := timelineEntry{At: e.RecordedAt, Type: e.Type}
		entry.Detail, entry.By = describe(p)
		switch m := p.(type) {
		case *gateway.MessageReceived:
			v.Received = m
		case *gateway.SignaturesVerified:
			v.Verified = m
		case *gateway.NoteAdded:
			v.Notes = append(v.Notes, timelineEntry{At: e.RecordedAt, Detail: m.Text, By: m.By})
		case *gateway.MessageAcknowledged:
			if r.p().Member(m.Office) {
				v.Acknowledged = true
			}
		case *gateway.ContentErased:
			v.Erased = m
		case *gateway.LegalHoldSet:
			v.Hold = m
		case *gateway.LegalHoldReleased:
			v.Hold = nil
		}
		v.Timeline = append(v.Timeline, entry)
	}
	if v.Evidence, err = offices.ListEvidence(ctx, s.deps.DB, h.Tenant, h.Stream); err != nil {
		return nil, err
	}
	for _, o := range h.Offices {
		if !r.p().CanRead(o) {
			continue
		}
		reps, err := offices.ListReplies(ctx, s.deps.DB, o, h.Stream)
		if err != nil {
			return nil, err
		}
		v.Replies = append(v.Replies, reps...)
	}
	if it, err := offices.GetTriage(ctx, s.deps.DB, h.Stream); err == nil {
		v.Triage = &it
	}
	if v.EEB, err = offices.GetEEB(ctx, s.deps.DB, h.Tenant, h.Stream); err != nil {
		return nil, err
	}
	if v.Received != nil && v.Received.EGVP != nil {
		v.EEBRefusable = !strings.HasPrefix(v.Received.EGVP.XJustizVersion, "2.")
	}
	v.Today = officeToday(s.deps.Now())
	if o, ok := actingOffice(r.p(), h, ""); ok {
		v.ActOffice = o
	}
	return v, nil
}

// describe says in a line what an event records, and who did it.
func describe(p gateway.Payload) (detail, by string) {
	switch m := p.(type) {
	case *gateway.MessageReceived:
		return fmt.Sprintf("%s: %s (%d bytes, %d parts)", m.Channel, m.From.Address, m.Raw.Size, len(m.Parts)), ""
	case *gateway.MessageRouted:
		d := "→ " + strings.Join(m.Offices, ", ")
		if m.Rule != "" {
			d += " (rule " + m.Rule + ")"
		}
		if m.Reason != "" {
			d += ": " + m.Reason
		}
		return d, m.DecidedBy
	case *gateway.RoutingFailed:
		return m.Reason, ""
	case *gateway.ProcessingFailed:
		return fmt.Sprintf("%s after %d attempts: %s", m.Handler, m.Attempts, m.Error), ""
	case *gateway.MessageDelivered:
		return strings.TrimSpace(m.Office + " via " + m.Via + " " + m.Target), ""
	case *gateway.MessageAcknowledged:
		return m.Office + " via " + m.Via, m.By
	case *gateway.SignaturesVerified:
		var parts []string
		for _, sg := range m.Signatures {
			parts = append(parts, strings.TrimSpace(sg.Format+" "+sg.Indication+" "+sg.SubIndication+" "+sg.Signer))
		}
		if len(parts) == 0 {
			parts = append(parts, "no signatures")
		}
		return strings.Join(parts, "; ") + "; written form: " + fmt.Sprint(m.WrittenFormSatisfied), m.Verifier
	case *gateway.TimestampApplied:
		return m.TSA + " " + m.GenTime.UTC().Format(time.RFC3339), ""
	case *gateway.ReplyRequested:
		d := fmt.Sprintf("%s to %s on %s: %s", m.ReplyID, m.To.Address, m.Channel, m.Subject)
		if a := m.EEB; a != nil {
			d += fmt.Sprintf(" (eEB %s%s%s)", a.Decision, prefixed(" ", a.ReceivedOn), prefixed(" code ", a.RefusalCode))
		}
		return d, m.Author
	case *gateway.ReplySent:
		return fmt.Sprintf("%s on %s (attempt %d): %s", m.ReplyID, m.Channel, m.Attempt, m.Response), ""
	case *gateway.ReplyFailed:
		return fmt.Sprintf("%s attempt %d: %s (permanent: %v)", m.ReplyID, m.Attempt, m.Error, m.Permanent), ""
	case *gateway.WebhookDelivered:
		return fmt.Sprintf("%s %s: %d", m.Office, m.URL, m.Status), ""
	case *gateway.WebhookAttempted:
		return fmt.Sprintf("%s %s attempt %d: %s", m.Office, m.URL, m.Attempt, m.Error), ""
	case *gateway.WebhookFailed:
		return fmt.Sprintf("%s %s: %s", m.Office, m.URL, m.Error), ""
	case *gateway.DeliveryEvidenceRecorded:
		return fmt.Sprintf("%s %s from %s %s", m.Channel, m.Kind, m.Attester.Name, m.EvidenceID), m.Attester.Name
	case *gateway.NoteAdded:
		return m.Text, m.By
	case *gateway.ContentErased:
		return fmt.Sprintf("%s: %s (%d blobs erased, %d kept)", m.Rule, m.Reason, len(m.Blobs), len(m.Kept)), m.Actor
	case *gateway.LegalHoldSet:
		return m.Reason + prefixed(" – ", m.Case), m.Actor
	case *gateway.LegalHoldReleased:
		return m.Reason, m.Actor
	}
	return "", ""
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}
