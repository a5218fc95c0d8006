package oscichannel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
	"github.com/poststelle/poststelle/osci"
)

// mailbox plays the intermediary with bob's mailbox: dialogs with challenge and
// sequence number, process cards of the waiting deliveries, fetchDelivery by id, and
// exitDialog as the acknowledgement that takes a fetched delivery out. A delivery
// fetched in a dialog that the client gave up (its next initDialog came first) was
// left: that is all an intermediary can see of a failure.
type mailbox struct {
	t       testing.TB
	keys    func(*Config) // replaces the authority's keys, when set
	dir     string
	manager osci.Supplier
	blobs   gateway.BlobStore

	mu      sync.Mutex
	n       int
	dialogs map[string]*mdialog
	items   []*item
	byRaw   map[[32]byte]*item
	last    *item
	// stored are the deliveries clients stored (our answers).
	stored []*osci.Request
	// reception, when set, is when the addressee fetched the stored deliveries, as
	// their process cards then show.
	reception time.Time
}

type mdialog struct {
	challenge string
	seq       int64
	fetched   []*item
}

type item struct {
	id      string
	raw     []byte
	frame   string // the first responseToFetchDelivery as sent
	outcome chan channeltest.Answer
}

func newMailbox(t testing.TB) *mailbox {
	m := pair(t, "osci_manager_signature_4096")
	return &mailbox{t: t, dir: t.TempDir(), dialogs: map[string]*mdialog{}, byRaw: map[[32]byte]*item{},
		manager: osci.Supplier{Decrypter: decrypterOf(t, "osci_manager_cipher_4096"), Signer: m.Key, SignatureCertificate: m.Cert}}
}

func (mb *mailbox) Start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	srv := httptest.NewServer(mb)
	t.Cleanup(srv.Close)
	cfg := authorityConfig(t, srv.URL+"/")
	cfg.PollInterval = 20 * time.Millisecond
	cfg.MaxMessageBytes = max
	if mb.keys != nil {
		mb.keys(&cfg)
	}
	a, err := NewActive(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	mb.blobs = deps.Blobs
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func (mb *mailbox) Send(t testing.TB, raw []byte) channeltest.Answer {
	mb.mu.Lock()
	mb.n++
	it := &item{id: base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "box-%03d", mb.n)), raw: raw, outcome: make(chan channeltest.Answer, 1)}
	mb.items = append(mb.items, it)
	if _, ok := mb.byRaw[sha256.Sum256(raw)]; !ok {
		mb.byRaw[sha256.Sum256(raw)] = it
	}
	mb.last = it
	mb.mu.Unlock()
	return mb.wait(t, it)
}

// Retry waits for the next outcome of the last delivery, which stays in the mailbox.
func (mb *mailbox) Retry(t testing.TB) channeltest.Answer {
	mb.mu.Lock()
	it := mb.last
	it.outcome = make(chan channeltest.Answer, 1)
	mb.mu.Unlock()
	return mb.wait(t, it)
}

func (mb *mailbox) wait(t testing.TB, it *item) channeltest.Answer {
	mb.mu.Lock()
	ch := it.outcome
	mb.mu.Unlock()
	select {
	case a := <-ch:
		return a
	case <-time.After(2 * time.Minute):
		t.Fatalf("delivery %s: no outcome", it.id)
		return channeltest.Answer{}
	}
}

func (mb *mailbox) Transmitted(t testing.TB, raw []byte) []byte {
	mb.mu.Lock()
	it := mb.byRaw[sha256.Sum256(raw)]
	mb.mu.Unlock()
	b, err := os.ReadFile(it.frame)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (mb *mailbox) CheckReceipt(t testing.TB, raw []byte, m *gateway.MessageReceived) {
	t.Helper()
	mb.mu.Lock()
	it := mb.byRaw[sha256.Sum256(raw)]
	mb.mu.Unlock()
	checkReceipt(t, mb.blobs, it.id, raw, m)
	if m.Metadata[MetaMessageType] != string(osci.ResponseToFetchDelivery) {
		t.Errorf("message type %q", m.Metadata[MetaMessageType])
	}
}

func settle(it *item, a channeltest.Answer) {
	select {
	case it.outcome <- a:
	default:
	}
}

func (mb *mailbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := mb.manager.ReadRequest(r.Context(), r.Body, osci.DirSpool{Dir: mb.dir})
	var a *osci.Answer
	var keep string
	if err == nil {
		a, keep, err = mb.handle(req)
	}
	if err != nil {
		var b bytes.Buffer
		_ = osci.WriteFault(&b, osci.FeedbackCode(err), "")
		_, _ = w.Write(b.Bytes())
		return
	}
	a.EncryptFor = pair(mb.t, "bob_cipher_4096").X509
	var out io.Writer = w
	if keep != "" {
		f, err := os.Create(keep)
		if err != nil {
			mb.t.Error(err)
			return
		}
		defer f.Close()
		out = io.MultiWriter(w, f)
	}
	// A client that went away mid-answer (the test ending, an answer over its cap) is
	// what the suite provokes; the outcome is judged by the dialogs, not here.
	_ = mb.manager.WriteAnswer(r.Context(), out, a)
}

// handle answers one request; keep names the file the answer is kept in.
func (mb *mailbox) handle(req *osci.Request) (*osci.Answer, string, error) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	cb := req.Envelope.ControlBlock
	ctl := osci.ControlBlock{Response: cb.Challenge, HasResponse: true, ConversationID: cb.ConversationID, SequenceNumber: cb.SequenceNumber, HasSequence: true}
	ok := []osci.FeedbackEntry{osci.Entry(0)}
	if req.Type() == osci.InitDialog {
		for id, d := range mb.dialogs {
			for _, it := range d.fetched {
				settle(it, channeltest.Answer{Code: "left"})
			}
			delete(mb.dialogs, id)
		}
		mb.n++
		id := fmt.Sprintf("conv-%d", mb.n)
		mb.dialogs[id] = &mdialog{challenge: "ch-" + id}
		return &osci.Answer{Message: osci.Message{Type: osci.ResponseToInitDialog,
			Control:   osci.ControlBlock{Response: cb.Challenge, HasResponse: true, ConversationID: id, Challenge: "ch-" + id, HasChallenge: true},
			Operation: osci.Operation{Feedback: []osci.FeedbackEntry{osci.Entry(osci.CodeDialogOpen)}}}}, "", nil
	}
	switch {
	case req.Type() == osci.GetMessageID && cb.ConversationID == "":
		mb.n++
		return &osci.Answer{Message: osci.Message{Type: osci.ResponseToGetMessageID, Control: ctl,
			Operation: osci.Operation{Feedback: ok, MessageID: base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "answer-%d", mb.n))}}}, "", nil
	case req.Type() == osci.StoreDelivery && cb.ConversationID == "":
		mb.stored = append(mb.stored, req)
		return &osci.Answer{Message: osci.Message{Type: osci.ResponseToStoreDelivery, Control: ctl,
			Operation: osci.Operation{Feedback: ok, ProcessCards: []osci.ProcessCardBundle{bundle(req.Envelope.Operation.MessageID)}}}}, "", nil
	}
	d := mb.dialogs[cb.ConversationID]
	if d == nil || cb.Response != d.challenge || cb.SequenceNumber != d.seq {
		return nil, "", osci.Refuse(osci.CodeWrongDialogParameters, errors.New("dialog parameters"))
	}
	d.seq++
	d.challenge = fmt.Sprintf("ch-%s-%d", cb.ConversationID, d.seq)
	if req.Type() != osci.ExitDialog {
		ctl.Challenge, ctl.HasChallenge = d.challenge, true
	}
	switch req.Type() {
	case osci.FetchProcessCard:
		var cards []osci.ProcessCardBundle
		for _, it := range mb.items {
			cards = append(cards, bundle(it.id))
		}
		if sel := req.Envelope.Operation.Selection; sel != nil && len(sel.MessageIDs) > 0 {
			cards = nil
			for _, st := range mb.stored {
				if st.Envelope.Operation.MessageID == sel.MessageIDs[0] {
					b := bundle(sel.MessageIDs[0])
					if !mb.reception.IsZero() {
						b.Card.Reception = &osci.Timestamp{Plain: mb.reception}
					}
					cards = append(cards, b)
				}
			}
		}
		return &osci.Answer{Message: osci.Message{Type: osci.ResponseToFetchProcessCard, Control: ctl, Operation: osci.Operation{Feedback: ok, ProcessCards: cards}}}, "", nil
	case osci.FetchDelivery:
		var it *item
		for _, x := range mb.items {
			if sel := req.Envelope.Operation.Selection; sel != nil && len(sel.MessageIDs) == 1 && sel.MessageIDs[0] == x.id {
				it = x
			}
		}
		if it == nil {
			d.seq--
			return nil, "", osci.Refuse(osci.CodeNoDelivery, errors.New("no such delivery"))
		}
		pkg, part, certs, err := content(mb.t, it.raw, mb.dir)
		if err != nil {
			return nil, "", err
		}
		d.fetched = append(d.fetched, it)
		keep := ""
		if it.frame == "" {
			it.frame = filepath.Join(mb.dir, "frame-"+fmt.Sprint(len(mb.items))+"-"+fmt.Sprint(d.seq)+"-"+cb.ConversationID)
			keep = it.frame
		}
		return &osci.Answer{Message: osci.Message{Type: osci.ResponseToFetchDelivery, Control: ctl, NonIntermediaryCertificates: certs, ContentPackage: pkg,
			Operation: osci.Operation{Feedback: ok, Selection: &osci.Selection{MessageIDs: []string{it.id}}, ProcessCards: []osci.ProcessCardBundle{bundle(it.id)}}},
			Attachments: []*osci.Part{part}}, keep, nil
	case osci.ExitDialog:
		for _, it := range d.fetched {
			for i, x := range mb.items {
				if x == it {
					mb.items = append(mb.items[:i], mb.items[i+1:]...)
					break
				}
			}
			settle(it, channeltest.Answer{Accepted: true, Code: "acknowledged"})
		}
		delete(mb.dialogs, cb.ConversationID)
		return &osci.Answer{Message: osci.Message{Type: osci.ResponseToExitDialog, Control: ctl, Operation: osci.Operation{Feedback: []osci.FeedbackEntry{osci.Entry(osci.CodeDialogClosed)}}}}, "", nil
	}
	return nil, "", osci.Refuse(osci.CodeInvalidRequest, errors.New("not here"))
}

// TestActiveConformance runs the channel contract's suite against the active
// recipient polling a mailbox. The intermediary sees only whether a delivery was
// acknowledged, so every failure is "left" (in the mailbox).
func TestActiveConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New:   func(t testing.TB) channeltest.Driver { return newMailbox(t) },
		Codes: channeltest.Codes{Accepted: "acknowledged", Temporary: "left", TooLarge: "left", Refused: "left"},
	})
}
