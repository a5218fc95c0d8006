package portal

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

// The collector's answers to the platform, as the conformance suite sees them.
const (
	codeConfirmed   = "confirmed"
	codeUnconfirmed = "unconfirmed"
	codeLeft        = "left for the operator"
)

// TestConformance runs the channel contract's suite: each of its messages
// arrives as the one attachment of a FIT-Connect submission at the fake
// platform, and the answer is whether the collector posted its decision.
func TestConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New:   func(testing.TB) channeltest.Driver { return &driver{subs: map[string]*fakeSub{}} },
		Codes: channeltest.Codes{Accepted: codeConfirmed, Temporary: codeUnconfirmed, TooLarge: codeLeft, Refused: codeLeft},
	})
}

type driver struct {
	fake *fakePlatform
	in   *Inbound
	deps gateway.IntakeDeps

	mu   sync.Mutex
	last string
	subs map[string]*fakeSub // by the message's bytes
}

func (d *driver) Start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	d.fake = newFake()
	in, err := newInbound(Config{SubmissionAPI: "http://127.0.0.1:1/v1", DestinationID: testDestination, PollInterval: time.Hour,
		MaxSubmissionSize: ByteSize(max)}, deps, inboundOptions{api: d.fake, keys: testKeys()})
	if err != nil {
		t.Fatal(err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	d.in, d.deps = in, deps
}

// sub is raw's submission, built once.
func (d *driver) sub(t testing.TB, raw []byte) *fakeSub {
	if s, ok := d.subs[string(raw)]; ok {
		return s
	}
	s := build(t, subSpec{attachments: [][]byte{raw}})
	d.subs[string(raw)] = s
	return s
}

func (d *driver) Send(t testing.TB, raw []byte) channeltest.Answer {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sub(t, raw)
	d.fake.add(s)
	d.last = s.ref.SubmissionID
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
	case len(d.fake.decisions(id)) > 0:
		return channeltest.Answer{Accepted: true, Code: codeConfirmed}
	case d.in.isLeft(id):
		return channeltest.Answer{Code: codeLeft}
	}
	return channeltest.Answer{Code: codeUnconfirmed}
}

// Stage implements channeltest.Stager: the submissions wait at the fake, and
// one poll takes them all.
func (d *driver) Stage(t testing.TB, raws [][]byte) func(testing.TB) []channeltest.Answer {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for _, raw := range raws {
		s := d.sub(t, raw)
		d.fake.add(s)
		ids = append(ids, s.ref.SubmissionID)
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

// Transmitted implements channeltest.Framer: the raw envelope of what the
// platform served.
func (d *driver) Transmitted(t testing.TB, raw []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sub(t, raw)
	return envelopeOf(t, s)
}

// envelopeOf is the raw envelope of s as the collector writes it.
func envelopeOf(t testing.TB, s *fakeSub) []byte {
	t.Helper()
	var sj fitconnect.Submission
	if err := jsonUnmarshal(s.json, &sj); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var atts []fetchedAttachment
	for i, id := range sj.Attachments {
		name := filepath.Join(dir, id)
		if err := os.WriteFile(name, []byte(s.attachments[id]), 0o600); err != nil {
			t.Fatal(err)
		}
		atts = append(atts, fetchedAttachment{id: id, file: name, size: int64(len(s.attachments[id]))})
		_ = i
	}
	var b bytes.Buffer
	if err := writeEnvelope(&b, s.json, atts); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// CheckReceipt implements channeltest.Framer: the message is the receipt's
// attachment, accepted.
func (d *driver) CheckReceipt(t testing.TB, raw []byte, m *channeltest.MessageReceived) {
	t.Helper()
	if m.Channel != gateway.ChannelPortal || m.Portal == nil || m.Portal.Decision != gateway.PortalAccepted {
		t.Errorf("receipt channel %s portal %+v problems %v", m.Channel, m.Portal, m.Problems)
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
			t.Error("the attachment's bytes differ from the message")
		}
		return
	}
	t.Errorf("the message is not among the parts %+v", m.Parts)
}
