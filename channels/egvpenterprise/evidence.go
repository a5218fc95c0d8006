package egvpenterprise

import (
	"context"
	"fmt"

	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
)

// The WSDL's states (JEntryTypeType) of a sent message that are evidence: sent to
// the intermediary, or given up.
const (
	stateOSCISent   = "OSCI_SENT"
	stateUnsendable = "WS_UNSENDABLE"
	stateCancelled  = "WS_CANCELLED"
)

// recordState asks Enterprise for the state of the answer it accepted as customID
// (getState) and records what it attests: delivered once Enterprise sent it to the
// intermediary (OSCI_SENT: stored in the addressee's mailbox there), not delivered
// when it gave up (WS_UNSENDABLE, WS_CANCELLED). A state still pending (WS_ASEND,
// AU_RETRY, ...) records nothing; it is not asked again (no poll of pending answers
// is built). Enterprise attests it unsigned: the web service's word, said in the
// evidence's problems. The answer is sent whatever becomes of its evidence: a failure
// is logged, and the state returned for the outbox's response text.
func (o *Outbound) recordState(ctx context.Context, req *gateway.ReplyRequested, customID string) string {
	st, err := o.client.GetState(ctx, o.cfg.UserID, customID)
	if err != nil {
		o.log.Warn("asking for the answer's state", "replyId", req.ReplyID, "customId", customID, "err", err)
		return "state not fetched: " + err.Error()
	}
	text := "state " + st.State
	var kind gateway.EvidenceKind
	switch st.State {
	case stateOSCISent:
		kind = gateway.EvidenceDelivered
	case stateUnsendable, stateCancelled:
		kind = gateway.EvidenceNotDelivered
	default:
		return text
	}
	if o.evidence == nil {
		return text
	}
	refs := []gateway.EvidenceReference{{Kind: "replyId", Value: req.ReplyID}, {Kind: "enterpriseCustomId", Value: customID},
		{Kind: "xjustizMessageId", Value: egvp.XJustizID(req.ReplyID)}}
	if st.MessageID != "" {
		refs = append(refs, gateway.EvidenceReference{Kind: "osciMessageId", Value: st.MessageID})
	}
	ev := &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelEGVP, Kind: kind, References: refs,
		Attester:   gateway.Attester{Role: "egvp-enterprise", Name: "EGVP Enterprise", ID: o.cfg.Endpoint},
		EvidenceID: "egvp-enterprise:" + o.cfg.UserID + "/" + customID + ":" + string(kind), AttestedAt: st.Time.UTC(),
		Problems: []string{"EGVP Enterprise's getState, unsigned: the web service's word, not the intermediary's process card"}}
	if kind == gateway.EvidenceNotDelivered {
		ev.Reason = fmt.Sprintf("EGVP Enterprise reports %s", st.State)
	}
	if st.Time.IsZero() {
		ev.AttestedAt = o.now().UTC()
	}
	rc, err := o.evidence.Record(ctx, o.tenant, ev)
	switch {
	case err != nil:
		o.log.Error("recording the answer's delivery evidence", "replyId", req.ReplyID, "kind", kind, "err", err)
	case !rc.Linked:
		o.log.Warn("the answer's delivery evidence is not linked", "replyId", req.ReplyID, "kind", kind, "stream", rc.Stream)
	}
	return text
}
