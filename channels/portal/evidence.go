package portal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
)

// recordEvidence records, in the submission's stream, the decision the
// gateway posted (accept-submission: the destination retrieved the
// submission; reject-submission: it did not take it) and the platform's
// submit-submission (the submission reached the destination's mailbox at the
// platform), with the verdict on its signature. A failure is logged: the decision is
// posted whatever becomes of its evidence.
func (in *Inbound) recordEvidence(ctx context.Context, s fitconnect.Submission, msg *gateway.MessageReceived, set string) {
	if in.deps.Evidence == nil {
		return
	}
	refs := []gateway.EvidenceReference{{Kind: "submissionId", Value: s.SubmissionID}}
	ours := &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelPortal, Kind: gateway.EvidenceRetrieved, References: refs,
		Attester:   gateway.Attester{Role: "addressee", Name: "FIT-Connect destination", ID: in.cfg.DestinationID},
		AttestedAt: in.deps.Now().UTC(), EvidenceID: "fitconnect:" + decisionJTI(s.SubmissionID, msg.Portal.Decision),
		MediaType: "application/jose"}
	if msg.Portal.Decision == gateway.PortalRejected {
		ours.Kind = gateway.EvidenceNotDelivered
		var why []string
		for _, p := range msg.Portal.Problems {
			why = append(why, strings.TrimPrefix(p.Type, fitconnect.ProblemTypePrefix))
		}
		ours.Reason = "rejected by the destination: " + strings.Join(why, ", ")
	}
	if ref, err := in.deps.Blobs.Put(ctx, strings.NewReader(set), maxSETBytes); err == nil {
		ours.Evidence = ref
	}
	in.record(ctx, ours)
	events, err := in.eventLog(ctx, s.CaseID)
	if err != nil {
		in.log.Warn("reading the event log for the platform's events", "submissionId", s.SubmissionID, "err", err)
		return
	}
	for _, se := range in.submitEvents(ctx, events, s.SubmissionID) {
		if se.p.JTI == "" {
			continue
		}
		ev := &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelPortal, Kind: gateway.EvidenceDelivered, References: refs,
			Attester:   gateway.Attester{Role: "portal", Name: "FIT-Connect Zustelldienst", ID: se.p.Issuer},
			AttestedAt: time.Unix(se.p.IssuedAt, 0).UTC(), EvidenceID: "fitconnect:" + se.p.JTI, MediaType: "application/jose"}
		if se.verified {
			ev.Verification = &gateway.EvidenceVerification{Indication: "TOTAL_PASSED", Format: "JWS", Signer: "kid " + se.kid}
		} else {
			ev.Verification = &gateway.EvidenceVerification{Indication: "INDETERMINATE", Format: "JWS", Detail: clipText(fmt.Sprint(se.verifyErr), 300)}
			ev.Problems = []string{"the platform's submit-submission SET, its signature not verified"}
		}
		if ref, err := in.deps.Blobs.Put(ctx, strings.NewReader(se.raw), maxSETBytes); err == nil {
			ev.Evidence = ref
		}
		in.record(ctx, ev)
	}
}

// maxSETBytes caps one SET as stored.
const maxSETBytes = 64 << 10

func (in *Inbound) record(ctx context.Context, ev *gateway.DeliveryEvidenceRecorded) {
	rc, err := in.deps.Evidence.Record(ctx, in.deps.Tenant, ev)
	switch {
	case err != nil:
		in.log.Error("recording delivery evidence", "kind", ev.Kind, "evidenceId", ev.EvidenceID, "err", err)
	case !rc.Linked:
		in.log.Warn("delivery evidence not linked", "kind", ev.Kind, "evidenceId", ev.EvidenceID, "stream", rc.Stream)
	}
}
