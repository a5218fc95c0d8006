// Package channeltest is the conformance suite every inbound channel runs,
// the way eventstore/conformance serves log backends: it checks the channel
// contract of gateway/channel.go against a real adapter. A channel's test
// implements Driver (deliver one message the channel's way and report the
// channel's answer) and calls Run.
//
// The suite owns the log and the blob store and hands the channel
// IntakeDeps whose Recorder it can make fail at the two crash points that
// matter: before the append (nothing is durable) and after it (the event is
// durable, but the channel is told the record failed, exactly what the peer
// sees when the process dies before the acknowledgement is sent).
package channeltest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
)

// Answer is what a channel told its peer about one delivery.
type Answer struct {
	// Accepted is true when the peer was told the message is taken and
	// will not deliver it again.
	Accepted bool
	// Code is the channel's own answer: an SMTP reply code, an OSCI
	// status, or for a collecting channel what it did with the message.
	Code string
}

// Driver delivers messages to one channel the way its peer would.
type Driver interface {
	// Start runs the channel with deps and a limit of maxMessageBytes
	// until the test ends.
	Start(t testing.TB, deps gateway.IntakeDeps, maxMessageBytes int64)
	// Send delivers raw once and returns the channel's answer. It is
	// called from several goroutines at once.
	Send(t testing.TB, raw []byte) Answer
	// Retry makes the peer deliver the last message Send delivered again,
	// as it does after an answer that was no acceptance, and returns the
	// channel's answer.
	Retry(t testing.TB) Answer
}

// Stager is implemented by a driver whose peer keeps messages in this
// process's memory (an in-memory IMAP server). The memory test stages its
// messages at the peer first and measures from there, so that the bound
// applies to the channel alone.
type Stager interface {
	// Stage makes raws ready at the peer without the channel seeing them.
	// release hands them all to the channel at once and returns its
	// answers, in any order.
	Stage(t testing.TB, raws [][]byte) (release func(testing.TB) []Answer)
}

// Framer is implemented by a driver whose channel carries each of the suite's
// messages inside a frame of its own protocol (an OSCI delivery with the message as
// its content): the bytes the channel must store are the frame as the peer
// transmitted it, and what the receipt says comes from the frame, not from reading
// the message as mail.
type Framer interface {
	// Transmitted returns the bytes the peer transmitted the first time it
	// delivered raw.
	Transmitted(t testing.TB, raw []byte) []byte
	// CheckReceipt checks the receipt of raw's delivery: the frame's fields and
	// raw itself among the recorded parts.
	CheckReceipt(t testing.TB, raw []byte, m *MessageReceived)
}

// MessageReceived is the gateway's receipt, named here for Framer.
type MessageReceived = gateway.MessageReceived

// Codes are the channel's answers the suite expects.
type Codes struct {
	// Accepted acknowledges a message (and a recognised redelivery).
	Accepted string
	// Temporary asks the peer to retry later (the record failed).
	Temporary string
	// TooLarge refuses a message over the size limit.
	TooLarge string
	// Refused refuses a message the log will not take (an invalid event).
	Refused string
}

// Config describes the channel under test.
type Config struct {
	// New returns a fresh driver for each test.
	New   func(t testing.TB) Driver
	Codes Codes
}

// Run runs the whole suite.
func Run(t *testing.T, c Config) {
	tests := []struct {
		name string
		fn   func(*testing.T, Config)
	}{
		{"RecordsWhatWasSent", testRecords},
		{"CrashAfterAppend", testCrashAfterAppend},
		{"CrashBeforeAppend", testCrashBeforeAppend},
		{"RefusedByLog", testRefusedByLog},
		{"Oversize", testOversize},
		{"HostileInputKept", testHostile},
		{"MemoryBoundedUnderConcurrentLargeInput", testMemory},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, c) })
	}
}

// fault is a crash point of the recorder.
type fault int

const (
	faultNone fault = iota
	faultBeforeAppend
	faultAfterAppend
	faultRefuse
)

var errInjected = errors.New("channeltest: injected crash")

// recorder is the gateway's Intake with a fault that fires once.
type recorder struct {
	next  gateway.Recorder
	fault atomic.Int32
}

func (r *recorder) Record(ctx context.Context, tenant, key string, msg *gateway.MessageReceived) (gateway.Receipt, error) {
	switch fault(r.fault.Swap(int32(faultNone))) {
	case faultBeforeAppend:
		return gateway.Receipt{}, errInjected
	case faultAfterAppend:
		if _, err := r.next.Record(ctx, tenant, key, msg); err != nil {
			return gateway.Receipt{}, err
		}
		return gateway.Receipt{}, errInjected
	case faultRefuse:
		return gateway.Receipt{}, fmt.Errorf("channeltest: %w", eventstore.ErrInvalidEvent)
	}
	return r.next.Record(ctx, tenant, key, msg)
}

// env is one running channel with its log and blobs.
type env struct {
	d     Driver
	log   *sqlitelog.Log
	blobs *blob.Store
	rec   *recorder
	limit int64
}

func start(t *testing.T, c Config, limit int64) *env {
	t.Helper()
	dir := t.TempDir()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{d: c.New(t), log: l, blobs: blobs, rec: &recorder{next: &gateway.Intake{Log: l}}, limit: limit}
	// Registered before Start, so it runs after the driver's cleanup has
	// stopped the channel.
	t.Cleanup(func() { l.Close() })
	e.d.Start(t, gateway.IntakeDeps{Intake: e.rec, Blobs: blobs, Logger: slog.New(slog.DiscardHandler)}, limit)
	return e
}

// received returns every MessageReceived in the log.
func (e *env) received(t testing.TB) []*gateway.MessageReceived {
	t.Helper()
	reg := gateway.NewRegistry()
	var out []*gateway.MessageReceived
	for from := int64(0); ; {
		evs, err := e.log.Read(context.Background(), 0, from, 500)
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			p, err := reg.Decode(&evs[i])
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := p.(*gateway.MessageReceived); ok {
				out = append(out, m)
			}
		}
		if len(evs) < 500 {
			return out
		}
		from = evs[len(evs)-1].Position.Offset + 1
	}
}

func (e *env) raw(t testing.TB, ref blob.Ref) []byte {
	t.Helper()
	rc, err := e.blobs.Open(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func message(id string, body string) []byte {
	return []byte("From: Bürger <buerger@example.org>\r\nTo: poststelle@kreis.example\r\nSubject: Antrag " + id +
		"\r\nMessage-ID: <" + id + "@example.org>\r\nDate: Sat, 28 Nov 2026 10:29:58 +0100\r\n\r\n" + body + "\r\n")
}

func want(t *testing.T, got Answer, accepted bool, code string) {
	t.Helper()
	if got.Accepted != accepted || got.Code != code {
		t.Fatalf("answer %+v, want accepted=%v code %s", got, accepted, code)
	}
}

func testRecords(t *testing.T, c Config) {
	e := start(t, c, 1<<20)
	raw := message("m1", "Sehr geehrte Damen und Herren")
	want(t, e.d.Send(t, raw), true, c.Codes.Accepted)
	got := e.received(t)
	if len(got) != 1 {
		t.Fatalf("%d messages recorded, want 1", len(got))
	}
	m := got[0]
	if f, ok := e.d.(Framer); ok {
		if !bytes.Equal(e.raw(t, m.Raw), f.Transmitted(t, raw)) {
			t.Error("the stored raw bytes differ from what was transmitted")
		}
		f.CheckReceipt(t, raw, m)
		return
	}
	if !bytes.Equal(e.raw(t, m.Raw), raw) {
		t.Error("the stored raw bytes differ from what was sent")
	}
	if m.SenderMessageID != "<m1@example.org>" || m.From.Address != "buerger@example.org" || m.Subject != "Antrag m1" {
		t.Errorf("receipt %+v", m)
	}
	if strings.Contains(m.Transport.Coordinates, "m1@example.org") {
		t.Errorf("coordinates %q hold the sender's message id", m.Transport.Coordinates)
	}
}

// testCrashAfterAppend: the event is durable but the peer got no
// acknowledgement; its redelivery is recognised and stays one message.
func testCrashAfterAppend(t *testing.T, c Config) {
	e := start(t, c, 1<<20)
	e.rec.fault.Store(int32(faultAfterAppend))
	want(t, e.d.Send(t, message("m2", "x")), false, c.Codes.Temporary)
	if n := len(e.received(t)); n != 1 {
		t.Fatalf("%d messages after the crash, want the 1 appended", n)
	}
	want(t, e.d.Retry(t), true, c.Codes.Accepted)
	if n := len(e.received(t)); n != 1 {
		t.Fatalf("%d messages after the redelivery, want 1", n)
	}
}

// testCrashBeforeAppend: nothing is durable, the peer retries, and the
// retry records the message once.
func testCrashBeforeAppend(t *testing.T, c Config) {
	e := start(t, c, 1<<20)
	e.rec.fault.Store(int32(faultBeforeAppend))
	want(t, e.d.Send(t, message("m3", "x")), false, c.Codes.Temporary)
	if n := len(e.received(t)); n != 0 {
		t.Fatalf("%d messages recorded by a crash before the append", n)
	}
	want(t, e.d.Retry(t), true, c.Codes.Accepted)
	if n := len(e.received(t)); n != 1 {
		t.Fatalf("%d messages after the retry, want 1", n)
	}
}

func testRefusedByLog(t *testing.T, c Config) {
	e := start(t, c, 1<<20)
	e.rec.fault.Store(int32(faultRefuse))
	want(t, e.d.Send(t, message("m4", "x")), false, c.Codes.Refused)
	if n := len(e.received(t)); n != 0 {
		t.Fatalf("%d messages recorded although the log refused the event", n)
	}
}

func testOversize(t *testing.T, c Config) {
	const limit = 64 << 10
	e := start(t, c, limit)
	want(t, e.d.Send(t, message("big", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 2*limit/64))), false, c.Codes.TooLarge)
	if n := len(e.received(t)); n != 0 {
		t.Fatalf("%d messages recorded over the limit", n)
	}
	want(t, e.d.Send(t, message("small", "fits")), true, c.Codes.Accepted)
}

// hostile are inputs a parser may choke on. Each must be recorded with its
// bytes; broken marks those whose damage the receipt must list; lf marks
// those with bare LFs, which a transport whose lines end in CRLF (SMTP
// DATA, IMAP literals) may carry as CRLF, so that the bytes transmitted and
// stored are the message with each bare LF as CRLF.
var hostile = []struct {
	name   string
	raw    string
	broken bool
	lf     bool
}{
	{"no header", "\r\nonly a line of text\r\n", false, false},
	{"binary", "Subject: bin\r\n\r\n" + binaryLine() + "\r\n", false, false},
	{"header soup", "Subject: a\r\n broken fold\r\nNoColonHere\r\n: empty name\r\nFrom: <<<@@@>>>\r\n\r\nbody\r\n", true, false},
	{"unclosed multipart", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n", false, false},
	{"bad base64", "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!not base64 at all!!!!\r\n", false, false},
	{"too deep", deepMultipart(40), true, false},
	{"header without colon", "Subject: a\r\nNoColonHere\r\nFrom: a@example.org\r\n\r\nbody\r\n", true, false},
	{"NUL in header name", "Subj\x00ect: x\r\nFrom: a@example.org\r\n\r\nbody\r\n", true, false},
	{"8-bit header name", "S\xfcbject: x\r\nFrom: a@example.org\r\n\r\nbody\r\n", true, false},
	{"header line over 998", "Subject: long\r\nX-Long: " + strings.Repeat("a", 1200) + "\r\n\r\nbody\r\n", false, false},
	{"bare LF", "Subject: lf\nFrom: a@example.org\n\nbody\n", false, true},
	{"no blank line after the header", "Subject: no body\r\nFrom: a@example.org\r\n", false, false},
}

// crlf turns every bare LF of s into CRLF.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

func binaryLine() string {
	var b strings.Builder
	for i := range 256 {
		if i != '\r' && i != '\n' {
			b.WriteByte(byte(i))
		}
	}
	return b.String()
}

func deepMultipart(depth int) string {
	var b strings.Builder
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ninnermost\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.String()
}

// testHostile: what cannot be parsed is kept for triage, never refused and
// never lost.
func testHostile(t *testing.T, c Config) {
	e := start(t, c, 1<<20)
	for i, h := range hostile {
		t.Logf("sending %s", h.name)
		want(t, e.d.Send(t, []byte(h.raw)), true, c.Codes.Accepted)
		got := e.received(t)
		if len(got) != i+1 {
			t.Fatalf("%s: %d messages recorded, want %d", h.name, len(got), i+1)
		}
		m := got[i]
		if f, ok := e.d.(Framer); ok {
			// The frame is the channel's to parse; the message inside is content.
			if !bytes.Equal(e.raw(t, m.Raw), f.Transmitted(t, []byte(h.raw))) {
				t.Errorf("%s: the stored bytes differ from what was transmitted", h.name)
			}
			f.CheckReceipt(t, []byte(h.raw), m)
			continue
		}
		if stored := e.raw(t, m.Raw); !bytes.Equal(stored, []byte(h.raw)) && !(h.lf && bytes.Equal(stored, crlf(h.raw))) {
			t.Errorf("%s: the stored bytes differ from what was sent", h.name)
		}
		if h.broken && len(m.Problems) == 0 {
			t.Errorf("%s: recorded without a problem for triage", h.name)
		}
	}
}

// testMemory sends large messages at once and bounds the heap's growth:
// a channel must stream, not hold messages in memory.
func testMemory(t *testing.T, c Config) {
	const (
		senders = 6
		size    = 6 << 20
		bound   = 24 << 20 // less than the messages together: buffering them fails
	)
	e := start(t, c, 2*size)
	line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", 2)[:72] + "\r\n"
	msgs := make([][]byte, senders)
	for i := range msgs {
		body := strings.Repeat(line, size/len(line))
		msgs[i] = []byte("From: a@example.org\r\nSubject: large " + fmt.Sprint(i) + "\r\nContent-Type: application/pdf\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\n" + body)
	}
	var release func(testing.TB) []Answer
	if st, ok := e.d.(Stager); ok {
		release = st.Stage(t, msgs)
	}
	// HeapAlloc counts garbage until the next collection, and with the
	// default GOGC the heap may hold as much garbage as live data; collect
	// eagerly so that the peak follows what the channel keeps alive.
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	answers := make([]Answer, senders)
	if release != nil {
		answers = release(t)
	} else {
		var wg sync.WaitGroup
		for i := range msgs {
			wg.Go(func() { answers[i] = e.d.Send(t, msgs[i]) })
		}
		wg.Wait()
	}
	close(stop)
	<-sampled
	for i, a := range answers {
		if !a.Accepted {
			t.Errorf("message %d: %+v", i, a)
		}
	}
	allowed := uint64(bound)
	grew := peak.Load() - min(base, peak.Load())
	t.Logf("%d × %d MiB at once: heap grew by %.1f MiB (allowed %.1f MiB)", senders, size>>20, float64(grew)/(1<<20), float64(allowed)/(1<<20))
	if grew > allowed {
		t.Errorf("heap grew by %d bytes under %d concurrent %d-byte messages, more than %d", grew, senders, size, allowed)
	}
	if n := len(e.received(t)); n != senders {
		t.Errorf("%d messages recorded, want %d", n, senders)
	}
}
