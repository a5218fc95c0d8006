// Package mailcompose writes the Internet messages (RFC 5322, MIME) the
// gateway itself composes: the office copy of a received message that the
// office IMAP server shows, and the e-mail answer the e-mail outbound sends.
// It is the one place for header folding, RFC 2047 encoded words, mailbox
// formatting, Message-IDs of answers, In-Reply-To/References threading and
// the quoted-printable and base64 bodies; mail/mailmsg is the other
// direction (reading what senders wrote).
//
// Values handed to the writers are validated or cleaned by the caller (see
// CheckText and Clean); as a last line of defence WriteField replaces any CR,
// LF or NUL that slipped through, so no value can start a header field.
package mailcompose

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// Limits of what the writers accept from offices.
const (
	// MaxFilenameBytes caps an attachment's file name.
	MaxFilenameBytes = 255
	// MaxReferences is how many message ids References keeps.
	MaxReferences = 20
	// lineLen is where WriteField folds (RFC 5322 section 2.1.1 "should").
	lineLen = 78
)

// CheckText refuses a value that could end a header line (CR, LF, NUL) or is
// not UTF-8; what names the value in the error.
func CheckText(what, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("%s contains a line break or NUL", what)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not UTF-8", what)
	}
	return nil
}

// Clean makes text from a sender fit for a header or a line of ours: control
// characters, DEL and invalid UTF-8 become spaces.
func Clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
}

// WriteField writes one header field, folded at spaces to stay near 78
// columns. A CR, LF or NUL in value is written as a space.
func WriteField(b *bytes.Buffer, name, value string) {
	value = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, value)
	b.WriteString(name + ": ")
	col := len(name) + 2
	for i, w := range strings.Split(value, " ") {
		if i > 0 {
			if col+1+len(w) > lineLen && col > len(name)+2 {
				b.WriteString("\r\n ")
				col = 1
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\r\n")
}

// Text encodes unstructured text (Subject) as RFC 2047 encoded words when it
// is not plain printable ASCII.
func Text(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || (s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// Mailbox renders a validated address; net/mail quotes the display name and
// encodes it (RFC 2047) when needed.
func Mailbox(a gateway.Address) string {
	return (&mail.Address{Name: a.Name, Address: a.Address}).String()
}

// ShownMailbox renders an address a sender wrote. One that does not parse
// is shown as a display name only, so that the message stays well-formed.
func ShownMailbox(a gateway.Address) string {
	if p, err := replies.ParseMailbox(Clean(a.Address)); err == nil {
		return Mailbox(gateway.Address{Name: Clean(a.Name), Address: p.Address})
	}
	shown := Clean(strings.TrimSpace(a.Name + " " + a.Address))
	return Mailbox(gateway.Address{Name: shown, Address: "unknown@poststelle.invalid"})
}

// ShownMailboxes renders a list of addresses senders wrote; "" for none.
func ShownMailboxes(as []gateway.Address) string {
	parts := make([]string, 0, len(as))
	for _, a := range as {
		parts = append(parts, ShownMailbox(a))
	}
	return strings.Join(parts, ", ")
}

// ReplyMessageID is the Message-ID of an answer: derived from its ReplyID,
// so that a resend after a crash carries the same id and receivers can drop
// the copy.
func ReplyMessageID(replyID, domain string) string {
	sum := sha256.Sum256([]byte("poststelle-reply\x00" + replyID))
	return "<reply." + hex.EncodeToString(sum[:16]) + "@" + domain + ">"
}

// Thread is what an answer refers to (RFC 5322 section 3.6.4).
type Thread struct {
	InReplyTo  string
	References []string
}

// ThreadOf threads an answer to a message whose header is orig (nil when
// its bytes have no readable header): In-Reply-To is the original's
// Message-ID, or the first valid fallback; References are the original's
// References (or its In-Reply-To) followed by that id, keeping the root and
// the newest MaxReferences.
func ThreadOf(orig mail.Header, fallbacks ...string) Thread {
	var th Thread
	var refs []string
	if orig != nil {
		th.InReplyTo = replies.FirstMessageID(orig.Get("Message-Id"))
		if refs = replies.MessageIDs(orig.Get("References")); len(refs) == 0 {
			refs = replies.MessageIDs(orig.Get("In-Reply-To"))
		}
	}
	for _, f := range fallbacks {
		if th.InReplyTo == "" {
			th.InReplyTo = replies.FirstMessageID(f)
		}
	}
	if th.InReplyTo != "" {
		refs = append(refs, th.InReplyTo)
	}
	th.References = trimReferences(refs)
	return th
}

// Write writes the thread's In-Reply-To and References fields, if any.
func (th Thread) Write(b *bytes.Buffer) {
	if th.InReplyTo != "" {
		WriteField(b, "In-Reply-To", th.InReplyTo)
	}
	if len(th.References) > 0 {
		WriteField(b, "References", strings.Join(th.References, " "))
	}
}

// trimReferences keeps the first id (the thread's root) and the newest ones,
// as RFC 5322 section 3.6.4 allows, and drops duplicates.
func trimReferences(refs []string) []string {
	seen := map[string]bool{}
	var uniq []string
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			uniq = append(uniq, r)
		}
	}
	if len(uniq) <= MaxReferences {
		return uniq
	}
	return append([]string{uniq[0]}, uniq[len(uniq)-MaxReferences+1:]...)
}

// WriteTextPart writes a text entity: its Content-Type, the
// Content-Disposition when not empty, and the text as quoted-printable with
// CRLF line ends. The body ends without a line break of its own.
func WriteTextPart(b *bytes.Buffer, contentType, disposition, text string) {
	WriteField(b, "Content-Type", contentType)
	if disposition != "" {
		WriteField(b, "Content-Disposition", disposition)
	}
	WriteField(b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	// Normalise line ends first: quoted-printable keeps CRLF as a line break.
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	w := quotedprintable.NewWriter(b)
	w.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	w.Close()
}

// Multipart writes the body of a multipart entity: each Next starts a body
// part, Close ends the entity.
type Multipart struct {
	b        *bytes.Buffer
	boundary string
	started  bool
}

// NewMultipart writes the parts of a multipart entity with boundary to b.
func NewMultipart(b *bytes.Buffer, boundary string) *Multipart {
	return &Multipart{b: b, boundary: boundary}
}

// Next writes the delimiter before a body part. The first part's delimiter
// starts the line it is written on; later ones end the previous part.
func (m *Multipart) Next() {
	if m.started {
		m.b.WriteString("\r\n")
	}
	m.started = true
	fmt.Fprintf(m.b, "--%s\r\n", m.boundary)
}

// Close writes the closing delimiter.
func (m *Multipart) Close() {
	fmt.Fprintf(m.b, "\r\n--%s--\r\n", m.boundary)
}

// RandomBoundary is a fresh multipart boundary.
func RandomBoundary() string {
	var r [18]byte
	rand.Read(r[:])
	return "poststelle-" + base64.RawURLEncoding.EncodeToString(r[:])
}

// DerivedBoundary is a boundary that follows from seed, for a message that
// must render the same bytes every time (the office copy).
func DerivedBoundary(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return "poststelle-" + hex.EncodeToString(sum[:12])
}

// NewBase64Writer encodes to w as base64 in lines of 76 characters
// (RFC 2045 section 6.8). Close flushes the last group; the last line has no
// line break of its own.
func NewBase64Writer(w io.Writer) io.WriteCloser {
	return base64.NewEncoder(base64.StdEncoding, &lineWrapper{w: w})
}

// lineWrapper breaks base64 into 76-character lines.
type lineWrapper struct {
	w   io.Writer
	col int
}

func (l *lineWrapper) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
		l.col += k
		if l.col == 76 {
			if _, err := l.w.Write([]byte("\r\n")); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}
