package webui

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// FuzzSearch: whatever a user types into the search form is words, never
// FTS5 syntax: the query never fails and never panics.
func FuzzSearch(f *testing.F) {
	db := openTestDB(f, f.TempDir())
	applySeed(f, db, 50)
	for _, s := range []string{"antrag", `"`, "a*", "NEAR(a b)", "sender: x", "^x", "- -", "63-2026-1", "a OR b", "(", "\x00", "über@straße"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, text, file string) {
		if _, err := Search(context.Background(), db, Scope{All: true}, Query{Text: text, FileNumber: file, Sender: text, Subject: file}); err != nil {
			t.Fatalf("Search(%q, %q): %v", text, file, err)
		}
	})
}

// FuzzSafeNext: the redirect after a login stays on this site.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/messages/x", "//evil.example", "https://evil.example", "/\\evil", "javascript:alert(1)", "/a?b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") {
			t.Fatalf("safeNext(%q) = %q leaves the site", next, got)
		}
	})
}
