package smtpout

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// Limits on what goes into one reply.
const (
	maxHeaderRead  = 256 << 10 // of the original, to find its threading headers
	maxReferences  = 20        // message ids kept in References
	maxMsgIDLen    = 250
	maxSubjectLen  = 900
	maxFilenameLen = 255
)

// Blobs reads stored bodies and attachments; *blob.Store is one.
type Blobs interface {
	Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error)
	ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error)
}

// threading is what the reply refers to.
type threading struct {
	inReplyTo  string
	references []string
}

// MessageID is the Message-ID of a reply: derived from its ReplyID, so that
// a resend after a crash carries the same id and receivers can drop the copy.
func MessageID(replyID, domain string) string {
	sum := sha256.Sum256([]byte("poststelle-reply\x00" + replyID))
	return "<reply." + hex.EncodeToString(sum[:16]) + "@" + domain + ">"
}

// build renders the RFC 5322 message of a reply.
func (o *Outbound) build(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived, th threading) ([]byte, string, error) {
	to, err := recipient(req.To)
	if err != nil {
		return nil, "", err
	}
	subject := req.Subject
	if subject == "" {
		subject = replySubject(orig.Subject)
	}
	if err := headerSafe("subject", subject); err != nil {
		return nil, "", err
	}
	if len(subject) > maxSubjectLen {
		return nil, "", fmt.Errorf("subject is longer than %d bytes", maxSubjectLen)
	}
	body, err := o.body(ctx, req)
	if err != nil {
		return nil, "", err
	}
	msgID := MessageID(req.ReplyID, o.domain)
	var b bytes.Buffer
	writeField(&b, "From", formatMailbox(o.from))
	writeField(&b, "To", formatMailbox(to))
	writeField(&b, "Subject", encodeText(subject))
	writeField(&b, "Date", o.deps.Now().Format(time.RFC1123Z))
	writeField(&b, "Message-ID", msgID)
	if th.inReplyTo != "" {
		writeField(&b, "In-Reply-To", th.inReplyTo)
	}
	if len(th.references) > 0 {
		writeField(&b, "References", strings.Join(th.references, " "))
	}
	writeField(&b, "MIME-Version", "1.0")
	entity, err := o.entity(ctx, req, body)
	if err != nil {
		return nil, "", err
	}
	if o.smime != nil {
		if entity, err = o.smime.sign(entity); err != nil {
			return nil, "", fmt.Errorf("s/mime: %w", err)
		}
	}
	b.Write(entity)
	if int64(b.Len()) > o.cfg.MaxMessageBytes {
		return nil, "", fmt.Errorf("reply exceeds %d bytes", o.cfg.MaxMessageBytes)
	}
	return b.Bytes(), msgID, nil
}

// entity renders the reply's MIME entity: its content headers and body.
func (o *Outbound) entity(ctx context.Context, req *gateway.ReplyRequested, body []byte) ([]byte, error) {
	var b bytes.Buffer
	if len(req.Attachments) == 0 {
		writeTextPart(&b, body)
		return b.Bytes(), nil
	}
	boundary := newBoundary()
	writeField(&b, "Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	b.WriteString("\r\nThis is a MIME message.\r\n")
	fmt.Fprintf(&b, "\r\n--%s\r\n", boundary)
	writeTextPart(&b, body)
	for i, a := range req.Attachments {
		fmt.Fprintf(&b, "\r\n--%s\r\n", boundary)
		if err := o.writeAttachment(ctx, &b, a); err != nil {
			return nil, fmt.Errorf("attachment %d: %w", i+1, err)
		}
		if int64(b.Len()) > o.cfg.MaxMessageBytes {
			return nil, fmt.Errorf("reply exceeds %d bytes", o.cfg.MaxMessageBytes)
		}
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes(), nil
}

func (o *Outbound) body(ctx context.Context, req *gateway.ReplyRequested) ([]byte, error) {
	if req.Body.SHA256 == "" {
		return nil, nil
	}
	body, err := o.deps.Blobs.ReadAll(ctx, req.Body, o.cfg.MaxMessageBytes)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if !utf8.Valid(body) {
		return nil, errors.New("body is not UTF-8 text")
	}
	return body, nil
}

func writeTextPart(b *bytes.Buffer, body []byte) {
	writeField(b, "Content-Type", "text/plain; charset=utf-8")
	writeField(b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	// Normalise line ends first: quoted-printable keeps CRLF as a line break.
	text := strings.ReplaceAll(strings.ReplaceAll(string(body), "\r\n", "\n"), "\r", "\n")
	w := quotedprintable.NewWriter(b)
	w.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	w.Close()
	b.WriteString("\r\n")
}

func (o *Outbound) writeAttachment(ctx context.Context, b *bytes.Buffer, a gateway.Part) error {
	mt, params, err := mime.ParseMediaType(a.MediaType)
	if err != nil || strings.HasPrefix(mt, "multipart/") || strings.ContainsAny(mt, "\r\n") {
		mt, params = "application/octet-stream", nil
	}
	ctParams := map[string]string{}
	if cs := params["charset"]; cs != "" {
		ctParams["charset"] = cs
	}
	name := a.Filename
	if name == "" {
		name = "attachment-" + strings.ReplaceAll(a.Path, ".", "-")
	}
	if err := headerSafe("filename", name); err != nil {
		return err
	}
	if len(name) > maxFilenameLen || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("filename %q is too long or holds a path", name)
	}
	ct := mime.FormatMediaType(mt, ctParams)
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if ct == "" || cd == "" {
		return fmt.Errorf("cannot encode media type %q or filename %q", mt, name)
	}
	writeField(b, "Content-Type", ct)
	writeField(b, "Content-Disposition", cd)
	writeField(b, "Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	rc, err := o.deps.Blobs.Open(ctx, a.Blob)
	if err != nil {
		return err
	}
	defer rc.Close()
	lw := &lineWrapper{w: b}
	enc := base64.NewEncoder(base64.StdEncoding, lw)
	n, err := io.Copy(enc, io.LimitReader(rc, o.cfg.MaxMessageBytes+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", a.Blob.SHA256, err)
	}
	if n > o.cfg.MaxMessageBytes {
		return fmt.Errorf("attachment exceeds %d bytes", o.cfg.MaxMessageBytes)
	}
	enc.Close()
	b.WriteString("\r\n")
	return nil
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
			l.w.Write([]byte("\r\n"))
			l.col = 0
		}
	}
	return n, nil
}

func newBoundary() string {
	var r [18]byte
	rand.Read(r[:])
	return "poststelle-" + base64.RawURLEncoding.EncodeToString(r[:])
}

// replySubject prefixes "Re: " once.
func replySubject(orig string) string {
	orig = strings.TrimSpace(decodeWords(orig))
	if len(orig) >= 3 && strings.EqualFold(orig[:3], "re:") {
		return orig
	}
	return "Re: " + orig
}

func decodeWords(s string) string {
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// headerSafe refuses a value that could end a header line.
func headerSafe(what, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("%s contains a line break or NUL", what)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not UTF-8", what)
	}
	return nil
}

// encodeText encodes unstructured text (RFC 2047) when it is not plain ASCII.
func encodeText(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || (s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// recipient validates the planned address: exactly one mailbox, equal to
// what was planned, with no line break in address or display name.
func recipient(a gateway.Address) (gateway.Address, error) {
	if err := headerSafe("recipient", a.Address+a.Name); err != nil {
		return gateway.Address{}, err
	}
	plain, err := replies.ParseMailbox(a.Address)
	if err != nil {
		return gateway.Address{}, fmt.Errorf("recipient: %w", err)
	}
	to, err := replies.ParseMailbox(formatAddress(a))
	if err != nil {
		return gateway.Address{}, fmt.Errorf("recipient: %w", err)
	}
	if to.Address != a.Address || plain.Address != a.Address {
		return gateway.Address{}, fmt.Errorf("recipient %q is not one plain address", a.Address)
	}
	return to, nil
}

func formatAddress(a gateway.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return (&mail.Address{Name: a.Name, Address: a.Address}).String()
}

// formatMailbox renders a validated mailbox; net/mail quotes and
// RFC 2047-encodes the display name.
func formatMailbox(a gateway.Address) string {
	return (&mail.Address{Name: a.Name, Address: a.Address}).String()
}

// writeField writes one header field folded at spaces to stay near 78
// characters. Values are validated before; a CR or LF that slipped through
// is replaced, never written.
func writeField(b *bytes.Buffer, name, value string) {
	value = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, value)
	line := name + ": "
	col := len(line)
	b.WriteString(line)
	words := strings.Split(value, " ")
	for i, w := range words {
		if i > 0 {
			if col+1+len(w) > 78 && col > len(name)+2 {
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

// threadingOf finds what a reply to orig refers to: the original's
// Message-ID and References as they stand in its raw bytes, or as recorded
// when the bytes have no header we can read.
func (o *Outbound) threadingOf(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) threading {
	var th threading
	var refs []string
	if orig.Raw.SHA256 != "" {
		if h, err := o.originalHeader(ctx, orig.Raw); err == nil {
			th.inReplyTo = firstMsgID(h.Get("Message-Id"))
			refs = msgIDs(h.Get("References"))
			if len(refs) == 0 {
				refs = msgIDs(h.Get("In-Reply-To"))
			}
		}
	}
	for _, cand := range []string{orig.SenderMessageID, req.InReplyTo} {
		if th.inReplyTo == "" {
			th.inReplyTo = firstMsgID(cand)
		}
	}
	if th.inReplyTo != "" {
		refs = append(refs, th.inReplyTo)
	}
	th.references = trimReferences(refs)
	return th
}

func (o *Outbound) originalHeader(ctx context.Context, ref blob.Ref) (mail.Header, error) {
	rc, err := o.deps.Blobs.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	m, err := mail.ReadMessage(bufio.NewReader(io.LimitReader(rc, maxHeaderRead)))
	if err != nil {
		return nil, err
	}
	return m.Header, nil
}

// msgIDs extracts the "<...>" tokens of a header value that are safe to
// repeat in ours.
func msgIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return out
		}
		id := v[i : i+j+1]
		v = v[i+j+1:]
		if validMsgID(id) {
			out = append(out, id)
		}
	}
}

func firstMsgID(v string) string {
	if ids := msgIDs(v); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

func validMsgID(id string) bool {
	if len(id) < 3 || len(id) > maxMsgIDLen || id[0] != '<' || id[len(id)-1] != '>' {
		return false
	}
	for i := 1; i < len(id)-1; i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
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
	if len(uniq) <= maxReferences {
		return uniq
	}
	return append([]string{uniq[0]}, uniq[len(uniq)-maxReferences+1:]...)
}
