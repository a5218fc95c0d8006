package egvpenterprise

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/xjustiz"
)

// TestReturningEEB: a returning eEB received through Enterprise whose
// fremdeNachrichtenID is the XJustiz id of an answer recorded on the EGVP channel is
// linked to that answer as delivery evidence (read for an acknowledgement, not
// delivered for a refusal), through the same check as on OSCI; one for an id we never
// used is a problem on the message, which is recorded all the same.
func TestReturningEEB(t *testing.T) {
	received := time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC)
	const unknownProblem = "eEB for a request this mailbox did not send"
	for _, tc := range []struct {
		name string
		// foreign is the eEB's fremdeNachrichtenID, of the answer's ReplyID.
		foreign  func(replyID string) string
		refusal  *xjustiz.Refusal
		kind     gateway.EvidenceKind
		problem  bool
		evidence int
	}{
		{"acknowledges our answer", egvp.XJustizID, nil, gateway.EvidenceRead, false, 1},
		{"refuses our answer", egvp.XJustizID, &xjustiz.Refusal{Code: "1", Reason: "nicht beteiligt"}, gateway.EvidenceNotDelivered, false, 1},
		{"unknown id of our form", func(string) string { return egvp.XJustizID(replies.ReplyID("zustellung", "message/x", "never")) }, nil, "", true, 0},
		{"foreign id", func(string) string { return "e238a754-f63d-4196-98e6-89c50f015b2e" }, nil, "", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, stream, req := answeredRig(t)
			foreign := tc.foreign(req.ReplyID)
			a := xjustiz.Answer{Generation: xjustiz.Generation3, SenderFileNumber: "3 K 12/26", RecipientFileNumber: "1 K 519/20.KO",
				Created: received, Sender: xjustiz.Party{Kind: "gericht", Code: "R1101", ListVersion: "3.6"}, Recipient: xjustiz.Party{Kind: "sonstige", Name: box},
				OwnMessageID: xjustiz.NewDocumentID(foreign, 0), ForeignMessageID: foreign, Refusal: tc.refusal}
			if tc.refusal == nil {
				a.Received = received
			}
			eeb, err := xjustiz.BuildReceipt(a)
			if err != nil {
				t.Fatal(err)
			}
			got := r.receiveAs(t, "eeb", "Testnachricht_1", map[string][]byte{"attachments/xjustiz_nachricht.xml": eeb})
			if got.EGVP == nil || got.EGVP.MessageType != xjustiz.TypeReceipt {
				t.Fatalf("received %+v", got.EGVP)
			}
			has := slices.ContainsFunc(got.Problems, func(p string) bool { return strings.Contains(p, unknownProblem) })
			if has != tc.problem {
				t.Errorf("problems %q; want the unknown-request problem: %v", got.Problems, tc.problem)
			}
			evs := r.evidenceIn(t, stream)
			if len(evs) != tc.evidence {
				t.Fatalf("%d pieces of evidence in the answered stream, want %d", len(evs), tc.evidence)
			}
			if tc.kind == "" {
				return
			}
			e := evs[0]
			if e.Kind != tc.kind || e.ReplyID != req.ReplyID || e.Attester.Role != "addressee" || e.Attester.ID != got.EGVP.SenderSafeID ||
				e.Evidence != got.Raw || e.MediaType != "application/zip" {
				t.Errorf("evidence %+v", e)
			}
			if tc.refusal == nil && !e.AttestedAt.Equal(received) {
				t.Errorf("attested at %s", e.AttestedAt)
			}
			if tc.refusal != nil && !strings.Contains(e.Reason, "nicht beteiligt") {
				t.Errorf("reason %q", e.Reason)
			}
		})
	}
}

// answeredRig is a rig with the evidence recorder whose log holds a court's eEB
// request and our eEB answer to it (its ReplyRequested in the request's stream).
func answeredRig(t *testing.T) (*rig, string, *gateway.ReplyRequested) {
	t.Helper()
	r := newRig(t)
	runner := &projection.Runner{Log: r.env.Log, DB: r.env.State, Registry: gateway.NewRegistry()}
	if err := runner.Setup(context.Background(), projection.References{}); err != nil {
		t.Fatal(err)
	}
	r.evidence = projection.NewEvidenceRecorder(runner)
	orig := r.receive(t, "Testnachricht_1", map[string][]byte{"attachments/xjustiz_nachricht.xml": []byte(eebRequest)})
	origEvent := r.eventOf(t, orig)
	req := &gateway.ReplyRequested{ReplyID: replies.ReplyID("zustellung", origEvent.Stream, "k"), Channel: gateway.ChannelEGVP, To: orig.From,
		EEB: &gateway.EEBAnswer{Decision: gateway.EEBAcknowledged, ReceivedOn: "2026-02-03"}}
	ev, err := gateway.Follow("reply/"+req.ReplyID, &origEvent, 0, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.env.Log.Append(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return r, origEvent.Stream, req
}

// eventOf is the event that recorded m.
func (r *rig) eventOf(t *testing.T, m *gateway.MessageReceived) eventstore.Event {
	t.Helper()
	evs, err := r.env.Log.Read(context.Background(), 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		p, err := gateway.NewRegistry().Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := p.(*gateway.MessageReceived); ok && got.Metadata[MetaMessageID] == m.Metadata[MetaMessageID] {
			return evs[i]
		}
	}
	t.Fatal("no event")
	return eventstore.Event{}
}

// evidenceIn is the delivery evidence recorded in stream.
func (r *rig) evidenceIn(t *testing.T, stream string) []*gateway.DeliveryEvidenceRecorded {
	t.Helper()
	evs, err := r.env.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*gateway.DeliveryEvidenceRecorded
	for i := range evs {
		p, err := gateway.NewRegistry().Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := p.(*gateway.DeliveryEvidenceRecorded); ok {
			out = append(out, d)
		}
	}
	return out
}

// TestSendStateEvidence: after Enterprise accepts an answer, the state getState
// reports is recorded as delivery evidence of the answer: delivered once Enterprise
// sent it to the intermediary (OSCI_SENT), not delivered when it gave up
// (WS_UNSENDABLE); a state still pending records nothing.
func TestSendStateEvidence(t *testing.T) {
	for _, tc := range []struct {
		state string
		kind  gateway.EvidenceKind
	}{
		{"OSCI_SENT", gateway.EvidenceDelivered},
		{"WS_UNSENDABLE", gateway.EvidenceNotDelivered},
		{"WS_ASEND", ""},
	} {
		t.Run(tc.state, func(t *testing.T) {
			r, stream, req := answeredRig(t)
			orig := r.received(t)[0]
			r.srv.SetSendState(tc.state)
			o := r.outbound(t)
			o.evidence = r.evidence
			info, err := o.Send(context.Background(), req, orig)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(info.Response, "state "+tc.state) {
				t.Errorf("response %q", info.Response)
			}
			evs := r.evidenceIn(t, stream)
			if tc.kind == "" {
				if len(evs) != 0 {
					t.Fatalf("evidence %+v for a pending state", evs[0])
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("%d pieces of evidence", len(evs))
			}
			e := evs[0]
			at, _ := time.Parse(time.RFC3339Nano, enterprisetest.StateTime)
			if e.Kind != tc.kind || e.ReplyID != req.ReplyID || e.Attester.Role != "egvp-enterprise" || e.Attester.ID != r.cfg.Endpoint ||
				!e.AttestedAt.Equal(at) || len(e.Problems) == 0 {
				t.Errorf("evidence %+v", e)
			}
			if !slices.ContainsFunc(e.References, func(ref gateway.EvidenceReference) bool {
				return ref.Kind == "enterpriseCustomId" && ref.Value == info.ChannelMessageID
			}) {
				t.Errorf("references %+v", e.References)
			}
		})
	}
}
