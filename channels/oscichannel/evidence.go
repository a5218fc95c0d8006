package oscichannel

import (
	"context"
	"time"

	"github.com/poststelle/poststelle/gateway"
)

// recordEvidence records what the intermediary's process cards attest of an answer
// sent as message id: delivered (in the addressee's mailbox) at the card's creation
// time, from the storeDelivery's answer or, without a card there, the fetched one;
// retrieved at its reception time once the fetched card shows the addressee took it.
// The evidence is linked to the answer by its ReplyID (the ReplySent that names the
// OSCI message id is appended only after Send returns). The answer is delivered
// whatever becomes of its evidence: a failure is logged, not returned.
func (o *Outbound) recordEvidence(ctx context.Context, req *gateway.ReplyRequested, ans *answer, id string, stored, fetched cardAnswer) {
	if o.evidence == nil {
		return
	}
	refs := []gateway.EvidenceReference{{Kind: "replyId", Value: req.ReplyID}, {Kind: "osciMessageId", Value: id}}
	if ans.xjustizID != "" {
		refs = append(refs, gateway.EvidenceReference{Kind: "xjustizMessageId", Value: ans.xjustizID})
	}
	delivered := stored
	if delivered.bundle == nil || delivered.bundle.Card.Creation == nil {
		delivered = fetched
	}
	if b := delivered.bundle; b != nil && b.Card.Creation != nil {
		o.record(ctx, req, o.evidenceOf(gateway.EvidenceDelivered, id, refs, delivered), b.Card.Creation.Plain)
	}
	if b := fetched.bundle; b != nil && b.Card.Reception != nil {
		o.record(ctx, req, o.evidenceOf(gateway.EvidenceRetrieved, id, refs, fetched), b.Card.Reception.Plain)
	}
}

func (o *Outbound) evidenceOf(kind gateway.EvidenceKind, id string, refs []gateway.EvidenceReference, c cardAnswer) *gateway.DeliveryEvidenceRecorded {
	ev := &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelEGVP, Kind: kind, References: refs,
		Attester:   gateway.Attester{Role: "intermediary", Name: o.c.interSig.Subject.CommonName, ID: o.c.cfg.Intermediary.URL},
		EvidenceID: "osci:" + id + ":" + string(kind), Evidence: c.raw}
	if c.raw.SHA256 != "" {
		ev.MediaType = "multipart/related"
	}
	v := &gateway.EvidenceVerification{Indication: "TOTAL_PASSED", Format: "XMLDSig", Signer: c.signer}
	if !c.valid {
		v.Indication, v.Detail = "TOTAL_FAILED", "the intermediary's SupplierSignature did not verify"
	}
	ev.Verification = v
	if c.bundle != nil && c.bundle.Card.Creation != nil && c.bundle.Card.Creation.IsCryptographic() {
		ev.Problems = append(ev.Problems, "the process card's time is a cryptographic timestamp, which is not read; the plain time is recorded")
	}
	return ev
}

func (o *Outbound) record(ctx context.Context, req *gateway.ReplyRequested, ev *gateway.DeliveryEvidenceRecorded, at time.Time) {
	ev.AttestedAt = at.UTC()
	rc, err := o.evidence.Record(ctx, o.tenant, ev)
	if err != nil {
		o.log.Error("recording the answer's delivery evidence", "replyId", req.ReplyID, "kind", ev.Kind, "err", err)
		return
	}
	if !rc.Linked {
		o.log.Warn("the answer's delivery evidence is not linked", "replyId", req.ReplyID, "kind", ev.Kind, "stream", rc.Stream)
	}
}
