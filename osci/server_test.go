package osci

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/xmlenc"
)

func manager(t testing.TB) Supplier {
	sig := loadKey(t, "osci_manager_signature_4096")
	ciph := loadKey(t, "osci_manager_cipher_4096")
	return Supplier{
		Decrypter:            Decrypter{Key: ciph.Key.(crypto.Decrypter), Certificate: ciph.X509, Policy: xmlenc.OSCIPolicy()},
		Signer:               sig.Key,
		SignatureCertificate: sig.Cert,
		CipherCertificate:    loadKey(t, "osci_manager_cipher_4096").Cert,
	}
}

// goldenBody is the HTTP body of a captured library request.
func goldenBody(t *testing.T, name string) []byte {
	t.Helper()
	wire, err := os.ReadFile(filepath.Join("testdata", "library", name, "request.http"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := bytes.Cut(wire, []byte("\r\n\r\n"))
	if !ok {
		t.Fatal("no header/body separator")
	}
	return body
}

// TestReadRequestGolden opens the library's captured requests as the intermediary
// does: transport decryption with osci_manager's key, the envelope, the client
// signature over every block and attachment.
func TestReadRequestGolden(t *testing.T) {
	cases := []struct {
		name        string
		typ         MessageType
		attachments int
		dialog      bool
	}{
		{"getmessageid", GetMessageID, 0, false},
		{"initdialog", InitDialog, 0, false},
		{"storedelivery-rsa-sha256", StoreDelivery, 2, false},
		{"storedelivery-rsa-pss", StoreDelivery, 2, false},
		{"forwarddelivery-rsa-sha256", ForwardDelivery, 1, false},
		{"forwarddelivery-rsa-pss", ForwardDelivery, 1, false},
		{"fetchdelivery-rsa-sha256", FetchDelivery, 0, true},
		{"fetchdelivery-rsa-pss", FetchDelivery, 0, true},
		{"fetchprocesscard-rsa-sha256", FetchProcessCard, 0, true},
		{"fetchprocesscard-rsa-pss", FetchProcessCard, 0, true},
	}
	s := manager(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := s.ReadRequest(context.Background(), bytes.NewReader(goldenBody(t, c.name)), DirSpool{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if req.Type() != c.typ || !req.Encrypted {
				t.Fatalf("type %s encrypted %v, want %s encrypted", req.Type(), req.Encrypted, c.typ)
			}
			if req.Signature == nil || !req.Signature.Valid() {
				t.Fatalf("signature %+v", req.Signature)
			}
			if got := len(req.Message.Parts); got != c.attachments {
				t.Errorf("%d attachments, want %d", got, c.attachments)
			}
			// Mid-dialog requests leave the cipher certificate to the dialog's InitDialog.
			if (req.Certificate("CipherCertificateOriginator") == nil) != c.dialog {
				t.Errorf("originator cipher certificate present %v, want %v", !c.dialog, c.dialog)
			}
			cb := req.Envelope.ControlBlock
			if !cb.HasChallenge || (cb.ConversationID != "") != c.dialog {
				t.Errorf("control block %+v", cb)
			}
			if c.attachments > 0 && !bytes.Contains(req.ContentPackageXML(), []byte("EncryptedData")) {
				t.Error("content package lost its encrypted data")
			}
		})
	}
}

// TestReadRequestRefuses checks the feedback codes of broken requests.
func TestReadRequestRefuses(t *testing.T) {
	body := goldenBody(t, "storedelivery-rsa-sha256")
	wrongKey := manager(t)
	wrongKey.Decrypter = decrypterOf(t, "bob_cipher_4096")
	tampered := bytes.Clone(body)
	// The osci_enc part is base64 text; flip one character well inside it.
	i := bytes.LastIndex(tampered, []byte("osci_enc>")) + 400
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	cases := []struct {
		name string
		s    Supplier
		body []byte
		want Code
	}{
		{"wrong intermediary key", wrongKey, body, CodeNotDecryptable},
		{"tampered ciphertext", manager(t), tampered, CodeNotDecryptable},
		{"not MIME", manager(t), []byte("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello"), CodeNotOSCI},
		{"truncated", manager(t), body[:len(body)/2], CodeNotOSCI},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := c.s.ReadRequest(context.Background(), bytes.NewReader(c.body), DirSpool{Dir: dir})
			if got := FeedbackCode(err); got != c.want {
				t.Fatalf("code %s (%v), want %s", got, err, c.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("%d spooled files left behind", len(left))
			}
		})
	}
}

// TestAnswerRoundTrip answers a captured storeDelivery encrypted to the originator's
// cipher certificate and reads the answer back as the originator: carol's key opens it
// and the SupplierSignature covers every block and the attachments.
func TestAnswerRoundTrip(t *testing.T) {
	s := manager(t)
	req, err := s.ReadRequest(context.Background(), bytes.NewReader(goldenBody(t, "storedelivery-rsa-sha256")), DirSpool{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	carol := loadKey(t, "carol_cipher_4096")
	now := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	for _, method := range []string{"", "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"} {
		s.Method = method
		a := &Answer{
			Message: Message{
				Type:    ResponseToFetchDelivery,
				Control: ControlBlock{Response: req.Envelope.ControlBlock.Challenge, HasResponse: true, Challenge: "bmV3", HasChallenge: true, ConversationID: "Y29udg==", SequenceNumber: 1, HasSequence: true},
				Operation: Operation{
					Feedback:  []FeedbackEntry{Entry(0)},
					Selection: &Selection{MessageIDs: []string{req.Envelope.Operation.MessageID}},
					ProcessCards: []ProcessCardBundle{{MessageID: req.Envelope.Operation.MessageID, Card: ProcessCard{
						RecentModification: now, Creation: &Timestamp{Plain: now}, Reception: &Timestamp{Plain: now},
					}}},
				},
				NonIntermediaryCertificates: req.Envelope.NonIntermediaryCertificates.Entries,
				ContentPackage:              req.ContentPackageXML(),
			},
			Attachments: req.Message.Parts,
			EncryptFor:  carol.X509,
		}
		var out bytes.Buffer
		if err := s.WriteAnswer(context.Background(), &out, a); err != nil {
			t.Fatal(err)
		}
		client := Supplier{Decrypter: decrypterOf(t, "carol_cipher_4096")}
		back, err := client.ReadRequest(context.Background(), &out, DirSpool{Dir: t.TempDir()})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if back.Type() != ResponseToFetchDelivery || !back.Encrypted || back.Signature == nil || back.Signature.Block != "SupplierSignature" {
			t.Fatalf("answer %s encrypted %v signature %+v", back.Type(), back.Encrypted, back.Signature)
		}
		if !back.Signer().Equal(s.SignatureCertificate) {
			t.Error("answer not signed by the intermediary's certificate")
		}
		if got, want := len(back.Message.Parts), len(req.Message.Parts); got != want {
			t.Errorf("%d attachments, want %d", got, want)
		}
		if !bytes.Equal(back.ContentPackageXML(), req.ContentPackageXML()) {
			t.Error("content package changed on the way")
		}
		if pc := back.Envelope.ProcessCards(); len(pc) != 1 || pc[0].Card.Reception == nil || !pc[0].Card.Reception.Plain.Equal(now) {
			t.Errorf("process cards %+v", pc)
		}
	}
}

// TestWriteFault checks the fault is a message the package reads as not an envelope
// of a message type, with the code in it.
func TestWriteFault(t *testing.T) {
	var out bytes.Buffer
	if err := WriteFault(&out, CodeWrongDialogParameters, ""); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMessage(context.Background(), &out, Limits{}, DirSpool{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.Envelope), "<faultcode>soap:Client</faultcode>") || !strings.Contains(string(m.Envelope), "<osci:Code>9400</osci:Code>") {
		t.Errorf("fault %s", m.Envelope)
	}
	if FeedbackCode(errors.New("x")) != CodeInternalError || FeedbackCode(Refuse(CodeNoDelivery, errors.New("x"))) != CodeNoDelivery {
		t.Error("FeedbackCode")
	}
}
