package postbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

const (
	testToken   = "pst_test-token-of-portal-a"
	otherToken  = "pst_test-token-of-portal-b"
	codeDone    = "2xx"
	codeRetry   = "503"
	codeTooBig  = "413"
	codeRefused = "422"
)

func testConfig(max int64) Config {
	return Config{Listen: "127.0.0.1:0", MaxMessageBytes: max, Clients: []Client{
		{ID: "portal-a", Name: "Portal A", TokenHash: HashToken(testToken), RatePerMinute: -1},
		{ID: "portal-b", TokenHash: HashToken(otherToken), RatePerMinute: -1},
	}}
}

// TestConformance runs the channel contract's suite: each message is the one
// attachment of a submission, posted as a portal would, and the answer is
// the HTTP status.
func TestConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New:   func(testing.TB) channeltest.Driver { return &driver{sent: map[[32]byte]attempt{}} },
		Codes: channeltest.Codes{Accepted: codeDone, Temporary: codeRetry, TooLarge: codeTooBig, Refused: codeRefused},
	})
}

// attempt is one submission as the driver posted it.
type attempt struct {
	key, boundary string
	n             int
}

type driver struct {
	base string
	mu   sync.Mutex
	n    int
	last []byte
	sent map[[32]byte]attempt // by the hash of the message, its first posting
}

func startInbound(t testing.TB, cfg Config, deps gateway.IntakeDeps) *Inbound {
	t.Helper()
	in, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return in
}

func (d *driver) Start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	in := startInbound(t, testConfig(max), deps)
	d.base = "http://" + in.Addr().String()
}

func envelopeJSON(n int) string {
	return fmt.Sprintf(`{"subject":"Antrag %d","senderReference":"ref-%d","postboxReference":"pb-1","serviceIdentifier":"99050012104000"}`, n, n)
}

// writeBody writes the submission of raw with the given boundary.
func writeBody(w io.Writer, a attempt, raw []byte) error {
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(a.boundary); err != nil {
		return err
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="message"`)
	h.Set("Content-Type", "application/json")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(pw, envelopeJSON(a.n)); err != nil {
		return err
	}
	h = textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="attachment"; filename="antrag.eml"`)
	h.Set("Content-Type", "message/rfc822")
	if pw, err = mw.CreatePart(h); err != nil {
		return err
	}
	if _, err := pw.Write(raw); err != nil {
		return err
	}
	return mw.Close()
}

// post streams the submission (the memory test bounds the heap, so the body
// is never built in memory) and returns the status.
func (d *driver) post(t testing.TB, a attempt, raw []byte) channeltest.Answer {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeBody(pw, a, raw)) }()
	req, err := http.NewRequest(http.MethodPost, d.base+"/v1/messages", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+a.boundary)
	req.Header.Set("Idempotency-Key", a.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The server may answer 413 and close before the body is sent.
		return channeltest.Answer{Code: "no answer: " + err.Error()}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
		return channeltest.Answer{Accepted: true, Code: codeDone}
	}
	return channeltest.Answer{Code: strconv.Itoa(resp.StatusCode)}
}

func (d *driver) Send(t testing.TB, raw []byte) channeltest.Answer {
	sum := sha256.Sum256(raw)
	d.mu.Lock()
	d.n++
	a := attempt{key: fmt.Sprintf("key-%d", d.n), boundary: fmt.Sprintf("boundary-%d", d.n), n: d.n}
	if _, ok := d.sent[sum]; !ok {
		d.sent[sum] = a
	}
	d.last = raw
	d.mu.Unlock()
	return d.post(t, a, raw)
}

// Retry posts the last message again with its Idempotency-Key, but with a
// new boundary, as a portal that encodes the request anew would.
func (d *driver) Retry(t testing.TB) channeltest.Answer {
	d.mu.Lock()
	raw := d.last
	a := attempt{key: fmt.Sprintf("key-%d", d.n), boundary: fmt.Sprintf("retry-%d", d.n), n: d.n}
	d.mu.Unlock()
	return d.post(t, a, raw)
}

// Transmitted implements channeltest.Framer: the request body is what the
// portal transmitted.
func (d *driver) Transmitted(t testing.TB, raw []byte) []byte {
	d.mu.Lock()
	a := d.sent[sha256.Sum256(raw)]
	d.mu.Unlock()
	var b bytesBuffer
	if err := writeBody(&b, a, raw); err != nil {
		t.Fatal(err)
	}
	return b.b
}

// CheckReceipt implements channeltest.Framer: the message is the one
// attachment, and the envelope's fields are the receipt's.
func (d *driver) CheckReceipt(t testing.TB, raw []byte, m *channeltest.MessageReceived) {
	t.Helper()
	sum := sha256.Sum256(raw)
	a := d.sent[sum]
	if m.Channel != gateway.ChannelPostbox || m.Metadata[MetaClient] != "portal-a" || m.Metadata[MetaIdempotencyKey] != a.key ||
		m.Metadata[MetaServiceIdentifier] != "99050012104000" {
		t.Errorf("receipt channel %s metadata %v", m.Channel, m.Metadata)
	}
	if m.From.Address != "pb-1" || m.SenderMessageID != fmt.Sprintf("ref-%d", a.n) || m.Subject != fmt.Sprintf("Antrag %d", a.n) {
		t.Errorf("receipt from %+v sender id %q subject %q", m.From, m.SenderMessageID, m.Subject)
	}
	if len(m.Parts) != 1 || m.Parts[0].Blob.SHA256 != hex.EncodeToString(sum[:]) || m.Parts[0].Filename != "antrag.eml" ||
		m.Parts[0].MediaType != "message/rfc822" {
		t.Errorf("parts %+v", m.Parts)
	}
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// decode is a test helper for JSON answers.
func decode(t testing.TB, r io.Reader, v any) {
	t.Helper()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatal(err)
	}
}
