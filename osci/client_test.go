package osci

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// miniIntermediary answers a client's requests with the package's own supplier side,
// keeping dialogs and one mailbox: just enough rules (challenge and response,
// conversation id, sequence numbers, acknowledgement on exitDialog) to check the
// client against; the stand-in of test/integration/osci is the full one.
type miniIntermediary struct {
	t        *testing.T
	s        Supplier
	mu       sync.Mutex
	dialogs  map[string]*miniDialog
	stored   []*miniDelivery
	received []string
	seen     map[string]bool
}

type miniDialog struct {
	challenge string
	seq       int64
	fetched   []*miniDelivery
}

type miniDelivery struct {
	id      string
	subject string
	content []byte
	certs   []CertificateEntry
	parts   []*Part
}

func startMini(t *testing.T) (*miniIntermediary, *httptest.Server) {
	mi := &miniIntermediary{t: t, s: manager(t), dialogs: map[string]*miniDialog{}, seen: map[string]bool{}}
	srv := httptest.NewServer(mi)
	t.Cleanup(srv.Close)
	return mi, srv
}

func (mi *miniIntermediary) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := mi.s.ReadRequest(r.Context(), r.Body, DirSpool{Dir: mi.t.TempDir()})
	var a *Answer
	if err == nil {
		mi.mu.Lock()
		a, err = mi.handle(req)
		mi.mu.Unlock()
	}
	var out bytes.Buffer
	if err == nil {
		a.EncryptFor = mi.cipherOf(req)
		err = mi.s.WriteAnswer(r.Context(), &out, a)
	}
	if err != nil {
		out.Reset()
		_ = WriteFault(&out, FeedbackCode(err), "")
	}
	w.Header().Set("Content-Type", "text/xml; charset=UTF-8")
	_, _ = w.Write(out.Bytes())
}

// cipherOf is the client's cipher certificate; mid-dialog requests leave it to the
// dialog's initDialog, which in these tests is always bob's.
func (mi *miniIntermediary) cipherOf(req *Request) *x509.Certificate {
	if c := req.Certificate("CipherCertificateOriginator"); c != nil {
		x, err := x509.ParseCertificate(c.Raw)
		if err == nil {
			return x
		}
	}
	return loadKey(mi.t, "bob_cipher_4096").X509
}

func (mi *miniIntermediary) handle(req *Request) (*Answer, error) {
	cb := req.Envelope.ControlBlock
	if cb.Challenge != "" && mi.seen[cb.Challenge] {
		return nil, Refuse(CodeWrongDialogParameters, errors.New("challenge replayed"))
	}
	mi.seen[cb.Challenge] = true
	ctl := ControlBlock{Response: cb.Challenge, HasResponse: true, ConversationID: cb.ConversationID, SequenceNumber: cb.SequenceNumber, HasSequence: true}
	ok := []FeedbackEntry{Entry(0)}
	var d *miniDialog
	if req.Type() != InitDialog && cb.ConversationID != "" {
		if d = mi.dialogs[cb.ConversationID]; d == nil || cb.Response != d.challenge || cb.SequenceNumber != d.seq {
			return nil, Refuse(CodeWrongDialogParameters, errors.New("dialog parameters"))
		}
		ctl.Challenge, ctl.HasChallenge = "c"+cb.Challenge, req.Type() != ExitDialog
	}
	var m Message
	switch req.Type() {
	case InitDialog:
		ctl = ControlBlock{Response: cb.Challenge, HasResponse: true, ConversationID: "conv" + cb.Challenge, Challenge: "c" + cb.Challenge, HasChallenge: true}
		mi.dialogs[ctl.ConversationID] = &miniDialog{challenge: ctl.Challenge}
		m = Message{Type: ResponseToInitDialog, Operation: Operation{Feedback: []FeedbackEntry{Entry(CodeDialogOpen)}}}
	case GetMessageID:
		m = Message{Type: ResponseToGetMessageID, Operation: Operation{Feedback: ok, MessageID: "bWlkLTE="}}
	case StoreDelivery:
		op := req.Envelope.Operation
		mi.stored = append(mi.stored, &miniDelivery{id: op.MessageID, subject: op.Subject, content: req.ContentPackageXML(),
			certs: req.Envelope.NonIntermediaryCertificates.Entries, parts: req.Message.Parts})
		m = Message{Type: ResponseToStoreDelivery, Operation: Operation{Feedback: ok, ProcessCards: []ProcessCardBundle{miniCard(op.MessageID, false)}}}
	case FetchDelivery:
		if d == nil || len(mi.stored) == 0 {
			return nil, Refuse(CodeNoDelivery, errors.New("empty mailbox"))
		}
		x := mi.stored[0]
		d.fetched = append(d.fetched, x)
		m = Message{Type: ResponseToFetchDelivery, NonIntermediaryCertificates: x.certs, ContentPackage: x.content,
			Operation: Operation{Feedback: ok, Selection: &Selection{MessageIDs: []string{x.id}}, ProcessCards: []ProcessCardBundle{miniCard(x.id, true)}}}
		return mi.advance(d, ctl, &Answer{Message: m, Attachments: x.parts}), nil
	case FetchProcessCard:
		var cards []ProcessCardBundle
		for _, id := range mi.received {
			cards = append(cards, miniCard(id, true))
		}
		m = Message{Type: ResponseToFetchProcessCard, Operation: Operation{Feedback: ok, ProcessCards: cards}}
	case ExitDialog:
		for _, x := range d.fetched {
			mi.received = append(mi.received, x.id)
			mi.stored = mi.stored[1:]
		}
		delete(mi.dialogs, cb.ConversationID)
		m = Message{Type: ResponseToExitDialog, Operation: Operation{Feedback: []FeedbackEntry{Entry(CodeDialogClosed)}}}
	default:
		return nil, Refuse(CodeInvalidRequest, errors.New("not here"))
	}
	return mi.advance(d, ctl, &Answer{Message: m}), nil
}

func (mi *miniIntermediary) advance(d *miniDialog, ctl ControlBlock, a *Answer) *Answer {
	if d != nil {
		d.seq++
		d.challenge = ctl.Challenge
	}
	a.Message.Control = ctl
	return a
}

var miniTime = time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)

func miniCard(id string, received bool) ProcessCardBundle {
	b := ProcessCardBundle{MessageID: id, Card: ProcessCard{RecentModification: miniTime, Creation: &Timestamp{Plain: miniTime}}}
	if received {
		b.Card.Reception = &Timestamp{Plain: miniTime.Add(time.Minute)}
	}
	return b
}

func testClient(t *testing.T, url, name string) *Client {
	sig, ciph := loadKey(t, name+"_signature_4096"), loadKey(t, name+"_cipher_4096")
	man := loadKey(t, "osci_manager_cipher_4096")
	return &Client{URL: url, IntermediaryCipher: man.X509, IntermediarySignature: loadKey(t, "osci_manager_signature_4096").Cert,
		Signer: sig.Key, SignatureCertificate: sig.Cert, Decrypter: decrypterOf(t, name+"_cipher_4096"), CipherCertificate: ciph.Cert,
		Spool: DirSpool{Dir: t.TempDir()}}
}

// TestClientStoreAndFetch: alice stores an encrypted delivery for bob, bob fetches it
// in an explicit dialog and decrypts it; the exitDialog acknowledges it, and the
// process card then shows it received.
func TestClientStoreAndFetch(t *testing.T) {
	mi, srv := startMini(t)
	ctx := context.Background()
	for _, method := range []string{"", "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"} {
		alice, bob := testClient(t, srv.URL, "alice"), testClient(t, srv.URL, "bob")
		alice.Method, bob.Method = method, method
		id, err := alice.GetMessageID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ct bytes.Buffer
		enc, err := Encryptor{Recipients: []*x509.Certificate{loadKey(t, "bob_cipher_4096").X509}}.EncryptContainer(ctx, []byte(plainContainer),
			[]AttachmentPlain{{ContentID: "a.pdf", Body: bytes.NewReader([]byte("%PDF-1.7 Antrag")), Out: &ct}})
		if err != nil {
			t.Fatal(err)
		}
		spooled, err := DirSpool{Dir: t.TempDir()}.Put(ctx, "a.pdf", bytes.NewReader(ct.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		r, err := alice.StoreDelivery(ctx, &Delivery{Addressee: loadKey(t, "bob_cipher_4096").Cert, MessageID: id, Subject: "Antrag",
			ContentPackage: enc.XML, Attachments: []*Part{{ContentID: "a.pdf", Size: int64(ct.Len()), Data: spooled}}})
		if err != nil {
			t.Fatalf("%s: store: %v", method, err)
		}
		if pc := r.Envelope.ProcessCards(); len(pc) != 1 || pc[0].MessageID != id {
			t.Errorf("store process cards %+v", pc)
		}
		r.Close()

		before := len(mi.received)
		d, err := bob.InitDialog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f, err := d.FetchDelivery(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		dc, err := DecryptContainer(ctx, f.Envelope.ContentPackage.Encrypted[0], f.Message, bob.Decrypter, Limits{}, bob.Spool)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(mustRead(t, dc.Attachments["a.pdf"])); got != "%PDF-1.7 Antrag" {
			t.Errorf("attachment %q", got)
		}
		if len(mi.received) != before {
			t.Error("delivery counted as received before the dialog ended")
		}
		if err := d.Exit(ctx); err != nil {
			t.Fatal(err)
		}
		if len(mi.received) == 0 || mi.received[len(mi.received)-1] != id || len(mi.stored) != 0 {
			t.Errorf("after exitDialog received %v stored %d", mi.received, len(mi.stored))
		}
		d2, err := bob.InitDialog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d2.FetchDelivery(ctx, ""); codeOf(err) != CodeNoDelivery {
			t.Errorf("empty mailbox: %v", err)
		}
		pc, err := d2.FetchProcessCard(ctx, nil, 0)
		if err != nil {
			t.Fatalf("process card after a refusal in the same dialog: %v", err)
		}
		if cards := pc.Envelope.ProcessCards(); len(cards) == 0 || cards[len(cards)-1].Card.Reception == nil {
			t.Errorf("process cards %+v", cards)
		}
		if err := d2.Exit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := d2.FetchDelivery(ctx, ""); err == nil {
			t.Error("a closed dialog went on")
		}
	}
}

// TestClientRefusesAnswers: answers that break the rules are errors, never taken.
func TestClientRefusesAnswers(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request, s Supplier)
		check  func(error) bool
	}{
		{"fault", func(w http.ResponseWriter, _ *http.Request, _ Supplier) {
			_ = WriteFault(w, CodeClientSignatureCertRevoked, "")
		},
			func(err error) bool { return codeOf(err) == CodeClientSignatureCertRevoked }},
		{"wrong challenge", func(w http.ResponseWriter, r *http.Request, s Supplier) {
			_ = s.WriteAnswer(r.Context(), w, &Answer{Message: Message{Type: ResponseToGetMessageID, Control: ControlBlock{Response: "other", HasResponse: true},
				Operation: Operation{Feedback: []FeedbackEntry{Entry(0)}, MessageID: "eA=="}}, EncryptFor: loadKey(t, "alice_cipher_4096").X509})
		}, func(err error) bool { return errors.Is(err, ErrAnswer) }},
		{"unencrypted", func(w http.ResponseWriter, r *http.Request, s Supplier) {
			req, _ := s.ReadRequest(r.Context(), r.Body, DirSpool{Dir: t.TempDir()})
			_ = s.WriteAnswer(r.Context(), w, &Answer{Message: Message{Type: ResponseToGetMessageID, Control: ControlBlock{Response: req.Envelope.ControlBlock.Challenge, HasResponse: true},
				Operation: Operation{Feedback: []FeedbackEntry{Entry(0)}, MessageID: "eA=="}}})
		}, func(err error) bool { return errors.Is(err, ErrAnswer) }},
		{"signed by another", func(w http.ResponseWriter, r *http.Request, s Supplier) {
			req, _ := s.ReadRequest(r.Context(), r.Body, DirSpool{Dir: t.TempDir()})
			dave := loadKey(t, "dave_signature_4096")
			s.Signer, s.SignatureCertificate = dave.Key, dave.Cert
			_ = s.WriteAnswer(r.Context(), w, &Answer{Message: Message{Type: ResponseToGetMessageID, Control: ControlBlock{Response: req.Envelope.ControlBlock.Challenge, HasResponse: true},
				Operation: Operation{Feedback: []FeedbackEntry{Entry(0)}, MessageID: "eA=="}}, EncryptFor: loadKey(t, "alice_cipher_4096").X509})
		}, func(err error) bool { return errors.Is(err, ErrAnswer) }},
		{"too large", func(w http.ResponseWriter, _ *http.Request, _ Supplier) {
			_, _ = w.Write(bytes.Repeat([]byte("x"), 1<<20))
		}, func(err error) bool { return errors.Is(err, ErrTooLarge) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := manager(t)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.answer(w, r, s) }))
			defer srv.Close()
			cl := testClient(t, srv.URL, "alice")
			cl.Limits.MaxMessageBytes = 512 << 10
			_, err := cl.GetMessageID(ctx)
			if err == nil || !c.check(err) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

// codeOf is the code of a FeedbackError in err's chain, 0 when there is none.
func codeOf(err error) Code {
	var fe *FeedbackError
	if errors.As(err, &fe) {
		return fe.Code
	}
	return 0
}
