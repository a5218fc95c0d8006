package webui

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// erasedReads reads every blob as erased, as eventstore/cryptblob does once
// the keys are destroyed.
type erasedReads struct{ blob.Backend }

func (erasedReads) Open(_ context.Context, ref blob.Ref) (io.ReadCloser, error) {
	return nil, fmt.Errorf("open %s: %w", ref.SHA256, blob.ErrErased)
}

// TestErasedDownloadsAreGone: the downloads of an erased message answer
// 410 with the page that says why, in the browser's language, and never
// its content.
func TestErasedDownloadsAreGone(t *testing.T) {
	e := newTestEnv(t)
	e.seed("m1", "a")
	e.ui.deps.Blobs = erasedReads{e.blobs}
	b := e.browser("en")
	if code := b.login("member-a", password); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	s := e.streams["m1"]
	for _, p := range []string{"/raw", "/parts/2", "/report"} {
		code, body := b.get("/messages/" + s + p)
		if code != http.StatusGone || !strings.Contains(body, "erased at the end of its retention period") {
			t.Errorf("GET %s of an erased message: %d %q, want 410 saying it was erased", p, code, body)
		}
		if strings.Contains(body, "PDF-1.7") || strings.Contains(body, "hello") {
			t.Errorf("GET %s of an erased message shows its content", p)
		}
	}
}
