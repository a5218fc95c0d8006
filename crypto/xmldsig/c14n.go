package xmldsig

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Canonicalization algorithm URIs.
const (
	AlgExcC14N             = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgExcC14NWithComments = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
	AlgC14N10              = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
	AlgC14N10WithComments  = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
)

// C14N describes one canonicalization: which algorithm, whether comments
// are kept, and for exclusive C14N the InclusiveNamespaces PrefixList.
type C14N struct {
	Exclusive bool
	Comments  bool
	// V11 selects Canonical XML 1.1: at a subtree apex xml:id and xml:base
	// are not inherited from ancestors (xml:base fix-up is not done, so a
	// subtree under an ancestor with xml:base canonicalizes without it).
	V11 bool
	// InclusivePrefixes are treated as in inclusive C14N; "#default" names
	// the default namespace.
	InclusivePrefixes []string
}

// ParseC14N maps an algorithm URI to a C14N.
func ParseC14N(uri string) (C14N, error) {
	switch uri {
	case AlgExcC14N:
		return C14N{Exclusive: true}, nil
	case AlgExcC14NWithComments:
		return C14N{Exclusive: true, Comments: true}, nil
	case AlgC14N10:
		return C14N{}, nil
	case AlgC14N10WithComments:
		return C14N{Comments: true}, nil
	case AlgC14N11:
		return C14N{V11: true}, nil
	case AlgC14N11WithComments:
		return C14N{V11: true, Comments: true}, nil
	}
	return C14N{}, fmt.Errorf("xmldsig: unsupported canonicalization %q", uri)
}

// Canonicalize writes the canonical form of the subtree at apex, leaving out
// the subtree at exclude (nil for none): that is the node set of a
// same-document reference after the enveloped-signature transform.
func (c C14N) Canonicalize(apex *Element, exclude *Element) []byte {
	var b bytes.Buffer
	w := c14nWriter{C14N: c, buf: &b, exclude: exclude}
	if c.Exclusive {
		w.elementExclusive(apex, nil, true)
	} else {
		w.elementInclusive(apex, nil, true)
	}
	return b.Bytes()
}

// CanonicalizeDocument canonicalizes the whole document (a reference with
// URI=""), keeping the processing instructions (and with Comments the
// comments) before and after the document element.
func (c C14N) CanonicalizeDocument(d *Document, exclude *Element) []byte {
	var b bytes.Buffer
	w := c14nWriter{C14N: c, buf: &b, exclude: exclude}
	for _, n := range d.Prolog {
		if w.misc(n) {
			b.WriteByte('\n')
		}
	}
	if c.Exclusive {
		w.elementExclusive(d.Root, nil, true)
	} else {
		w.elementInclusive(d.Root, nil, true)
	}
	for _, n := range d.Epilog {
		if n.Kind == KindProcInst || (n.Kind == KindComment && c.Comments) {
			b.WriteByte('\n')
			w.misc(n)
		}
	}
	return b.Bytes()
}

type c14nWriter struct {
	C14N
	buf     *bytes.Buffer
	exclude *Element
}

// misc writes a comment or processing instruction and reports whether it
// wrote anything.
func (w *c14nWriter) misc(n Node) bool {
	switch n.Kind {
	case KindComment:
		if !w.Comments {
			return false
		}
		w.buf.WriteString("<!--")
		w.buf.WriteString(n.Text)
		w.buf.WriteString("-->")
		return true
	case KindProcInst:
		w.buf.WriteString("<?")
		w.buf.WriteString(n.Target)
		if d := strings.TrimLeft(n.Text, " \t\r\n"); d != "" {
			w.buf.WriteByte(' ')
			w.buf.WriteString(d)
		}
		w.buf.WriteString("?>")
		return true
	}
	return false
}

func (w *c14nWriter) children(e *Element, rendered *nsFrame) {
	for _, n := range e.Children {
		switch n.Kind {
		case KindElement:
			if n.Element == w.exclude {
				continue
			}
			if w.Exclusive {
				w.elementExclusive(n.Element, rendered, false)
			} else {
				w.elementInclusive(n.Element, rendered, false)
			}
		case KindText:
			escapeText(w.buf, n.Text)
		default:
			w.misc(n)
		}
	}
}

// elementExclusive renders e per Exclusive XML Canonicalization 1.0: only
// the namespaces e visibly uses (plus the inclusive prefix list) that the
// nearest rendered ancestor has not already declared with the same URI.
func (w *c14nWriter) elementExclusive(e *Element, rendered *nsFrame, _ bool) {
	need := []string{e.Prefix}
	for _, a := range e.Attrs {
		if a.Prefix != "" && a.Prefix != "xml" {
			need = append(need, a.Prefix)
		}
	}
	for _, p := range w.InclusivePrefixes {
		if p == "#default" {
			p = ""
		}
		if _, ok := e.LookupPrefix(p); ok && p != "xml" {
			need = append(need, p)
		}
	}
	slices.Sort(need)
	need = slices.Compact(need)
	var decls []NSDecl
	for _, p := range need {
		uri, _ := e.LookupPrefix(p)
		prev, had := rendered.lookup(p)
		if p == "" && uri == "" {
			if had && prev != "" {
				decls = append(decls, NSDecl{"", ""})
			}
			continue
		}
		if !had || prev != uri {
			decls = append(decls, NSDecl{p, uri})
		}
	}
	w.startTag(e, decls, e.Attrs)
	w.children(e, rendered.push(decls))
	w.endTag(e)
}

// elementInclusive renders e per Canonical XML 1.0: every namespace in
// scope that the parent's rendering does not already carry; at a subtree
// apex also the xml:* attributes inherited from ancestors. Below the apex
// the parent has rendered its whole scope, so only e's own declarations
// can differ: looking at those alone keeps the work per element bounded by
// its attribute count, however many namespaces the ancestors declare.
func (w *c14nWriter) elementInclusive(e *Element, rendered *nsFrame, apex bool) {
	var scope []NSDecl
	if apex {
		seen := map[string]bool{}
		for x := e; x != nil; x = x.Parent {
			for _, d := range x.Decls {
				if !seen[d.Prefix] {
					seen[d.Prefix] = true
					scope = append(scope, d)
				}
			}
		}
	} else {
		scope = e.Decls
	}
	var decls []NSDecl
	for _, d := range scope {
		p, uri := d.Prefix, d.URI
		if p == "xml" {
			continue
		}
		prev, had := rendered.lookup(p)
		if p == "" && uri == "" {
			if had && prev != "" {
				decls = append(decls, NSDecl{"", ""})
			}
			continue
		}
		if !had || prev != uri {
			decls = append(decls, NSDecl{p, uri})
		}
	}
	slices.SortFunc(decls, func(a, b NSDecl) int { return strings.Compare(a.Prefix, b.Prefix) })
	attrs := e.Attrs
	if apex && e.Parent != nil {
		attrs = inheritXMLAttrs(e, w.V11)
	}
	w.startTag(e, decls, attrs)
	w.children(e, rendered.push(decls))
	w.endTag(e)
}

func inheritXMLAttrs(e *Element, v11 bool) []Attr {
	attrs := slices.Clone(e.Attrs)
	have := map[string]bool{}
	for _, a := range attrs {
		if a.Space == NamespaceXML {
			have[a.Local] = true
		}
	}
	for x := e.Parent; x != nil; x = x.Parent {
		for _, a := range x.Attrs {
			if v11 && (a.Local == "id" || a.Local == "base") {
				continue
			}
			if a.Space == NamespaceXML && !have[a.Local] {
				have[a.Local] = true
				attrs = append(attrs, a)
			}
		}
	}
	return attrs
}

// nsFrame is the stack of namespace declarations rendered so far, one
// frame per element that rendered any; frames are shared, never copied,
// so that rendering stays linear in the document.
type nsFrame struct {
	parent *nsFrame
	decls  []NSDecl
	m      map[string]string // for large frames
}

func (f *nsFrame) push(decls []NSDecl) *nsFrame {
	if len(decls) == 0 {
		return f
	}
	n := &nsFrame{parent: f, decls: decls}
	if len(decls) > 8 {
		n.m = make(map[string]string, len(decls))
		for _, d := range decls {
			n.m[d.Prefix] = d.URI
		}
	}
	return n
}

func (f *nsFrame) lookup(prefix string) (string, bool) {
	for x := f; x != nil; x = x.parent {
		if x.m != nil {
			if u, ok := x.m[prefix]; ok {
				return u, true
			}
			continue
		}
		for _, d := range x.decls {
			if d.Prefix == prefix {
				return d.URI, true
			}
		}
	}
	return "", false
}

func (w *c14nWriter) startTag(e *Element, decls []NSDecl, attrs []Attr) {
	b := w.buf
	b.WriteByte('<')
	b.WriteString(e.qname())
	for _, d := range decls {
		if d.Prefix == "" {
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(" xmlns:")
			b.WriteString(d.Prefix)
			b.WriteString(`="`)
		}
		escapeAttr(b, d.URI)
		b.WriteByte('"')
	}
	sorted := slices.Clone(attrs)
	slices.SortFunc(sorted, func(a, b Attr) int {
		if c := strings.Compare(a.Space, b.Space); c != 0 {
			return c
		}
		return strings.Compare(a.Local, b.Local)
	})
	for _, a := range sorted {
		b.WriteByte(' ')
		b.WriteString(qname(a.Prefix, a.Local))
		b.WriteString(`="`)
		escapeAttr(b, a.Value)
		b.WriteByte('"')
	}
	b.WriteByte('>')
}

func (w *c14nWriter) endTag(e *Element) {
	w.buf.WriteString("</")
	w.buf.WriteString(e.qname())
	w.buf.WriteByte('>')
}

func escapeText(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

func escapeAttr(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}
