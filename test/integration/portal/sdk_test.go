//go:build integration

// Package portal tests the FIT-Connect portal channel against FITKO's own
// Python SDK (fitconnect 0.4.2, the portal's side) and the Go stand-in of the
// Submission API (standin, started as its own process). The SDK tests prove
// that the stand-in speaks the SDK's dialect: what the SDK sends, the SDK's
// own retrieve_submission gets back and verifies; the serve tests run the
// real `poststelle serve` binary as the destination.
package portal

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/test/integration/portal/standin"
)

// retrieved is portal.py retrieve's output.
type retrieved struct {
	SubmissionID string                     `json:"submissionId"`
	CaseID       string                     `json:"caseId"`
	Metadata     map[string]json.RawMessage `json:"metadata"`
	Data         map[string]any             `json:"data"`
	Attachments  map[string]string          `json:"attachments"` // id → sha512 hex
}

// TestSDKSubmitRetrieve: the SDK sends a submission with an attachment; the
// event log has the platform's create-submission and submit-submission, both
// signed with the key of the published JWKS, the latter with the
// authentication tags of exactly the JWEs the destination fetches; the SDK's
// retrieve_submission, as the destination, decrypts it and its hash checks
// pass.
func TestSDKSubmitRetrieve(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		t.Run(strconv.Itoa(n)+" attachments", func(t *testing.T) {
			var sub submitted
			py(t, &sub, "submit", "--attachments", strconv.Itoa(n))
			if len(sub.Attachments) != n {
				t.Fatalf("%d attachments announced, want %d", len(sub.Attachments), n)
			}
			var got retrieved
			py(t, &got, "retrieve", "--submission", sub.SubmissionID)
			if got.SubmissionID != sub.SubmissionID || got.CaseID != sub.CaseID {
				t.Fatalf("retrieved %s/%s, sent %s/%s", got.SubmissionID, got.CaseID, sub.SubmissionID, sub.CaseID)
			}
			for i, id := range sub.Attachments {
				if got.Attachments[id] != sub.AttachmentSHA512[i] {
					t.Errorf("attachment %s: sha512 %s, sent %s", id, got.Attachments[id], sub.AttachmentSHA512[i])
				}
			}
			if got.Data["$schema"] != standin.DataSchema {
				t.Errorf("data %v", got.Data)
			}

			d := destination(0)
			dest := login(t, d.Party)
			var raw struct {
				DestinationID     string              `json:"destinationId"`
				SubmissionID      string              `json:"submissionId"`
				CaseID            string              `json:"caseId"`
				ServiceType       standin.ServiceType `json:"serviceType"`
				Attachments       []string            `json:"attachments"`
				EncryptedMetadata string              `json:"encryptedMetadata"`
				EncryptedData     string              `json:"encryptedData"`
			}
			dest.getJSON("/submissions/"+sub.SubmissionID, &raw)
			if raw.DestinationID != d.DestinationID || raw.ServiceType.Identifier != standin.ServiceIdentifier || !slices.Equal(raw.Attachments, sub.Attachments) {
				t.Fatalf("submission %+v", raw)
			}
			// The data the destination decrypts is what the SDK hashed.
			plain := decrypt(t, privateKey(t, d.DecryptionKey), raw.EncryptedData)
			if sum := sha512.Sum512(plain); hex.EncodeToString(sum[:]) != sub.DataSHA512 {
				t.Fatal("decrypted data does not hash to what the SDK sent")
			}

			sets := verifiedLog(t, login(t, shared.setup.Sender), sub.CaseID)
			if names := eventNames(sets); !slices.Equal(names, []string{"create-submission", "submit-submission"}) {
				t.Fatalf("event log %v", names)
			}
			submit := sets[1]
			if submit.Claims.Sub != "submission:"+sub.SubmissionID || submit.Claims.Schema != standin.SETPayloadSchema {
				t.Fatalf("submit-submission claims %+v", submit.Claims)
			}
			var p struct {
				AuthenticationTags standin.AuthenticationTags `json:"authenticationTags"`
			}
			if err := json.Unmarshal(submit.Payload, &p); err != nil {
				t.Fatal(err)
			}
			want := standin.AuthenticationTags{Metadata: tag(raw.EncryptedMetadata), Data: tag(raw.EncryptedData), Attachments: map[string]string{}}
			for _, id := range raw.Attachments {
				ans := dest.do(http.MethodGet, "/submissions/"+sub.SubmissionID+"/attachments/"+id, "", nil)
				if ans.Status != http.StatusOK || ans.Header.Get("Content-Type") != "application/jose" {
					t.Fatalf("attachment %s: %d %s", id, ans.Status, ans.Header.Get("Content-Type"))
				}
				want.Attachments[id] = tag(string(ans.Body))
			}
			got2 := p.AuthenticationTags
			if got2.Metadata != want.Metadata || got2.Data != want.Data || len(got2.Attachments) != len(want.Attachments) {
				t.Fatalf("tags %+v, want %+v", got2, want)
			}
			for k, v := range want.Attachments {
				if got2.Attachments[k] != v {
					t.Fatalf("attachment tag %s: %s, want %s", k, got2.Attachments[k], v)
				}
			}
		})
	}
}

// TestAuthorisation: a sender may not list or read submissions; another
// destination's subscriber neither lists nor reads this destination's; a
// listing of a destination the client does not serve is refused; no token
// is 401.
func TestAuthorisation(t *testing.T) {
	var sub submitted
	py(t, &sub, "submit", "--attachments", "1")
	sender := login(t, shared.setup.Sender)
	other := login(t, destination(1).Party)
	own := login(t, destination(0).Party)
	aid := sub.Attachments[0]
	for _, c := range []struct {
		name   string
		a      *api
		path   string
		status int
		ptype  string
	}{
		{"sender lists", sender, "/submissions", http.StatusForbidden, "forbidden"},
		{"sender reads", sender, "/submissions/" + sub.SubmissionID, http.StatusForbidden, "forbidden"},
		{"other reads", other, "/submissions/" + sub.SubmissionID, http.StatusForbidden, "forbidden"},
		{"other reads attachment", other, "/submissions/" + sub.SubmissionID + "/attachments/" + aid, http.StatusForbidden, "forbidden"},
		{"other lists this destination", other, "/submissions?destinationId=" + sub.DestinationID, http.StatusForbidden, "forbidden"},
		{"other reads the case", other, "/cases/" + sub.CaseID + "/events", http.StatusForbidden, "forbidden"},
		{"no token", &api{t: t}, "/submissions", http.StatusUnauthorized, "unauthorized"},
		{"unknown submission", own, "/submissions/" + standin.NewUUID(), http.StatusNotFound, "submission-not-found"},
		{"unknown attachment", own, "/submissions/" + sub.SubmissionID + "/attachments/" + standin.NewUUID(), http.StatusNotFound, "attachment-not-found"},
		{"unknown destination", sender, "/destinations/" + standin.NewUUID(), http.StatusNotFound, "destination-not-found"},
		{"bad limit", own, "/submissions?limit=0", http.StatusBadRequest, "invalid-request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ans := c.a.do(http.MethodGet, c.path, "", nil)
			if ans.Status != c.status {
				t.Fatalf("%d %s, want %d", ans.Status, ans.Body, c.status)
			}
			if p := problem(t, ans); p.Type != standin.ProblemPrefix+c.ptype {
				t.Fatalf("problem %s, want %s", p.Type, c.ptype)
			}
		})
	}
	var list struct {
		Count       int                 `json:"count"`
		TotalCount  int                 `json:"totalCount"`
		Submissions []map[string]string `json:"submissions"`
	}
	other.getJSON("/submissions", &list)
	for _, s := range list.Submissions {
		if s["submissionId"] == sub.SubmissionID {
			t.Fatal("another destination's subscriber lists the submission")
		}
	}
	own.getJSON("/submissions?destinationId="+sub.DestinationID+"&limit=500", &list)
	if !slices.ContainsFunc(list.Submissions, func(s map[string]string) bool {
		return s["submissionId"] == sub.SubmissionID && s["caseId"] == sub.CaseID && s["destinationId"] == sub.DestinationID
	}) || list.Count != len(list.Submissions) || list.TotalCount < list.Count {
		t.Fatalf("own listing %+v lacks %s", list, sub.SubmissionID)
	}
}

// TestEvents: the destination's accept-submission is taken with its
// registered signature key and the right tags; malformed or wrongly signed
// SETs are refused with a problem, and the submission stays submitted until
// a valid one comes; then it leaves the listing and a second decision is
// refused.
func TestEvents(t *testing.T) {
	var sub submitted
	py(t, &sub, "submit", "--attachments", "1")
	d := destination(0)
	dest := login(t, d.Party)
	var raw struct {
		EncryptedMetadata string `json:"encryptedMetadata"`
		EncryptedData     string `json:"encryptedData"`
	}
	dest.getJSON("/submissions/"+sub.SubmissionID, &raw)
	att := dest.do(http.MethodGet, "/submissions/"+sub.SubmissionID+"/attachments/"+sub.Attachments[0], "", nil)
	tags := map[string]any{"metadata": tag(raw.EncryptedMetadata), "data": tag(raw.EncryptedData),
		"attachments": map[string]string{sub.Attachments[0]: tag(string(att.Body))}}
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{
			"$schema": standin.SETPayloadSchema, "jti": standin.NewUUID(), "iss": d.DestinationID,
			"iat": time.Now().Unix(), "sub": "submission:" + sub.SubmissionID, "txn": "case:" + sub.CaseID,
			"events": map[string]any{standin.EventAcceptSubmission: map[string]any{"authenticationTags": tags}},
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	path := "/cases/" + sub.CaseID + "/events"
	post := func(a *api, set string) answer { return a.do(http.MethodPost, path, "application/jose", []byte(set)) }
	otherKey := destination(1).SigningKey
	encAsSig := d.SigningKey
	encAsSig.Kid = d.EncryptionKid
	for _, c := range []struct {
		name   string
		set    string
		status int
		ptype  string
		detail string
	}{
		{"typ JWT", mustSign(t, d.SigningKey, "JWT", claims(nil)), 422, "invalid-event", "typ"},
		{"no $schema", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) { delete(c, "$schema") })), 422, "invalid-event", "$schema"},
		{"jti not a UUID", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) { c["jti"] = "42" })), 422, "invalid-event", "jti"},
		{"iat a string", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) { c["iat"] = "now" })), 422, "invalid-event", "iat"},
		{"iat in the future", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() })), 422, "invalid-event", "future"},
		{"sub without prefix", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) { c["sub"] = sub.SubmissionID })), 422, "invalid-event", "sub"},
		{"txn of another case", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) { c["txn"] = "case:" + standin.NewUUID() })), 422, "invalid-event", "txn"},
		{"two events", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) {
			c["events"].(map[string]any)[standin.EventRejectSubmission] = map[string]any{}
		})), 422, "invalid-event", "exactly one"},
		{"iss another destination", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) { c["iss"] = destination(1).DestinationID })), 422, "invalid-event", "iss"},
		{"signed with another destination's key", mustSignKid(t, otherKey, d.SignatureKid, claims(nil)), 422, "invalid-event", "signature"},
		{"kid of the encryption key", destinationSET(t, d, encAsSig, claims(nil)), 422, "invalid-event", "kid"},
		{"tags of other JWEs", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) {
			c["events"] = map[string]any{standin.EventAcceptSubmission: map[string]any{"authenticationTags": map[string]any{"metadata": "AAAA", "attachments": map[string]string{}}}}
		})), 422, "invalid-event", "authenticationTags"},
		{"reject without problems", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) {
			c["events"] = map[string]any{standin.EventRejectSubmission: map[string]any{"problems": []any{}}}
		})), 422, "invalid-event", "problems"},
		{"reject with a foreign problem type", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) {
			c["events"] = map[string]any{standin.EventRejectSubmission: map[string]any{"problems": []any{map[string]string{
				"type": "about:blank", "title": "x", "detail": "y", "instance": "metadata"}}}}
		})), 422, "invalid-event", "problem 0"},
		{"platform event", destinationSET(t, d, d.SigningKey, claims(func(c map[string]any) {
			c["events"] = map[string]any{standin.EventSubmitSubmission: map[string]any{}}
		})), 422, "invalid-event", "may not post"},
		{"not a JWS", "eyJhbGciOiJQUzUxMiJ9.e30", 422, "invalid-event", "segments"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ans := post(dest, c.set)
			if ans.Status != c.status {
				t.Fatalf("%d %s, want %d", ans.Status, ans.Body, c.status)
			}
			p := problem(t, ans)
			if p.Type != standin.ProblemPrefix+c.ptype || !strings.Contains(p.Detail, c.detail) {
				t.Fatalf("problem %+v, want %s with %q", p, c.ptype, c.detail)
			}
		})
	}
	if st := submissionState(t, sub.SubmissionID); st != "submitted" {
		t.Fatalf("after refused events the submission is %s", st)
	}
	valid := destinationSET(t, d, d.SigningKey, claims(nil))
	if ans := post(login(t, destination(1).Party), valid); ans.Status != http.StatusForbidden {
		t.Fatalf("another destination's client posted: %d", ans.Status)
	}
	if ans := dest.do(http.MethodPost, path, "application/json", []byte(valid)); ans.Status != http.StatusUnsupportedMediaType {
		t.Fatalf("application/json: %d", ans.Status)
	}
	if ans := post(dest, valid); ans.Status != http.StatusNoContent {
		t.Fatalf("accept-submission: %d %s", ans.Status, ans.Body)
	}
	if ans := post(dest, valid); ans.Status != http.StatusUnprocessableEntity || !strings.Contains(problem(t, ans).Detail, "jti") {
		t.Fatalf("the same SET again: %d %s", ans.Status, ans.Body)
	}
	again := destinationSET(t, d, d.SigningKey, claims(nil))
	if ans := post(dest, again); ans.Status != http.StatusUnprocessableEntity || problem(t, ans).Type != standin.ProblemPrefix+"submission-state-invalid" {
		t.Fatalf("a second accept: %d %s", ans.Status, ans.Body)
	}
	if st := submissionState(t, sub.SubmissionID); st != "accepted" {
		t.Fatalf("submission %s", st)
	}
	sets := verifiedLog(t, login(t, shared.setup.Sender), sub.CaseID)
	if names := eventNames(sets); !slices.Equal(names, []string{"create-submission", "submit-submission", "accept-submission"}) {
		t.Fatalf("event log %v", names)
	}
	var list struct {
		Submissions []map[string]string `json:"submissions"`
	}
	dest.getJSON("/submissions?limit=500", &list)
	if slices.ContainsFunc(list.Submissions, func(s map[string]string) bool { return s["submissionId"] == sub.SubmissionID }) {
		t.Fatal("an accepted submission is still listed")
	}
}

func mustSign(t *testing.T, key standin.JWK, typ string, claims map[string]any) string {
	t.Helper()
	return signWith(t, key, key.Kid, typ, claims)
}

func mustSignKid(t *testing.T, key standin.JWK, kid string, claims map[string]any) string {
	t.Helper()
	return signWith(t, key, kid, standin.SETType, claims)
}

// replied is portal.py replies' output.
type replied struct {
	Replies []citizenReply `json:"replies"`
}

// citizenReply is one reply as the citizen decrypted it.
type citizenReply struct {
	ReplyID      string         `json:"replyId"`
	SubmissionID string         `json:"submissionId"`
	CaseID       string         `json:"caseId"`
	Metadata     map[string]any `json:"metadata"`
	Data         string         `json:"data"`
	Attachments  map[string]struct {
		SHA512 string `json:"sha512"`
		Text   string `json:"text"`
	} `json:"attachments"`
}

// TestReplyToCitizen: the SDK's submission names a citizen's reply key
// (replyChannel.fitConnect); the destination replies, encrypted to that
// key, with an attachment; the citizen lists, fetches and decrypts it with
// jwcrypto, its hashes check out, and it confirms with accept-reply; the
// event log has submit-reply and accept-reply.
func TestReplyToCitizen(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "citizen.jwk.json")
	var sub submitted
	py(t, &sub, "submit", "--attachments", "1", "--reply-key", keyFile)
	d := destination(0)
	dest := login(t, d.Party)
	var raw struct {
		EncryptedMetadata string `json:"encryptedMetadata"`
	}
	dest.getJSON("/submissions/"+sub.SubmissionID, &raw)
	var meta struct {
		ReplyChannel struct {
			FitConnect struct {
				EncryptionPublicKey standin.JWK `json:"encryptionPublicKey"`
			} `json:"fitConnect"`
		} `json:"replyChannel"`
	}
	if err := json.Unmarshal(decrypt(t, privateKey(t, d.DecryptionKey), raw.EncryptedMetadata), &meta); err != nil {
		t.Fatal(err)
	}
	citizen := meta.ReplyChannel.FitConnect.EncryptionPublicKey
	if citizen.Kid != sub.ReplyKid {
		t.Fatalf("reply key kid %q, want %q", citizen.Kid, sub.ReplyKid)
	}
	rid, caseID := sendReply(t, dest, sub.SubmissionID, citizen, "Ihr Antrag ist eingegangen.", []byte("Bescheid vom 3. Dezember"))
	if caseID != sub.CaseID {
		t.Fatalf("reply in case %s, submission in %s", caseID, sub.CaseID)
	}
	var got replied
	py(t, &got, "replies", "--key", keyFile)
	idx := slices.IndexFunc(got.Replies, func(r citizenReply) bool { return r.ReplyID == rid })
	if idx < 0 {
		t.Fatalf("the citizen did not get reply %s: %+v", rid, got)
	}
	r := got.Replies[idx]
	if !strings.Contains(r.Data, "Ihr Antrag ist eingegangen.") || len(r.Attachments) != 1 {
		t.Fatalf("reply %+v", r)
	}
	for _, a := range r.Attachments {
		if a.Text != "Bescheid vom 3. Dezember" {
			t.Fatalf("attachment %q", a.Text)
		}
	}
	sets := verifiedLog(t, login(t, shared.setup.Sender), sub.CaseID)
	names := eventNames(sets)
	if !slices.Contains(names, "submit-reply") || names[len(names)-1] != "accept-reply" {
		t.Fatalf("event log %v", names)
	}
	// Replies are the sender's: the destination's client may not list them.
	if ans := dest.do(http.MethodGet, "/replies", "", nil); ans.Status != http.StatusForbidden {
		t.Fatalf("destination lists replies: %d", ans.Status)
	}
}

// sendReply replies to a submission as the destination: data and one
// attachment encrypted to the citizen's key, with metadata stating their
// hashes.
func sendReply(t *testing.T, dest *api, submissionID string, citizen standin.JWK, text string, attachment []byte) (string, string) {
	t.Helper()
	pub, err := citizen.RSAPublic()
	if err != nil {
		t.Fatal(err)
	}
	aid := standin.NewUUID()
	body, _ := json.Marshal(map[string]any{"submissionId": submissionID, "announcedAttachments": []string{aid}})
	ans := dest.do(http.MethodPost, "/replies", "application/json", body)
	if ans.Status != http.StatusCreated {
		t.Fatalf("create reply: %d %s", ans.Status, ans.Body)
	}
	var created struct {
		ReplyID string `json:"replyId"`
		CaseID  string `json:"caseId"`
	}
	if err := json.Unmarshal(ans.Body, &created); err != nil {
		t.Fatal(err)
	}
	if ans := dest.do(http.MethodPut, "/replies/"+created.ReplyID+"/attachments/"+aid, "application/jose", []byte(encrypt(t, pub, citizen.Kid, attachment))); ans.Status != http.StatusNoContent {
		t.Fatalf("reply attachment: %d %s", ans.Status, ans.Body)
	}
	data, _ := json.Marshal(map[string]string{"text": text})
	hash := func(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }
	metadata, _ := json.Marshal(map[string]any{
		"$schema": "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json",
		"contentStructure": map[string]any{
			"data":        map[string]any{"hash": map[string]string{"type": "sha512", "content": hash(data)}, "submissionSchema": map[string]string{"schemaUri": "urn:poststelle:reply:1.0", "mimeType": "application/json"}},
			"attachments": []any{map[string]any{"attachmentId": aid, "hash": map[string]string{"type": "sha512", "content": hash(attachment)}, "mimeType": "text/plain", "purpose": "attachment"}},
		},
	})
	put, _ := json.Marshal(map[string]string{"encryptedMetadata": encrypt(t, pub, citizen.Kid, metadata), "encryptedData": encrypt(t, pub, citizen.Kid, data)})
	if ans := dest.do(http.MethodPut, "/replies/"+created.ReplyID, "application/json", put); ans.Status != http.StatusOK {
		t.Fatalf("submit reply: %d %s", ans.Status, ans.Body)
	}
	return created.ReplyID, created.CaseID
}

// TestFaults: a submission vanishes after the listing that shows it (404
// submission-not-found, then gone from the listing); tampered ciphertext
// makes the SDK's retrieve fail; expired tokens get 401 with
// WWW-Authenticate while the SDK, which fetches a token per request, goes on.
func TestFaults(t *testing.T) {
	t.Run("vanish", func(t *testing.T) {
		var sub submitted
		py(t, &sub, "submit", "--attachments", "0")
		control(t, "/vanish", map[string]string{"submissionId": sub.SubmissionID})
		dest := login(t, destination(0).Party)
		var list struct {
			Submissions []map[string]string `json:"submissions"`
		}
		listed := func() bool {
			dest.getJSON("/submissions?limit=500", &list)
			return slices.ContainsFunc(list.Submissions, func(s map[string]string) bool { return s["submissionId"] == sub.SubmissionID })
		}
		if !listed() {
			t.Fatal("not in the listing before it vanishes")
		}
		ans := dest.do(http.MethodGet, "/submissions/"+sub.SubmissionID, "", nil)
		if ans.Status != http.StatusNotFound || problem(t, ans).Type != standin.ProblemPrefix+"submission-not-found" {
			t.Fatalf("vanished submission: %d %s", ans.Status, ans.Body)
		}
		if listed() {
			t.Fatal("still listed after it vanished")
		}
	})
	t.Run("tamper", func(t *testing.T) {
		for _, part := range []string{"metadata", "data", "attachment"} {
			var sub submitted
			py(t, &sub, "submit", "--attachments", "1")
			p := part
			if part == "attachment" {
				p = "attachment:" + sub.Attachments[0]
			}
			control(t, "/tamper", map[string]string{"submissionId": sub.SubmissionID, "part": p})
			if err := pyErr(t, nil, "retrieve", "--submission", sub.SubmissionID); err == nil {
				t.Fatalf("the SDK retrieved a submission with tampered %s", part)
			}
		}
	})
	t.Run("expired tokens", func(t *testing.T) {
		dest := login(t, destination(0).Party)
		control(t, "/expire-tokens", nil)
		ans := dest.do(http.MethodGet, "/submissions", "", nil)
		if ans.Status != http.StatusUnauthorized || !strings.Contains(ans.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("expired token: %d %q", ans.Status, ans.Header.Get("WWW-Authenticate"))
		}
		problem(t, ans)
		var sub submitted
		py(t, &sub, "submit", "--attachments", "0")
	})
	t.Run("wrong secret", func(t *testing.T) {
		p := shared.setup.Sender
		p.ClientSecret = "wrong"
		resp, err := http.PostForm(shared.setup.TokenURL, map[string][]string{"grant_type": {"client_credentials"}, "client_id": {p.ClientID}, "client_secret": {p.ClientSecret}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong secret: %d", resp.StatusCode)
		}
	})
}

// TestCallback: with a callback registered through PATCH
// /v1/destinations/{id}, a submission the SDK sends is announced to it with
// callback-authentication = hex(HMAC-SHA512(secret, timestamp "." body)) and
// a current callback-timestamp, the new-submissions type and the submission.
func TestCallback(t *testing.T) {
	type got struct {
		header http.Header
		body   []byte
	}
	calls := make(chan got, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls <- got{r.Header.Clone(), b}
		w.WriteHeader(http.StatusOK)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	d := destination(1)
	dest := login(t, d.Party)
	const secret = "geheimes-callback-secret"
	body, _ := json.Marshal(map[string]any{"callback": map[string]string{"url": srv.URL + "/fitconnect/callback", "secret": secret}})
	if ans := dest.do(http.MethodPatch, "/destinations/"+d.DestinationID, "application/json", body); ans.Status != http.StatusOK {
		t.Fatalf("PATCH destination: %d %s", ans.Status, ans.Body)
	}
	if ans := login(t, destination(0).Party).do(http.MethodPatch, "/destinations/"+d.DestinationID, "application/json", body); ans.Status != http.StatusForbidden {
		t.Fatalf("another client patched the destination: %d", ans.Status)
	}
	var sub submitted
	py(t, &sub, "--destination", "1", "submit", "--attachments", "0")
	var c got
	select {
	case c = <-calls:
	case <-time.After(time.Minute):
		t.Fatal("no callback")
	}
	ts := c.header.Get("callback-timestamp")
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(n, 0)).Abs() > 5*time.Minute {
		t.Fatalf("callback-timestamp %q", ts)
	}
	if mac := c.header.Get("callback-authentication"); mac != standin.CallbackMAC(secret, n, c.body) || len(mac) != 128 {
		t.Fatalf("callback-authentication %q", mac)
	}
	var cb struct {
		Type          string              `json:"type"`
		SubmissionIDs []string            `json:"submissionIds"`
		Submissions   []map[string]string `json:"submissions"`
	}
	if err := json.Unmarshal(c.body, &cb); err != nil {
		t.Fatal(err)
	}
	if cb.Type != standin.CallbackNewSubmissions || !slices.Equal(cb.SubmissionIDs, []string{sub.SubmissionID}) ||
		len(cb.Submissions) != 1 || cb.Submissions[0]["caseId"] != sub.CaseID || cb.Submissions[0]["destinationId"] != d.DestinationID {
		t.Fatalf("callback body %s", c.body)
	}
}
