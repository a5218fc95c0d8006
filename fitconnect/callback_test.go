package fitconnect

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// callbackBody is the docs' example body (compact form).
const callbackBody = `{"type":"https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions","submissionIds":["f39ab143-d91a-474a-b69f-b00f1a1873c2"],"submissions":[{"destinationId":"d12caea8-f372-4eb1-b102-b0a228253a11","submissionId":"f39ab143-d91a-474a-b69f-b00f1a1873c2","caseId":"9eec7d3e-dc66-4f82-9f52-1520bf96a32e"}]}`

func TestCallbackVerify(t *testing.T) {
	secret := []byte("callback-secret-from-the-ssp")
	sent := time.Unix(1672527599, 0)
	ts, auth := SignCallback(secret, []byte(callbackBody), sent)
	if ts != "1672527599" || len(auth) != 128 {
		t.Fatalf("SignCallback = %q, %q", ts, auth)
	}
	v := CallbackVerifier{Secret: secret, Now: func() time.Time { return sent.Add(4 * time.Minute) }, MaxBody: 4096}
	c, err := v.Verify(ts, auth, []byte(callbackBody))
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != CallbackNewSubmissions || len(c.IDs()) != 1 || c.IDs()[0] != subID || c.Submissions[0].CaseID != caseID || !c.Timestamp.Equal(sent) {
		t.Errorf("callback %+v", c)
	}
	if _, err := v.Verify(ts, strings.ToUpper(auth), []byte(callbackBody)); err != nil {
		t.Errorf("upper-case hex refused: %v", err)
	}
	flipped := []byte(auth)
	if flipped[0] == '0' {
		flipped[0] = '1'
	} else {
		flipped[0] = '0'
	}
	at := func(d time.Duration) func() time.Time { return func() time.Time { return sent.Add(d) } }
	for _, tc := range []struct {
		name      string
		v         CallbackVerifier
		ts, auth  string
		body      string
		want      error
		wantField string
	}{
		{"older than five minutes", CallbackVerifier{Secret: secret, Now: at(5*time.Minute + time.Second)}, ts, auth, callbackBody, ErrCallbackTimestamp, ""},
		{"more than five minutes ahead", CallbackVerifier{Secret: secret, Now: at(-5*time.Minute - time.Second)}, ts, auth, callbackBody, ErrCallbackTimestamp, ""},
		{"timestamp not a number", v, "yesterday", auth, callbackBody, ErrCallbackTimestamp, ""},
		{"timestamp in milliseconds", v, ts + "000", auth, callbackBody, ErrCallbackTimestamp, ""},
		{"other timestamp, same HMAC", CallbackVerifier{Secret: secret, Now: at(0)}, "1672527600", auth, callbackBody, ErrCallbackAuthentication, ""},
		{"body changed", v, ts, auth, strings.Replace(callbackBody, "f39a", "f39b", 1), ErrCallbackAuthentication, ""},
		{"HMAC changed", v, ts, string(flipped), callbackBody, ErrCallbackAuthentication, ""},
		{"HMAC missing", v, ts, "", callbackBody, ErrCallbackAuthentication, ""},
		{"HMAC-SHA256 length", v, ts, auth[:64], callbackBody, ErrCallbackAuthentication, ""},
		{"other secret", CallbackVerifier{Secret: []byte("other"), Now: at(0)}, ts, auth, callbackBody, ErrCallbackAuthentication, ""},
		{"no secret configured", CallbackVerifier{Now: at(0)}, ts, auth, callbackBody, ErrCallbackAuthentication, ""},
		{"body too large", CallbackVerifier{Secret: secret, Now: at(0), MaxBody: 10}, ts, auth, callbackBody, ErrCallbackBody, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.v.Verify(tc.ts, tc.auth, []byte(tc.body)); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	// Authentic but not a callback body: refused after the HMAC, as a body
	// error, with the timestamp for a caller that polls all the same.
	for _, body := range []string{`not json`, `{"submissionIds":[]}`} {
		ts, auth := SignCallback(secret, []byte(body), sent)
		if c, err := v.Verify(ts, auth, []byte(body)); !errors.Is(err, ErrCallbackBody) || c == nil || !c.Timestamp.Equal(sent) {
			t.Errorf("body %q: %+v, error %v, want ErrCallbackBody and the timestamp", body, c, err)
		}
	}
}

// TestCallbackReplays: with a replay cache the same timestamp and body verify
// once; another body or timestamp is new; an entry is forgotten once its
// timestamp is out of range; the bound refuses rather than grows.
func TestCallbackReplays(t *testing.T) {
	secret := []byte("s")
	sent := time.Unix(1_800_000_000, 0)
	now := sent
	v := CallbackVerifier{Secret: secret, Now: func() time.Time { return now }, Replays: NewCallbackReplays(3)}
	send := func(body string, at time.Time) error {
		ts, auth := SignCallback(secret, []byte(body), at)
		_, err := v.Verify(ts, auth, []byte(body))
		return err
	}
	body := `{"type":"` + CallbackNewSubmissions + `","submissionIds":["a"]}`
	if err := send(body, sent); err != nil {
		t.Fatal(err)
	}
	if err := send(body, sent); !errors.Is(err, ErrCallbackReplayed) {
		t.Fatalf("replay: %v, want ErrCallbackReplayed", err)
	}
	if err := send(body, sent.Add(time.Second)); err != nil {
		t.Errorf("same body, new timestamp: %v", err)
	}
	if err := send(strings.Replace(body, `"a"`, `"b"`, 1), sent); err != nil {
		t.Errorf("new body: %v", err)
	}
	if err := send(strings.Replace(body, `"a"`, `"c"`, 1), sent); !errors.Is(err, ErrCallbackReplayed) {
		t.Errorf("past the bound: %v, want refused", err)
	}
	// Six minutes on, the old entries are gone and a new callback fits.
	now = sent.Add(6 * time.Minute)
	if err := send(body, now); err != nil {
		t.Errorf("after expiry: %v", err)
	}
	// A forged replay of a new callback is still an authentication failure.
	ts, auth := SignCallback([]byte("other"), []byte(body), now)
	if _, err := v.Verify(ts, auth, []byte(body)); !errors.Is(err, ErrCallbackAuthentication) {
		t.Errorf("forged: %v", err)
	}
}

func TestCallbackVerifyRequest(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Unix(1796316000, 0)
	ts, auth := SignCallback(secret, []byte(callbackBody), now)
	r := httptest.NewRequest("POST", "/fitconnect/callback", strings.NewReader(callbackBody))
	r.Header.Set(CallbackTimestampHeader, ts)
	r.Header.Set(CallbackAuthenticationHeader, auth)
	v := CallbackVerifier{Secret: secret, Now: func() time.Time { return now }}
	c, err := v.VerifyRequest(r)
	if err != nil || c.IDs()[0] != subID {
		t.Fatalf("VerifyRequest = %+v, %v", c, err)
	}
	big := httptest.NewRequest("POST", "/fitconnect/callback", strings.NewReader(strings.Repeat("x", 200)))
	big.Header.Set(CallbackTimestampHeader, ts)
	big.Header.Set(CallbackAuthenticationHeader, auth)
	v.MaxBody = 100
	if _, err := v.VerifyRequest(big); !errors.Is(err, ErrCallbackBody) {
		t.Errorf("oversized body: %v", err)
	}
}

// TestCallbackIDs: both forms, each id once.
func TestCallbackIDs(t *testing.T) {
	c := Callback{SubmissionIDs: []string{"a", "b", ""}, Submissions: []SubmissionRef{{SubmissionID: "b"}, {SubmissionID: "c"}}}
	if got := strings.Join(c.IDs(), ","); got != "b,c,a" {
		t.Errorf("IDs = %s", got)
	}
}
