package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
)

func sign(secret, ts, body string) string {
	m := hmac.New(sha512.New, []byte(secret))
	m.Write([]byte(ts + "." + body))
	return hex.EncodeToString(m.Sum(nil))
}

// TestCallbacks: a verified callback is answered 200 and wakes the
// collector; a forged, stale, replayed or malformed one is 401 and wakes
// nothing.
func TestCallbacks(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	body := `{"type":"https://schema.fitko.de/fit-connect/callbacks/new-submissions","submissionIds":["a"]}`
	ts := strconv.FormatInt(now.Unix(), 10)
	old := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)
	future := strconv.FormatInt(now.Add(6*time.Minute).Unix(), 10)
	e := newEnv(t, nil)
	e.in.deps.Now = func() time.Time { return now }
	for _, tc := range []struct {
		name, ts, auth, body, method string
		want                         int
	}{
		{"verified", ts, sign("callback-secret", ts, body), body, "POST", 200},
		{"replayed", ts, sign("callback-secret", ts, body), body, "POST", 401},
		{"other body, same timestamp", ts, sign("callback-secret", ts, body+" "), body + " ", "POST", 200},
		{"wrong secret", ts, sign("other", ts, body), body, "POST", 401},
		{"body changed", ts, sign("callback-secret", ts, body), strings.Replace(body, `"a"`, `"b"`, 1), "POST", 401},
		{"stale", old, sign("callback-secret", old, body), body, "POST", 401},
		{"from the future", future, sign("callback-secret", future, body), body, "POST", 401},
		{"no timestamp", "", sign("callback-secret", "", body), body, "POST", 401},
		{"no authentication", ts, "", body, "POST", 401},
		{"authentication not hex", ts, "zz", body, "POST", 401},
		{"GET", ts, "", "", "GET", 405},
		{"too large", ts, "", strings.Repeat("x", maxCallbackBody+1), "POST", 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for len(e.in.wake) > 0 {
				<-e.in.wake
			}
			r := httptest.NewRequest(tc.method, CallbackPath, strings.NewReader(tc.body))
			r.Header.Set("callback-timestamp", tc.ts)
			r.Header.Set("callback-authentication", tc.auth)
			w := httptest.NewRecorder()
			e.in.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if woke := len(e.in.wake) > 0; woke != (tc.want == http.StatusOK) {
				t.Errorf("woke the collector: %v", woke)
			}
			if strings.Contains(w.Body.String(), "callback-secret") {
				t.Error("the answer holds the secret")
			}
		})
	}
}

// TestRunWakesOnCallback runs the collector with its callback receiver on
// 127.0.0.1: the first poll takes what is waiting, a verified callback makes
// it take a new submission at once (the poll interval is an hour), a forged
// one is refused.
func TestRunWakesOnCallback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEnv(t, func(c *Config, _ *gateway.IntakeDeps) { c.PollInterval, c.CallbackListen = time.Hour, addr })
	first, second := build(t, subSpec{}), build(t, subSpec{})
	e.fake.add(first)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.in.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, func() bool { return len(e.fake.decisions(first.ref.SubmissionID)) == 1 })
	e.fake.add(second)
	body := `{"type":"https://schema.fitko.de/fit-connect/callbacks/new-submissions","submissionIds":["` + second.ref.SubmissionID + `"]}`
	post := func(secret string) int {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		for {
			req, _ := http.NewRequest("POST", "http://"+addr+CallbackPath, strings.NewReader(body))
			req.Header.Set("callback-timestamp", ts)
			req.Header.Set("callback-authentication", sign(secret, ts, body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				time.Sleep(10 * time.Millisecond) // the receiver may not listen yet
				continue
			}
			resp.Body.Close()
			return resp.StatusCode
		}
	}
	if code := post("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("forged callback: %d", code)
	}
	if code := post("callback-secret"); code != http.StatusOK {
		t.Fatalf("verified callback: %d", code)
	}
	waitFor(t, func() bool { return len(e.fake.decisions(second.ref.SubmissionID)) == 1 })
}

// waitFor polls cond until it holds; the test's own deadline bounds it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(5 * time.Millisecond)
	}
}
