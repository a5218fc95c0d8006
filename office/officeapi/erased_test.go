package officeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// erasingBlobs reads the references in refs as erased, as eventstore/cryptblob
// does once a blob's key was destroyed.
type erasingBlobs struct {
	blob.Backend
	mu   sync.Mutex
	refs map[string]bool
}

func (b *erasingBlobs) erase(refs ...blob.Ref) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range refs {
		b.refs[r.SHA256] = true
	}
}

func (b *erasingBlobs) gone(ref blob.Ref) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refs[ref.SHA256] {
		return fmt.Errorf("read %s: %w", ref.SHA256, blob.ErrErased)
	}
	return nil
}

func (b *erasingBlobs) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	if err := b.gone(ref); err != nil {
		return nil, err
	}
	return b.Backend.Open(ctx, ref)
}

func (b *erasingBlobs) ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error) {
	if err := b.gone(ref); err != nil {
		return nil, err
	}
	return b.Backend.ReadAll(ctx, ref, max)
}

// TestErasedContentIsGone: once a message's contents are erased, every
// download of them answers 410 Gone (not 404, not 500), while what was not
// erased still downloads and the message itself is still listed.
func TestErasedContentIsGone(t *testing.T) {
	e := newTestEnv(t)
	m := e.seed("m1", "a", "antrag.pdf")
	member := creds{token: e.tokens["member-a"]}
	base := "/offices/a/messages/" + m.Stream

	detail := e.do(member, "GET", base, "")
	body := readBody(t, detail)
	if detail.StatusCode != http.StatusOK {
		t.Fatalf("detail before erasure: %d %s", detail.StatusCode, body)
	}
	raw := e.do(member, "GET", base+"/raw", "")
	rawBody := readBody(t, raw)
	if raw.StatusCode != http.StatusOK || !strings.Contains(rawBody, "hello m1") {
		t.Fatalf("raw before erasure: %d %q", raw.StatusCode, rawBody)
	}

	ctx := context.Background()
	rawRef, _ := e.blobs.PutBytes(ctx, []byte("Subject: m1\r\n\r\nhello m1\r\n"))
	report, _ := e.blobs.PutBytes(ctx, []byte(`{"report":"m1"}`))
	e.erased.erase(rawRef, report)

	for _, tc := range []struct {
		path string
		want int
	}{
		{base + "/raw", http.StatusGone},
		{base + "/parts/1", http.StatusGone},
		{base + "/report", http.StatusGone},
		{base + "/parts/2", http.StatusOK},
		{base, http.StatusOK},
	} {
		resp := e.do(member, "GET", tc.path, "")
		got := readBody(t, resp)
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d %q, want %d", tc.path, resp.StatusCode, got, tc.want)
		}
		if tc.want == http.StatusGone && strings.Contains(got, "hello m1") {
			t.Errorf("GET %s: erased content in the answer: %q", tc.path, got)
		}
	}
}

// TestErasureAndHoldInMessageJSON: the message list and the single message
// say that a message's contents were erased (when, rule, reason) and that
// another is on legal hold (since, case), as the OpenAPI document names
// them; a message with neither carries neither key.
func TestErasureAndHoldInMessageJSON(t *testing.T) {
	e := newTestEnv(t)
	erased, held, plain := e.seed("me", "a", "e.pdf"), e.seed("mh", "a", "h.pdf"), e.seed("mp", "a", "p.pdf")
	admin, member := creds{token: e.tokens["admin"]}, creds{token: e.tokens["member-a"]}
	for path, body := range map[string]string{
		"/admin/messages/" + erased.Stream + "/erase": `{"reason":"Antrag nach Art. 17 DSGVO"}`,
		"/admin/messages/" + held.Stream + "/hold":    `{"reason":"Klage anhängig","case":"VG 1 K 23/26"}`,
	} {
		if resp := e.do(admin, "POST", path, body); resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, readBody(t, resp))
		}
	}
	e.catchUp()

	var list struct {
		Messages []json.RawMessage `json:"messages"`
	}
	resp := e.do(member, "GET", "/offices/a/messages", "")
	if err := json.Unmarshal([]byte(readBody(t, resp)), &list); err != nil || len(list.Messages) != 3 {
		t.Fatalf("list: %d messages, %v", len(list.Messages), err)
	}
	listed := map[string]string{}
	for _, m := range list.Messages {
		var s struct{ Stream string }
		json.Unmarshal(m, &s)
		listed[s.Stream] = string(m)
	}
	erasedKey := regexp.MustCompile(`"erased":\{"at":"[0-9T:.Z-]+","rule":"manual","reason":"Antrag nach Art. 17 DSGVO"\}`)
	holdKey := regexp.MustCompile(`"legalHold":\{"since":"[0-9T:.Z-]+","case":"VG 1 K 23/26"\}`)
	for _, tc := range []struct {
		name, stream string
		erased, hold bool
	}{
		{"erased", erased.Stream, true, false},
		{"held", held.Stream, false, true},
		{"plain", plain.Stream, false, false},
	} {
		detail := readBody(t, e.do(member, "GET", "/offices/a/messages/"+tc.stream, ""))
		for where, j := range map[string]string{"list": listed[tc.stream], "detail": detail} {
			if erasedKey.MatchString(j) != tc.erased || strings.Contains(j, `"erased"`) != tc.erased {
				t.Errorf("%s in the %s: erased %v wanted: %s", tc.name, where, tc.erased, j)
			}
			if holdKey.MatchString(j) != tc.hold || strings.Contains(j, `"legalHold"`) != tc.hold {
				t.Errorf("%s in the %s: hold %v wanted: %s", tc.name, where, tc.hold, j)
			}
		}
	}
}
