package egvpenterprise

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/egvpsoap"

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
// (getState) and records what it attests (stateEvidence). A state still pending
// (WS_ASEND, AU_RETRY, ...) records nothing here; the Pending poller of the inbound
// side asks again, with backoff, until a final state. The answer is sent whatever
// becomes of its evidence: a failure is logged, and the state returned for the
// outbox's response text.
func (o *Outbound) recordState(ctx context.Context, req *gateway.ReplyRequested, customID string) string {
	st, err := o.client.GetState(ctx, o.cfg.UserID, customID)
	if err != nil {
		o.log.Warn("asking for the answer's state", "replyId", req.ReplyID, "customId", customID, "err", err)
		return "state not fetched: " + err.Error()
	}
	if _, err := stateEvidence(ctx, o.evidence, o.tenant, o.cfg, req.ReplyID, customID, st, o.now, o.log); err != nil {
		o.log.Error("recording the answer's delivery evidence", "replyId", req.ReplyID, "state", st.State, "err", err)
	}
	return "state " + st.State
}

// stateEvidence records what a state of an answer attests: delivered once Enterprise
// sent it to the intermediary (OSCI_SENT: stored in the addressee's mailbox there),
// not delivered when it gave up (WS_UNSENDABLE, WS_CANCELLED). It reports whether the
// state is final; a pending one records nothing. Enterprise attests it unsigned: the
// web service's word, said in the evidence's problems. The evidence id is derived
// from the customID and the kind, so a state recorded twice (the poller after a
// restart) is one piece of evidence.
func stateEvidence(ctx context.Context, rec *gateway.EvidenceRecorder, tenant string, cfg Config, replyID, customID string,
	st *egvpsoap.State, now func() time.Time, log *slog.Logger) (bool, error) {
	var kind gateway.EvidenceKind
	switch st.State {
	case stateOSCISent:
		kind = gateway.EvidenceDelivered
	case stateUnsendable, stateCancelled:
		kind = gateway.EvidenceNotDelivered
	default:
		return false, nil
	}
	if rec == nil {
		return true, nil
	}
	refs := []gateway.EvidenceReference{{Kind: "replyId", Value: replyID}, {Kind: refCustomID, Value: customID},
		{Kind: "xjustizMessageId", Value: egvp.XJustizID(replyID)}}
	if st.MessageID != "" {
		refs = append(refs, gateway.EvidenceReference{Kind: "osciMessageId", Value: st.MessageID})
	}
	ev := &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelEGVP, Kind: kind, References: refs,
		Attester:   gateway.Attester{Role: "egvp-enterprise", Name: "EGVP Enterprise", ID: cfg.Endpoint},
		EvidenceID: "egvp-enterprise:" + cfg.UserID + "/" + customID + ":" + string(kind), AttestedAt: st.Time.UTC(),
		Problems: []string{"EGVP Enterprise's getState, unsigned: the web service's word, not the intermediary's process card"}}
	if kind == gateway.EvidenceNotDelivered {
		ev.Reason = fmt.Sprintf("EGVP Enterprise reports %s", st.State)
	}
	if st.Time.IsZero() {
		ev.AttestedAt = now().UTC()
	}
	rc, err := rec.Record(ctx, tenant, ev)
	if err != nil {
		return true, err
	}
	if !rc.Linked {
		log.Warn("the answer's delivery evidence is not linked", "replyId", replyID, "kind", kind, "stream", rc.Stream)
	}
	return true, nil
}

// refCustomID is the evidence reference naming Enterprise's customID of an answer.
const refCustomID = "enterpriseCustomId"
