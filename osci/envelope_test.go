package osci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

var testTime = time.Date(2026, 12, 2, 7, 30, 0, 0, time.FixedZone("", 3600))

func testBundle() ProcessCardBundle {
	return ProcessCardBundle{
		MessageID: "bWVzc2FnZS0x",
		Card: ProcessCard{
			RecentModification: testTime,
			Creation:           &Timestamp{Plain: testTime.Add(-time.Hour)},
			Forwarding:         &Timestamp{Cryptographic: []byte{0x30, 0x03, 0x02, 0x01, 0x01}, Algorithm: "http://www.w3.org/2001/04/xmlenc#sha256"},
			Subject:            "Klage & <Antrag>",
		},
		Report: []Inspection{{
			Timestamp:       Timestamp{Plain: testTime},
			X509SubjectName: "CN=Alice,O=Test", X509IssuerName: "CN=CA", X509Serial: big.NewInt(4711),
			CertType: "qualified", MathResult: "ok", OfflineResult: "valid", OnlineResult: "ok", OCSP: []byte("ocsp"),
		}},
	}
}

// composeCases has one message of every type with the values it may carry.
func composeCases(t *testing.T) map[MessageType]*Message {
	alice, manager := loadKey(t, "alice_signature_4096"), loadKey(t, "osci_manager_signature_4096")
	bob := loadKey(t, "bob_cipher_4096")
	cb := ControlBlock{ConversationID: "17", SequenceNumber: 2, HasSequence: true, Response: "r1", HasResponse: true, Challenge: "c2", HasChallenge: true}
	nonInter := []CertificateEntry{
		{Role: "CipherCertificateAddressee", ID: CertificateID("addressee", "cipher", bob.Cert), Cert: bob.Cert},
		{Role: "SignatureCertificateOriginator", ID: CertificateID("originator", "signature", alice.Cert), Cert: alice.Cert},
	}
	inter := []CertificateEntry{{Role: "SignatureCertificateIntermediary", ID: CertificateID("intermed", "signature", manager.Cert), Cert: manager.Cert}}
	ok := []FeedbackEntry{Entry(CodeDialogOpen)}
	pkg := []byte(`<osci:ContentContainer Id="coco"><osci:Content Id="c1" href="cid:a.pdf"></osci:Content><osci:Content><osci:Base64Content Id="note.txt">aGFsbG8=</osci:Base64Content></osci:Content></osci:ContentContainer>`)
	qot := []QualityOfTimestamp{{Service: "creation", Quality: "plain"}, {Service: "reception", Quality: "cryptographic"}}
	sel := &Selection{MessageIDs: []string{"bWVzc2FnZS0x"}}
	return map[MessageType]*Message{
		InitDialog:                 {Type: InitDialog, Control: ControlBlock{Challenge: "c1", HasChallenge: true, SequenceNumber: 0, HasSequence: true}, NonIntermediaryCertificates: nonInter},
		ResponseToInitDialog:       {Type: ResponseToInitDialog, Control: cb, Operation: Operation{Feedback: ok}, IntermediaryCertificates: inter},
		ExitDialog:                 {Type: ExitDialog, Control: cb, NonIntermediaryCertificates: nonInter},
		ResponseToExitDialog:       {Type: ResponseToExitDialog, Control: cb, Operation: Operation{Feedback: []FeedbackEntry{Entry(CodeDialogClosed)}}, IntermediaryCertificates: inter},
		GetMessageID:               {Type: GetMessageID, Control: cb, NonIntermediaryCertificates: nonInter},
		ResponseToGetMessageID:     {Type: ResponseToGetMessageID, Control: cb, Operation: Operation{Feedback: ok, MessageID: "bWVzc2FnZS0x"}, IntermediaryCertificates: inter},
		StoreDelivery:              {Type: StoreDelivery, Control: cb, QualityOfTimestamp: qot, Operation: Operation{MessageID: "bWVzc2FnZS0x", Subject: "Klage"}, NonIntermediaryCertificates: nonInter, ContentPackage: pkg},
		ResponseToStoreDelivery:    {Type: ResponseToStoreDelivery, Control: cb, Operation: Operation{Feedback: ok, ProcessCards: []ProcessCardBundle{testBundle()}}, IntermediaryCertificates: inter},
		FetchDelivery:              {Type: FetchDelivery, Control: cb, Operation: Operation{Selection: sel}, NonIntermediaryCertificates: nonInter},
		ResponseToFetchDelivery:    {Type: ResponseToFetchDelivery, Control: cb, Operation: Operation{Feedback: ok, Selection: sel, ProcessCards: []ProcessCardBundle{testBundle()}}, IntermediaryCertificates: inter, NonIntermediaryCertificates: nonInter, ContentPackage: pkg},
		FetchProcessCard:           {Type: FetchProcessCard, Control: cb, Operation: Operation{Selection: &Selection{RecentModification: "2026-12-01T00:00:00+01:00", Role: "Originator"}, Quantity: 10}, NonIntermediaryCertificates: nonInter},
		ResponseToFetchProcessCard: {Type: ResponseToFetchProcessCard, Control: cb, Operation: Operation{Feedback: ok, Selection: sel, ProcessCards: []ProcessCardBundle{testBundle(), testBundle()}}, IntermediaryCertificates: inter},
		ForwardDelivery:            {Type: ForwardDelivery, Control: cb, QualityOfTimestamp: qot[:1], Operation: Operation{ContentReceiver: "https://127.0.0.1:8443/osci?a=1&b=2", MessageID: "bWVzc2FnZS0x", Subject: "Klage"}, NonIntermediaryCertificates: nonInter, ContentPackage: pkg},
		ResponseToForwardDelivery:  {Type: ResponseToForwardDelivery, Control: cb, Operation: Operation{Feedback: ok, ProcessCards: []ProcessCardBundle{testBundle()}}, IntermediaryCertificates: inter},
		AcceptDelivery:             {Type: AcceptDelivery, Control: cb, Operation: Operation{ProcessCards: []ProcessCardBundle{testBundle()}}, IntermediaryCertificates: inter, NonIntermediaryCertificates: nonInter, ContentPackage: pkg},
		ResponseToAcceptDelivery:   {Type: ResponseToAcceptDelivery, Control: cb, Operation: Operation{Feedback: ok}, NonIntermediaryCertificates: nonInter},
		ProcessDelivery:            {Type: ProcessDelivery, Control: cb, Operation: Operation{MessageIDResponse: true, ProcessCards: []ProcessCardBundle{testBundle()}}, IntermediaryCertificates: inter, NonIntermediaryCertificates: nonInter, ContentPackage: pkg},
		ResponseToProcessDelivery:  {Type: ResponseToProcessDelivery, Control: cb, QualityOfTimestamp: qot[:1], Operation: Operation{Feedback: ok, MessageID: "bWVzc2FnZS0y", Subject: "Antwort"}, NonIntermediaryCertificates: nonInter},
		MediateDelivery:            {Type: MediateDelivery, Control: cb, QualityOfTimestamp: qot[:1], Operation: Operation{ContentReceiver: "https://127.0.0.1:8443/osci", Subject: "Anfrage"}, NonIntermediaryCertificates: nonInter, ContentPackage: pkg},
		ResponseToMediateDelivery:  {Type: ResponseToMediateDelivery, Control: cb, Operation: Operation{Feedback: ok, ProcessCards: []ProcessCardBundle{func() ProcessCardBundle { b := testBundle(); b.Name = "RequestProcessCardBundle"; return b }()}}, IntermediaryCertificates: inter, NonIntermediaryCertificates: nonInter},
	}
}

func TestComposeParseEveryType(t *testing.T) {
	cases := composeCases(t)
	if len(cases) != 20 {
		t.Fatalf("%d types", len(cases))
	}
	for typ, m := range cases {
		t.Run(string(typ), func(t *testing.T) {
			data, err := ComposeEnvelope(m)
			if err != nil {
				t.Fatal(err)
			}
			env, err := ParseEnvelope(data, Limits{})
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			if env.Type != typ || env.Operation.Name != string(typ) || env.Type.IsResponse() != strings.HasPrefix(string(typ), "response") {
				t.Fatalf("parsed as %s", env.Type)
			}
			cb := env.ControlBlock
			if cb.ConversationID != m.Control.ConversationID || cb.SequenceNumber != m.Control.SequenceNumber || cb.Challenge != m.Control.Challenge || cb.Response != m.Control.Response || cb.HasResponse != m.Control.HasResponse {
				t.Errorf("control block %+v, want %+v", cb, m.Control)
			}
			op := env.Operation
			if op.MessageID != m.Operation.MessageID || op.Subject != m.Operation.Subject || op.ContentReceiver != m.Operation.ContentReceiver || op.Quantity != m.Operation.Quantity || op.MessageIDResponse != m.Operation.MessageIDResponse {
				t.Errorf("operation %+v", op)
			}
			if len(op.Feedback) != len(m.Operation.Feedback) || (len(op.Feedback) > 0 && op.Feedback[0] != m.Operation.Feedback[0]) {
				t.Errorf("feedback %+v", op.Feedback)
			}
			if (m.Operation.Selection == nil) != (op.Selection == nil) {
				t.Errorf("selection %+v", op.Selection)
			}
			if len(op.ProcessCards) != len(m.Operation.ProcessCards) {
				t.Fatalf("%d process cards", len(op.ProcessCards))
			}
			for i, pc := range op.ProcessCards {
				checkBundle(t, pc, m.Operation.ProcessCards[i])
			}
			if len(env.QualityOfTimestamp) != len(m.QualityOfTimestamp) || (m.ContentPackage != nil) != (env.ContentPackage != nil) {
				t.Errorf("%d QualityOfTimestamp, content package %v", len(env.QualityOfTimestamp), env.ContentPackage != nil)
			}
			if n := len(env.NonIntermediaryCertificates.Role("CipherCertificateAddressee")); n != len(filterRole(m.NonIntermediaryCertificates, "CipherCertificateAddressee")) {
				t.Errorf("%d addressee certificates", n)
			}
		})
	}
}

func filterRole(es []CertificateEntry, role string) []CertificateEntry {
	var out []CertificateEntry
	for _, e := range es {
		if e.Role == role {
			out = append(out, e)
		}
	}
	return out
}

func checkBundle(t *testing.T, got, want ProcessCardBundle) {
	t.Helper()
	if want.Name == "" {
		want.Name = "ProcessCardBundle"
	}
	if got.Name != want.Name || got.MessageID != want.MessageID || !got.Card.RecentModification.Equal(want.Card.RecentModification) || got.Card.Subject != want.Card.Subject {
		t.Errorf("bundle %+v", got)
	}
	if !got.Card.Creation.Plain.Equal(want.Card.Creation.Plain) || !bytes.Equal(got.Card.Forwarding.Cryptographic, want.Card.Forwarding.Cryptographic) || got.Card.Forwarding.Algorithm != want.Card.Forwarding.Algorithm || got.Card.Reception != nil {
		t.Errorf("timestamps %+v", got.Card)
	}
	if len(got.Report) != 1 || got.Report[0].X509Serial.Cmp(want.Report[0].X509Serial) != 0 || got.Report[0].CertType != "qualified" || string(got.Report[0].OCSP) != "ocsp" {
		t.Errorf("inspection %+v", got.Report)
	}
}

func TestParseEnvelopeRefuses(t *testing.T) {
	good, err := ComposeEnvelope(composeCases(t)[StoreDelivery])
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	tests := map[string]string{
		"not soap":                `<x:Envelope xmlns:x="urn:x"/>`,
		"dtd":                     `<!DOCTYPE soap:Envelope [<!ENTITY a "aaaa">]>` + s[strings.Index(s, "<soap:Envelope"):],
		"no control block":        strings.Replace(s, `<osci:ControlBlock`, `<osci:NoControlBlock`, 1),
		"two control blocks":      strings.Replace(s, `<soap:Header>`, `<soap:Header><osci:ControlBlock Id="cb2"></osci:ControlBlock>`, 1),
		"duplicate id":            strings.Replace(s, `<soap:Header>`, `<soap:Header><x:y xmlns:x="urn:x" Id="body"/>`, 1),
		"operation in body":       strings.Replace(s, `<osci:ContentPackage>`, `<osci:storeDelivery></osci:storeDelivery><osci:ContentPackage>`, 1),
		"no content package":      s[:strings.Index(s, "<osci:ContentPackage>")] + `</soap:Body></soap:Envelope>`,
		"two operations":          strings.Replace(s, `<osci:NonIntermediaryCertificates`, `<osci:fetchDelivery Id="x"></osci:fetchDelivery><osci:NonIntermediaryCertificates`, 1),
		"supplier sig in request": strings.Replace(s, `<osci:DesiredLanguages`, `<osci:SupplierSignature Id="s"><ds:Signature/></osci:SupplierSignature><osci:DesiredLanguages`, 1),
		"bad sequence number":     strings.Replace(s, `SequenceNumber="2"`, `SequenceNumber="-2"`, 1),
		"text in header":          strings.Replace(s, `<soap:Header>`, `<soap:Header>hello`, 1),
		"bad message id":          strings.Replace(s, `<osci:MessageId>bWVzc2FnZS0x</osci:MessageId>`, `<osci:MessageId>not base64!</osci:MessageId>`, 1),
		"bad certificate":         strings.Replace(s, `<ds:X509Certificate>MII`, `<ds:X509Certificate>AAAA`, 1),
		"unknown body element":    strings.Replace(s, `<osci:ContentPackage>`, `<osci:Whatever></osci:Whatever><osci:ContentPackage>`, 1),
		"content without id":      strings.Replace(s, `<osci:ContentContainer Id="coco">`, `<osci:ContentContainer>`, 1),
		"href with content":       strings.Replace(s, `href="cid:a.pdf"></osci:Content>`, `href="cid:a.pdf">x</osci:Content>`, 1),
		"deep nesting":            strings.Replace(s, `</soap:Header>`, `<x:a xmlns:x="urn:x">`+strings.Repeat(`<x:a>`, 100)+strings.Repeat(`</x:a>`, 100)+`</x:a></soap:Header>`, 1),
		"two timestamps creation": strings.Replace(s, `Service="reception"`, `Service="creation"`, 1),
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if doc == s {
				t.Fatal("the mutation did not apply")
			}
			if _, err := ParseEnvelope([]byte(doc), Limits{}); !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v, want ErrFormat", err)
			}
		})
	}
	if _, err := ParseEnvelope(good, Limits{MaxEnvelopeBytes: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized envelope: %v", err)
	}
}

// signedMessage composes, signs and frames a StoreDelivery with one attachment, and
// reads it back.
type signedMessage struct {
	envelope []byte
	parts    map[string][]byte
}

func signStore(t *testing.T, method string, mutate func(*Message)) signedMessage {
	t.Helper()
	m := composeCases(t)[StoreDelivery]
	m.Signed = true
	if mutate != nil {
		mutate(m)
	}
	data, err := ComposeEnvelope(m)
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string][]byte{"a.pdf": bytes.Repeat([]byte("%PDF-1.7\r\n\x00\xff"), 1000)}
	alice := loadKey(t, "alice_signature_4096")
	signed, err := SignEnvelope(context.Background(), data, SignOptions{
		Signer: alice.Key, Method: method, CertificateID: CertificateID("originator", "signature", alice.Cert),
		Attachments: []string{"a.pdf"},
		Open: func(_ context.Context, cid string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(parts[cid])), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return signedMessage{envelope: signed, parts: parts}
}

func (s signedMessage) read(t *testing.T) (*Envelope, *Multipart, error) {
	t.Helper()
	var out []OutPart
	for cid, data := range s.parts {
		out = append(out, OutPart{ContentID: cid, Size: int64(len(data)), Body: bytes.NewReader(data)})
	}
	var buf bytes.Buffer
	if err := WriteMessage(&buf, NewBoundary(), true, s.envelope, out); err != nil {
		t.Fatal(err)
	}
	mp, err := ReadMessage(context.Background(), &buf, Limits{}, DirSpool{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(mp.Envelope, Limits{})
	return env, mp, err
}

func TestSignAndVerify(t *testing.T) {
	for _, method := range []string{xmldsig.AlgRSASHA256, xmldsig.AlgRSAPSSSHA256, xmldsig.AlgRSAPSSSHA512} {
		t.Run(method, func(t *testing.T) {
			env, mp, err := signStore(t, method, nil).read(t)
			if err != nil {
				t.Fatal(err)
			}
			chk, err := env.VerifySignature(context.Background(), mp)
			if err != nil {
				t.Fatal(err)
			}
			if !chk.Valid() || chk.Code() != 0 {
				t.Fatalf("problems: %v", chk.Err())
			}
			if chk.Block != "ClientSignature" || chk.Signer.Role != "SignatureCertificateOriginator" || chk.Result.Algorithm != method || chk.Attachments["a.pdf"] != xmldsig.RefOK {
				t.Errorf("check %+v", chk)
			}
		})
	}
}

// TestSignatureTamperAndWrapping changes a signed message the ways an attacker would and
// expects the check to name the right feedback code.
func TestSignatureTamperAndWrapping(t *testing.T) {
	base := signStore(t, "", nil)
	s := string(base.envelope)
	bodyStart, bodyEnd := strings.Index(s, `<soap:Body`), strings.Index(s, `</soap:Body>`)+len(`</soap:Body>`)
	origBody := s[bodyStart:bodyEnd]
	forgedBody := `<soap:Body><osci:ContentPackage><osci:ContentContainer Id="forged"><osci:Content><osci:Base64Content Id="evil.txt">ZXZpbA==</osci:Base64Content></osci:Content></osci:ContentContainer></osci:ContentPackage></soap:Body>`
	tests := []struct {
		name   string
		mutate func(signedMessage) signedMessage
		code   Code
	}{
		{"subject changed", func(m signedMessage) signedMessage {
			m.envelope = []byte(strings.Replace(s, "<osci:Subject>Klage</osci:Subject>", "<osci:Subject>Klagx</osci:Subject>", 1))
			return m
		}, CodeSignatureInvalid},
		{"attachment changed", func(m signedMessage) signedMessage {
			m.parts = map[string][]byte{"a.pdf": []byte("%PDF-forged")}
			return m
		}, CodeSignatureInvalid},
		{"unsigned attachment added", func(m signedMessage) signedMessage {
			m.parts = map[string][]byte{"a.pdf": m.parts["a.pdf"], "b.pdf": []byte("extra")}
			return m
		}, CodeNotAllSigned},
		{"unsigned header added", func(m signedMessage) signedMessage {
			m.envelope = []byte(strings.Replace(s, `</soap:Header>`, `<x:Note xmlns:x="urn:x" Id="note">pay here</x:Note></soap:Header>`, 1))
			return m
		}, CodeNotAllSigned},
		{"signed body moved into a header, forged body read", func(m signedMessage) signedMessage {
			w := strings.Replace(s, origBody, forgedBody, 1)
			m.envelope = []byte(strings.Replace(w, `</soap:Header>`, `<x:Wrapper xmlns:x="urn:x">`+origBody+`</x:Wrapper></soap:Header>`, 1))
			return m
		}, CodeSignatureInvalid},
		{"signer points at a cipher certificate", func(m signedMessage) signedMessage {
			bob := loadKey(t, "bob_cipher_4096")
			alice := loadKey(t, "alice_signature_4096")
			m.envelope = []byte(strings.Replace(s, `URI="#`+CertificateID("originator", "signature", alice.Cert)+`"></ds:RetrievalMethod>`, `URI="#`+CertificateID("addressee", "cipher", bob.Cert)+`"></ds:RetrievalMethod>`, 1))
			return m
		}, CodeSignatureInvalid},
		{"signature value flipped", func(m signedMessage) signedMessage {
			i := strings.Index(s, "<ds:SignatureValue>") + len("<ds:SignatureValue>")
			c := byte('A')
			if s[i] == 'A' {
				c = 'B'
			}
			m.envelope = []byte(s[:i] + string(c) + s[i+1:])
			return m
		}, CodeSignatureInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.mutate(signedMessage{envelope: base.envelope, parts: base.parts})
			env, mp, err := m.read(t)
			if err != nil {
				// A structural refusal is as good as a failed check.
				if !errors.Is(err, ErrFormat) {
					t.Fatal(err)
				}
				return
			}
			chk, err := env.VerifySignature(context.Background(), mp)
			if err != nil {
				t.Fatal(err)
			}
			if chk.Valid() || chk.Code() != tc.code {
				t.Fatalf("valid %v, code %s, want %s: %v", chk.Valid(), chk.Code(), tc.code, chk.Err())
			}
		})
	}
}

func TestVerifyUnsigned(t *testing.T) {
	data, err := ComposeEnvelope(composeCases(t)[StoreDelivery])
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.VerifySignature(context.Background(), &Multipart{}); !errors.Is(err, ErrNotSigned) {
		t.Fatalf("error %v", err)
	}
}
