//go:build integration

package osci_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
	"github.com/poststelle/poststelle/test/integration/osci/vhnpki"
	"github.com/poststelle/poststelle/xjustiz"
)

// The parties of the eEB round trip. The SAFE-IDs are made up in the form SAFE gives
// them; the court is the Verwaltungsgericht Koblenz (GDS.Gerichte T6076) as in the
// samples, the authority Bob's mailbox, the lawyer a sender without a secure mailbox.
const (
	courtSafeID  = "DE.Justiz.4b1e5c2a-7d3f-4a6b-9c8e-2f0a1b3c4d5e.7607"
	ourSafeID    = "DE.Justiz.9d2c7e1f-5a4b-4c3d-8e6f-0a1b2c3d4e5f.1234"
	lawyerSafeID = "DE.Justiz.1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d.0042"
	// requestID is the fixture's eigeneNachrichtenID; the other messages get their own.
	requestID = "6f1c2e0a-3b7d-4c5e-9a21-0d8e4f6b7a11"
	// The fixture's Aktenzeichen: the court's and ours, which the rule routes by.
	courtFileNumber = "1 K 519/26.KO"
	ourFileNumber   = "BA-2026/17"
	eebDocumentID   = "2b6d9c4e-8f1a-4e3b-b5c7-1a9e0d2f3c45"

	officeUser       = "jurist"
	officePassword   = "eeb-round-trip-office"
	mailroomUser     = "post1"
	mailroomPassword = "eeb-round-trip-mailroom"
)

// startEGVP starts Bob's Poststelle as an authority's beBPo: the OSCI channel at the
// stand-in, its VHN (the PKCS#12 file vhn) signing the answers' storeDelivery, the
// office rechtsamt that the court's Aktenzeichen routes to (the example rule of
// docs/egvp.md), triage for what the EGVP layer found doubtful.
func startEGVP(t *testing.T, e env, url, vhn string) *bobGateway {
	t.Helper()
	g := &bobGateway{dir: t.TempDir(), api: servetest.FreeAddr(t)}
	g.config = filepath.Join(g.dir, "poststelle.yaml")
	write := func(name, s string) string {
		p := filepath.Join(g.dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash := func(pw string) string {
		h, err := offices.HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	officesFile := write("offices.yaml", fmt.Sprintf("offices:\n  - id: rechtsamt\n    name: Rechtsamt\n    members: [{user: %s, password_hash: %q}]\nmailroom: [{user: %s, password_hash: %q}]\n",
		officeUser, hash(officePassword), mailroomUser, hash(mailroomPassword)))
	rules := write("rules.yaml", `rules:
  - id: egvp-zweifelhaft
    match: {channel: egvp, problems: true}
    triage: true
  - id: vg-koblenz-bauakten
    description: Verwaltungsgericht Koblenz in Bausachen
    match: {xjustiz: {aktenzeichen: ["BA-*"]}}
    offices: [rechtsamt]
`)
	pin := write("pin", "123456\n")
	c := func(name string) string { return filepath.Join(e.certs, name) }
	conf := fmt.Sprintf(`data_dir: %s/data
log_level: debug
offices: %s
routing: {rules: %s}
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
osci:
  intermediary: {url: %q, cipher_cert_file: %q, signature_cert_file: %q}
  cipher: {pkcs12_file: %q, password_file: %q}
  signature: {pkcs12_file: %q, password_file: %q}
  vhn: {pkcs12_file: %q, password_file: %q}
  poll_interval: 300ms
  outbound: true
  business_card: {organisation: Stadt Musterstadt, organisation_unit: Rechtsamt, name: Stadt Musterstadt,
    street: Marktplatz, house_number: "1", post_code: "56068", city: Koblenz, state: Rheinland-Pfalz,
    country: DE, safe_id: %q, role: egvp_bebpo}
`, g.dir, officesFile, rules, g.api, servetest.FreeAddr(t), servetest.FreeAddr(t), url,
		c("osci_manager_cipher_4096.cer"), c("osci_manager_signature_4096.cer"),
		c("bob_cipher_4096.p12"), pin, c("bob_signature_4096.p12"), pin, vhn, pin, ourSafeID)
	write("poststelle.yaml", conf)
	g.proc = servetest.Start(t, poststelleBin(t), g.config, g.api)
	return g
}

// egvpMessage is what a sender puts into its EGVP message to Bob.
type egvpMessage struct {
	// signer is the OSCI signature key file (the transport signature), relative to
	// the sample certificates or absolute.
	signer string
	card   egvp.BusinessCard
	// xjustizID replaces the fixture's eigeneNachrichtenID.
	xjustizID string
	subject   string
	// noEEB turns the fixture's eEB request off.
	noEEB bool
}

// sendEGVP stores an EGVP message for Bob at the stand-in through the library: the
// project_coco container with visitenkarte.xml and nachricht.xml inline and
// xjustiz_nachricht.xml (the committed eEB request, testdata/eeb) and the served
// document as attachments, content signed by the signer and encrypted for Bob. It
// returns the OSCI message id.
func sendEGVP(t *testing.T, e env, url string, m egvpMessage) string {
	t.Helper()
	dir := t.TempDir()
	fixture, err := os.ReadFile(filepath.Join("testdata", "eeb", egvp.FileXJustiz))
	if err != nil {
		t.Fatal(err)
	}
	xj := strings.Replace(string(fixture), requestID, m.xjustizID, 1)
	if m.noEEB {
		xj = strings.Replace(xj, "<tns:ruecksendungEEB.erforderlich>true<", "<tns:ruecksendungEEB.erforderlich>false<", 1)
	}
	desc := egvp.BuildDescription(egvp.Description{Type: "Allgemeine Nachricht", SignatureLevel: "no", RecipientSafeID: ourSafeID,
		Subject: m.subject, SenderFileNumber: courtFileNumber, RecipientFileNumber: ourFileNumber})
	files := map[string][]byte{
		egvp.FileCard: egvp.BuildBusinessCard(m.card), egvp.FileDescription: desc, egvp.FileXJustiz: []byte(xj),
		"beschluss.pdf": []byte("%PDF-1.4\n% Beschluss " + m.xjustizID + "\n%%EOF\n"),
	}
	path := map[string]string{}
	for name, b := range files {
		path[name] = filepath.Join(dir, name)
		if err := os.WriteFile(path[name], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	store := runPeer(t, e, "store", "--intermediary", url, "--signer", m.signer, "--container", egvp.ContainerProject,
		"--subject", "Allgemeine Nachricht",
		"--inline", egvp.FileCard+"="+path[egvp.FileCard], "--inline", egvp.FileDescription+"="+path[egvp.FileDescription],
		"--attach-file", egvp.FileXJustiz+"="+path[egvp.FileXJustiz], "--attach-file", "beschluss.pdf="+path["beschluss.pdf"])
	store.mustSucceed(t, "store the EGVP message")
	id, _ := store.doc["messageId"].(string)
	if id == "" {
		t.Fatalf("no message id: %v", store.doc)
	}
	return id
}

func courtCard() egvp.BusinessCard {
	return egvp.BusinessCard{Organisation: "Verwaltungsgericht Koblenz", Name: "Verwaltungsgericht Koblenz",
		Street: "Deinhardpassage", HouseNumber: "1", PostCode: "56068", City: "Koblenz", State: "Rheinland-Pfalz",
		Country: "DE", SafeID: courtSafeID, Role: "egvp_justiz"}
}

// TestPoststelleEEB is issue 14's round trip through the real serve binary and the
// stand-in intermediary, with the reference library as the court: the court sends a
// Beschluss with an eEB request, its transport signature a VHN ("VHN - Justiz" of
// the test "Justiz VHN CA", online-checked by the intermediary); a lawyer without a
// secure mailbox sends a filing signed with an ordinary certificate. Both are routed
// to the office by the Aktenzeichen, with trust levels vhn and sender-signed. The
// office acknowledges the first request and refuses a second through the office API;
// each eEB arrives in the court's mailbox, the library decrypts it and finds Bob's
// content signature valid, and its xjustiz_nachricht.xml is the
// nachricht.eeb.zuruecklaufend.2200007 that answers the request.
func TestPoststelleEEB(t *testing.T) {
	e := peerEnv(t)
	ca, err := vhnpki.NewCA("Justiz VHN CA")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ca.Close() })
	leaf, err := ca.Issue("VHN - Justiz", "")
	if err != nil {
		t.Fatal(err)
	}
	courtVHN, err := ca.WritePKCS12(leaf, t.TempDir(), "court_vhn", "123456")
	if err != nil {
		t.Fatal(err)
	}
	// The authority's own VHN, for the transport signature of its eEBs: a beBPo VHN
	// bound to its SAFE-ID, from a second test CA.
	bebpoCA, err := vhnpki.NewCA("beBPo VHN CA")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bebpoCA.Close() })
	ourLeaf, err := bebpoCA.Issue("VHN - besonderes elektronisches Behördenpostfach", ourSafeID)
	if err != nil {
		t.Fatal(err)
	}
	ourVHN, err := bebpoCA.WritePKCS12(ourLeaf, t.TempDir(), "bebpo_vhn", "123456")
	if err != nil {
		t.Fatal(err)
	}
	srv := startIntermediary(t, e, "", nil, ca.Certificate, bebpoCA.Certificate)
	g := startEGVP(t, e, srv.URL(), ourVHN)

	const refusedID = "8a3d5f7b-1c2e-4d6f-a8b9-3c4d5e6f7a80"
	first := sendEGVP(t, e, srv.URL(), egvpMessage{signer: courtVHN, card: courtCard(), xjustizID: requestID, subject: "Zustellung Beschluss " + courtFileNumber})
	second := sendEGVP(t, e, srv.URL(), egvpMessage{signer: courtVHN, card: courtCard(), xjustizID: refusedID, subject: "Zustellung Beschluss (2) " + courtFileNumber})
	lawyerCard := egvp.BusinessCard{Organisation: "Kanzlei Muster", Name: "Muster", FirstName: "Max", City: "Koblenz", Country: "DE", SafeID: lawyerSafeID}
	lawyer := sendEGVP(t, e, srv.URL(), egvpMessage{signer: "alice_signature_4096.p12", card: lawyerCard,
		xjustizID: "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7", subject: "Schriftsatz " + ourFileNumber, noEEB: true})

	// A court message whose VHN the CA revoked: the intermediary's online check says
	// so, the Visitenkarte's egvp_justiz is then a claim the certificate does not
	// bear out, and the message goes to triage.
	revokedLeaf, err := ca.Issue("VHN - Justiz", "")
	if err != nil {
		t.Fatal(err)
	}
	ca.Revoke(revokedLeaf.Certificate)
	revokedVHN, err := ca.WritePKCS12(revokedLeaf, t.TempDir(), "court_vhn_revoked", "123456")
	if err != nil {
		t.Fatal(err)
	}
	revoked := sendEGVP(t, e, srv.URL(), egvpMessage{signer: revokedVHN, card: courtCard(),
		xjustizID: "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f", subject: "Zustellung Beschluss (widerrufen) " + courtFileNumber})

	recFirst, recSecond, recLawyer := g.received(t, first), g.received(t, second), g.received(t, lawyer)
	rm := g.received(t, revoked)
	if p := rm.Payload.(*gateway.MessageReceived); p.EGVP == nil || p.EGVP.Origin != "sender-signed" ||
		!slices.ContainsFunc(p.Problems, func(s string) bool { return strings.Contains(s, "claims a justiz mailbox") }) {
		t.Errorf("the message with the revoked VHN: egvp %+v, problems %q; want sender-signed and the Visitenkarte's claim flagged", p.EGVP, p.Problems)
	}
	mailroom := officeClient{t: t, base: "http://" + g.api, user: mailroomUser, password: mailroomPassword}
	servetest.WaitFor(t, "the message with the revoked VHN in triage", func() bool {
		code, b := mailroom.do(http.MethodGet, "/triage/"+rm.Stream, "")
		if code != http.StatusOK && code != http.StatusNotFound {
			t.Fatalf("GET /triage/%s: %d %s", rm.Stream, code, b)
		}
		return code == http.StatusOK
	})
	checkEEBRequest(t, recFirst.Payload.(*gateway.MessageReceived), requestID)
	checkEEBRequest(t, recSecond.Payload.(*gateway.MessageReceived), refusedID)
	lm := recLawyer.Payload.(*gateway.MessageReceived)
	if lm.EGVP == nil || lm.EGVP.Origin != "sender-signed" || lm.EGVP.OriginMailbox != "" || lm.EGVP.OriginReason == "" {
		t.Errorf("the lawyer's message: egvp %+v, want origin sender-signed with a reason", lm.EGVP)
	}
	if ca.Asked() == 0 {
		t.Error("the intermediary never asked the VHN CA's OCSP responder")
	}

	office := officeClient{t: t, base: "http://" + g.api, user: officeUser, password: officePassword}
	for _, c := range []struct {
		stream, origin string
		eeb            bool
	}{{recFirst.Stream, "vhn", true}, {recSecond.Stream, "vhn", true}, {recLawyer.Stream, "sender-signed", false}} {
		msg := office.message(c.stream)
		if r := obj(msg, "routing", "rule"); r != "vg-koblenz-bauakten" {
			t.Errorf("message %s routed by %v, want the Aktenzeichen rule", c.stream, r)
		}
		task := obj(msg, "eeb")
		if !c.eeb && task != nil {
			t.Errorf("message %s asks for no eEB, but the office has the task %v", c.stream, task)
		}
		if docs, _ := obj(task, "documents").([]any); c.eeb && (obj(task, "status") != "open" || obj(task, "due") == nil || len(docs) != 1 || docs[0] != eebDocumentID) {
			t.Errorf("message %s: eEB task %v, want it open and due for document %s (the office's eEB task, issue 14 item 4)", c.stream, task, eebDocumentID)
		}
		if got := obj(msg, "egvp", "origin"); got != c.origin {
			t.Errorf("office API: message %s has egvp.origin %v, want %s (the office's message JSON must carry the EGVP section)", c.stream, got, c.origin)
		}
	}

	// The office acknowledges the first request; the court's library fetches the eEB.
	receivedOn := time.Now().Format("2006-01-02")
	office.eeb(recFirst.Stream, fmt.Sprintf(`{"decision":%q,"receivedOn":%q}`, gateway.EEBAcknowledged, receivedOn))
	servetest.WaitEvents(t, poststelleBin(t), g.config, "ReplySent", 1)
	ack := fetchEEB(t, e, srv.URL(), courtVHN, ourLeaf.Certificate)
	checkEEB(t, ack, requestID)
	if ack.Receipt == nil || ack.Receipt.Refusal != nil || ack.Receipt.Received.Format("2006-01-02") != receivedOn {
		t.Errorf("eEB receipt %+v, want the date of receipt %s", ack.Receipt, receivedOn)
	}

	// The office refuses the second: Inhalt der Sendung unklar oder unvollständig.
	const reason = "Die Anlage zum Beschluss fehlt."
	office.eeb(recSecond.Stream, fmt.Sprintf(`{"decision":%q,"refusalCode":%q,"reason":%q}`, gateway.EEBRefused, xjustiz.RefusalUnclear, reason))
	servetest.WaitEvents(t, poststelleBin(t), g.config, "ReplySent", 2)
	ref := fetchEEB(t, e, srv.URL(), courtVHN, ourLeaf.Certificate)
	checkEEB(t, ref, refusedID)
	if ref.Receipt == nil || ref.Receipt.Refusal == nil || ref.Receipt.Refusal.Code != xjustiz.RefusalUnclear || ref.Receipt.Refusal.Reason != reason {
		t.Errorf("eEB refusal %+v, want code %s with the reason", ref.Receipt, xjustiz.RefusalUnclear)
	}

	// The sender fetched each answer's process card from the intermediary afterwards
	// (the transport's evidence of the answer).
	for _, pl := range servetest.Events(t, poststelleBin(t), g.config, "ReplySent") {
		if r := pl.(*gateway.ReplySent).Response; !strings.Contains(r, "process card") || strings.Contains(r, "not fetched") || strings.Contains(r, "no process card") {
			t.Errorf("answer %s sent without its process card: %q", pl.(*gateway.ReplySent).ReplyID, r)
		}
	}

	// The office sees each answer sent, with the intermediary's evidence of it.
	for _, c := range []struct{ stream, decision string }{{recFirst.Stream, gateway.EEBAcknowledged}, {recSecond.Stream, gateway.EEBRefused}} {
		var msg map[string]any
		done := false
		logLast := func() {
			if !done {
				t.Logf("message %s: replies %v, eEB task %v, evidence %v", c.stream, msg["replies"], msg["eeb"], msg["evidence"])
			}
		}
		// WaitFor ends the test on a time-out; the deferred log shows what was there.
		defer logLast()
		servetest.WaitFor(t, "the eEB sent and its delivery evidence on "+c.stream, func() bool {
			msg = office.message(c.stream)
			return answerSent(msg) && answerEvidence(msg)
		})
		done = true
		if got := obj(msg, "eeb", "decision"); got != c.decision {
			t.Errorf("message %s: eEB task decision %v, want %s", c.stream, got, c.decision)
		}
		// The Prüfprotokoll's evidence section lists the answer's evidence too.
		code, page := office.do(http.MethodGet, "/offices/rechtsamt/messages/"+c.stream+"/evidence", "")
		replyID, _ := obj(msg, "eeb", "replyId").(string)
		if code != http.StatusOK || replyID == "" || !strings.Contains(string(page), "Antwort "+replyID) || !strings.Contains(string(page), "intermediary") {
			t.Errorf("evidence page of %s (%d) does not list the intermediary's evidence of answer %q:\n%s", c.stream, code, replyID, page)
		}
	}
}

// checkEEBRequest: the court's message came with its VHN recognised and its eEB request
// read, and nothing doubtful.
func checkEEBRequest(t *testing.T, m *gateway.MessageReceived, xjustizID string) {
	t.Helper()
	if len(m.Problems) != 0 {
		t.Errorf("request %s: problems %q", xjustizID, m.Problems)
	}
	f := m.EGVP
	if f == nil {
		t.Fatalf("request %s: no egvp section", xjustizID)
	}
	if f.Origin != "vhn" || f.OriginMailbox != "justiz" || f.OriginRoute != "Diese Nachricht wurde von der Justiz versandt." {
		t.Errorf("request %s: origin %s (%s, %q): %s", xjustizID, f.Origin, f.OriginMailbox, f.OriginRoute, f.OriginReason)
	}
	if f.SenderSafeID != courtSafeID || f.SenderRole != "egvp_justiz" || f.RecipientSafeID != ourSafeID {
		t.Errorf("request %s: SAFE-IDs %s (%s) → %s", xjustizID, f.SenderSafeID, f.SenderRole, f.RecipientSafeID)
	}
	if f.SenderFileNumber != courtFileNumber || f.RecipientFileNumber != ourFileNumber || f.MessageType != "nachricht.gds.uebermittlungSchriftgutobjekte" {
		t.Errorf("request %s: Aktenzeichen %q / %q, type %s", xjustizID, f.SenderFileNumber, f.RecipientFileNumber, f.MessageType)
	}
	if !f.EEBRequested || !slices.Equal(f.EEBDocuments, []string{eebDocumentID}) || f.XJustizMessageID != xjustizID || f.XJustizVersion != "3.5.1" {
		t.Errorf("request %s: eEB requested %v for %v, XJustiz id %s version %s", xjustizID, f.EEBRequested, f.EEBDocuments, f.XJustizMessageID, f.XJustizVersion)
	}
}

// fetchEEB is the court fetching its mailbox with the library (the oldest delivery):
// decrypted with its cipher key, Bob's content signature checked, the files written
// out, the transport signature our VHN (ourVHN) as the intermediary inspected it; it
// returns the answer's XJustiz message as our xjustiz package reads it.
func fetchEEB(t *testing.T, e env, url, courtSigner string, ourVHN *x509.Certificate) *xjustiz.Message {
	t.Helper()
	out := t.TempDir()
	fetch := runPeer(t, e, "fetch", "--intermediary", url, "--signer", courtSigner, "--decrypter", "carol_cipher_4096.p12", "--out-dir", out)
	fetch.mustSucceed(t, "the court fetches the eEB")
	checkSigned(t, fetch.doc)
	sum := sha256.Sum256(ourVHN.Raw)
	if got := obj(fetch.doc, "originator", "sha256"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("the eEB's transport signature is by %v, want the authority's VHN (osci.vhn)", obj(fetch.doc, "originator"))
	}
	inspected := false
	ins, _ := obj(fetch.doc, "processCard", "inspections").([]any)
	for _, in := range ins {
		if iss, _ := obj(in, "issuer").(string); strings.Contains(iss, "CN=beBPo VHN CA") {
			inspected = obj(in, "mathResult") == "ok" && obj(in, "offlineResult") == "valid" && obj(in, "onlineResult") == true
		}
	}
	if !inspected {
		t.Errorf("the eEB's process card has no positive inspection of the authority's VHN: %v", ins)
	}
	inline := inlineContents(fetch.doc)
	card, desc := inline[egvp.FileCard], inline[egvp.FileDescription]
	if !strings.Contains(desc, "<Betreff>EB zu: "+courtFileNumber+"</Betreff>") || !strings.Contains(desc, "<Empfaengerkennung>"+courtSafeID+"</Empfaengerkennung>") {
		t.Errorf("the eEB's nachricht.xml:\n%s", desc)
	}
	if !strings.Contains(card, "<Nutzer_ID>"+ourSafeID+"</Nutzer_ID>") {
		t.Errorf("the eEB's visitenkarte.xml is not the authority's:\n%s", card)
	}
	if _, ok := attachmentsOf(fetch.doc)[egvp.FileXJustiz]; !ok {
		t.Fatalf("the eEB has no %s attachment: %v", egvp.FileXJustiz, attachmentsOf(fetch.doc))
	}
	raw, err := os.ReadFile(filepath.Join(out, egvp.FileXJustiz))
	if err != nil {
		t.Fatal(err)
	}
	m, err := xjustiz.Parse(raw, xjustiz.Limits{})
	if err != nil {
		t.Fatalf("the eEB's %s: %v\n%s", egvp.FileXJustiz, err, raw)
	}
	if len(m.Problems) != 0 {
		t.Errorf("the eEB's %s: problems %q\n%s", egvp.FileXJustiz, m.Problems, raw)
	}
	return m
}

// checkEEB: the answer is the eEB message type, names the request and has the
// Aktenzeichen swapped.
func checkEEB(t *testing.T, m *xjustiz.Message, request string) {
	t.Helper()
	if m.Type != "nachricht.eeb.zuruecklaufend" || m.TypeCode != "2200007" || !m.IsReceipt() {
		t.Errorf("eEB message type %s.%s", m.Type, m.TypeCode)
	}
	h := m.Header
	if h.ForeignMessageID != request || h.OwnMessageID == "" || h.OwnMessageID == request {
		t.Errorf("eEB ids: own %q, fremde %q; want fremde = the request's %s", h.OwnMessageID, h.ForeignMessageID, request)
	}
	if h.SenderFileNumber != ourFileNumber || h.RecipientFileNumber != courtFileNumber {
		t.Errorf("eEB Aktenzeichen %q / %q, want ours %q and the court's %q", h.SenderFileNumber, h.RecipientFileNumber, ourFileNumber, courtFileNumber)
	}
	if h.Recipient.String() != "gericht:T6076" {
		t.Errorf("eEB addressed to %s, want the requesting court gericht:T6076", h.Recipient)
	}
}

// checkSigned: the library decrypted every container and found every content
// signature valid, and there was one.
func checkSigned(t *testing.T, doc map[string]any) {
	t.Helper()
	cs, _ := doc["containers"].([]any)
	var sigs int
	for _, c := range cs {
		if err := obj(c, "decryptError"); err != nil {
			t.Errorf("eEB not decrypted: %v", err)
		}
		ss, _ := obj(c, "signatures").([]any)
		for _, s := range ss {
			sigs++
			if obj(s, "valid") != true {
				t.Errorf("content signature not valid: %v", s)
			}
		}
	}
	if sigs == 0 {
		t.Error("the eEB arrived unsigned")
	}
}

// inlineContents collects the data contents by their Base64Content id.
func inlineContents(doc map[string]any) map[string]string {
	out := map[string]string{}
	cs, _ := doc["containers"].([]any)
	for _, c := range cs {
		contents, _ := obj(c, "contents").([]any)
		for _, ct := range contents {
			if obj(ct, "type") == "data" {
				id, _ := obj(ct, "refId").(string)
				out[id], _ = obj(ct, "text").(string)
			}
		}
	}
	return out
}

// answerSent: the answer is sent and the office's eEB task says so.
func answerSent(msg map[string]any) bool {
	rs, _ := msg["replies"].([]any)
	return len(rs) == 1 && obj(rs[0], "state") == "sent" && obj(msg, "eeb", "status") == "sent"
}

// answerEvidence: the intermediary's evidence about the answer (its process card:
// delivered into the court's mailbox, or retrieved) is on the message.
func answerEvidence(msg map[string]any) bool {
	ev, _ := msg["evidence"].([]any)
	for _, e := range ev {
		if obj(e, "channel") == string(gateway.ChannelEGVP) && obj(e, "replyId") != nil && obj(e, "attester", "role") == "intermediary" &&
			(obj(e, "kind") == string(gateway.EvidenceDelivered) || obj(e, "kind") == string(gateway.EvidenceRetrieved)) &&
			obj(e, "verification", "indication") == "TOTAL_PASSED" {
			return true
		}
	}
	return false
}

// officeClient is the office rechtsamt on the office API.
type officeClient struct {
	t                    *testing.T
	base, user, password string
}

func (c officeClient) do(method, path, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(c.user, c.password)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// message waits until the office has the message (routing is asynchronous) and
// returns its JSON.
func (c officeClient) message(stream string) map[string]any {
	c.t.Helper()
	var msg map[string]any
	servetest.WaitFor(c.t, "message "+stream+" in the office rechtsamt", func() bool {
		code, b := c.do(http.MethodGet, "/offices/rechtsamt/messages/"+stream, "")
		if code == http.StatusNotFound {
			return false
		}
		if code != http.StatusOK {
			c.t.Fatalf("GET message %s: %d %s", stream, code, b)
		}
		if err := json.Unmarshal(b, &msg); err != nil {
			c.t.Fatal(err)
		}
		return true
	})
	return msg
}

// eeb posts the office's eEB decision (the office API's eEB endpoint).
func (c officeClient) eeb(stream, body string) {
	c.t.Helper()
	code, b := c.do(http.MethodPost, "/offices/rechtsamt/messages/"+stream+"/eeb", body)
	if code != http.StatusAccepted {
		c.t.Fatalf("POST .../messages/%s/eeb %s: %d %s (the office API's eEB endpoint, issue 14 item 4)", stream, body, code, b)
	}
}
