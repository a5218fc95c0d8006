package xmldsig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Namespace URIs the package needs by name.
const (
	NamespaceDSig = "http://www.w3.org/2000/09/xmldsig#"
	NamespaceXML  = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS       = "http://www.w3.org/2000/xmlns/"
)

// Limits bounds the work Parse does on hostile input. Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	MaxBytes      int // whole document
	MaxDepth      int // element nesting
	MaxNodes      int // elements, text, comments and processing instructions
	MaxAttributes int // per element, namespace declarations included
	// MaxAttributeBytes caps one attribute value: legitimate values (Ids,
	// URIs, algorithm names) are short, and a huge one only costs memory
	// in every canonicalization that copies it.
	MaxAttributeBytes int
}

// DefaultLimits fit the largest real trusted lists (the EU LOTL and big
// national TLs are a few MB with tens of thousands of elements).
func DefaultLimits() Limits {
	return Limits{MaxBytes: 16 << 20, MaxDepth: 64, MaxNodes: 2_000_000, MaxAttributes: 64, MaxAttributeBytes: 64 << 10}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes > 0 {
		d.MaxBytes = l.MaxBytes
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxNodes > 0 {
		d.MaxNodes = l.MaxNodes
	}
	if l.MaxAttributes > 0 {
		d.MaxAttributes = l.MaxAttributes
	}
	if l.MaxAttributeBytes > 0 {
		d.MaxAttributeBytes = l.MaxAttributeBytes
	}
	return d
}

// ErrDTD is returned for documents with a document type declaration. DTDs
// bring entity expansion and external entities (XXE); no trusted list or
// XAdES signature needs one, so they are refused outright.
var ErrDTD = errors.New("xmldsig: document type declarations are not allowed")

// NodeKind tells what a Node is.
type NodeKind int

// Node kinds.
const (
	KindElement NodeKind = iota + 1
	KindText
	KindComment
	KindProcInst
)

// Node is one node of the parsed tree. Only the fields for its Kind are set.
type Node struct {
	Kind    NodeKind
	Element *Element // KindElement
	Text    string   // KindText, KindComment; PI data for KindProcInst
	Target  string   // KindProcInst
}

// Attr is a non-namespace attribute with its namespace resolved.
type Attr struct {
	Prefix, Local string
	Space         string // namespace URI, "" for unprefixed attributes
	Value         string
}

// NSDecl is a namespace declaration written on an element; Prefix "" is the
// default namespace.
type NSDecl struct {
	Prefix, URI string
}

// Element is a parsed element. The tree is read-only after Parse.
type Element struct {
	Prefix, Local string
	Space         string // resolved namespace URI
	Attrs         []Attr
	Decls         []NSDecl
	Children      []Node
	Parent        *Element
	// endTag is the offset in the parsed input (after a byte order mark)
	// where the element's end tag begins: Sign inserts a signature there.
	endTag int
	// selfClosing is set for an element written as <e/>, whose endTag
	// is just after the "/>".
	selfClosing bool
}

// Document is a parsed XML document.
type Document struct {
	// Prolog and Epilog hold the processing instructions and comments
	// outside the document element (C14N keeps processing instructions).
	Prolog, Epilog []Node
	Root           *Element
	ids            map[string]*Element
	dupIDs         map[string]bool
	// bom is the length of the byte order mark Parse skipped.
	bom int
}

// Parse parses a complete document strictly: well-formed, UTF-8, every
// prefix declared, no DTD, no unknown entities, within lim. It keeps the
// prefixes and namespace declarations as written, which canonicalization
// needs and encoding/xml's namespace translation would lose.
func Parse(data []byte, lim Limits) (*Document, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return nil, fmt.Errorf("xmldsig: document of %d bytes exceeds the %d byte limit", len(data), lim.MaxBytes)
	}
	trimmed := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p := &parser{lim: lim, doc: &Document{ids: map[string]*Element{}, dupIDs: map[string]bool{}, bom: len(data) - len(trimmed)}}
	dec := xml.NewDecoder(bytes.NewReader(trimmed))
	dec.Strict = true
	for {
		p.offset = int(dec.InputOffset())
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xmldsig: parse: %w", err)
		}
		if _, ok := tok.(xml.StartElement); ok {
			end := int(dec.InputOffset())
			p.selfClosing = end >= 2 && string(trimmed[end-2:end]) == "/>"
		}
		if err := p.token(tok); err != nil {
			return nil, fmt.Errorf("xmldsig: parse at offset %d: %w", dec.InputOffset(), err)
		}
	}
	if p.doc.Root == nil {
		return nil, errors.New("xmldsig: parse: no document element")
	}
	if p.cur != nil {
		return nil, fmt.Errorf("xmldsig: parse: element <%s> not closed", p.cur.qname())
	}
	return p.doc, nil
}

type parser struct {
	lim    Limits
	doc    *Document
	cur    *Element
	depth  int
	nodes  int
	seen   bool // document element seen
	offset int  // where the current token starts
	// selfClosing tells start that the start tag ended in "/>".
	selfClosing bool
}

func (p *parser) count() error {
	p.nodes++
	if p.nodes > p.lim.MaxNodes {
		return fmt.Errorf("more than %d nodes", p.lim.MaxNodes)
	}
	return nil
}

func (p *parser) token(tok xml.Token) error {
	switch t := tok.(type) {
	case xml.StartElement:
		return p.start(t)
	case xml.EndElement:
		return p.end(t)
	case xml.CharData:
		return p.text(string(t))
	case xml.Comment:
		return p.misc(Node{Kind: KindComment, Text: string(t)})
	case xml.ProcInst:
		if t.Target == "xml" {
			if p.seen || p.nodes > 0 {
				return errors.New("XML declaration not at the start")
			}
			return nil
		}
		if strings.EqualFold(t.Target, "xml") {
			return fmt.Errorf("reserved processing instruction target %q", t.Target)
		}
		return p.misc(Node{Kind: KindProcInst, Target: t.Target, Text: string(t.Inst)})
	case xml.Directive:
		return ErrDTD
	}
	return fmt.Errorf("unexpected token %T", tok)
}

func (p *parser) misc(n Node) error {
	if err := p.count(); err != nil {
		return err
	}
	switch {
	case p.cur != nil:
		p.cur.Children = append(p.cur.Children, n)
	case p.seen:
		p.doc.Epilog = append(p.doc.Epilog, n)
	default:
		p.doc.Prolog = append(p.doc.Prolog, n)
	}
	return nil
}

func (p *parser) text(s string) error {
	if p.cur == nil {
		if strings.Trim(s, " \t\r\n") != "" {
			return errors.New("text outside the document element")
		}
		return nil
	}
	if err := p.count(); err != nil {
		return err
	}
	// encoding/xml may split text (around CDATA sections); merge so that
	// each text node is complete.
	if n := len(p.cur.Children); n > 0 && p.cur.Children[n-1].Kind == KindText {
		p.cur.Children[n-1].Text += s
		return nil
	}
	p.cur.Children = append(p.cur.Children, Node{Kind: KindText, Text: s})
	return nil
}

func (p *parser) start(t xml.StartElement) error {
	if p.cur == nil && p.seen {
		return errors.New("second document element")
	}
	if err := p.count(); err != nil {
		return err
	}
	p.depth++
	if p.depth > p.lim.MaxDepth {
		return fmt.Errorf("elements nested deeper than %d", p.lim.MaxDepth)
	}
	if len(t.Attr) > p.lim.MaxAttributes {
		return fmt.Errorf("element <%s> has %d attributes, more than %d", t.Name.Local, len(t.Attr), p.lim.MaxAttributes)
	}
	e := &Element{Prefix: t.Name.Space, Local: t.Name.Local, Parent: p.cur, selfClosing: p.selfClosing}
	if err := checkName(e.Prefix, e.Local); err != nil {
		return err
	}
	seenAttr := map[string]bool{}
	for _, a := range t.Attr {
		if len(a.Value) > p.lim.MaxAttributeBytes {
			return fmt.Errorf("element <%s>: attribute %s of %d bytes, more than %d", e.qname(), a.Name.Local, len(a.Value), p.lim.MaxAttributeBytes)
		}
		key := a.Name.Space + ":" + a.Name.Local
		if seenAttr[key] {
			return fmt.Errorf("element <%s>: duplicate attribute %s", e.qname(), key)
		}
		seenAttr[key] = true
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			e.Decls = append(e.Decls, NSDecl{Prefix: "", URI: a.Value})
		case a.Name.Space == "xmlns":
			if a.Value == "" {
				return fmt.Errorf("element <%s>: undeclaring prefix %q is not XML 1.0", e.qname(), a.Name.Local)
			}
			if a.Name.Local == "xmlns" || (a.Name.Local == "xml" && a.Value != NamespaceXML) {
				return fmt.Errorf("element <%s>: illegal declaration of prefix %q", e.qname(), a.Name.Local)
			}
			e.Decls = append(e.Decls, NSDecl{Prefix: a.Name.Local, URI: a.Value})
		default:
			if err := checkName(a.Name.Space, a.Name.Local); err != nil {
				return err
			}
			e.Attrs = append(e.Attrs, Attr{Prefix: a.Name.Space, Local: a.Name.Local, Value: a.Value})
		}
	}
	var ok bool
	if e.Space, ok = e.LookupPrefix(e.Prefix); !ok {
		return fmt.Errorf("element <%s>: undeclared prefix %q", e.qname(), e.Prefix)
	}
	seenExpanded := map[string]bool{}
	for i := range e.Attrs {
		a := &e.Attrs[i]
		if a.Prefix != "" {
			if a.Space, ok = e.LookupPrefix(a.Prefix); !ok || a.Space == "" {
				return fmt.Errorf("element <%s>: attribute %s:%s has an undeclared prefix", e.qname(), a.Prefix, a.Local)
			}
		}
		key := a.Space + " " + a.Local
		if seenExpanded[key] {
			return fmt.Errorf("element <%s>: duplicate attribute {%s}%s", e.qname(), a.Space, a.Local)
		}
		seenExpanded[key] = true
		if a.Prefix == "" && isIDAttr(a.Local) {
			p.registerID(a.Value, e)
		}
	}
	if p.cur == nil {
		p.doc.Root = e
		p.seen = true
	} else {
		p.cur.Children = append(p.cur.Children, Node{Kind: KindElement, Element: e})
	}
	p.cur = e
	return nil
}

func (p *parser) registerID(id string, e *Element) {
	if _, dup := p.doc.ids[id]; dup {
		p.doc.dupIDs[id] = true
		return
	}
	p.doc.ids[id] = e
}

func (p *parser) end(t xml.EndElement) error {
	if p.cur == nil || p.cur.Prefix != t.Name.Space || p.cur.Local != t.Name.Local {
		return fmt.Errorf("unexpected end element </%s>", qname(t.Name.Space, t.Name.Local))
	}
	p.cur.endTag = p.offset
	p.cur = p.cur.Parent
	p.depth--
	return nil
}

func checkName(prefix, local string) error {
	if local == "" || strings.Contains(local, ":") || strings.Contains(prefix, ":") {
		return fmt.Errorf("malformed name %q", qname(prefix, local))
	}
	return nil
}

// isIDAttr names the unprefixed attributes XML-DSig same-document
// references may point at: ETSI and XAdES use Id, some producers ID or id.
func isIDAttr(local string) bool {
	return local == "Id" || local == "ID" || local == "id"
}

func qname(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}

func (e *Element) qname() string { return qname(e.Prefix, e.Local) }

// LookupPrefix resolves prefix in e's scope. The unbound default namespace
// resolves to "".
func (e *Element) LookupPrefix(prefix string) (string, bool) {
	if prefix == "xml" {
		return NamespaceXML, true
	}
	for x := e; x != nil; x = x.Parent {
		for _, d := range x.Decls {
			if d.Prefix == prefix {
				return d.URI, true
			}
		}
	}
	if prefix == "" {
		return "", true
	}
	return "", false
}

// Is reports whether e has the namespace URI space and local name local.
func (e *Element) Is(space, local string) bool {
	return e != nil && e.Space == space && e.Local == local
}

// Attr returns the value of the unprefixed attribute local.
func (e *Element) Attr(local string) (string, bool) {
	if e == nil {
		return "", false
	}
	for _, a := range e.Attrs {
		if a.Prefix == "" && a.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// AttrNS returns the value of the attribute {space}local.
func (e *Element) AttrNS(space, local string) (string, bool) {
	for _, a := range e.Attrs {
		if a.Space == space && a.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// Elements returns the child elements in document order.
func (e *Element) Elements() []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if c.Kind == KindElement {
			out = append(out, c.Element)
		}
	}
	return out
}

// ChildrenNamed returns the child elements {space}local.
func (e *Element) ChildrenNamed(space, local string) []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if c.Kind == KindElement && c.Element.Is(space, local) {
			out = append(out, c.Element)
		}
	}
	return out
}

// Child returns the first child element {space}local, or nil.
func (e *Element) Child(space, local string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Kind == KindElement && c.Element.Is(space, local) {
			return c.Element
		}
	}
	return nil
}

// Path follows a chain of child elements in one namespace; nil if any step
// is missing.
func (e *Element) Path(space string, locals ...string) *Element {
	for _, l := range locals {
		e = e.Child(space, l)
		if e == nil {
			return nil
		}
	}
	return e
}

// Text returns the concatenated text content of e's direct text children.
func (e *Element) Text() string {
	if e == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range e.Children {
		if c.Kind == KindText {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// ElementByID resolves a same-document reference. It fails when the id is
// missing or carried by more than one element: an ambiguous id is the
// classic lever of signature wrapping.
func (d *Document) ElementByID(id string) (*Element, error) {
	if d.dupIDs[id] {
		return nil, fmt.Errorf("xmldsig: id %q is not unique", id)
	}
	e, ok := d.ids[id]
	if !ok {
		return nil, fmt.Errorf("xmldsig: no element with id %q", id)
	}
	return e, nil
}
