//go:build integration

package demail

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/demail/demailtest"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
)

// evidence waits for n DeliveryEvidenceRecorded events.
func (g *gw) evidence(t *testing.T, n int) []servetest.Recorded {
	t.Helper()
	var got []servetest.Recorded
	servetest.WaitFor(t, "delivery evidence", func() bool {
		got = servetest.Replay(t, bin, g.config, "DeliveryEvidenceRecorded")
		return len(got) >= n
	})
	return got
}

// verified checks that the provider's integrity protection and the XML
// signature of a confirmation held, the latter a qualified seal (table 23).
func verified(t *testing.T, what string, ev *gateway.DeliveryEvidenceRecorded) {
	t.Helper()
	if ev.Verification == nil || ev.Verification.Indication != "TOTAL_PASSED" || ev.Verification.Qualification != "QESeal" ||
		!strings.Contains(ev.Verification.Detail, "XML signature: verified") ||
		len(ev.Problems) != 0 {
		t.Errorf("%s: verification %+v, problems %q", what, ev.Verification, ev.Problems)
	}
}

// TestConfirmationsLinkToTheirMessage: the provider's confirmations of
// dispatch, receipt and retrieval (PVD IO clause 3.5.1) about a De-Mail the
// authority received become delivery evidence in that message's stream,
// shown by the office API; a confirmation about a message the gateway
// never saw is evidence in triage, and the confirmation itself is kept.
func TestConfirmationsLinkToTheirMessage(t *testing.T) {
	pv := newProvider(t)
	box := postfach(6)
	orig := pv.stamp(t, deMailFields(box, "cf-1", "Bauantrag Gartenhaus", "no"), letter, false)
	pv.mustDeliver(t, box, orig)
	g := start(t, pv, channels{mailbox: box})
	stream, _ := receipt(t, g.received(t, 1), "Bauantrag Gartenhaus")

	now := time.Now().Truncate(time.Second)
	kinds := map[string]gateway.EvidenceKind{demailtest.ConfirmationOfDispatch: gateway.EvidenceDispatched,
		demailtest.ConfirmationOfReceipt: gateway.EvidenceDelivered, demailtest.ConfirmationOfRetrieve: gateway.EvidenceRetrieved}
	for typ, kind := range kinds {
		c, err := pv.confirmation(demailtest.Confirmation{Type: typ, Of: orig, To: box.user, ID: "cf-1-" + string(kind) + "@provider.de-mail.example",
			Time: now, DeliveryTime: now.Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		pv.mustDeliver(t, box, c)
	}
	stray := pv.stamp(t, deMailFields(box, "cf-x", "Nie eingegangen", "no"), letter, false)
	c, err := pv.confirmation(demailtest.Confirmation{Type: demailtest.ConfirmationOfReceipt, Of: stray, To: box.user,
		ID: "cf-x-delivered@provider.de-mail.example", Time: now})
	if err != nil {
		t.Fatal(err)
	}
	pv.mustDeliver(t, box, c)

	got := map[gateway.EvidenceKind]bool{}
	var strayStream string
	for _, r := range g.evidence(t, 4) {
		ev := r.Payload.(*gateway.DeliveryEvidenceRecorded)
		verified(t, string(ev.Kind)+" "+ev.EvidenceID, ev)
		if ev.EvidenceID == "cf-x-delivered@provider.de-mail.example" {
			if ev.Unlinked == "" || r.Stream == stream {
				t.Errorf("the stray confirmation was linked: %+v in %s", ev, r.Stream)
			}
			strayStream = r.Stream
			continue
		}
		if r.Stream != stream || ev.ReplyID != "" || ev.Channel != gateway.ChannelDeMail || !ev.AttestedAt.Equal(now) ||
			ev.Attester.ID != "provider.de-mail.example" {
			t.Errorf("evidence %+v in %s, want it about the message in %s attested at %v", ev, r.Stream, stream, now)
		}
		if !strings.Contains(ev.Verification.Detail, "Hash: matches the confirmed message's X-de-mail-integrity") {
			t.Errorf("%s: the Hash was not compared with the message: %s", ev.Kind, ev.Verification.Detail)
		}
		got[ev.Kind] = true
	}
	if len(got) != 3 || strayStream == "" {
		t.Fatalf("evidence kinds %v, stray in %q", got, strayStream)
	}

	om := g.message(t, stream, func(m offices.Message) bool { return len(m.Evidence) >= 3 })
	for _, ev := range om.Evidence {
		if !got[ev.Kind] || ev.EventID == "" || ev.Evidence.SHA256 == "" {
			t.Errorf("office API evidence %+v", ev)
		}
	}
	if len(om.Evidence) != 3 {
		t.Errorf("office API shows %d pieces of evidence, want 3", len(om.Evidence))
	}
	// The evidence's raw confirmation is downloadable as the office sees it.
	code, raw := g.curl(t, officeUser, officePassword, "GET", "/offices/bauamt/messages/"+stream+"/evidence/"+om.Evidence[0].EventID, "")
	if code != 200 || !bytes.Contains(raw, []byte("X-de-mail-message-type: confirmation of")) {
		t.Errorf("evidence download: %d, %d bytes", code, len(raw))
	}

	var triage struct {
		Items []offices.TriageItem `json:"items"`
	}
	servetest.WaitFor(t, "the stray confirmation in triage", func() bool {
		code, body := g.curl(t, mailroomUser, mailroomPassword, "GET", "/triage", "")
		if code != 200 || json.Unmarshal(body, &triage) != nil {
			return false
		}
		for _, it := range triage.Items {
			if it.Stream == strayStream && it.Kind == "evidence" {
				return true
			}
		}
		return false
	})
	// Every confirmation is also kept as a receipt of its own.
	rs := g.received(t, 5)
	receipt(t, rs, "*Eingangsbestätigung* Nie eingegangen")
}
