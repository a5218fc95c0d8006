package officeapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/retention"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// erasedBlobs is a blob.Eraser that remembers what it erased.
type erasedBlobs struct {
	mu   sync.Mutex
	refs map[blob.Ref]bool
}

func (e *erasedBlobs) Erase(_ context.Context, ref blob.Ref) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.refs == nil {
		e.refs = map[blob.Ref]bool{}
	}
	e.refs[ref] = true
	return nil
}

func (e *erasedBlobs) has(ref blob.Ref) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refs[ref]
}

// newRetention is the retention service over the test's log: office a
// keeps its messages for a year from the end of the year of receipt.
func newRetention(t *testing.T, g *gatewaytest.Env, er blob.Eraser) *retention.Service {
	t.Helper()
	cfg := retention.Config{}
	pol, err := retention.NewPolicy(cfg, map[string]retention.Rule{"a": {Period: retention.Period{Years: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := retention.New(cfg, retention.Deps{Log: g.Log, Registry: gateway.NewRegistry(), State: g.State, Eraser: er, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func decodeStatus(t *testing.T, r *http.Response) retention.Status {
	t.Helper()
	var st retention.Status
	if err := json.Unmarshal([]byte(readBody(t, r)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRetentionEndpoints(t *testing.T) {
	e := newTestEnv(t)
	e.seed("ma", "a", "a.pdf")
	stream := e.streams["ma"]
	admin, auditor := creds{token: e.tokens["admin"]}, creds{token: e.tokens["auditor"]}
	base := "/admin/messages/" + stream

	resp := e.do(auditor, "GET", base+"/retention", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status: %d %s", resp.StatusCode, readBody(t, resp))
	}
	st := decodeStatus(t, resp)
	wantUntil := time.Date(time.Now().In(berlin(t)).Year()+2, 1, 1, 0, 0, 0, 0, berlin(t))
	if st.Office != "a" || !st.RetainUntil.Equal(wantUntil) || st.Hold || st.Erased ||
		st.Rule != "office a: 1y from the end of the year of receipt" {
		t.Fatalf("status %+v, want office a until %s", st, wantUntil)
	}

	for _, tc := range []struct {
		name, method, path, body string
		who                      creds
		want                     int
		says                     string
	}{
		{"auditor may not hold", "POST", base + "/hold", `{"reason":"Klage"}`, auditor, 403, "only admins"},
		{"hold without reason", "POST", base + "/hold", `{"case":"VG 1 K 23/26"}`, admin, 400, "reason is required"},
		{"hold with unknown field", "POST", base + "/hold", `{"reason":"x","until":"2030"}`, admin, 400, "unknown field"},
		{"hold body too large", "POST", base + "/hold", `{"reason":"` + strings.Repeat("x", maxJSONBody) + `"}`, admin, 413, "limit"},
		{"hold reason too long", "POST", base + "/hold", `{"reason":"` + strings.Repeat("x", 1001) + `"}`, admin, 400, "longer than"},
		{"hold not JSON", "POST", base + "/hold", ``, admin, 415, "application/json"},
		{"hold of no message", "POST", "/admin/messages/msg-nonesuch/hold", `{"reason":"Klage"}`, admin, 404, "no such message"},
		{"hold of a bad stream", "POST", "/admin/messages/a%2Fb/hold", `{"reason":"Klage"}`, admin, 404, ""},
		{"release while not held", "POST", base + "/hold/release", `{"reason":"x"}`, admin, 409, "not on legal hold"},
		{"hold", "POST", base + "/hold", `{"reason":"Klage anhängig","case":"VG 1 K 23/26"}`, admin, 201, `"hold":true`},
		{"hold twice", "POST", base + "/hold", `{"reason":"Klage"}`, admin, 409, "already on legal hold"},
		{"erase while held", "POST", base + "/erase", `{"reason":"Antrag"}`, admin, 409, "on legal hold"},
		{"auditor sees the hold", "GET", base + "/retention", "", auditor, 200, `"holdCase":"VG 1 K 23/26"`},
		{"auditor may not release", "POST", base + "/hold/release", `{"reason":"x"}`, auditor, 403, "only admins"},
		{"release", "POST", base + "/hold/release", `{"reason":"Verfahren beendet"}`, admin, 200, `"hold":false`},
		{"auditor may not erase", "POST", base + "/erase", `{}`, auditor, 403, "only admins"},
		{"erase", "POST", base + "/erase", `{"reason":"Antrag nach Art. 17 DSGVO"}`, admin, 200, `"erased":true`},
		{"erase twice", "POST", base + "/erase", `{}`, admin, 409, "already erased"},
		{"hold after erasure", "POST", base + "/hold", `{"reason":"Klage"}`, admin, 409, "already erased"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(tc.who, tc.method, tc.path, tc.body)
			body := readBody(t, resp)
			if resp.StatusCode != tc.want || !strings.Contains(body, tc.says) {
				t.Fatalf("%s %s: %d %s, want %d mentioning %q", tc.method, tc.path, resp.StatusCode, body, tc.want, tc.says)
			}
		})
	}

	st = decodeStatus(t, e.do(auditor, "GET", base+"/retention", ""))
	if st.Erasure == nil || st.Erasure.Actor != "root" || st.Erasure.Rule != retention.RuleManual ||
		st.Erasure.Reason != "Antrag nach Art. 17 DSGVO" || len(st.Erasure.Blobs) != 3 {
		t.Fatalf("erasure %+v", st.Erasure)
	}
	for _, r := range st.Erasure.Blobs {
		if !e.shredded.has(r) {
			t.Errorf("blob %s recorded as erased, its key stays", r.SHA256)
		}
	}
}

func TestRetentionUnavailable(t *testing.T) {
	e := newTestEnv(t)
	e.seed("ma", "a", "a.pdf")
	s, err := New(Config{}, Deps{Log: e.log, DB: e.db, Blobs: e.blobs, Directory: e.dir, Plan: emailPolicy(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	e.srv = srv
	admin := creds{token: e.tokens["admin"]}
	for _, path := range []string{"/retention", "/hold", "/hold/release", "/erase"} {
		method, body := "POST", `{"reason":"x"}`
		if path == "/retention" {
			method, body = "GET", ""
		}
		resp := e.do(admin, method, "/admin/messages/"+e.streams["ma"]+path, body)
		if got := readBody(t, resp); resp.StatusCode != 503 || !strings.Contains(got, "not available") {
			t.Errorf("%s without retention: %d %s, want 503", path, resp.StatusCode, got)
		}
	}
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
