package verification_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"io"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/oscichannel"
	"github.com/poststelle/poststelle/crypto/pades/padestest"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/verification"
	"github.com/poststelle/poststelle/internal/corpus"
)

// The real beBPo sample: a police authority's message with three PDFs.
const (
	sampleDir    = "Testnachricht_xjustiz321"
	policeSafeID = "DE.Justiz.7a7a0af6-daae-42a6-875c-3d9aec339a71.7c31"
	bebpoRoute   = "Sicherer Übermittlungsweg aus einem besonderen Behördenpostfach."
)

type egvpEnv struct {
	ctx context.Context
	bs  *blob.Store
	p   *verifytest.PKI
	hs  []pipeline.Handler
}

func newEGVPEnv(t *testing.T) *egvpEnv {
	bs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := verifytest.New(t, "p256")
	hs, err := verification.Handlers(ctx, verification.Config{TrustAnchors: []string{p.CACert}, MaxPartSize: 8 << 20}, verification.Deps{Blobs: bs})
	if err != nil {
		t.Fatal(err)
	}
	return &egvpEnv{ctx: ctx, bs: bs, p: p, hs: hs}
}

func (e *egvpEnv) put(t *testing.T, b []byte) blob.Ref {
	t.Helper()
	r, err := e.bs.PutBytes(e.ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// part lists a file as the OSCI channel lists an attachment of the
// project_coco container: its Content-ID as the file name.
func (e *egvpEnv) part(t *testing.T, i int, name, kind string, b []byte) gateway.Part {
	return gateway.Part{Path: "c1." + itoa(i), MediaType: "application/octet-stream", Filename: name, Kind: kind, Blob: e.put(t, b)}
}

func withType(p gateway.Part, mediaType string) gateway.Part {
	p.MediaType = mediaType
	return p
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

func (e *egvpEnv) verify(t *testing.T, m *gateway.MessageReceived) (*gateway.SignaturesVerified, string) {
	t.Helper()
	out, err := e.hs[0].Handle(e.ctx, &eventstore.Event{RecordedAt: m.ReceivedAt}, m)
	if err != nil {
		t.Fatal(err)
	}
	sv := out[0].(*gateway.SignaturesVerified)
	rc, err := e.bs.Open(e.ctx, sv.ReportHTML)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	html, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return sv, string(html)
}

func sampleFile(t *testing.T, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(corpus.Path(t, append([]string{"egvp", "Messages", sampleDir}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEGVPDocumentSignatures: the files of an EGVP message as the OSCI
// channel lists them are verified like e-mail attachments: detached
// signatures made by openssl pair with their documents by name whatever
// their extension (.pkcs7, .sig as the channel marks them, .p7s by its
// own), a signature over other bytes fails, a PAdES PDF and a XAdES
// document are verified, and
// the real sample's unsigned PDFs and XJustiz message add nothing, as its
// Prüfvermerk lists them without a signature.
func TestEGVPDocumentSignatures(t *testing.T) {
	e := newEGVPEnv(t)
	antrag := sampleFile(t, "attachments", "003_Sachverhalt.pdf")
	anlage := []byte("<anlage>Lichtbilder 1-4</anlage>")
	bescheid := []byte("%PDF-1.4 Bescheid")
	pades, err := padestest.Sign(padestest.Unsigned("Urteil 1 K 519/20.KO", 0), "Sig", "ETSI.CAdES.detached",
		func(covered []byte) ([]byte, error) { return e.p.Sign(t, covered, false), nil })
	if err != nil {
		t.Fatal(err)
	}
	xades, err := os.ReadFile(corpus.Path(t, "signatures", "xades", "dss-signed.xml"))
	if err != nil {
		t.Fatal(err)
	}
	parts := []gateway.Part{
		e.part(t, 1, "visitenkarte.xml", "attachment", sampleFile(t, "additionals", "visitenkarte.xml")),
		e.part(t, 2, "001_Ermittlungsübersicht_Abverfügung.pdf", "attachment", sampleFile(t, "attachments", "001_Ermittlungsübersicht_Abverfügung.pdf")),
		e.part(t, 3, "xjustiz_nachricht.xml", "attachment", sampleFile(t, "attachments", "xjustiz_nachricht.xml")),
		e.part(t, 4, "003_Sachverhalt.pdf", "attachment", antrag),
		withType(e.part(t, 5, "003_Sachverhalt.pdf.pkcs7", "signature", e.p.Sign(t, antrag, false)), "application/pkcs7-signature"),
		e.part(t, 6, "anlage.xml", "attachment", anlage),
		e.part(t, 7, "anlage.xml.sig", "signature", e.p.Sign(t, []byte("<anlage>Lichtbilder 1-5</anlage>"), false)),
		e.part(t, 8, "bescheid.pdf", "attachment", bescheid),
		e.part(t, 9, "bescheid.pdf.p7s", "attachment", e.p.Sign(t, bescheid, false)),
		e.part(t, 10, "urteil.pdf", "attachment", pades),
		e.part(t, 11, "vermerk.xml", "attachment", xades),
	}
	m := &gateway.MessageReceived{Channel: gateway.ChannelEGVP, Subject: "Testnachricht", ReceivedAt: time.Now(), Parts: parts}
	sv, _ := e.verify(t, m)
	// The XAdES sample's signer has no anchor here: INDETERMINATE, as DSS says without one.
	want := []string{"c1.5 CAdES TOTAL_PASSED", "c1.7 CAdES TOTAL_FAILED", "c1.9 CAdES TOTAL_PASSED", "c1.10 PAdES TOTAL_PASSED", "c1.11 XAdES INDETERMINATE"}
	var got []string
	for _, s := range sv.Signatures {
		got = append(got, s.Part+" "+s.Format+" "+s.Indication)
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("signatures %q, want %q (%+v)", got, want, sv.Signatures)
	}
	if sv.Signatures[1].SubIndication != "HASH_FAILURE" || sv.Signatures[4].SubIndication != "NO_CERTIFICATE_CHAIN_FOUND" {
		t.Errorf("signature over other bytes: %s, want HASH_FAILURE; XAdES without anchor: %s, want NO_CERTIFICATE_CHAIN_FOUND",
			sv.Signatures[1].SubIndication, sv.Signatures[4].SubIndication)
	}
}

// vhnCertificate makes a transport certificate as BNotK issues it to a
// beBPo (subject CN and UID as in the samples), self-made here.
func vhnCertificate(t *testing.T, cn, issuer, uid string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1636965732661),
		Subject: pkix.Name{CommonName: cn, ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, Value: uid}}},
		Issuer:  pkix.Name{CommonName: issuer}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(3, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature}
	parent := &x509.Certificate{Subject: pkix.Name{CommonName: issuer}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// egvpMessage is the beBPo sample as the OSCI channel records it, with the
// proof of origin o and the transport certificate der.
func egvpMessage(parts []gateway.Part, der []byte, o gateway.EGVPFields) *gateway.MessageReceived {
	sum := sha256.Sum256(der)
	f := gateway.EGVPFields{SenderSafeID: policeSafeID, SenderRole: "egvp_bebpo",
		RecipientSafeID: "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7", SenderFileNumber: "PP-KO 4711/21",
		MessageType: "nachricht.straf.uebermittlung_schriftgutobjekte", XJustizVersion: "3.2.1", XJustizMessageID: "3f1b0c6e-7d1a-4c3e-9e0b-2a5d8c7f6e41",
		Origin: o.Origin, OriginMailbox: o.OriginMailbox, OriginRoute: o.OriginRoute, OriginReason: o.OriginReason,
		TransportCertificate: hex.EncodeToString(sum[:])}
	return &gateway.MessageReceived{Channel: gateway.ChannelEGVP, Subject: "Testnachricht",
		ReceivedAt: time.Now().UTC(), Parts: parts, EGVP: &f,
		Metadata: map[string]string{
			"osci.originatorSignatureCertificate": base64.StdEncoding.EncodeToString(der),
			"osci.contentSignatures":              "project_coco: valid (ZZZ Testpostfach Polizeipräsidium Koblenz); govello_coco: unsigned",
		}}
}

// TestEGVPWrittenForm: the same message, its documents signed by a
// non-qualified signature only, satisfies the written form when it came
// from a beBPo with a verified VHN (§ 130a Abs. 3 Satz 1 Alt. 2, Abs. 4 Nr.
// 3 ZPO) and not when the transport certificate proved no VHN, nor with a
// court's VHN; the Prüfprotokoll says which route it was and why.
func TestEGVPWrittenForm(t *testing.T) {
	e := newEGVPEnv(t)
	doc := sampleFile(t, "attachments", "002_Antrag_auf_richterliche_Entscheidung_zur_Wohnungsdurchsuchung.pdf")
	parts := []gateway.Part{
		e.part(t, 1, "002_Antrag.pdf", "attachment", doc),
		e.part(t, 2, "002_Antrag.pdf.pkcs7", "signature", e.p.Sign(t, doc, false)),
	}
	vhn := vhnCertificate(t, "VHN - besonderes elektronisches Behördenpostfach", "beBPo VHN CA 2", policeSafeID)
	plain := vhnCertificate(t, "ZZZ Testpostfach Polizeipräsidium Koblenz", "ZZZ Testpostfach Polizeipräsidium Koblenz", policeSafeID)
	justiz := vhnCertificate(t, "VHN - Justiz", "Justiz VHN CA", "")
	tests := []struct {
		name      string
		der       []byte
		origin    gateway.EGVPFields
		satisfied bool
		reason    string
		protocol  []string
	}{
		{"beBPo with VHN", vhn, gateway.EGVPFields{Origin: "vhn", OriginMailbox: "bebpo", OriginRoute: bebpoRoute, OriginReason: "VHN of a bebpo mailbox"},
			true, "secure route (§ 130a Abs. 4 Satz 1 Nr. 3 ZPO (beBPo))",
			[]string{"Schriftform ersetzt: ja", "Herkunftsnachweis / Übermittlungsweg", "vertrauenswürdiger Herkunftsnachweis (VHN) geprüft", bebpoRoute,
				"nachgewiesen durch das VHN-Zertifikat", "CN=VHN - besonderes elektronisches Behördenpostfach", "CN=beBPo VHN CA 2",
				"project_coco: valid (ZZZ Testpostfach Polizeipräsidium Koblenz)", "PP-KO 4711/21", "nachricht.straf.uebermittlung_schriftgutobjekte"}},
		{"no VHN", plain, gateway.EGVPFields{Origin: "sender-signed", OriginReason: "the transport signature's certificate is not a VHN certificate"},
			false, "no secure route either: the message has no verified VHN (sender-signed: the transport signature's certificate is not a VHN certificate)",
			[]string{"Schriftform ersetzt: nein", "Transportsignatur ohne gültigen Herkunftsnachweis", "kein sicherer Übermittlungsweg nachgewiesen",
				"Angabe der Visitenkarte, nicht nachgewiesen", "CN=ZZZ Testpostfach Polizeipräsidium Koblenz"}},
		{"court's VHN", justiz, gateway.EGVPFields{Origin: "vhn", OriginMailbox: "justiz", OriginRoute: "Diese Nachricht wurde von der Justiz versandt.", OriginReason: "VHN of a justiz mailbox"},
			false, "is not one of the secure routes of § 130a Abs. 4 ZPO (a court's own documents need a qualified signature, § 130b ZPO)",
			[]string{"Schriftform ersetzt: nein", "Diese Nachricht wurde von der Justiz versandt.", "Postfach der Justiz", "Angabe der Visitenkarte, nicht nachgewiesen"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sv, html := e.verify(t, egvpMessage(parts, tc.der, tc.origin))
			if len(sv.Signatures) != 1 || sv.Signatures[0].Indication != "TOTAL_PASSED" || sv.Signatures[0].Qualification == "QESig" {
				t.Fatalf("signatures %+v, want one valid non-qualified", sv.Signatures)
			}
			if sv.WrittenFormSatisfied != tc.satisfied || !strings.Contains(sv.WrittenFormReason, tc.reason) {
				t.Errorf("written form %v %q, want %v …%q…", sv.WrittenFormSatisfied, sv.WrittenFormReason, tc.satisfied, tc.reason)
			}
			for _, w := range tc.protocol {
				if !strings.Contains(html, w) {
					t.Errorf("Prüfprotokoll lacks %q", w)
				}
			}
		})
	}
}

// TestEGVPTransportCertificateMismatch: a kept certificate that is not the
// one the proof of origin names is not shown as if it were.
func TestEGVPTransportCertificateMismatch(t *testing.T) {
	e := newEGVPEnv(t)
	m := egvpMessage(nil, vhnCertificate(t, "VHN - besonderes elektronisches Behördenpostfach", "beBPo VHN CA 2", policeSafeID),
		gateway.EGVPFields{Origin: "vhn", OriginMailbox: "bebpo", OriginRoute: bebpoRoute})
	other := vhnCertificate(t, "Mallory", "Mallory CA", policeSafeID)
	m.Metadata["osci.originatorSignatureCertificate"] = base64.StdEncoding.EncodeToString(other)
	sv, html := e.verify(t, m)
	if !sv.WrittenFormSatisfied || !strings.Contains(html, m.EGVP.TransportCertificate) || strings.Contains(html, "Mallory") {
		t.Errorf("written form %v; protocol shows the other certificate or lacks the fingerprint %s", sv.WrittenFormSatisfied, m.EGVP.TransportCertificate)
	}
}

// TestOSCIMetadataKeys pins the keys verification reads to the OSCI channel's.
func TestOSCIMetadataKeys(t *testing.T) {
	if oscichannel.MetaOriginatorSignature != "osci.originatorSignatureCertificate" || oscichannel.MetaContentSignatures != "osci.contentSignatures" {
		t.Errorf("the OSCI channel's metadata keys changed: %q, %q", oscichannel.MetaOriginatorSignature, oscichannel.MetaContentSignatures)
	}
}

// TestNonEGVPUnchanged: a message on another channel gets no
// Herkunftsnachweis section and keeps its reason.
func TestNonEGVPUnchanged(t *testing.T) {
	e := newEGVPEnv(t)
	sv, html := e.verify(t, &gateway.MessageReceived{Channel: gateway.ChannelSMTP, Subject: "Antrag", ReceivedAt: time.Now()})
	if sv.WrittenFormSatisfied || sv.WrittenFormReason != "no signature" || strings.Contains(html, "Herkunftsnachweis") {
		t.Errorf("written form %v %q; section shown: %v", sv.WrittenFormSatisfied, sv.WrittenFormReason, strings.Contains(html, "Herkunftsnachweis"))
	}
}
