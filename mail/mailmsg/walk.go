// Package mailmsg understands Internet messages (RFC 5322, MIME) for the
// e-mail adapters: it walks a stored message's MIME tree, stores every part
// in the blob store as it streams past, and describes the message for its
// receipt event: addresses and subject decoded for display, parts with media
// type, file name, kind and blob reference, nested messages and S/MIME
// objects unpacked or classified for signature verification, trace headers
// and headers this channel cannot vouch for.
//
// A received message is evidence whatever its shape. The walker therefore
// never refuses content: what it cannot understand becomes a problem in the
// result, and the raw bytes stay in the store untouched. It refuses only
// what endangers the gateway, by limits on nesting depth, part count, header
// size and bytes stored per message, and it reports an error only when its
// input or the store fails, which is a temporary condition for the caller.
//
// Part paths follow IMAP's section numbering (RFC 9051 section 6.4.5): the
// body parts of a multipart are numbered 1, 2, … below their parent's path;
// a message whose body is not multipart has its body at "1"; the parts of a
// nested message continue below the nested message's path. "0" names a
// message's top-level entity, which appears only as the entry of a
// top-level multipart/signed (KindSignedContent).
package mailmsg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// Store keeps the parts. *blob.Store implements it.
type Store interface {
	Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error)
	Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error)
}

// Limits bound the work and storage one message may cause. Zero fields take
// the defaults.
type Limits struct {
	// MaxDepth caps the nesting of multiparts and messages (default 16).
	MaxDepth int
	// MaxParts caps the parts recorded (default 1000).
	MaxParts int
	// MaxHeaderBytes caps one header section (default 256 KiB).
	MaxHeaderBytes int
	// MaxStoredBytes caps the bytes of parts stored for one message
	// (default 4 × the raw size + 1 MiB). Nested messages store their
	// content once per level, so this stops a nested-message bomb.
	MaxStoredBytes int64
	// MaxUnpackBytes caps an enveloping CMS SignedData whose content is
	// unpacked (default 32 MiB). The content is streamed, so this bounds
	// work and storage, not memory.
	MaxUnpackBytes int64
}

func (l Limits) withDefaults(rawSize int64) Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = 16
	}
	if l.MaxParts <= 0 {
		l.MaxParts = 1000
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 256 << 10
	}
	if l.MaxUnpackBytes <= 0 {
		l.MaxUnpackBytes = 32 << 20
	}
	if l.MaxStoredBytes <= 0 {
		l.MaxStoredBytes = 4*rawSize + 1<<20
	}
	return l
}

// Message describes a walked message.
type Message struct {
	// Header is the top-level header section as it appeared.
	Header    Header
	MessageID string
	Subject   string
	Date      string
	From      gateway.Address
	To        []gateway.Address
	Cc        []gateway.Address
	// ReplyTo is the Reply-To field undecoded, as the reply path needs it,
	// with control characters replaced.
	ReplyTo string
	Parts   []gateway.Part
	// Received lists the trace headers, newest first as they appear.
	Received []string
	// Untrusted lists headers that only a trusted channel may set.
	Untrusted []gateway.Header
	// Problems lists what could not be understood; the raw bytes are kept.
	Problems []string
}

const (
	maxReceived   = 100
	maxUntrusted  = 50
	maxFieldValue = 2000
	maxSubject    = 1000
	peekSize      = 64
	readBufSize   = 8 << 10
)

// Walk reads the stored message raw from store and describes it, storing its
// parts there too. The error is non-nil only when reading the message or
// storing a part failed; hostile or broken content yields problems instead.
func Walk(ctx context.Context, store Store, raw blob.Ref, lim Limits) (*Message, error) {
	rc, err := store.Open(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("mailmsg: open message %s: %w", raw.SHA256, err)
	}
	defer rc.Close()
	msg, err := WalkReader(ctx, store, rc, raw.Size, lim)
	if err != nil {
		return nil, fmt.Errorf("mailmsg: walk message %s: %w", raw.SHA256, err)
	}
	return msg, nil
}

// WalkReader walks a message as it streams from r, for a caller that
// stores the raw bytes at the same time. size (the message size or its
// upper bound) sets the default storage budget. It does not read r to its
// end when a limit stops the walk.
func WalkReader(ctx context.Context, store Store, r io.Reader, size int64, lim Limits) (*Message, error) {
	lim = lim.withDefaults(size)
	w := &walker{ctx: ctx, store: store, lim: lim, budget: lim.MaxStoredBytes}
	return w.message(r)
}

type walker struct {
	ctx      context.Context
	store    Store
	lim      Limits
	budget   int64
	parts    []gateway.Part
	problems problemList
	full     bool            // MaxParts reached: stop walking
	controls map[string]bool // fields whose control characters were reported
}

func (w *walker) problemf(format string, args ...any) {
	w.problems.add(fmt.Sprintf(format, args...))
}

func (w *walker) message(r io.Reader) (*Message, error) {
	hdr, br, ok, err := w.header(sourceReader{r}, "message")
	if err != nil {
		return nil, err
	}
	msg := &Message{Header: hdr}
	w.describe(msg, hdr)
	if ok {
		if err := w.entity(hdr, br, "", 0, true); err != nil {
			return nil, err
		}
	}
	msg.Parts = w.parts
	msg.Problems = w.problems.list()
	return msg, nil
}

// header reads an entity's header section. ok is false when the section
// exceeded its limit, in which case the entity is not walked further.
func (w *walker) header(r io.Reader, where string) (Header, *bufio.Reader, bool, error) {
	br := bufio.NewReaderSize(r, readBufSize)
	hdr, probs, err := readHeader(br, w.lim.MaxHeaderBytes)
	for _, p := range probs {
		w.problemf("%s header: %s", where, p)
	}
	if errors.Is(err, errHeaderTooLarge) {
		w.problemf("%s header: %v; content not unpacked", where, err)
		return hdr, br, false, nil
	}
	if err != nil {
		return hdr, br, false, err
	}
	return hdr, br, true, nil
}

func (w *walker) describe(msg *Message, hdr Header) {
	decode := func(name string) string {
		s, p := DecodeHeader(hdr.Get(name))
		if p != "" {
			w.problemf("header %s: %s", name, p)
		}
		return w.clean(name, s)
	}
	msg.Subject = clipString(decode("Subject"), maxSubject)
	msg.MessageID = clipString(strings.TrimSpace(decode("Message-ID")), maxFieldValue)
	msg.Date = clipString(decode("Date"), 200)
	msg.ReplyTo = w.clean("Reply-To", hdr.Get("Reply-To"))
	addrs := func(name string) []gateway.Address {
		list, p := parseAddresses(strings.Join(hdr.Values(name), ", "))
		if p != "" {
			w.problemf("header %s: %s", name, p)
		}
		for i := range list {
			list[i].Name = w.clean(name, list[i].Name)
			list[i].Address = w.clean(name, list[i].Address)
		}
		return list
	}
	if from := addrs("From"); len(from) > 0 {
		msg.From = from[0]
		if len(from) > 1 {
			w.problemf("header From names %d addresses; the first is taken as the sender", len(from))
		}
	}
	msg.To = addrs("To")
	msg.Cc = addrs("Cc")
	text := func(name, s string, n int) string {
		return clipString(w.clean(name, strings.ToValidUTF8(s, "\uFFFD")), n)
	}
	for _, f := range hdr {
		switch {
		case strings.EqualFold(f.Name, "Received"):
			if len(msg.Received) < maxReceived {
				msg.Received = append(msg.Received, text("Received", f.Value, maxFieldValue))
			}
		case TrustedOnly(f.Name):
			if len(msg.Untrusted) < maxUntrusted {
				msg.Untrusted = append(msg.Untrusted, gateway.Header{
					Name:  text(f.Name, f.Name, 200),
					Value: text(f.Name, f.Value, maxFieldValue)})
			}
		}
	}
}

// clean replaces control characters in a value of the named field and
// reports it once per field.
func (w *walker) clean(field, s string) string {
	s, changed := ReplaceControls(s)
	if changed {
		key := strings.ToLower(field)
		if !w.controls[key] {
			if w.controls == nil {
				w.controls = map[string]bool{}
			}
			w.controls[key] = true
			w.problemf("header %s: %s", field, controlsProblem)
		}
	}
	return s
}

// entity walks the body of an entity whose header is hdr. p is the entity's
// path ("" for the top-level message); isMessage tells that the entity is a
// message, whose non-multipart body is numbered ".1".
func (w *walker) entity(hdr Header, body *bufio.Reader, p string, depth int, isMessage bool) error {
	if w.full {
		return nil
	}
	ct := w.contentType(hdr, p)
	leafPath := p
	if isMessage {
		leafPath = join(p, "1")
	}
	switch {
	case strings.HasPrefix(ct.mediaType, "multipart/"):
		switch {
		case depth >= w.lim.MaxDepth:
			w.problemf("part %s: nested deeper than %d levels; stored unopened", displayPath(p), w.lim.MaxDepth)
		case ct.params["boundary"] == "":
			w.problemf("part %s: %s without boundary; stored as one part", displayPath(p), ct.mediaType)
		default:
			return w.multipart(ct, body, p, depth, isMessage)
		}
		return w.leaf(hdr, ct, body, leafPath, KindAttachment, depth)
	case ct.mediaType == "message/rfc822" || ct.mediaType == "message/global":
		return w.nestedMessage(hdr, ct, body, leafPath, depth)
	}
	return w.leaf(hdr, ct, body, leafPath, "", depth)
}

func (w *walker) multipart(ct contentType, body *bufio.Reader, p string, depth int, isMessage bool) error {
	sp := newSplitter(body, ct.params["boundary"])
	signed := ct.mediaType == "multipart/signed"
	childDefault := "text/plain"
	if ct.mediaType == "multipart/digest" {
		childDefault = "message/rfc822"
	}
	for i := 1; !w.full; i++ {
		part, err := sp.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		cp := join(p, strconv.Itoa(i))
		if signed && i == 1 {
			entry := p
			if isMessage {
				entry = join(p, "0")
			}
			err = w.signedContent(part, entry, cp, depth)
		} else {
			err = w.child(part, cp, depth, childDefault)
		}
		if err != nil {
			return err
		}
	}
	switch {
	case w.full:
	case !sp.started:
		w.problemf("part %s: %s boundary %q never occurs; no parts found", displayPath(p), ct.mediaType, clip([]byte(ct.params["boundary"]), 70))
	case !sp.closed:
		w.problemf("part %s: %s has no closing boundary; the last part runs to the end", displayPath(p), ct.mediaType)
	}
	if signed && sp.parts != 2 {
		w.problemf("part %s: multipart/signed has %d parts instead of 2", displayPath(p), sp.parts)
	}
	return nil
}

// child walks one body part of a multipart.
func (w *walker) child(r io.Reader, p string, depth int, defaultType string) error {
	hdr, br, ok, err := w.header(r, "part "+p)
	if err != nil || !ok {
		return err
	}
	if hdr.Get("Content-Type") == "" && defaultType != "text/plain" {
		hdr = append(hdr, Field{Name: "Content-Type", Value: defaultType})
	}
	return w.entity(hdr, br, p, depth+1, false)
}

// signedContent stores the first body part of a multipart/signed exactly as
// it appeared, since that is what the signature covers, and then walks it
// from the store.
func (w *walker) signedContent(r io.Reader, entry, p string, depth int) error {
	ref, ok, err := w.put(r, entry)
	if err != nil || !ok {
		return err
	}
	if !w.add(gateway.Part{Path: entry, MediaType: "multipart/signed", Blob: ref, Kind: KindSignedContent}) {
		return nil
	}
	return w.fromStore(ref, func(r io.Reader) error { return w.child(r, p, depth, "text/plain") })
}

// nestedMessage stores an attached message as its own blob and walks it.
func (w *walker) nestedMessage(hdr Header, ct contentType, body io.Reader, p string, depth int) error {
	dec := transferDecoder(hdr.Get("Content-Transfer-Encoding"), body, w.partProblem(p))
	ref, ok, err := w.put(dec, p)
	if err != nil || !ok {
		return err
	}
	part := gateway.Part{Path: p, MediaType: ct.mediaType, Filename: w.filename(hdr, ct, p), Blob: ref, Kind: KindMessage}
	if !w.add(part) {
		return nil
	}
	if depth >= w.lim.MaxDepth {
		w.problemf("part %s: nested deeper than %d levels; message stored unopened", p, w.lim.MaxDepth)
		return nil
	}
	return w.fromStore(ref, func(r io.Reader) error {
		nh, br, ok, err := w.header(sourceReader{r}, "message "+p)
		if err != nil || !ok {
			return err
		}
		return w.entity(nh, br, p, depth+1, true)
	})
}

func (w *walker) fromStore(ref blob.Ref, walk func(io.Reader) error) error {
	rc, err := w.store.Open(w.ctx, ref)
	if err != nil {
		return fmt.Errorf("open part %s: %w", ref.SHA256, err)
	}
	defer rc.Close()
	return walk(sourceReader{rc})
}

// leaf decodes and stores a part's content. kind, when set, overrides the
// classification.
func (w *walker) leaf(hdr Header, ct contentType, body io.Reader, p, kind string, depth int) error {
	dec := transferDecoder(hdr.Get("Content-Transfer-Encoding"), body, w.partProblem(p))
	head := &headReader{r: dec}
	ref, ok, err := w.put(head, p)
	if err != nil {
		return err
	}
	part := gateway.Part{Path: p, MediaType: ct.display(), Filename: w.filename(hdr, ct, p), Blob: ref}
	var problem string
	part.Kind, problem = classify(ct.mediaType, ct.params, part.Filename, isAttachment(hdr), head.head)
	if kind != "" {
		part.Kind = kind
	}
	if !ok {
		part.Problems = append(part.Problems, "not stored: the message's storage budget is exhausted")
	}
	if problem != "" {
		part.Problems = append(part.Problems, problem)
	}
	if !w.add(part) || !ok || part.Kind != KindSignedData {
		return nil
	}
	return w.unpackSignedData(part, isPKCS7Mime(ct.mediaType), depth)
}

func isPKCS7Mime(mediaType string) bool {
	return mediaType == "application/pkcs7-mime" || mediaType == "application/x-pkcs7-mime"
}

// put stores a part within the message's storage budget. ok is false when
// the budget ran out; err is non-nil when the input or the store failed.
func (w *walker) put(r io.Reader, p string) (blob.Ref, bool, error) {
	if w.budget <= 0 {
		w.problemf("part %s: not stored, the message's storage budget of %d bytes is exhausted", displayPath(p), w.lim.MaxStoredBytes)
		return blob.Ref{}, false, nil
	}
	ref, err := w.store.Put(w.ctx, r, w.budget)
	if errors.Is(err, blob.ErrTooLarge) {
		w.budget = 0
		w.problemf("part %s: not stored, the message's storage budget of %d bytes is exhausted", displayPath(p), w.lim.MaxStoredBytes)
		return blob.Ref{}, false, nil
	}
	if err != nil {
		return blob.Ref{}, false, fmt.Errorf("store part %s: %w", displayPath(p), err)
	}
	w.budget -= ref.Size
	return ref, true, nil
}

// add records a part unless the part limit is reached.
func (w *walker) add(part gateway.Part) bool {
	if len(w.parts) >= w.lim.MaxParts {
		if !w.full {
			w.full = true
			w.problemf("more than %d parts; the rest are not extracted (the raw message is kept)", w.lim.MaxParts)
		}
		return false
	}
	w.parts = append(w.parts, part)
	return true
}

func (w *walker) partProblem(p string) func(string) {
	return func(s string) { w.problemf("part %s: %s", displayPath(p), s) }
}

type contentType struct {
	mediaType string
	params    map[string]string
}

// display is the media type recorded for a part; text keeps its charset so
// that it can be shown correctly later.
func (c contentType) display() string {
	if cs := c.params["charset"]; cs != "" && strings.HasPrefix(c.mediaType, "text/") {
		if s := mime.FormatMediaType(c.mediaType, map[string]string{"charset": strings.ToLower(cs)}); s != "" {
			return s
		}
	}
	return c.mediaType
}

var boundaryParam = regexp.MustCompile(`(?i)boundary\s*=\s*(?:"([^"]{1,200})"|([^\s;"]{1,200}))`)

// contentType parses an entity's Content-Type leniently. RFC 2045 section
// 5.2 makes a missing or unusable type text/plain.
func (w *walker) contentType(hdr Header, p string) contentType {
	raw := hdr.Get("Content-Type")
	if strings.TrimSpace(raw) == "" {
		return contentType{mediaType: "text/plain", params: map[string]string{}}
	}
	mt, params, err := mime.ParseMediaType(raw)
	if err != nil {
		if mt == "" || !strings.Contains(mt, "/") {
			w.problemf("part %s: Content-Type %q not understood; treated as text/plain", displayPath(p), clip([]byte(raw), 80))
			return contentType{mediaType: "text/plain", params: map[string]string{}}
		}
		w.problemf("part %s: Content-Type parameters not understood: %v", displayPath(p), err)
		params = map[string]string{}
		if m := boundaryParam.FindStringSubmatch(raw); m != nil {
			params["boundary"] = m[1] + m[2]
		}
	}
	if b := params["boundary"]; len(b) > 200 {
		w.problemf("part %s: boundary longer than 200 characters ignored", displayPath(p))
		delete(params, "boundary")
	}
	return contentType{mediaType: strings.ToLower(mt), params: params}
}

// filename finds a part's file name for display: Content-Disposition's
// filename (RFC 2231 and, as mail clients do, RFC 2047) or Content-Type's
// name. Directory components and control characters are removed.
func (w *walker) filename(hdr Header, ct contentType, p string) string {
	name := ""
	if _, params, err := mime.ParseMediaType(hdr.Get("Content-Disposition")); err == nil {
		name = params["filename"]
	}
	if name == "" {
		name = ct.params["name"]
	}
	if name == "" {
		return ""
	}
	name, problem := DecodeHeader(name)
	if problem != "" {
		w.problemf("part %s: file name: %s", displayPath(p), problem)
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "." || name == "/" {
		return ""
	}
	return clipString(name, 255)
}

func isAttachment(hdr Header) bool {
	d, _, _ := mime.ParseMediaType(hdr.Get("Content-Disposition"))
	return d == "attachment"
}

// headReader keeps the first bytes of a stream for content sniffing.
type headReader struct {
	r    io.Reader
	head []byte
}

func (h *headReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if room := peekSize - len(h.head); room > 0 {
		h.head = append(h.head, p[:min(n, room)]...)
	}
	return n, err
}

func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

func displayPath(p string) string {
	if p == "" {
		return "0"
	}
	return p
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
