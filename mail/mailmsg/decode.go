package mailmsg

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/transform"

	"github.com/poststelle/poststelle/gateway"
)

// charsetEncoding finds the decoder for a MIME charset label. WHATWG labels
// come first because mail in the wild uses them loosely (latin1, utf8);
// IANA names fill the gaps.
func charsetEncoding(label string) (encoding.Encoding, error) {
	label = strings.ToLower(strings.Trim(label, " \t\""))
	if e, err := htmlindex.Get(label); err == nil {
		return e, nil
	}
	e, err := ianaindex.MIME.Encoding(label)
	if err != nil || e == nil {
		return nil, fmt.Errorf("unknown charset %q", label)
	}
	return e, nil
}

// CharsetReader returns a reader that converts text in the named charset to
// UTF-8, for showing a text part to a person. The stored bytes stay as they
// arrived.
func CharsetReader(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return r, nil
	}
	e, err := charsetEncoding(label)
	if err != nil {
		return nil, err
	}
	return transform.NewReader(r, e.NewDecoder()), nil
}

var wordDecoder = &mime.WordDecoder{CharsetReader: CharsetReader}

// DecodeHeader turns a raw header value into display text: RFC 2047 encoded
// words are decoded from their charsets, and bytes that are not UTF-8 are
// replaced. It returns the text and a problem description, empty when the
// value was clean.
func DecodeHeader(raw string) (string, string) {
	problem := ""
	if !utf8.ValidString(raw) {
		problem = "8-bit bytes that are not UTF-8 replaced"
		raw = strings.ToValidUTF8(raw, "\uFFFD")
	}
	s, err := wordDecoder.DecodeHeader(raw)
	if err != nil {
		return raw, joinProblem(problem, "encoded words not decoded: "+err.Error())
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s, problem
}

// ReplaceControls replaces the control characters a header value must not
// carry into a receipt with U+FFFD and reports whether there were any: the
// C0 controls except TAB (NUL, a bare CR or LF, ESC), DEL and the C1
// controls. They are invisible or act on a terminal (ESC, CSI), and NUL
// cuts strings short in C-based tools, so a Subject holding one would not
// show what the sender wrote. The raw bytes stay in the stored message.
func ReplaceControls(s string) (string, bool) {
	if !strings.ContainsFunc(s, isControl) {
		return s, false
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return utf8.RuneError
		}
		return r
	}, s), true
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\t') || (r >= 0x7f && r <= 0x9f)
}

// controlsProblem is the problem recorded when ReplaceControls changed a
// field; docs/wire-format.md documents its wording.
const controlsProblem = "control characters replaced with U+FFFD"

func joinProblem(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// maxAddresses caps the addresses taken from one header field.
const maxAddresses = 200

// parseAddresses reads an address list for display and routing. A list that
// does not parse is kept whole as one address with a problem, so triage can
// still see what the sender wrote.
func parseAddresses(raw string) ([]gateway.Address, string) {
	if strings.TrimSpace(raw) == "" {
		return nil, ""
	}
	clean := raw
	problem := ""
	if !utf8.ValidString(clean) {
		problem = "8-bit bytes that are not UTF-8 replaced"
		clean = strings.ToValidUTF8(clean, "\uFFFD")
	}
	p := mail.AddressParser{WordDecoder: wordDecoder}
	list, err := p.ParseList(clean)
	if err != nil {
		text, _ := DecodeHeader(clean)
		return []gateway.Address{{Address: strings.TrimSpace(text)}}, joinProblem(problem, "address list not parsed: "+err.Error())
	}
	if len(list) > maxAddresses {
		problem = joinProblem(problem, fmt.Sprintf("%d addresses, only the first %d kept", len(list), maxAddresses))
		list = list[:maxAddresses]
	}
	out := make([]gateway.Address, 0, len(list))
	for _, a := range list {
		out = append(out, gateway.Address{Address: a.Address, Name: a.Name})
	}
	return out, problem
}

// transferDecoder undoes a Content-Transfer-Encoding. Decoding problems end
// the content early and are reported through problem, never as a read
// error, so that a damaged part is kept as far as it can be read.
func transferDecoder(cte string, r io.Reader, problem func(string)) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return r
	case "base64":
		return &base64Reader{src: r, problem: problem}
	case "quoted-printable":
		return &softReader{r: quotedprintable.NewReader(r), what: "quoted-printable", problem: problem}
	default:
		problem(fmt.Sprintf("unknown transfer encoding %q: stored undecoded", clip([]byte(cte), 40)))
		return r
	}
}

// sourceError marks a failure of the underlying input (the blob store, the
// context) as opposed to a decoding problem of the content.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// sourceReader tags the errors of the message's input so that decoders pass
// them on instead of treating them as damaged content.
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		var se *sourceError
		if !errors.As(err, &se) {
			err = &sourceError{err}
		}
	}
	return n, err
}

// softReader turns a decoder's content errors into an early end.
type softReader struct {
	r       io.Reader
	what    string
	problem func(string)
	done    bool
}

func (s *softReader) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	var se *sourceError
	if errors.As(err, &se) {
		return n, err
	}
	s.done = true
	s.problem(fmt.Sprintf("%s content damaged, decoded up to the damage: %v", s.what, err))
	return n, io.EOF
}

// base64Reader decodes base64 leniently: characters outside the alphabet
// are skipped (and reported once), padding ends the content, and a missing
// final padding is tolerated.
type base64Reader struct {
	src     io.Reader
	problem func(string)
	in      [4096]byte
	out     [3072 + 3]byte
	outBuf  []byte
	quad    [4]byte
	nq      int
	done    bool
	junk    bool
	err     error
}

var b64Value = func() [256]byte {
	var t [256]byte
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	return t
}()

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.outBuf) == 0 {
		if b.done {
			if b.err != nil {
				return 0, b.err
			}
			return 0, io.EOF
		}
		b.decodeMore()
	}
	n := copy(p, b.outBuf)
	b.outBuf = b.outBuf[n:]
	return n, nil
}

func (b *base64Reader) decodeMore() {
	n, err := b.src.Read(b.in[:])
	out := b.out[:0]
	for _, c := range b.in[:n] {
		if b.done {
			break
		}
		v := b64Value[c]
		switch {
		case v != 0xff:
			b.quad[b.nq] = v
			b.nq++
			if b.nq == 4 {
				out = append(out, b.quad[0]<<2|b.quad[1]>>4, b.quad[1]<<4|b.quad[2]>>2, b.quad[2]<<6|b.quad[3])
				b.nq = 0
			}
		case c == '=':
			out = b.flushPartial(out)
			b.done = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		default:
			if !b.junk {
				b.junk = true
				b.problem("base64 content has characters outside the alphabet; they were skipped")
			}
		}
	}
	if err != nil && !b.done {
		b.done = true
		if err == io.EOF {
			out = b.flushPartial(out)
		} else {
			b.err = err
		}
	}
	b.outBuf = out
}

// flushPartial decodes an incomplete final quantum.
func (b *base64Reader) flushPartial(out []byte) []byte {
	switch b.nq {
	case 1:
		b.problem("base64 content ends with a single stray character")
	case 2:
		out = append(out, b.quad[0]<<2|b.quad[1]>>4)
	case 3:
		out = append(out, b.quad[0]<<2|b.quad[1]>>4, b.quad[1]<<4|b.quad[2]>>2)
	}
	b.nq = 0
	return out
}
