package officeapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/projection"
)

// TestMessageEvidence records a provider's signed confirmation of a message
// and checks that the office sees it in the message view and can download
// its bytes, and that another office cannot.
func TestMessageEvidence(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	ma := e.seed("ma", "a", "a.pdf")
	refs := projection.References{}
	if err := e.runner.Setup(ctx, refs); err != nil {
		t.Fatal(err)
	}
	rec := projection.NewEvidenceRecorder(e.runner)
	conf, _ := e.blobs.PutBytes(ctx, []byte("Eingangsbestaetigung ma"))
	got, err := rec.Record(ctx, "", &gateway.DeliveryEvidenceRecorded{Channel: gateway.ChannelSMTP, Kind: gateway.EvidenceDelivered,
		References: []gateway.EvidenceReference{{Kind: "messageId", Value: "<ma@example.org>"}},
		Attester:   gateway.Attester{Role: "provider", Name: "Provider"}, AttestedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		EvidenceID: "<conf-1@provider.example>", Evidence: conf, MediaType: "message/rfc822",
		Verification: &gateway.EvidenceVerification{Indication: "TOTAL_PASSED", Format: "S/MIME"}})
	if err != nil || !got.Linked || got.Stream != ma.Stream {
		t.Fatalf("record: %+v %v", got, err)
	}
	e.catchUp()

	member := creds{token: e.tokens["member-a"]}
	var detail messageDetail
	if err := json.Unmarshal([]byte(readBody(t, e.do(member, "GET", "/offices/a/messages/"+ma.Stream, ""))), &detail); err != nil {
		t.Fatal(err)
	}
	if len(detail.Evidence) != 1 || detail.Evidence[0].EventID != got.EventID || detail.Evidence[0].Kind != gateway.EvidenceDelivered ||
		detail.Evidence[0].Verification == nil || detail.Evidence[0].LinkedBy != "senderMessageId" {
		t.Fatalf("evidence in the message view: %+v", detail.Evidence)
	}
	resp := e.do(member, "GET", "/offices/a/messages/"+ma.Stream+"/evidence/"+got.EventID, "")
	body := readBody(t, resp)
	if resp.StatusCode != 200 || body != "Eingangsbestaetigung ma" || resp.Header.Get("Content-Type") != "message/rfc822" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("download: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp := e.do(member, "GET", "/offices/a/messages/"+ma.Stream+"/evidence/dev-nothing", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown evidence: %d", resp.StatusCode)
	}
	if resp := e.do(creds{token: e.tokens["member-b"]}, "GET", "/offices/a/messages/"+ma.Stream+"/evidence/"+got.EventID, ""); resp.StatusCode != 403 {
		t.Fatalf("other office: %d", resp.StatusCode)
	}

	// The Prüfprotokoll's section lists the same evidence, escaped.
	resp = e.do(member, "GET", "/offices/a/messages/"+ma.Stream+"/evidence", "")
	page := readBody(t, resp)
	for _, want := range []string{"<h1>Prüfprotokoll: Zustellnachweise</h1>", "<td>delivered</td><td>Nachricht</td><td>provider Provider</td>",
		"<td>2026-01-02T03:04:05Z</td>", "<td>TOTAL_PASSED </td>", "<td>senderMessageId</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("evidence page lacks %q:\n%s", want, page)
		}
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("evidence page: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := e.do(creds{token: e.tokens["member-b"]}, "GET", "/offices/a/messages/"+ma.Stream+"/evidence", ""); resp.StatusCode != 403 {
		t.Fatalf("other office's evidence page: %d", resp.StatusCode)
	}
}

// TestEvidencePageDeMail renders the section for a De-Mail message with
// evidence about an answer: every field the template names exists, and
// what a provider wrote is escaped.
func TestEvidencePageDeMail(t *testing.T) {
	m := offices.Message{Stream: "msg-1", Channel: gateway.ChannelDeMail, Subject: "<b>Antrag</b>",
		DeMail: &gateway.DeMailEvidence{Verdict: "provider-signed", VerdictDetail: "signed by <provider>", Qualification: "QESeal",
			QualificationDetail: "PASSED", Authoritative: true, WrittenForm: true, ConfirmReceipt: true},
		Evidence: []offices.Evidence{{EventID: "ev-1", DeliveryEvidenceRecorded: gateway.DeliveryEvidenceRecorded{
			Channel: gateway.ChannelDeMail, Kind: gateway.EvidenceDelivered, ReplyID: "rpl-1", LinkedBy: "replyId",
			Attester:     gateway.Attester{Role: "provider", Name: "provider.de-mail.example"},
			Verification: &gateway.EvidenceVerification{Indication: "TOTAL_PASSED", Qualification: "QESeal"},
			Problems:     []string{"a <problem>"}}}}}
	var b strings.Builder
	if err := evidencePage.Execute(&b, m); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<h2>De-Mail</h2>", "<td>true</td>", "provider-signed: signed by &lt;provider&gt;",
		"<td>QESeal PASSED</td>", "Versand false, Eingang true, Abholung false", "<td>Antwort rpl-1</td>",
		"<td>QESeal</td><td>replyId</td><td>a &lt;problem&gt;<br></td>", "&lt;b&gt;Antrag&lt;/b&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}
