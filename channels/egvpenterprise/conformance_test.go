package egvpenterprise

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

// The connector's answers to Enterprise, as the conformance suite sees them.
const (
	codeCommitted   = "committed"
	codeUncommitted = "uncommitted"
	codeLeft        = "left for the operator"
)

// TestConformance runs the channel contract's suite: each of its messages arrives as
// the one document of a messageZIP at the stand-in, and the answer is whether the
// connector committed it.
func TestConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New:   func(testing.TB) channeltest.Driver { return &driver{zips: map[string][]byte{}} },
		Codes: channeltest.Codes{Accepted: codeCommitted, Temporary: codeUncommitted, TooLarge: codeLeft, Refused: codeLeft},
	})
}

type driver struct {
	srv  *enterprisetest.Server
	in   *Inbound
	deps gateway.IntakeDeps

	mu   sync.Mutex
	n    int
	last string
	zips map[string][]byte // by the message's bytes
}

func (d *driver) Start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	d.srv = enterprisetest.New(box)
	hs := httptest.NewServer(d.srv)
	t.Cleanup(hs.Close)
	in, err := New(Config{Endpoint: hs.URL, UserID: box, PollInterval: time.Hour, MaxMessageBytes: max}, deps)
	if err != nil {
		t.Fatal(err)
	}
	d.in, d.deps = in, deps
}

// wrap packs raw as Enterprise would hand over a message with one document, stored
// (not deflated), so that its size is the message's.
func (d *driver) wrap(t testing.TB, raw []byte) []byte {
	t.Helper()
	if z, ok := d.zips[string(raw)]; ok {
		return z
	}
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "attachments/message.eml", Method: zip.Store})
	if err == nil {
		_, err = w.Write(raw)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	d.zips[string(raw)] = b.Bytes()
	return b.Bytes()
}

func (d *driver) add(t testing.TB, raw []byte) string {
	d.n++
	id := fmt.Sprintf("m%d", d.n)
	d.srv.Add(box, enterprisetest.Message{ID: id, ZIP: d.wrap(t, raw)})
	return id
}

func (d *driver) Send(t testing.TB, raw []byte) channeltest.Answer {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last = d.add(t, raw)
	_ = d.in.Poll(context.Background())
	return d.answer(d.last)
}

func (d *driver) Retry(t testing.TB) channeltest.Answer {
	d.mu.Lock()
	defer d.mu.Unlock()
	_ = d.in.Poll(context.Background())
	return d.answer(d.last)
}

func (d *driver) answer(id string) channeltest.Answer {
	switch {
	case slices.Contains(d.srv.Committed(box), id):
		return channeltest.Answer{Accepted: true, Code: codeCommitted}
	case d.in.isLeft(id):
		return channeltest.Answer{Code: codeLeft}
	}
	return channeltest.Answer{Code: codeUncommitted}
}

// Stage implements channeltest.Stager: the messages wait at the stand-in, and one
// poll takes them all.
func (d *driver) Stage(t testing.TB, raws [][]byte) func(testing.TB) []channeltest.Answer {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for _, raw := range raws {
		ids = append(ids, d.add(t, raw))
	}
	return func(testing.TB) []channeltest.Answer {
		d.mu.Lock()
		defer d.mu.Unlock()
		_ = d.in.Poll(context.Background())
		var out []channeltest.Answer
		for _, id := range ids {
			out = append(out, d.answer(id))
		}
		return out
	}
}

// Transmitted implements channeltest.Framer: the messageZIP is what the peer sent.
func (d *driver) Transmitted(t testing.TB, raw []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wrap(t, raw)
}

// CheckReceipt implements channeltest.Framer: the message is the receipt's document,
// and the missing EGVP structure is a problem.
func (d *driver) CheckReceipt(t testing.TB, raw []byte, m *channeltest.MessageReceived) {
	t.Helper()
	if m.Channel != gateway.ChannelEGVP || m.Metadata[MetaMessageID] == "" {
		t.Errorf("receipt channel %s metadata %v", m.Channel, m.Metadata)
	}
	if len(m.Problems) == 0 {
		t.Error("a messageZIP without the OSCI message recorded without a problem")
	}
	for _, p := range m.Parts {
		if p.Filename != "message.eml" {
			continue
		}
		rc, err := d.deps.Blobs.Open(context.Background(), p.Blob)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, err = b.ReadFrom(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), raw) {
			t.Error("the document's bytes differ from the message")
		}
		return
	}
	t.Errorf("the message is not among the parts %+v", m.Parts)
}
