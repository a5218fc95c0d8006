package postbox

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
	"github.com/poststelle/poststelle/gateway/replies"
)

// env is the API over a real embedded log, blob store and state database,
// as `poststelle serve` builds it.
type env struct {
	t     *testing.T
	log   *sqlitelog.Log
	blobs *blob.Store
	state *sql.DB
	in    *Inbound
	base  string
}

func newEnv(t *testing.T, cfg Config, afterRecord func(gateway.Receipt)) *env {
	t.Helper()
	dir := t.TempDir()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	state, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	state.SetMaxOpenConns(1)
	t.Cleanup(func() { state.Close() })
	runner := &projection.Runner{Log: l, DB: state, Registry: gateway.NewRegistry(), Logger: slog.New(slog.DiscardHandler)}
	if err := runner.Setup(context.Background(), projection.References{}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, log: l, blobs: blobs, state: state}
	e.in = startInbound(t, cfg, gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Evidence: projection.NewEvidenceRecorder(runner),
		Blobs: blobs, Log: l, State: state, Logger: slog.New(slog.DiscardHandler), AfterRecord: afterRecord})
	e.base = "http://" + e.in.Addr().String()
	return e
}

// part is one part of a hand-made submission.
type part struct {
	name, filename, contentType, body string
}

func multipartBody(t testing.TB, boundary string, parts ...part) []byte {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(boundary); err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		cd := fmt.Sprintf(`form-data; name=%q`, p.name)
		if p.filename != "" {
			cd += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		h.Set("Content-Disposition", cd)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p.body)
	}
	mw.Close()
	return b.Bytes()
}

var goodParts = []part{
	{name: "message", contentType: "application/json", body: `{"subject":"Antrag auf Wohngeld","senderReference":"antrag-17","postboxReference":"pb-4711","senderName":"Erika Mustermann","serviceIdentifier":"99050012104000","routingHints":{"office":"wohngeld"}}`},
	{name: "attachment", filename: "antrag.pdf", contentType: "application/pdf", body: "%PDF-1.7 antrag"},
	{name: "attachment", filename: "nachweis.png", contentType: "image/png", body: "\x89PNG nachweis"},
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(method, path, token string, header map[string]string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{status: -1, body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (e *env) submit(token, key, boundary string, parts ...part) response {
	e.t.Helper()
	return e.do(http.MethodPost, "/v1/messages", token, map[string]string{"Idempotency-Key": key,
		"Content-Type": "multipart/form-data; boundary=" + boundary}, multipartBody(e.t, boundary, parts...))
}

func (e *env) received() []*gateway.MessageReceived {
	e.t.Helper()
	var out []*gateway.MessageReceived
	for _, ev := range e.events() {
		if m, ok := ev.p.(*gateway.MessageReceived); ok {
			out = append(out, m)
		}
	}
	return out
}

type decodedEvent struct {
	e eventstore.Event
	p gateway.Payload
}

func (e *env) events() []decodedEvent {
	e.t.Helper()
	reg := gateway.NewRegistry()
	evs, err := e.log.Read(context.Background(), 0, 0, 10000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []decodedEvent
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, decodedEvent{evs[i], p})
	}
	return out
}

func TestSubmitRecordsTheEnvelopeAndAttachments(t *testing.T) {
	e := newEnv(t, testConfig(1<<20), nil)
	r := e.submit(testToken, "k-1", "b1", goodParts...)
	if r.status != http.StatusCreated || !strings.Contains(r.body, `"duplicate":false`) {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	got := e.received()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	m := got[0]
	if m.Channel != gateway.ChannelPostbox || m.Subject != "Antrag auf Wohngeld" || m.SenderMessageID != "antrag-17" ||
		m.From != (gateway.Address{Address: "pb-4711", Name: "Erika Mustermann"}) || m.Transport.Coordinates != "portal-a/k-1" {
		t.Errorf("receipt %+v", m)
	}
	want := map[string]string{MetaClient: "portal-a", MetaIdempotencyKey: "k-1", MetaServiceIdentifier: "99050012104000", MetaHintPrefix + "office": "wohngeld"}
	if fmt.Sprint(m.Metadata) != fmt.Sprint(want) {
		t.Errorf("metadata %v, want %v", m.Metadata, want)
	}
	if len(m.Parts) != 2 || m.Parts[0].Filename != "antrag.pdf" || m.Parts[1].MediaType != "image/png" || m.Parts[0].Path != "1" {
		t.Errorf("parts %+v", m.Parts)
	}
	raw, _ := blob.ReadAllFrom(context.Background(), e.blobs, m.Raw, 1<<20)
	if !bytes.Equal(raw, multipartBody(t, "b1", goodParts...)) {
		t.Error("the raw blob is not the request body")
	}
	// Another client's same key is another message; the same client's is not.
	if r := e.submit(otherToken, "k-1", "b2", goodParts...); r.status != http.StatusCreated {
		t.Errorf("other client, same key: %d %s", r.status, r.body)
	}
	if r := e.submit(testToken, "k-1", "b3", goodParts...); r.status != http.StatusOK || !strings.Contains(r.body, `"duplicate":true`) {
		t.Errorf("same client, same key: %d %s", r.status, r.body)
	}
	// The same key for another message is a conflict; the first stands.
	other := append([]part(nil), goodParts...)
	other[1].body = "%PDF-1.7 ein anderer Antrag"
	if r := e.submit(testToken, "k-1", "b4", other...); r.status != http.StatusUnprocessableEntity ||
		!strings.Contains(r.body, "urn:poststelle:postbox:idempotency-key-reused") {
		t.Errorf("same key, other attachment: %d %s", r.status, r.body)
	}
	if n := len(e.received()); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// TestCrashAfterRecordRetryIsOneMessage: the process dies between the
// durable Record and the 201 (here: the handler panics, and the portal's
// connection is cut without an answer); the portal retries with the same
// Idempotency-Key and gets 200 for the one message.
func TestCrashAfterRecordRetryIsOneMessage(t *testing.T) {
	crashed := false
	e := newEnv(t, testConfig(1<<20), func(gateway.Receipt) {
		if !crashed {
			crashed = true
			panic("crash after record")
		}
	})
	if r := e.submit(testToken, "k-crash", "b1", goodParts...); r.status != -1 {
		t.Fatalf("the crashed submission was answered: %d %s", r.status, r.body)
	}
	if n := len(e.received()); n != 1 {
		t.Fatalf("%d messages after the crash, want the 1 recorded", n)
	}
	r := e.submit(testToken, "k-crash", "b-retry", goodParts...)
	if r.status != http.StatusOK || !strings.Contains(r.body, `"duplicate":true`) {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	if n := len(e.received()); n != 1 {
		t.Fatalf("%d messages after the retry, want 1", n)
	}
}

func TestBadInput(t *testing.T) {
	cfg := testConfig(4 << 10)
	cfg.MaxAttachments = 2
	e := newEnv(t, cfg, nil)
	mp := "multipart/form-data; boundary=b"
	msg := goodParts[0]
	tests := []struct {
		name   string
		token  string
		header map[string]string
		body   []byte
		status int
		slug   string
	}{
		{"no token", "", map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", goodParts...), 401, "unauthenticated"},
		{"wrong token", "pst_wrong", map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", goodParts...), 401, "unauthenticated"},
		{"hash as token", HashToken(testToken), map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", goodParts...), 401, "unauthenticated"},
		{"no idempotency key", testToken, map[string]string{"Content-Type": mp}, multipartBody(t, "b", goodParts...), 400, "idempotency-key"},
		{"idempotency key with space", testToken, map[string]string{"Idempotency-Key": "a b", "Content-Type": mp}, multipartBody(t, "b", goodParts...), 400, "idempotency-key"},
		{"json body", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": "application/json"}, []byte(`{}`), 415, "media-type"},
		{"no boundary", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": "multipart/form-data"}, multipartBody(t, "b", goodParts...), 400, "bad-multipart"},
		{"wrong boundary", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": "multipart/form-data; boundary=zz"}, multipartBody(t, "b", goodParts...), 400, "bad-message"},
		{"truncated multipart", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", goodParts...)[:200], 400, "bad-multipart"},
		{"garbage", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, []byte("--b\r\nno header end"), 400, "bad-multipart"},
		{"no message part", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", goodParts[1]), 400, "bad-message"},
		{"two message parts", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", msg, msg), 400, "bad-message"},
		{"message not json", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", part{name: "message", body: "subject: x"}), 400, "bad-message"},
		{"message as text", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", part{name: "message", contentType: "text/plain", body: msg.body}), 400, "bad-message"},
		{"unknown field", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", part{name: "message", body: `{"senderReference":"a","postboxReference":"b","bcc":"x"}`}), 400, "bad-message"},
		{"no postbox reference", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", part{name: "message", body: `{"senderReference":"a"}`}), 400, "bad-message"},
		{"control character", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", part{name: "message", body: `{"senderReference":"a","postboxReference":"b\r\nBcc: x"}`}), 400, "bad-message"},
		{"bad hint key", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", part{name: "message", body: `{"senderReference":"a","postboxReference":"b","routingHints":{"a b":"c"}}`}), 400, "bad-message"},
		{"attachment without filename", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", msg, part{name: "attachment", body: "x"}), 400, "bad-attachment"},
		{"unknown part", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", msg, part{name: "file", filename: "a", body: "x"}), 400, "bad-multipart"},
		{"too many attachments", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", append(goodParts, goodParts[1])...), 400, "too-many-attachments"},
		{"oversize", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": mp}, multipartBody(t, "b", msg, part{name: "attachment", filename: "big", body: strings.Repeat("x", 5<<10)}), 413, "too-large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodPost, "/v1/messages", tt.token, tt.header, tt.body)
			if r.status != tt.status || r.header.Get("Content-Type") != "application/problem+json" ||
				!strings.Contains(r.body, `"type":"urn:poststelle:postbox:`+tt.slug+`"`) {
				t.Errorf("got %d %s %s, want %d %s", r.status, r.header.Get("Content-Type"), r.body, tt.status, tt.slug)
			}
			if strings.Contains(r.body, testToken) {
				t.Error("the answer repeats the token")
			}
		})
	}
	if n := len(e.received()); n != 0 {
		t.Errorf("%d messages recorded from bad input", n)
	}
}

func TestRateLimit(t *testing.T) {
	cfg := testConfig(1 << 20)
	cfg.Clients[0].RatePerMinute = 1
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	in, err := New(cfg, gateway.IntakeDeps{Intake: &gateway.Intake{}, Blobs: &blob.Memory{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer in.ln.Close()
	c := &in.clients[0]
	for i := range limiterBurst + 1 {
		if _, ok := in.limiter.allow(c); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	wait, ok := in.limiter.allow(c)
	if ok || wait <= 0 {
		t.Fatalf("request after the burst: ok %v wait %v", ok, wait)
	}
	if _, ok := in.limiter.allow(&in.clients[1]); !ok {
		t.Error("another client was limited")
	}
	now = now.Add(time.Minute)
	if _, ok := in.limiter.allow(c); !ok {
		t.Error("refused a minute later")
	}
}

// answerFor appends what an office's answer and the reply sender's
// acceptance append: ReplyRequested, then ReplySent, in the message's stream.
func (e *env) answerFor(stream, replyID string, sent bool) {
	e.t.Helper()
	ctx := context.Background()
	body, err := e.blobs.PutBytes(ctx, []byte("Ihr Antrag ist bewilligt."))
	if err != nil {
		e.t.Fatal(err)
	}
	att, _ := e.blobs.PutBytes(ctx, []byte("%PDF-1.7 bescheid"))
	evs := []gateway.Payload{&gateway.ReplyRequested{ReplyID: replyID, Office: "wohngeld", Author: "mueller", Channel: gateway.ChannelPostbox,
		To: gateway.Address{Address: "pb-4711"}, Subject: "Bescheid", Body: body, InReplyTo: "antrag-17",
		Attachments: []gateway.Part{{Path: "1", MediaType: "application/pdf", Filename: "bescheid.pdf", Blob: att, Kind: "attachment"}}}}
	if sent {
		evs = append(evs, &gateway.ReplySent{ReplyID: replyID, Channel: gateway.ChannelPostbox, ChannelMessageID: replyID, Attempt: 1})
	}
	for i, p := range evs {
		ev, err := gateway.Encode(gateway.Meta{ID: fmt.Sprintf("%s-%d", replyID, i), Stream: stream}, p)
		if err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.log.Append(ctx, ev); err != nil {
			e.t.Fatal(err)
		}
	}
}

func TestAnswerPickUp(t *testing.T) {
	e := newEnv(t, testConfig(1<<20), nil)
	r := e.submit(testToken, "k-1", "b1", goodParts...)
	if r.status != http.StatusCreated {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	var sub submitted
	decode(t, strings.NewReader(r.body), &sub)
	e.answerFor(sub.MessageID, "reply-1", true)
	e.answerFor(sub.MessageID, "reply-2", false) // requested, not yet accepted: not in the queue

	// The outbound accepts answers to postbox messages of known clients.
	out, err := NewOutbound(testConfig(0))
	if err != nil {
		t.Fatal(err)
	}
	msg := e.received()[0]
	if info, err := out.Send(context.Background(), &gateway.ReplyRequested{ReplyID: "reply-1"}, msg); err != nil || info.ChannelMessageID != "reply-1" {
		t.Errorf("send: %+v %v", info, err)
	}
	for _, bad := range []*gateway.MessageReceived{{Channel: gateway.ChannelSMTP}, {Channel: gateway.ChannelPostbox, Metadata: map[string]string{MetaClient: "gone"}}} {
		if _, err := out.Send(context.Background(), &gateway.ReplyRequested{ReplyID: "x"}, bad); !replies.IsPermanent(err) {
			t.Errorf("send to %+v: %v, want a permanent error", bad, err)
		}
	}

	list := func(token string) answerList {
		t.Helper()
		r := e.do(http.MethodGet, "/v1/answers", token, nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		var l answerList
		decode(t, strings.NewReader(r.body), &l)
		return l
	}
	l := list(testToken)
	if len(l.Answers) != 1 || l.Answers[0].AnswerID != "reply-1" || l.Answers[0].MessageID != sub.MessageID ||
		l.Answers[0].SenderReference != "antrag-17" || l.Answers[0].PostboxReference != "pb-4711" || len(l.Answers[0].Attachments) != 1 {
		t.Fatalf("list %+v", l)
	}
	if l := list(otherToken); len(l.Answers) != 0 {
		t.Errorf("the other client lists %+v", l)
	}
	for _, path := range []string{"/v1/answers/reply-1", "/v1/answers/reply-1/body", "/v1/answers/reply-1/attachments/1"} {
		if r := e.do(http.MethodGet, path, otherToken, nil, nil); r.status != http.StatusNotFound {
			t.Errorf("other client GET %s: %d %s", path, r.status, r.body)
		}
	}
	if r := e.do(http.MethodDelete, "/v1/answers/reply-1", otherToken, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("other client DELETE: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/v1/answers/reply-2", testToken, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("an answer not yet delivered: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/v1/answers/reply-1/body", testToken, nil, nil); r.status != 200 || r.body != "Ihr Antrag ist bewilligt." {
		t.Errorf("body: %d %q", r.status, r.body)
	}
	r = e.do(http.MethodGet, "/v1/answers/reply-1/attachments/1", testToken, nil, nil)
	if r.status != 200 || r.body != "%PDF-1.7 bescheid" || r.header.Get("Content-Type") != "application/pdf" ||
		!strings.Contains(r.header.Get("Content-Disposition"), "bescheid.pdf") ||
		r.header.Get("Repr-Digest") != "sha-256=:"+base64.StdEncoding.EncodeToString(sha256sum(r.body))+":" {
		t.Errorf("attachment: %d %q %v", r.status, r.body, r.header)
	}
	if r := e.do(http.MethodGet, "/v1/answers/reply-1/attachments/2", testToken, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("attachment 2: %d", r.status)
	}

	// The pick-up: recorded as evidence, then off the queue; twice is once.
	for range 2 {
		if r := e.do(http.MethodDelete, "/v1/answers/reply-1", testToken, nil, nil); r.status != http.StatusNoContent {
			t.Fatalf("acknowledge: %d %s", r.status, r.body)
		}
	}
	if l := list(testToken); len(l.Answers) != 0 {
		t.Errorf("after the pick-up the queue lists %+v", l)
	}
	var evidence []*gateway.DeliveryEvidenceRecorded
	for _, ev := range e.events() {
		if d, ok := ev.p.(*gateway.DeliveryEvidenceRecorded); ok {
			if ev.e.Stream != sub.MessageID {
				t.Errorf("evidence in stream %s, want %s", ev.e.Stream, sub.MessageID)
			}
			evidence = append(evidence, d)
		}
	}
	if len(evidence) != 1 || evidence[0].Kind != gateway.EvidenceRetrieved || evidence[0].ReplyID != "reply-1" ||
		evidence[0].Attester.ID != "portal-a" || evidence[0].Unlinked != "" {
		t.Errorf("evidence %+v", evidence)
	}
	// A picked-up answer can still be fetched, and says when it was picked up.
	r = e.do(http.MethodGet, "/v1/answers/reply-1", testToken, nil, nil)
	var a Answer
	decode(t, strings.NewReader(r.body), &a)
	if r.status != 200 || a.PickedUpAt == "" {
		t.Errorf("after the pick-up: %d %+v", r.status, a)
	}

	// The queue is a projection: rebuilt from the log it is the same.
	runner := &projection.Runner{Log: e.log, DB: e.state, Registry: gateway.NewRegistry()}
	if err := runner.Rebuild(context.Background(), Answers{}); err != nil {
		t.Fatal(err)
	}
	if l := list(testToken); len(l.Answers) != 0 {
		t.Errorf("after a rebuild the queue lists %+v", l)
	}
	if q, err := lookup(context.Background(), e.state, gateway.DefaultTenant, "portal-a", "reply-1"); err != nil || q.pickedUpAt == "" {
		t.Errorf("after a rebuild: %+v %v", q, err)
	}
}

func sha256sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func TestNoAnswerQueueWithoutState(t *testing.T) {
	in := startInbound(t, testConfig(0), gateway.IntakeDeps{Intake: &gateway.Intake{}, Blobs: &blob.Memory{}, Logger: slog.New(slog.DiscardHandler)})
	resp, err := http.Get("http://" + in.Addr().String() + "/v1/answers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+in.Addr().String()+"/v1/answers", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("without a state database: %d", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig(0)
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"good", func(*Config) {}, ""},
		{"listen", func(c *Config) { c.Listen = "nowhere" }, "listen:"},
		{"no clients", func(c *Config) { c.Clients = nil }, "clients:"},
		{"bad id", func(c *Config) { c.Clients[0].ID = "Portal A" }, "clients[0].id:"},
		{"same id", func(c *Config) { c.Clients[1].ID = c.Clients[0].ID }, "clients[1].id:"},
		{"bad hash", func(c *Config) { c.Clients[0].TokenHash = "pst_plain" }, "clients[0].token_hash:"},
		{"same token", func(c *Config) { c.Clients[1].TokenHash = c.Clients[0].TokenHash }, "clients[1].token_hash:"},
		{"tls half", func(c *Config) { c.TLSCertFile = "cert.pem" }, "tls_cert_file"},
		{"rate", func(c *Config) { c.Clients[0].RatePerMinute = -2 }, "clients[0].rate_per_minute:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.Clients = append([]Client(nil), good.Clients...)
			tt.edit(&c)
			err := c.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tt.want)) {
				t.Errorf("err %v, want prefix %q", err, tt.want)
			}
		})
	}
}

// TestAttachmentKeptAsSent: an attachment's Content-Transfer-Encoding is
// not decoded and a Content-Type that does not parse is not a refusal: both
// are noted on the part, and the bytes are stored as sent.
func TestAttachmentKeptAsSent(t *testing.T) {
	e := newEnv(t, testConfig(1<<20), nil)
	body := "--b\r\nContent-Disposition: form-data; name=\"message\"\r\nContent-Type: application/json\r\n\r\n" +
		`{"senderReference":"a","postboxReference":"pb"}` + "\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"scan.pdf\"\r\n" +
		"Content-Type: bad//type\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--b--\r\n"
	r := e.do(http.MethodPost, "/v1/messages", testToken, map[string]string{"Idempotency-Key": "k", "Content-Type": "multipart/form-data; boundary=b"}, []byte(body))
	if r.status != http.StatusCreated {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	m := e.received()[0]
	if len(m.Parts) != 1 || m.Parts[0].MediaType != "application/octet-stream" || len(m.Parts[0].Problems) != 2 {
		t.Fatalf("parts %+v", m.Parts)
	}
	if got, _ := blob.ReadAllFrom(context.Background(), e.blobs, m.Parts[0].Blob, 1<<10); string(got) != "JVBERi0xLjcK" {
		t.Errorf("stored %q, want the base64 as sent", got)
	}
	if len(m.Problems) != 0 {
		t.Errorf("message problems %v", m.Problems)
	}
}

// TestRateLimitOverHTTP: past its burst a client gets 429 with Retry-After,
// and the other client is not affected; a 401 names the Bearer scheme.
func TestRateLimitOverHTTP(t *testing.T) {
	cfg := testConfig(1 << 20)
	cfg.Clients[0].RatePerMinute = 1
	e := newEnv(t, cfg, nil)
	var last response
	for range limiterBurst + 2 {
		last = e.do(http.MethodGet, "/v1/answers", testToken, nil, nil)
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" ||
		!strings.Contains(last.body, "urn:poststelle:postbox:rate-limited") {
		t.Errorf("past the burst: %d %v %s", last.status, last.header, last.body)
	}
	if r := e.do(http.MethodGet, "/v1/answers", otherToken, nil, nil); r.status != http.StatusOK {
		t.Errorf("the other client: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/v1/answers", "", nil, nil); r.status != http.StatusUnauthorized ||
		!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("no token: %d %v", r.status, r.header)
	}
}
