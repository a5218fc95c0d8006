package mailcompose

import (
	"bytes"
	"flag"
	"io"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/gateway"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func TestWriteFieldFoldsAndNeutralises(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"Subject", "kurz", "Subject: kurz\r\n"},
		{"Subject", "a\r\nBcc: x@y\x00z", "Subject: a  Bcc: x@y z\r\n"},
		{"References", strings.Repeat("<aaaaaaaaaaaaaaaaaaaa@example.org> ", 3) + "<b@c>",
			"References: <aaaaaaaaaaaaaaaaaaaa@example.org>\r\n <aaaaaaaaaaaaaaaaaaaa@example.org> <aaaaaaaaaaaaaaaaaaaa@example.org> <b@c>\r\n"},
		// A word longer than a line stays whole rather than being cut.
		{"X", strings.Repeat("w", 100), "X: " + strings.Repeat("w", 100) + "\r\n"},
	} {
		var b bytes.Buffer
		WriteField(&b, tt.name, tt.value)
		if b.String() != tt.want {
			t.Errorf("WriteField(%q, %q) = %q, want %q", tt.name, tt.value, b.String(), tt.want)
		}
	}
}

func TestTextEncodesOnlyWhenNeeded(t *testing.T) {
	dec := new(mime.WordDecoder)
	for _, s := range []string{"Antrag", "Anhörung", "tab\there", "bell\a", "€ 100"} {
		enc := Text(s)
		got, err := dec.DecodeHeader(enc)
		if err != nil || got != s {
			t.Errorf("Text(%q) = %q decodes to %q, %v", s, enc, got, err)
		}
		plain := strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 || (r < 0x20 && r != '\t') }) < 0
		if plain != (enc == s) {
			t.Errorf("Text(%q) = %q: encoded %v, want %v", s, enc, enc != s, !plain)
		}
	}
}

func TestShownMailbox(t *testing.T) {
	for _, tt := range []struct {
		in   gateway.Address
		want string
	}{
		{gateway.Address{Name: "Erika Muster", Address: "e@example.org"}, `"Erika Muster" <e@example.org>`},
		{gateway.Address{Address: "e@example.org"}, "<e@example.org>"},
		{gateway.Address{Name: "X\r\nBcc: y", Address: "a@b\r\nBcc: c@d"}, `"X  Bcc: y a@b  Bcc: c@d" <unknown@poststelle.invalid>`},
		{gateway.Address{Name: "Ärger", Address: "a@example.org"}, "=?utf-8?q?=C3=84rger?= <a@example.org>"},
	} {
		if got := ShownMailbox(tt.in); got != tt.want {
			t.Errorf("ShownMailbox(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestThreadOf(t *testing.T) {
	hdr := func(s string) mail.Header {
		m, err := mail.ReadMessage(strings.NewReader(s + "\r\n\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return m.Header
	}
	for _, tt := range []struct {
		name      string
		h         mail.Header
		fallbacks []string
		irt       string
		refs      string
	}{
		{"header", hdr("Message-ID: <m@x>\r\nReferences: <r1@x> <r2@x>"), []string{"<other@x>"}, "<m@x>", "<r1@x> <r2@x> <m@x>"},
		{"in-reply-to when no references", hdr("Message-ID: <m@x>\r\nIn-Reply-To: <p@x>"), nil, "<m@x>", "<p@x> <m@x>"},
		{"fallback", nil, []string{"", "box/1/7", "<f@x>"}, "<f@x>", "<f@x>"},
		{"hostile ids dropped", hdr("Message-ID: <a b@x>\r\nReferences: <ok@x> <x\"@y>"), []string{"<a\r\nBcc: x@y>"}, "", "<ok@x>"},
		{"duplicates once", hdr("Message-ID: <m@x>\r\nReferences: <m@x> <r@x> <r@x>"), nil, "<m@x>", "<m@x> <r@x>"},
		{"nothing", nil, nil, "", ""},
	} {
		th := ThreadOf(tt.h, tt.fallbacks...)
		if th.InReplyTo != tt.irt || strings.Join(th.References, " ") != tt.refs {
			t.Errorf("%s: %+v, want %q / %q", tt.name, th, tt.irt, tt.refs)
		}
	}
	var refs []string
	for i := range 50 {
		refs = append(refs, "<"+strings.Repeat("r", i+1)+"@x>")
	}
	got := trimReferences(refs)
	if len(got) != MaxReferences || got[0] != refs[0] || got[len(got)-1] != refs[49] || got[1] != refs[50-MaxReferences+1] {
		t.Fatalf("trimmed %v", got)
	}
}

func TestReplyMessageIDIsStable(t *testing.T) {
	a, b := ReplyMessageID("rpl-1", "stadt.example"), ReplyMessageID("rpl-1", "stadt.example")
	if a != b || a == ReplyMessageID("rpl-2", "stadt.example") {
		t.Fatalf("ids %s %s", a, b)
	}
	if !strings.HasPrefix(a, "<reply.") || !strings.HasSuffix(a, "@stadt.example>") || len(a) != len("<reply.@stadt.example>")+32 {
		t.Fatalf("id %s", a)
	}
}

func TestBase64Lines(t *testing.T) {
	var b bytes.Buffer
	w := NewBase64Writer(&b)
	data := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100)
	w.Write(data)
	w.Close()
	lines := strings.Split(b.String(), "\r\n")
	for i, l := range lines {
		if len(l) > 76 || (i < len(lines)-1 && len(l) != 76) {
			t.Fatalf("line %d has %d characters", i, len(l))
		}
	}
}

// TestComposedEntityGolden composes a multipart entity with every writer and
// pins its bytes; the callers' own golden files (office/officeimap,
// channels/smtpout) pin the whole messages.
func TestComposedEntityGolden(t *testing.T) {
	var b bytes.Buffer
	boundary := DerivedBoundary("bauamt\x00msg-1")
	WriteField(&b, "From", Mailbox(gateway.Address{Name: "Stadt Musterstadt – Poststelle", Address: "poststelle@stadt.example"}))
	WriteField(&b, "To", ShownMailboxes([]gateway.Address{{Name: "Müller, Hans", Address: "h@example.org"}, {Address: "kaputt"}}))
	WriteField(&b, "Subject", Text("Re: Anhörung zum Bauvorhaben Musterstraße 12 – bitte um Stellungnahme bis Ende März"))
	WriteField(&b, "Message-ID", ReplyMessageID("rpl-1", "stadt.example"))
	ThreadOf(nil, "<antrag-1@example.org>").Write(&b)
	WriteField(&b, "MIME-Version", "1.0")
	WriteField(&b, "Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	b.WriteString("\r\n")
	mp := NewMultipart(&b, boundary)
	mp.Next()
	WriteTextPart(&b, "text/plain; charset=utf-8", "", "Sehr geehrter Herr Müller,\r\nmit = Zeichen.\rEnde\n")
	mp.Next()
	WriteField(&b, "Content-Type", "application/octet-stream")
	WriteField(&b, "Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	w := NewBase64Writer(&b)
	w.Write(bytes.Repeat([]byte("Poststelle "), 12))
	w.Close()
	mp.Close()
	got := b.Bytes()

	path := filepath.Join("testdata", "golden", "entity.eml")
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
	// And it is a message a reader understands.
	m, err := mail.ReadMessage(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(m.Body); err != nil || m.Header.Get("In-Reply-To") != "<antrag-1@example.org>" {
		t.Fatalf("parsed: %v %v", m.Header, err)
	}
}

// FuzzWriteField: whatever the value, the field is one header field that
// net/mail reads back, and folding only ever adds CRLF before a space.
func FuzzWriteField(f *testing.F) {
	f.Add("Subject", "Antrag")
	f.Add("Subject", "a\r\nBcc: x@y")
	f.Add("References", strings.Repeat("<x@y> ", 40))
	f.Add("Subject", "Ärger über Öffnungszeiten und sehr lange Betreffzeilen, die umbrochen werden müssen")
	f.Fuzz(func(t *testing.T, name, value string) {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
			return
		}
		var b bytes.Buffer
		WriteField(&b, name, Text(value))
		m, err := mail.ReadMessage(io.MultiReader(&b, strings.NewReader("\r\n")))
		if err != nil {
			t.Fatalf("does not parse: %v\n%q", err, b.String())
		}
		if len(m.Header) != 1 {
			t.Fatalf("%d fields from %q", len(m.Header), b.String())
		}
	})
}
