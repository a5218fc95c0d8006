package httpserve

import (
	"strings"
	"testing"
	"unicode"
)

// FuzzSafeFilename checks that no sender-chosen name escapes its header or
// names a path.
func FuzzSafeFilename(f *testing.F) {
	for _, s := range []string{"a.pdf", "../../x", "a\r\nb", "\u202e.exe", `C:\x\y.doc`, "\"", ".."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := SafeFilename(name, "fallback")
		if got == "" || len(got) > 200 || strings.ContainsAny(got, "/\\\"\r\n\x00") || strings.ContainsFunc(got, unicode.IsControl) || got == ".." {
			t.Fatalf("SafeFilename(%q) = %q", name, got)
		}
		if mt := SafeMediaType(name); strings.ContainsAny(mt, "\r\n") {
			t.Fatalf("SafeMediaType(%q) = %q", name, mt)
		}
	})
}

func TestSafeNames(t *testing.T) {
	for in, want := range map[string]string{
		"Bescheid.pdf":                "Bescheid.pdf",
		"../../etc/passwd":            "passwd",
		`C:\Users\x\Antrag "neu".pdf`: "Antrag neu.pdf",
		"a\r\nX-Evil: 1.pdf":          "aX-Evil: 1.pdf",
		"..":                          "fallback",
		"":                            "fallback",
		"Ä\u202egnp.exe":              "Ägnp.exe",
		strings.Repeat("ü", 300):      strings.Repeat("ü", 100),
	} {
		if got := SafeFilename(in, "fallback"); got != want {
			t.Errorf("SafeFilename(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"application/pdf":                     "application/pdf",
		"text/plain; charset=ISO-8859-1; x=y": "text/plain; charset=ISO-8859-1",
		"text/html\r\nX-Evil: 1":              "application/octet-stream",
		"":                                    "application/octet-stream",
		"garbage":                             "application/octet-stream",
	} {
		if got := SafeMediaType(in); got != want {
			t.Errorf("SafeMediaType(%q) = %q, want %q", in, got, want)
		}
	}
}
