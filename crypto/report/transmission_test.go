package report

import (
	"bytes"
	"strings"
	"testing"
)

// egvpReport is the report of an EGVP message without signed documents,
// on the route t.
func egvpReport(t *Transmission) *Report {
	r := &Report{
		Tool: "poststelle test", ValidationTime: mustTime("2021-12-08T10:03:55Z"),
		Document:     Document{Name: "Testnachricht", SHA256: "5d6f1c0e2ab4b0a7d1b9e0f2c3a4b5c6d7e8f90112233445566778899aabbccd", Size: 48213},
		Signatures:   []Signature{},
		Transmission: t,
	}
	r.ApplyWrittenForm(WrittenFormPolicy{})
	return r
}

var transportCert = &Certificate{
	Subject: "CN=VHN - besonderes elektronisches Behördenpostfach,UID=DE.Justiz.7a7a0af6-daae-42a6-875c-3d9aec339a71.7c31",
	Issuer:  "CN=beBPo VHN CA 2,O=Bundesnotarkammer,C=DE", Serial: "1636965732661",
	SHA256:    "9b1f2a0c4e5d6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8",
	NotBefore: mustTime("2021-11-15T08:39:12Z"), NotAfter: mustTime("2024-11-15T08:42:12Z"),
}

func vhnTransmission() *Transmission {
	return &Transmission{
		Channel: "egvp", Origin: OriginVHN, OriginReason: "VHN of a bebpo mailbox",
		Route: "Sicherer Übermittlungsweg aus einem besonderen Behördenpostfach.", Mailbox: "bebpo",
		SecureRoute:  "§ 130a Abs. 4 Satz 1 Nr. 3 ZPO",
		SenderSafeID: "DE.Justiz.7a7a0af6-daae-42a6-875c-3d9aec339a71.7c31", SenderSafeIDProven: true,
		SenderRoleClaimed: "egvp_bebpo", SenderRoleProven: "bebpo", TransportCertificate: transportCert,
		ContentSignatures: []string{"project_coco: valid (ZZZ Testpostfach Polizeipräsidium Koblenz)", "govello_coco: unsigned"},
		XJustiz: &XJustizFacts{MessageType: "nachricht.gds.uebermittlungSchriftgutobjekte", Version: "3.2.1",
			MessageID: "c0ffee00-1111-2222-3333-444455556666", SenderFileNumber: "PP-KO 17/21 <b>",
			RecipientFileNumber: "1 K 519/20.KO", RecipientCode: "T6076", EEBRequested: true, EEBDocuments: []string{"d1", "d2"}},
	}
}

// senderSigned is the same message when the transport certificate is no VHN:
// the claims stay claims.
func senderSigned() *Transmission {
	t := vhnTransmission()
	t.Origin, t.OriginReason, t.Route, t.Mailbox, t.SecureRoute = OriginSenderSigned, "the transport signature's certificate is not a VHN certificate", "", "", ""
	t.SenderSafeIDProven, t.SenderRoleProven = false, ""
	t.TransportCertificate = &Certificate{Subject: "CN=ZZZ Testpostfach\nFake: line", Issuer: "CN=ZZZ Testpostfach", Serial: "1", SHA256: "aa"}
	t.Problems = []string{"egvp: the Visitenkarte claims a bebpo mailbox, the transport certificate proves none <i>"}
	return t
}

// TestTransmissionGolden pins the Prüfprotokoll's section "Herkunftsnachweis
// / Übermittlungsweg" in every form, for a VHN message and one without.
func TestTransmissionGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    *Transmission
	}{{"egvp-vhn", vhnTransmission()}, {"egvp-sender-signed", senderSigned()}} {
		t.Run(tc.name, func(t *testing.T) {
			r := egvpReport(tc.t)
			for _, f := range []struct {
				ext   string
				write func(*bytes.Buffer, *Report) error
			}{
				{"json", func(b *bytes.Buffer, r *Report) error { return WriteJSON(b, r) }},
				{"txt", func(b *bytes.Buffer, r *Report) error { return WriteText(b, r) }},
				{"html", func(b *bytes.Buffer, r *Report) error { return WriteHTML(b, r) }},
			} {
				var buf bytes.Buffer
				if err := f.write(&buf, r); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, tc.name+"."+f.ext, buf.Bytes())
				if strings.Contains(buf.String(), "\nFake: line") || f.ext == "html" && (strings.Contains(buf.String(), "<b>") || strings.Contains(buf.String(), "<i>")) {
					t.Errorf("%s: a value from the message forged a line or markup", f.ext)
				}
			}
		})
	}
}

// TestTransmissionVerdicts: the same message without signed documents
// satisfies the written form on a secure route with VHN and not without, and
// the protocol says which and why.
func TestTransmissionVerdicts(t *testing.T) {
	var vhn, other bytes.Buffer
	rv, ro := egvpReport(vhnTransmission()), egvpReport(senderSigned())
	if err := WriteHTML(&vhn, rv); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&other, ro); err != nil {
		t.Fatal(err)
	}
	if !rv.WrittenFormSatisfied || !strings.Contains(rv.WrittenFormReason, "§ 130a Abs. 3 Satz 1 Alt. 2 ZPO") {
		t.Errorf("VHN: %v %q", rv.WrittenFormSatisfied, rv.WrittenFormReason)
	}
	if ro.WrittenFormSatisfied || !strings.Contains(ro.WrittenFormReason, "not a VHN certificate") {
		t.Errorf("sender-signed: %v %q", ro.WrittenFormSatisfied, ro.WrittenFormReason)
	}
	for _, want := range []string{"Schriftform ersetzt: ja", "vertrauenswürdiger Herkunftsnachweis (VHN) geprüft", "§ 130a Abs. 4 Satz 1 Nr. 3 ZPO",
		"nachgewiesen durch das VHN-Zertifikat", "besonderes elektronisches Behördenpostfach (beBPo)", "ja / yes (d1, d2)"} {
		if !strings.Contains(vhn.String(), want) {
			t.Errorf("VHN protocol lacks %q", want)
		}
	}
	for _, want := range []string{"Schriftform ersetzt: nein", "Transportsignatur ohne gültigen Herkunftsnachweis", "Angabe der Visitenkarte, nicht nachgewiesen",
		"Auffälligkeiten", "the Visitenkarte claims a bebpo mailbox, the transport certificate proves none &lt;i&gt;"} {
		if !strings.Contains(other.String(), want) {
			t.Errorf("sender-signed protocol lacks %q", want)
		}
	}
}

func TestTransmissionWrittenForm(t *testing.T) {
	qes := Signature{ID: "S-1", Indication: TotalPassed, Qualification: QESig}
	adesig := Signature{ID: "S-1", Indication: TotalPassed, Qualification: AdESig}
	justiz := vhnTransmission()
	justiz.Mailbox, justiz.SecureRoute = "justiz", ""
	tests := []struct {
		name   string
		sigs   []Signature
		t      *Transmission
		want   bool
		reason string
	}{
		{"QES decides before the route", []Signature{qes}, vhnTransmission(), true, "S-1 is a valid qualified electronic signature"},
		{"secure route, simple signature", []Signature{adesig}, vhnTransmission(), true, "secure route (§ 130a Abs. 4 Satz 1 Nr. 3 ZPO)"},
		{"secure route, no signature", nil, vhnTransmission(), true, "is not checked here (the document carries no signature)"},
		{"no VHN, simple signature", []Signature{adesig}, senderSigned(), false, "valid but not qualified (AdESig); no secure route either"},
		{"no VHN, QES", []Signature{qes}, senderSigned(), true, "S-1 is a valid qualified"},
		{"a court's VHN is no secure route to a court", nil, justiz, false, "is not one of the secure routes of § 130a Abs. 4 ZPO (a court's own documents need a qualified signature, § 130b ZPO)"},
		{"no transport signature", nil, &Transmission{Channel: "egvp", Origin: OriginNone}, false, "(none: no proof of origin)"},
		{"VHN claimed without a route", nil, &Transmission{Channel: "egvp", Origin: OriginSenderSigned, SecureRoute: "§ 130a Abs. 4 Satz 1 Nr. 3 ZPO"}, false, "no verified VHN"},
		{"no transmission", []Signature{adesig}, nil, false, "valid but not qualified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Signatures: tt.sigs, Transmission: tt.t}
			r.ApplyWrittenForm(WrittenFormPolicy{})
			if r.WrittenFormSatisfied != tt.want || !strings.Contains(r.WrittenFormReason, tt.reason) {
				t.Errorf("got (%v, %q), want (%v, …%q…)", r.WrittenFormSatisfied, r.WrittenFormReason, tt.want, tt.reason)
			}
		})
	}
}
