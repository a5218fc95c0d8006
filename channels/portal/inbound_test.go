package portal

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// links finds a message by its submission id, the way projection.References
// does, from what the test env recorded.
type links struct{ e *testEnv }

func (l links) Links(_ context.Context, _ string, ch gateway.Channel, id string) ([]gateway.EvidenceLink, error) {
	for _, m := range l.e.received(nil) {
		if m.msg.Channel == ch && m.msg.SenderMessageID == id {
			return []gateway.EvidenceLink{{Stream: m.stream, Source: "senderMessageId"}}, nil
		}
	}
	// An answer, by its ReplyID, as projection.References links it.
	evs, err := l.e.env.Log.Read(context.Background(), 0, 0, 10000)
	if err != nil {
		return nil, err
	}
	reg := gateway.NewRegistry()
	for i := range evs {
		if p, err := reg.Decode(&evs[i]); err == nil {
			if r, ok := p.(*gateway.ReplyRequested); ok && r.Channel == ch && r.ReplyID == id {
				return []gateway.EvidenceLink{{Stream: evs[i].Stream, ReplyID: id, Source: "replyId"}}, nil
			}
		}
	}
	return nil, nil
}

type testEnv struct {
	t      testing.TB
	env    *gatewaytest.Env
	fake   *fakePlatform
	in     *Inbound
	intake *gateway.Intake
}

type receivedMsg struct {
	stream string
	msg    *gateway.MessageReceived
}

func newEnv(t testing.TB, mod func(*Config, *gateway.IntakeDeps)) *testEnv {
	t.Helper()
	if mod == nil {
		return newEnvOf(t, nil)
	}
	return newEnvOf(t, func(_ *testEnv, c *Config, d *gateway.IntakeDeps) { mod(c, d) })
}

// newEnvOf is newEnv whose mod sees the environment (its log, state
// database and blobs).
func newEnvOf(t testing.TB, mod func(*testEnv, *Config, *gateway.IntakeDeps)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, env: gatewaytest.New(t), fake: newFake()}
	e.intake = &gateway.Intake{Log: e.env.Log}
	cfg := Config{SubmissionAPI: "http://127.0.0.1:1/v1", DestinationID: testDestination, MaxSubmissionSize: 4 << 20}
	deps := gateway.IntakeDeps{Intake: e.intake, Blobs: e.env.Blobs, Logger: slog.New(slog.DiscardHandler),
		Evidence: &gateway.EvidenceRecorder{Log: e.env.Log, Links: links{e}}}
	if mod != nil {
		mod(e, &cfg, &deps)
	}
	in, err := newInbound(cfg, deps, inboundOptions{api: e.fake, keys: testKeys(), callbackSecret: []byte("callback-secret")})
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	return e
}

func (e *testEnv) received(t testing.TB) []receivedMsg {
	reg := gateway.NewRegistry()
	evs, err := e.env.Log.Read(context.Background(), 0, 0, 10000)
	if err != nil {
		if t != nil {
			t.Fatal(err)
		}
		return nil
	}
	var out []receivedMsg
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			continue
		}
		if m, ok := p.(*gateway.MessageReceived); ok {
			out = append(out, receivedMsg{stream: evs[i].Stream, msg: m})
		}
	}
	return out
}

func (e *testEnv) evidence(t testing.TB) []*gateway.DeliveryEvidenceRecorded {
	reg := gateway.NewRegistry()
	evs, err := e.env.Log.Read(context.Background(), 0, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*gateway.DeliveryEvidenceRecorded
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			continue
		}
		if d, ok := p.(*gateway.DeliveryEvidenceRecorded); ok {
			out = append(out, d)
		}
	}
	return out
}

func (e *testEnv) blob(t testing.TB, p gateway.Part) []byte {
	t.Helper()
	rc, err := e.env.Blobs.Open(context.Background(), p.Blob)
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

func TestAcceptsAValidSubmission(t *testing.T) {
	e := newEnv(t, nil)
	att := []byte("%PDF-1.7 Bauzeichnung")
	s := build(t, subSpec{attachments: [][]byte{att}, zip: true})
	e.fake.add(s)
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := e.received(t)
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1", len(got))
	}
	m := got[0].msg
	p := m.Portal
	if p == nil || p.Decision != gateway.PortalAccepted || len(m.Problems) != 0 {
		t.Fatalf("portal fields %+v, problems %v", p, m.Problems)
	}
	if p.SubmissionID != s.ref.SubmissionID || p.CaseID != s.ref.CaseID || p.DestinationID != testDestination ||
		p.LeikaKey != "99108008252000" || p.ServiceName != "Baugenehmigung" || p.ReplyChannel != "eMail" {
		t.Errorf("portal fields %+v", p)
	}
	if m.SenderMessageID != s.ref.SubmissionID || m.Transport.Coordinates != s.ref.CaseID {
		t.Errorf("ids %q %q", m.SenderMessageID, m.Transport.Coordinates)
	}
	if len(m.Parts) != 3 || m.Parts[0].Path != MetadataPath || m.Parts[1].Kind != "body" || m.Parts[2].Filename != "message.eml" ||
		m.Parts[2].MediaType != "message/rfc822" {
		t.Fatalf("parts %+v", m.Parts)
	}
	if !bytes.Equal(e.blob(t, m.Parts[2]), att) {
		t.Error("the attachment's bytes differ")
	}
	if got := e.fake.decisions(s.ref.SubmissionID); !slices.Equal(got, []string{"accept-submission"}) {
		t.Errorf("decisions %v", got)
	}
	// The SET names the tags and is signed PS512 with the signing key's kid.
	set := e.fake.posts[0]
	var ev struct {
		AuthenticationTags authTags `json:"authenticationTags"`
	}
	if err := jsonUnmarshal(set.payload.Events[eventAccept], &ev); err != nil || ev.AuthenticationTags.Metadata != p.AuthenticationTags.Metadata ||
		len(ev.AuthenticationTags.Attachments) != 1 {
		t.Errorf("accept-submission %s (%v)", set.payload.Events[eventAccept], err)
	}
	if set.payload.Iss != testDestination || set.payload.Txn != "case:"+s.ref.CaseID {
		t.Errorf("SET payload %+v", set.payload)
	}
	if err := verifySET(set.set, &testKeys().sign.PublicKey); err != nil {
		t.Error(err)
	}
	// The raw envelope holds the submission and the attachment's JWE.
	raw := e.blob(t, gateway.Part{Blob: m.Raw})
	if !bytes.Contains(raw, s.json) || !bytes.Contains(raw, []byte(s.attachments[s.ref.SubmissionID[:0]+firstKey(s.attachments)])) {
		t.Error("the raw envelope lacks what was fetched")
	}
	ev2 := e.evidence(t)
	if len(ev2) != 1 || ev2[0].Kind != gateway.EvidenceRetrieved || ev2[0].LinkedBy != "senderMessageId" {
		t.Errorf("evidence %+v", ev2)
	}
	// A second poll finds nothing new.
	if err := e.in.Poll(context.Background()); err != nil || len(e.received(t)) != 1 {
		t.Fatalf("second poll: %v, %d messages", err, len(e.received(t)))
	}
}

// TestSubmitSubmissionEvidence: with the platform's submit-submission in the
// event log, the tags are compared, and both it and our decision are recorded
// as delivery evidence.
func TestSubmitSubmissionEvidence(t *testing.T) {
	e := newEnv(t, nil)
	s := build(t, subSpec{attachments: [][]byte{[]byte("Anlage")}, submitEvent: true})
	e.fake.add(s)
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := e.received(t)[0].msg
	if m.Portal.Decision != gateway.PortalAccepted || !slices.Contains(m.Portal.Checks, "authentication tags compared with submit-submission") ||
		!slices.Contains(m.Portal.Checks, "submit-submission signed by the platform (kid sig-1)") {
		t.Fatalf("decision %s checks %v problems %v", m.Portal.Decision, m.Portal.Checks, m.Problems)
	}
	var kinds []gateway.EvidenceKind
	for _, ev := range e.evidence(t) {
		kinds = append(kinds, ev.Kind)
		if ev.Unlinked != "" || ev.Evidence.SHA256 == "" {
			t.Errorf("evidence %+v", ev)
		}
		if ev.Kind == gateway.EvidenceDelivered && (ev.Verification == nil || ev.Verification.Indication != "TOTAL_PASSED") {
			t.Errorf("submit-submission's verification %+v", ev.Verification)
		}
	}
	if !slices.Equal(kinds, []gateway.EvidenceKind{gateway.EvidenceRetrieved, gateway.EvidenceDelivered}) {
		t.Errorf("evidence kinds %v", kinds)
	}
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}

// TestBadInput: every bad input of issue 15 is recorded with the right
// problem type and rejected with it, never lost, never a panic.
func TestBadInput(t *testing.T) {
	att := []byte("Anlage")
	for _, tc := range []struct {
		name string
		spec subSpec
		want string // problem type, without the prefix
		inst string
	}{
		{"wrong key", subSpec{encryptTo: &otherKey().PublicKey}, "encryption-issue", "metadata"},
		{"tampered tag of the data", subSpec{tamper: func(s *submissionJSON) { s.EncryptedData = flipTag(s.EncryptedData) }}, "encryption-issue", "data"},
		{"tampered ciphertext of an attachment", subSpec{attachments: [][]byte{att}, tamper: func(s *submissionJSON) {
			for k, v := range s.jwes {
				s.jwes[k] = flipCiphertext(v)
			}
		}}, "encryption-issue", "attachment:"},
		{"unsupported alg", subSpec{tamper: func(s *submissionJSON) {
			s.EncryptedMetadata = withHeader(s.EncryptedMetadata, `{"alg":"RSA1_5","enc":"A256GCM"}`)
		}},
			"encryption-issue", "metadata"},
		{"unsupported enc", subSpec{tamper: func(s *submissionJSON) {
			s.EncryptedData = withHeader(s.EncryptedData, `{"alg":"RSA-OAEP-256","enc":"A128CBC-HS256"}`)
		}},
			"encryption-issue", "data"},
		{"not a JWE", subSpec{tamper: func(s *submissionJSON) { s.EncryptedMetadata = "not.a.jwe" }}, "encryption-issue", "metadata"},
		{"metadata not JSON", subSpec{metaRaw: []byte("<xml/>")}, "syntax-violation", "metadata"},
		{"metadata failing the schema", subSpec{meta: func(m map[string]any) {
			m["contentStructure"].(map[string]any)["data"].(map[string]any)["hash"] = map[string]any{"type": "md5", "content": "x"}
		}}, "schema-violation", "metadata"},
		{"unknown schema", subSpec{meta: func(m map[string]any) { m["$schema"] = "https://example.org/metadata.json" }}, "missing-schema", "metadata"},
		{"hash mismatch of the data", subSpec{meta: func(m map[string]any) {
			m["contentStructure"].(map[string]any)["data"].(map[string]any)["hash"] = map[string]any{"type": "sha512", "content": strings.Repeat("0", 128)}
		}}, "hash-mismatch", "data"},
		{"hash mismatch of an attachment", subSpec{attachments: [][]byte{att}, meta: func(m map[string]any) {
			a := m["contentStructure"].(map[string]any)["attachments"].([]any)[0].(map[string]any)
			a["hash"] = map[string]any{"type": "sha512", "content": sha512Hex([]byte("other"))}
		}}, "hash-mismatch", "attachment:"},
		{"submit-submission not signed by the platform", subSpec{submitEvent: true, forgedSubmit: true}, "invalid-event-log", "submission"},
		{"tag differs from submit-submission's", subSpec{submitEvent: true, wrongTags: true}, "incorrect-authentication-tag", "data"},
		{"attachment the metadata does not list", subSpec{attachments: [][]byte{att}, meta: func(m map[string]any) {
			m["contentStructure"].(map[string]any)["attachments"] = []any{}
		}}, "attachments-mismatch", "attachment:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			s := build(t, tc.spec)
			e.fake.add(s)
			if err := e.in.Poll(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := e.received(t)
			if len(got) != 1 {
				t.Fatalf("%d messages, want 1", len(got))
			}
			p := got[0].msg.Portal
			if p.Decision != gateway.PortalRejected || len(got[0].msg.Problems) == 0 {
				t.Fatalf("decision %s, problems %v", p.Decision, got[0].msg.Problems)
			}
			found := false
			for _, pr := range p.Problems {
				found = found || pr.Type == problemPrefix+tc.want && strings.HasPrefix(pr.Instance, tc.inst)
			}
			if !found {
				t.Errorf("problems %+v, want %s at %s", p.Problems, tc.want, tc.inst)
			}
			if d := e.fake.decisions(s.ref.SubmissionID); !slices.Equal(d, []string{"reject-submission"}) {
				t.Errorf("decisions %v", d)
			}
			var rej struct {
				Problems []gateway.PortalProblem `json:"problems"`
			}
			if err := jsonUnmarshal(e.fake.posts[0].payload.Events[eventReject], &rej); err != nil || len(rej.Problems) != len(p.Problems) {
				t.Errorf("reject-submission %s", e.fake.posts[0].payload.Events[eventReject])
			}
		})
	}
}

// TestVanishedSubmission: a submission that is gone mid-fetch (404) is
// logged; nothing is recorded and nothing confirmed.
func TestVanishedSubmission(t *testing.T) {
	e := newEnv(t, nil)
	s := build(t, subSpec{attachments: [][]byte{[]byte("x")}})
	e.fake.add(s)
	e.fake.vanishAt = s.ref.SubmissionID
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.received(t)); n != 0 || len(e.fake.posts) != 0 {
		t.Fatalf("%d messages, %d SETs after a vanished submission", n, len(e.fake.posts))
	}
}

// TestExpiredToken: a refused token is refreshed and the call repeated.
func TestExpiredToken(t *testing.T) {
	e := newEnv(t, nil)
	s := build(t, subSpec{})
	e.fake.add(s)
	e.fake.expireToken = true
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.fake.refreshes != 1 || len(e.received(t)) != 1 || len(e.fake.decisions(s.ref.SubmissionID)) != 1 {
		t.Fatalf("%d refreshes, %d messages, decisions %v", e.fake.refreshes, len(e.received(t)), e.fake.decisions(s.ref.SubmissionID))
	}
}

// TestPlatformFailure: a failing platform leaves the recorded message
// recorded; the decision is posted at the next poll, once.
func TestPlatformFailure(t *testing.T) {
	e := newEnv(t, nil)
	s := build(t, subSpec{})
	e.fake.add(s)
	e.fake.postErr = errors.New("503 Service Unavailable")
	if err := e.in.Poll(context.Background()); err == nil {
		t.Fatal("the poll reported no failure")
	}
	if n := len(e.received(t)); n != 1 {
		t.Fatalf("%d messages, want the 1 recorded", n)
	}
	if b := e.in.backoff(); b != e.in.cfg.pollInterval() {
		t.Errorf("backoff after one failure %v", b)
	}
	e.fake.listErr = errors.New("connection refused")
	_ = e.in.Poll(context.Background())
	if b := e.in.backoff(); b != 2*e.in.cfg.pollInterval() {
		t.Errorf("backoff after two failures %v", b)
	}
	e.fake.postErr, e.fake.listErr = nil, nil
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.received(t)); n != 1 || !slices.Equal(e.fake.decisions(s.ref.SubmissionID), []string{"accept-submission"}) {
		t.Fatalf("%d messages, decisions %v", n, e.fake.decisions(s.ref.SubmissionID))
	}
}

// TestCrashAfterRecord: the process dies after the record and before the
// SET (the AfterRecord hook); the restarted collector makes no second
// message and posts the decision once.
func TestCrashAfterRecord(t *testing.T) {
	e := newEnv(t, nil)
	s := build(t, subSpec{attachments: [][]byte{[]byte("Anlage")}})
	e.fake.add(s)
	crashed := errors.New("crash")
	func() {
		defer func() {
			if r := recover(); r != crashed {
				t.Fatalf("recovered %v", r)
			}
		}()
		e.in.deps.AfterRecord = func(gateway.Receipt) { panic(crashed) }
		_ = e.in.Poll(context.Background())
	}()
	if n := len(e.received(t)); n != 1 || len(e.fake.posts) != 0 {
		t.Fatalf("after the crash: %d messages, %d SETs", n, len(e.fake.posts))
	}
	// A new process over the same log.
	restarted, err := newInbound(e.in.cfg, gateway.IntakeDeps{Intake: e.intake, Blobs: e.env.Blobs, Logger: slog.New(slog.DiscardHandler)},
		inboundOptions{api: e.fake, keys: testKeys()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := restarted.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.received(t)); n != 1 {
		t.Fatalf("%d messages after the restart, want 1", n)
	}
	if d := e.fake.decisions(s.ref.SubmissionID); !slices.Equal(d, []string{"accept-submission"}) {
		t.Fatalf("decisions %v, want one accept-submission", d)
	}
}

// TestDuplicateDecidedBefore: a submission recorded and decided, still
// listed (the platform lagging), is neither recorded nor decided again.
func TestDuplicateDecidedBefore(t *testing.T) {
	e := newEnv(t, nil)
	s := build(t, subSpec{})
	e.fake.add(s)
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.fake.add(s) // listed again
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.received(t)); n != 1 || len(e.fake.decisions(s.ref.SubmissionID)) != 1 {
		t.Fatalf("%d messages, decisions %v", n, e.fake.decisions(s.ref.SubmissionID))
	}
}

// TestOneFetchAtATime: a poll and a callback-triggered poll at once never
// fetch one submission concurrently.
func TestOneFetchAtATime(t *testing.T) {
	e := newEnv(t, nil)
	s := build(t, subSpec{})
	e.fake.add(s)
	hold := make(chan struct{})
	e.fake.hold = hold
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _ = e.in.Poll(context.Background()) })
	}
	// Wait until one fetch is under way, then let it finish.
	for {
		e.fake.mu.Lock()
		n := e.fake.fetches[s.ref.SubmissionID]
		e.fake.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	if e.fake.maxInFlight != 1 {
		t.Errorf("%d concurrent fetches of one submission", e.fake.maxInFlight)
	}
	if n := len(e.received(t)); n != 1 || len(e.fake.decisions(s.ref.SubmissionID)) != 1 {
		t.Fatalf("%d messages, decisions %v", n, e.fake.decisions(s.ref.SubmissionID))
	}
}

// TestTooLarge: a submission over max_submission_size is left at the
// platform, unconfirmed and unrecorded.
func TestTooLarge(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *gateway.IntakeDeps) { c.MaxSubmissionSize = 32 << 10 })
	s := build(t, subSpec{attachments: [][]byte{bytes.Repeat([]byte("x"), 64<<10)}})
	e.fake.add(s)
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.received(t)); n != 0 || len(e.fake.posts) != 0 || !e.in.isLeft(s.ref.SubmissionID) {
		t.Fatalf("%d messages, %d SETs, left %v", n, len(e.fake.posts), e.in.isLeft(s.ref.SubmissionID))
	}
}

// TestRefusedByLog: a receipt the log refuses is left for the operator.
func TestRefusedByLog(t *testing.T) {
	e := newEnv(t, func(_ *Config, d *gateway.IntakeDeps) { d.Intake = refusing{} })
	s := build(t, subSpec{})
	e.fake.add(s)
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(e.fake.posts) != 0 || !e.in.isLeft(s.ref.SubmissionID) {
		t.Fatalf("%d SETs, left %v", len(e.fake.posts), e.in.isLeft(s.ref.SubmissionID))
	}
}

type refusing struct{}

func (refusing) Record(context.Context, string, string, *gateway.MessageReceived) (gateway.Receipt, error) {
	return gateway.Receipt{}, eventstore.ErrInvalidEvent
}

// TestHostileSubmissionJSON: a platform answer that is not a submission is
// recorded with its bytes and a problem, and left unconfirmed (no case).
func TestHostileSubmissionJSON(t *testing.T) {
	for _, body := range []string{"<html>502 Bad Gateway</html>", `{"submissionId": 7}`, `[]`} {
		e := newEnv(t, nil)
		id := newID('h')
		e.fake.add(&fakeSub{ref: submissionRef{DestinationID: testDestination, SubmissionID: id}, json: []byte(body)})
		if err := e.in.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := e.received(t)
		if len(got) != 1 || len(got[0].msg.Problems) == 0 || got[0].msg.Portal.Decision != gateway.PortalRejected {
			t.Fatalf("%q: %d messages %+v", body, len(got), got)
		}
		if raw := e.blob(t, gateway.Part{Blob: got[0].msg.Raw}); !bytes.Contains(raw, []byte(body)) && !bytes.Contains(raw, []byte("submissionBase64")) {
			t.Errorf("%q: raw %s", body, raw)
		}
		if len(e.fake.posts) != 0 || !e.in.isLeft(id) {
			t.Errorf("%q: %d SETs, left %v", body, len(e.fake.posts), e.in.isLeft(id))
		}
	}
}
