package verification_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/verification"
)

// watchedBlobs wraps the store: it can fail opening one blob, and counts
// the signature parts open at once.
type watchedBlobs struct {
	*blob.Store
	broken         blob.Ref
	sigSize        int64
	open, peakOpen atomic.Int64
	hold           time.Duration
}

func (w *watchedBlobs) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	if ref == w.broken {
		return nil, errors.New("disk on fire")
	}
	rc, err := w.Store.Open(ctx, ref)
	if err != nil || ref.Size != w.sigSize {
		return rc, err
	}
	n := w.open.Add(1)
	for p := w.peakOpen.Load(); n > p && !w.peakOpen.CompareAndSwap(p, n); p = w.peakOpen.Load() {
	}
	time.Sleep(w.hold)
	return &countedCloser{ReadCloser: rc, open: &w.open}, nil
}

type countedCloser struct {
	io.ReadCloser
	open *atomic.Int64
	once sync.Once
}

func (c *countedCloser) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.ReadCloser.Close()
}

// signedAttachment stores a document and its detached .p7s and returns the
// message holding both.
func signedAttachment(t *testing.T, bs *blob.Store, p *verifytest.PKI, doc []byte) *gateway.MessageReceived {
	t.Helper()
	ctx := context.Background()
	docRef, err := bs.PutBytes(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	sigRef, err := bs.PutBytes(ctx, p.Sign(t, doc, false))
	if err != nil {
		t.Fatal(err)
	}
	return &gateway.MessageReceived{Channel: gateway.ChannelSMTP, Subject: "Antrag", ReceivedAt: time.Now(),
		Parts: []gateway.Part{
			{Path: "1", MediaType: "application/pdf", Filename: "antrag.pdf", Kind: "attachment", Blob: docRef},
			{Path: "2", MediaType: "application/pkcs7-signature", Filename: "antrag.pdf.p7s", Kind: "signature", Blob: sigRef},
		}}
}

// TestUnreadableContentIsRetried: when the signed content cannot be read,
// the handler fails (the pipeline retries) instead of recording a verdict.
func TestUnreadableContentIsRetried(t *testing.T) {
	bs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := verifytest.New(t, "p256")
	m := signedAttachment(t, bs, p, []byte("%PDF-1.4 Antrag\n"))
	w := &watchedBlobs{Store: bs, broken: m.Parts[0].Blob}
	hs, err := verification.Handlers(context.Background(), verification.Config{TrustAnchors: []string{p.CACert}}, verification.Deps{Blobs: w})
	if err != nil {
		t.Fatal(err)
	}
	out, err := hs[0].Handle(context.Background(), &eventstore.Event{RecordedAt: time.Now()}, m)
	if !errors.Is(err, verify.ErrContentRead) || out != nil {
		t.Fatalf("out %v, err %v; want ErrContentRead", out, err)
	}
	w.broken = blob.Ref{}
	out, err = hs[0].Handle(context.Background(), &eventstore.Event{RecordedAt: time.Now()}, m)
	if err != nil {
		t.Fatal(err)
	}
	if s := out[0].(*gateway.SignaturesVerified).Signatures; len(s) != 1 || s[0].Indication != "TOTAL_PASSED" {
		t.Fatalf("signatures %+v", s)
	}
}

// TestMemoryBudgetSerializes: with a budget that fits one signature part,
// concurrent events read their parts one after another, and all pass.
func TestMemoryBudgetSerializes(t *testing.T) {
	bs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := verifytest.New(t, "p256")
	m := signedAttachment(t, bs, p, []byte("%PDF-1.4 Antrag\n"))
	sig := m.Parts[1].Blob.Size
	for _, c := range []struct {
		budget          int64
		atLeast, atMost int64
	}{
		{sig + 64<<10, 1, 1}, // one message's share
		{8 * (sig + 64<<10), 2, 8},
	} {
		w := &watchedBlobs{Store: bs, sigSize: sig, hold: 50 * time.Millisecond}
		hs, err := verification.Handlers(context.Background(), verification.Config{TrustAnchors: []string{p.CACert}, MemoryBudget: c.budget},
			verification.Deps{Blobs: w})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				out, err := hs[0].Handle(context.Background(), &eventstore.Event{RecordedAt: time.Now()}, m)
				if err != nil {
					t.Error(err)
					return
				}
				if s := out[0].(*gateway.SignaturesVerified).Signatures; len(s) != 1 || s[0].Indication != "TOTAL_PASSED" {
					t.Errorf("signatures %+v", s)
				}
			})
		}
		wg.Wait()
		if got := w.peakOpen.Load(); got < c.atLeast || got > c.atMost {
			t.Errorf("budget %d: %d signature parts open at once, want %d to %d", c.budget, got, c.atLeast, c.atMost)
		}
	}
}
