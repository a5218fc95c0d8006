package fitconnect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakePlatform is just enough of the Submission API and its token endpoint to
// exercise the client: paths and bodies as the client documents them.
type fakePlatform struct {
	t         *testing.T
	mu        sync.Mutex
	tokens    int    // tokens issued
	expiresIn int    // seconds
	revoked   string // a token the API refuses with 401
	refs      []SubmissionRef
	subs      map[string]Submission
	atts      map[string][]byte // submissionId/attachmentId → JWE
	events    map[string][]string
	replies   map[string]NewReply
	replyData map[string]string
	replyAtts map[string]string
	jwks      []byte
	fail500   bool
	// rawSubs are answered verbatim for GET /submissions/{id}.
	rawSubs map[string][]byte
}

func newFakePlatform(t *testing.T) (*fakePlatform, *httptest.Server) {
	p := &fakePlatform{t: t, expiresIn: 3600, subs: map[string]Submission{}, atts: map[string][]byte{},
		events: map[string][]string{}, replies: map[string]NewReply{}, replyData: map[string]string{}, replyAtts: map[string]string{}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv
}

func problem(w http.ResponseWriter, status int, typ string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ProblemDetail{Type: typ, Title: "Problem", Status: status, Detail: "detail of " + typ})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *fakePlatform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.URL.Path == "/token" {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" ||
			r.PostForm.Get("client_id") != "client-1" || r.PostForm.Get("client_secret") != "secret-1" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		p.tokens++
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "tok" + strconv.Itoa(p.tokens), "token_type": "Bearer", "expires_in": p.expiresIn})
		return
	}
	if r.URL.Path == "/.well-known/jwks.json" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.jwks)
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer tok") || auth == "Bearer "+p.revoked {
		problem(w, http.StatusUnauthorized, SubmissionAPIProblemPrefix+"unauthorized")
		return
	}
	if p.fail500 {
		problem(w, http.StatusInternalServerError, SubmissionAPIProblemPrefix+"internal")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/v1")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == "GET" && path == "/submissions":
		q := r.URL.Query()
		off, _ := strconv.Atoi(q.Get("offset"))
		lim, _ := strconv.Atoi(q.Get("limit"))
		var page []SubmissionRef
		for _, s := range p.refs {
			if s.DestinationID == q.Get("destinationId") {
				page = append(page, s)
			}
		}
		total := len(page)
		page = page[min(off, total):min(off+lim, total)]
		writeJSON(w, 200, SubmissionList{Count: len(page), Offset: off, TotalCount: total, Submissions: page})
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "submissions":
		if raw, ok := p.rawSubs[parts[1]]; ok {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(raw)
			return
		}
		s, ok := p.subs[parts[1]]
		if !ok {
			problem(w, 404, SubmissionAPIProblemPrefix+"submission-not-found")
			return
		}
		writeJSON(w, 200, s)
	case r.Method == "GET" && len(parts) == 4 && parts[0] == "submissions" && parts[2] == "attachments":
		b, ok := p.atts[parts[1]+"/"+parts[3]]
		if !ok {
			problem(w, 404, SubmissionAPIProblemPrefix+"attachment-not-found")
			return
		}
		w.Header().Set("Content-Type", "application/jose")
		_, _ = w.Write(b)
	case len(parts) == 3 && parts[0] == "cases" && parts[2] == "events":
		if r.Method == "POST" {
			if r.Header.Get("Content-Type") != "application/jose" {
				problem(w, 415, SubmissionAPIProblemPrefix+"unsupported-media-type")
				return
			}
			b, _ := io.ReadAll(r.Body)
			p.events[parts[1]] = append(p.events[parts[1]], string(b))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		log, ok := p.events[parts[1]]
		if !ok {
			problem(w, 404, SubmissionAPIProblemPrefix+"case-not-found")
			return
		}
		writeJSON(w, 200, map[string]any{"eventLog": log})
	case r.Method == "POST" && path == "/replies":
		var nr NewReply
		if err := json.NewDecoder(r.Body).Decode(&nr); err != nil || nr.SubmissionID == "" {
			problem(w, 400, SubmissionAPIProblemPrefix+"request-invalid")
			return
		}
		if _, ok := p.subs[nr.SubmissionID]; !ok {
			problem(w, 404, SubmissionAPIProblemPrefix+"submission-not-found")
			return
		}
		id := fmt.Sprintf("reply-%d", len(p.replies)+1)
		p.replies[id] = nr
		writeJSON(w, 201, ReplyCreated{ReplyID: id, CaseID: p.subs[nr.SubmissionID].CaseID})
	case r.Method == "PUT" && len(parts) == 4 && parts[0] == "replies" && parts[2] == "attachments":
		b, _ := io.ReadAll(r.Body)
		p.replyAtts[parts[1]+"/"+parts[3]] = string(b)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == "PUT" && len(parts) == 2 && parts[0] == "replies":
		var body struct{ EncryptedMetadata, EncryptedData string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			problem(w, 400, SubmissionAPIProblemPrefix+"request-invalid")
			return
		}
		p.replyData[parts[1]] = body.EncryptedMetadata + "|" + body.EncryptedData
		w.WriteHeader(http.StatusOK)
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "replies":
		nr, ok := p.replies[parts[1]]
		if !ok {
			problem(w, 404, SubmissionAPIProblemPrefix+"reply-not-found")
			return
		}
		writeJSON(w, 200, Reply{ReplyID: parts[1], SubmissionID: nr.SubmissionID, CaseID: p.subs[nr.SubmissionID].CaseID})
	default:
		http.NotFound(w, r)
	}
}

func testClient(t *testing.T, srv *httptest.Server, max int64) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{BaseURL: srv.URL + "/v1", TokenURL: srv.URL + "/token", ClientID: "client-1", ClientSecret: "secret-1",
		HTTPClient: srv.Client(), MaxSubmissionSize: max})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientSubmissions(t *testing.T) {
	p, srv := newFakePlatform(t)
	for i := range 250 {
		p.refs = append(p.refs, SubmissionRef{DestinationID: destID, SubmissionID: fmt.Sprintf("sub-%03d", i), CaseID: "case"})
	}
	p.refs = append(p.refs, SubmissionRef{DestinationID: "other", SubmissionID: "foreign"})
	p.subs[subID] = Submission{DestinationID: destID, SubmissionID: subID, CaseID: caseID, Attachments: []string{attA},
		EncryptedMetadata: "m.e.t.a.x", EncryptedData: "d.a.t.a.x", ServiceType: &ServiceType{Name: "Hundesteuer", Identifier: LeikaPrefix + "99018115001001"}}
	p.atts[subID+"/"+attA] = []byte("a.t.t.a.x")
	p.atts[subID+"/"+attB] = []byte(strings.Repeat("x", 2000))
	c := testClient(t, srv, 1000)
	ctx := context.Background()

	all, err := c.ListAllSubmissions(ctx, destID)
	if err != nil || len(all) != 250 || all[249].SubmissionID != "sub-249" {
		t.Fatalf("ListAllSubmissions: %d, %v", len(all), err)
	}
	page, err := c.ListSubmissions(ctx, destID, 240, 100)
	if err != nil || page.Count != 10 || page.TotalCount != 250 || page.Offset != 240 {
		t.Fatalf("ListSubmissions: %+v, %v", page, err)
	}
	s, err := c.GetSubmission(ctx, subID)
	if err != nil || s.CaseID != caseID || s.Service().LeikaKey() != "99018115001001" || s.Attachments[0] != attA || s.EncryptedMetadata != "m.e.t.a.x" {
		t.Fatalf("GetSubmission: %+v, %v", s, err)
	}
	att, err := c.GetAttachment(ctx, subID, attA)
	if err != nil || string(att) != "a.t.t.a.x" {
		t.Fatalf("GetAttachment: %q, %v", att, err)
	}
	if _, err := c.GetAttachment(ctx, subID, attB); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("oversized attachment: %v", err)
	}
	// A vanished submission is ErrGone and keeps the problem detail.
	_, err = c.GetSubmission(ctx, "vanished")
	var apiErr *APIError
	if !errors.Is(err, ErrGone) || !errors.As(err, &apiErr) || apiErr.Problem.Type != SubmissionAPIProblemPrefix+"submission-not-found" || apiErr.Status != 404 {
		t.Errorf("vanished submission: %v", err)
	}
	if _, err := c.GetAttachment(ctx, subID, "nope"); !errors.Is(err, ErrGone) {
		t.Errorf("vanished attachment: %v", err)
	}
	if p.tokens != 1 {
		t.Errorf("%d tokens fetched for calls within one token's life, want 1", p.tokens)
	}
}

func TestClientEvents(t *testing.T) {
	p, srv := newFakePlatform(t)
	a, b := testKeys(t)
	c := testClient(t, srv, 0)
	ctx := context.Background()
	signer := testSigner(t, a, "dest-sig")
	accept, _ := NewAcceptSubmission(SETClaims{Issuer: destID, Subject: SubjectSubmission(subID), CaseID: caseID}, AuthenticationTags{Metadata: "m"})
	set, err := signer.Sign(accept)
	if err != nil {
		t.Fatal(err)
	}
	p.events[caseID] = nil
	if err := c.PostEvent(ctx, caseID, set); err != nil {
		t.Fatal(err)
	}
	// Reply events: one about our reply, one about another, one forged.
	platformSigner := testSigner(t, b, "platform-sig")
	for _, rid := range []string{"reply-1", "reply-2"} {
		sp, _ := NewSET(SETClaims{Issuer: platform, Subject: SubjectReply(rid), CaseID: caseID}, EventSubmitReply, nil)
		s, _ := platformSigner.Sign(sp)
		p.events[caseID] = append(p.events[caseID], s)
	}
	forged, _ := NewSET(SETClaims{Issuer: platform, Subject: SubjectReply("reply-1"), CaseID: caseID}, EventAcceptReply, nil)
	fs, _ := testSigner(t, a, "platform-sig").Sign(forged)
	p.events[caseID] = append(p.events[caseID], fs)

	log, err := c.GetEventLog(ctx, caseID)
	if err != nil || len(log) != 4 || log[0] != set {
		t.Fatalf("GetEventLog: %d entries, %v", len(log), err)
	}
	p.jwks, _ = json.Marshal(map[string]any{"keys": []json.RawMessage{jwkJSON(t, &b.PublicKey, "platform-sig", SignatureAlgorithm, "verify")}})
	keys, err := c.PlatformKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.AddJWK(jwkJSON(t, &a.PublicKey, "dest-sig", SignatureAlgorithm, "verify")); err != nil {
		t.Fatal(err)
	}
	events, skipped, err := c.ReplyEvents(ctx, caseID, "reply-1", keys)
	if err != nil || len(events) != 1 || events[0].Event != EventSubmitReply || skipped != 1 {
		t.Fatalf("ReplyEvents: %d events, %d skipped, %v", len(events), skipped, err)
	}
	if _, err := c.GetEventLog(ctx, "unknown-case"); !errors.Is(err, ErrGone) {
		t.Errorf("unknown case: %v", err)
	}
}

func TestClientReplies(t *testing.T) {
	p, srv := newFakePlatform(t)
	p.subs[subID] = Submission{DestinationID: destID, SubmissionID: subID, CaseID: caseID}
	c := testClient(t, srv, 0)
	ctx := context.Background()
	created, err := c.CreateReply(ctx, NewReply{SubmissionID: subID, AnnouncedAttachments: []string{attA}})
	if err != nil || created.ReplyID != "reply-1" || created.CaseID != caseID {
		t.Fatalf("CreateReply: %+v, %v", created, err)
	}
	if err := c.UploadReplyAttachment(ctx, created.ReplyID, attA, "a.b.c.d.e"); err != nil {
		t.Fatal(err)
	}
	if err := c.SubmitReply(ctx, created.ReplyID, "m.m.m.m.m", "d.d.d.d.d"); err != nil {
		t.Fatal(err)
	}
	if p.replyAtts["reply-1/"+attA] != "a.b.c.d.e" || p.replyData["reply-1"] != "m.m.m.m.m|d.d.d.d.d" || p.replies["reply-1"].AnnouncedAttachments[0] != attA {
		t.Errorf("platform saw %+v %+v %+v", p.replies, p.replyAtts, p.replyData)
	}
	r, err := c.GetReply(ctx, "reply-1")
	if err != nil || r.CaseID != caseID || r.SubmissionID != subID {
		t.Errorf("GetReply: %+v, %v", r, err)
	}
	if _, err := c.CreateReply(ctx, NewReply{SubmissionID: "vanished"}); !errors.Is(err, ErrGone) {
		t.Errorf("reply to a vanished submission: %v", err)
	}
}

func TestClientTokens(t *testing.T) {
	p, srv := newFakePlatform(t)
	p.subs[subID] = Submission{SubmissionID: subID}
	ctx := context.Background()

	// A token about to expire is not reused.
	p.expiresIn = 1
	c := testClient(t, srv, 0)
	for range 2 {
		if _, err := c.GetSubmission(ctx, subID); err != nil {
			t.Fatal(err)
		}
	}
	if p.tokens != 2 {
		t.Errorf("%d tokens for two calls with expiring tokens, want 2", p.tokens)
	}
	// A refused token is replaced once, and the call succeeds.
	p.expiresIn = 3600
	c = testClient(t, srv, 0)
	if _, err := c.GetSubmission(ctx, subID); err != nil {
		t.Fatal(err)
	}
	p.revoked = "tok" + strconv.Itoa(p.tokens)
	before := p.tokens
	if _, err := c.GetSubmission(ctx, subID); err != nil {
		t.Fatalf("after a revoked token: %v", err)
	}
	if p.tokens != before+1 {
		t.Errorf("%d new tokens after a 401, want 1", p.tokens-before)
	}
	// Wrong credentials: the token request fails, nothing else is tried.
	bad, _ := NewClient(ClientConfig{BaseURL: srv.URL + "/v1", TokenURL: srv.URL + "/token", ClientID: "client-1", ClientSecret: "wrong", HTTPClient: srv.Client()})
	if _, err := bad.GetSubmission(ctx, subID); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad credentials: %v", err)
	}
	// Server trouble is a temporary APIError.
	p.fail500 = true
	_, err := c.GetSubmission(ctx, subID)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !apiErr.Temporary() || errors.Is(err, ErrGone) {
		t.Errorf("500: %v", err)
	}
}

func TestNewClientConfig(t *testing.T) {
	for _, cfg := range []ClientConfig{
		{BaseURL: "ftp://x/v1", TokenURL: "http://t", ClientID: "a", ClientSecret: "b"},
		{BaseURL: "http://x/v1", ClientID: "a", ClientSecret: "b"},
		{BaseURL: "http://x/v1", TokenURL: "http://t", ClientID: "a"},
	} {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) accepted", cfg)
		}
	}
	c, err := NewClient(ClientConfig{BaseURL: "https://submission-api.example.org/v1/", TokenURL: "https://auth.example.org/token", ClientID: "a", ClientSecret: "b"})
	if err != nil || c.jwksURL != "https://submission-api.example.org/.well-known/jwks.json" {
		t.Errorf("jwks URL %q, %v", c.jwksURL, err)
	}
}

// TestClientFetchSubmissionRaw: FetchSubmission hands out the answer byte for
// byte (member order, white space, members the struct does not know) beside
// the parsed struct; a body that is no submission is a ParseError with the
// bytes, not a failed fetch; the caps hold.
func TestClientFetchSubmissionRaw(t *testing.T) {
	p, srv := newFakePlatform(t)
	raw := []byte(`{ "submissionId":"` + subID + `", "caseId":"` + caseID + `","destinationId":"` + destID +
		`","attachments":["` + attA + `"],"encryptedMetadata":"m.e.t.a.x","extra":{"unknown":true}}` + "\n")
	p.rawSubs = map[string][]byte{subID: raw, "broken": []byte(`{"submissionId":`), "other": []byte(`{"submissionId":"someone-else"}`),
		"big": []byte(`{"submissionId":"big","encryptedData":"` + strings.Repeat("x", 2000) + `"}`)}
	p.atts[subID+"/"+attA] = []byte(strings.Repeat("a", 500))
	c := testClient(t, srv, 1000)
	ctx := context.Background()

	f, err := c.FetchSubmission(ctx, subID)
	if err != nil || f.ParseError != nil || !bytes.Equal(f.Raw, raw) || f.Submission.CaseID != caseID || f.Submission.Attachments[0] != attA {
		t.Fatalf("FetchSubmission: %+v, %v", f, err)
	}
	for _, id := range []string{"broken", "other"} {
		f, err := c.FetchSubmission(ctx, id)
		if err != nil || f.ParseError == nil || f.Submission != nil || !bytes.Equal(f.Raw, p.rawSubs[id]) {
			t.Errorf("%s: %+v, %v; want the bytes and a ParseError", id, f, err)
		}
	}
	if _, err := c.FetchSubmission(ctx, "big"); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("oversized submission: %v", err)
	}
	if _, err := c.FetchSubmission(ctx, "vanished"); !errors.Is(err, ErrGone) {
		t.Errorf("vanished submission: %v", err)
	}

	// CopyAttachment: within its own limit, and never more than the limit
	// written when the attachment is larger.
	var buf bytes.Buffer
	if n, err := c.CopyAttachment(ctx, subID, attA, &buf, 500); err != nil || n != 500 || buf.Len() != 500 {
		t.Fatalf("CopyAttachment: %d, %v", n, err)
	}
	buf.Reset()
	n, err := c.CopyAttachment(ctx, subID, attA, &buf, 499)
	if !errors.Is(err, ErrResponseTooLarge) || n > 499 || buf.Len() > 499 {
		t.Errorf("CopyAttachment past the limit: %d bytes written, %v", n, err)
	}
	if _, err := c.CopyAttachment(ctx, subID, "nope", io.Discard, 0); !errors.Is(err, ErrGone) {
		t.Errorf("vanished attachment: %v", err)
	}
}
