package xmldsig

import (
	"fmt"
	"strings"
	"testing"
)

// hostileNamespaces builds a document of about size bytes: a chain of 60
// elements each declaring 30 prefixes (and using them), then many leaves
// each redeclaring one. Rendering that copied the in-scope namespaces per
// element was quadratic (minutes for 15 MB); it must stay linear.
func hostileNamespaces(size int) []byte {
	var b strings.Builder
	for d := 0; d < 60; d++ {
		b.WriteString("<e")
		for i := 0; i < 30; i++ {
			fmt.Fprintf(&b, ` xmlns:p%d_%d="u%d_%d" p%d_%d:a="x"`, d, i, d, i, d, i)
		}
		b.WriteString(">")
	}
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, `<p0_%d:l xmlns:p0_%d="v"/>`, i%30, i%30)
	}
	for d := 0; d < 60; d++ {
		b.WriteString("</e>")
	}
	return []byte(b.String())
}

// BenchmarkHostileNamespaces measures both canonicalizations of
// hostileNamespaces(1 MiB); compare with a run of BenchmarkC14NPlain of the
// same size: the ratio should stay small.
func BenchmarkHostileNamespaces(b *testing.B) {
	benchC14N(b, hostileNamespaces(1<<20))
}

// BenchmarkC14NPlain is the baseline: 1 MiB of ordinary elements.
func BenchmarkC14NPlain(b *testing.B) {
	var s strings.Builder
	s.WriteString(`<a xmlns="urn:a" xmlns:x="urn:x">`)
	for s.Len() < 1<<20 {
		s.WriteString(`<x:b c="d">text</x:b>`)
	}
	s.WriteString(`</a>`)
	benchC14N(b, []byte(s.String()))
}

func benchC14N(b *testing.B, data []byte) {
	doc, err := Parse(data, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		C14N{Exclusive: true}.CanonicalizeDocument(doc, nil)
		C14N{}.CanonicalizeDocument(doc, nil)
	}
}

// TestHostileNamespacesCanonical checks the output of the fast inclusive
// path on the hostile shape: each leaf redeclares exactly its own prefix.
func TestHostileNamespacesCanonical(t *testing.T) {
	doc, err := Parse(hostileNamespaces(200_000), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out := string(C14N{}.CanonicalizeDocument(doc, nil))
	if !strings.Contains(out, `<p0_0:l xmlns:p0_0="v"></p0_0:l><p0_1:l xmlns:p0_1="v"></p0_1:l>`) {
		t.Errorf("leaves not rendered with their own declaration: %.300s", out[len(out)-600:])
	}
	if n := strings.Count(out, `xmlns:p59_29="u59_29"`); n != 1 {
		t.Errorf("deepest declaration rendered %d times", n)
	}
}
