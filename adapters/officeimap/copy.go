package officeimap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
)

// NoReportText stands in the Prüfprotokoll until the message's signatures
// were verified (no SignaturesVerified event yet).
const NoReportText = "no signatures verified yet (noch keine Signaturen geprüft)"

// officeCopy is what an office's mail client sees of a message: a
// multipart/mixed wrapper with a cover note, the Prüfprotokoll as an HTML
// attachment, and the original bytes unchanged as a message/rfc822 part.
// The original comes last, so the copy is prefix + original + suffix and its
// size is known without reading the original.
//
// Everything in the copy follows from the office's read-model row, which
// replay rebuilds identically, so a UID always shows the same bytes.
type officeCopy struct {
	prefix, suffix []byte
	// inline is false when the original is too large to serve; the copy
	// then says so instead of holding it.
	inline bool
	msg    offices.Message
}

func (c *officeCopy) size() int64 {
	n := int64(len(c.prefix) + len(c.suffix))
	if c.inline {
		n += c.msg.Raw.Size
	}
	return n
}

// renderCopy builds the wrapper around a message of an office's queue.
func renderCopy(m offices.Message, maxInline int64) *officeCopy {
	c := &officeCopy{msg: m, inline: m.Raw.SHA256 != "" && m.Raw.Size <= maxInline}
	sum := sha256.Sum256([]byte(m.Office + "\x00" + m.Stream))
	boundary := "poststelle-" + hex.EncodeToString(sum[:12])
	var b bytes.Buffer
	field(&b, "Message-ID", replies.OfficeCopyID(m.Office, m.Stream))
	field(&b, "Date", copyDate(m).Format(time.RFC1123Z))
	field(&b, "From", mailboxHeader(m.From.Name, m.From.Address))
	if to := addressList(m.To); to != "" {
		field(&b, "To", to)
	}
	if cc := addressList(m.Cc); cc != "" {
		field(&b, "Cc", cc)
	}
	field(&b, "Subject", encodeText(clean(m.Subject)))
	if id := originalMessageID(m); id != "" {
		field(&b, "References", id)
	}
	field(&b, "X-Poststelle-Office", m.Office)
	field(&b, "X-Poststelle-Stream", m.Stream)
	field(&b, "X-Poststelle-Channel", clean(string(m.Channel)))
	field(&b, "MIME-Version", "1.0")
	field(&b, "Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	b.WriteString("\r\n")

	fmt.Fprintf(&b, "--%s\r\n", boundary)
	field(&b, "Content-Type", "text/plain; charset=utf-8")
	field(&b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	writeQP(&b, coverNote(m, c.inline))

	fmt.Fprintf(&b, "\r\n--%s\r\n", boundary)
	field(&b, "Content-Type", "text/html; charset=utf-8")
	field(&b, "Content-Disposition", "attachment; filename=pruefprotokoll.html")
	field(&b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	writeQP(&b, reportHTML(m))

	fmt.Fprintf(&b, "\r\n--%s\r\n", boundary)
	if c.inline {
		field(&b, "Content-Type", "message/rfc822")
		field(&b, "Content-Disposition", "attachment; filename=original.eml")
		b.WriteString("\r\n")
		c.prefix = b.Bytes()
		c.suffix = []byte(fmt.Sprintf("\r\n--%s--\r\n", boundary))
		return c
	}
	field(&b, "Content-Type", "text/plain; charset=utf-8")
	b.WriteString("\r\nThe original is too large to show here; download it through the office API.\r\n")
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	c.prefix = b.Bytes()
	return c
}

// copyDate is the original's Date when it parses, the receipt time otherwise.
func copyDate(m offices.Message) time.Time {
	if d, err := mail.ParseDate(m.Metadata["date"]); err == nil {
		return d
	}
	return m.ReceivedAt
}

func originalMessageID(m offices.Message) string {
	if id := strings.TrimSpace(m.SenderMessageID); validMsgID(id) {
		return id
	}
	return ""
}

func validMsgID(id string) bool {
	if len(id) < 3 || len(id) > 250 || id[0] != '<' || id[len(id)-1] != '>' {
		return false
	}
	for i := 1; i < len(id)-1; i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return strings.Count(id, "@") == 1
}

func coverNote(m offices.Message, inline bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Eingang / received: %s\n", m.ReceivedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Kanal / channel: %s\n", clean(string(m.Channel)))
	fmt.Fprintf(&b, "Absender / sender: %s\n", clean(m.From.Address))
	fmt.Fprintf(&b, "Betreff / subject: %s\n", clean(m.Subject))
	fmt.Fprintf(&b, "Original: SHA-256 %s, %d bytes\n", m.Raw.SHA256, m.Raw.Size)
	if inline {
		b.WriteString("\nDas Original ist unverändert angehängt (original.eml), das Prüfprotokoll als pruefprotokoll.html.\n")
		b.WriteString("The original is attached unchanged (original.eml), the verification report as pruefprotokoll.html.\n")
	}
	return b.String()
}

func reportHTML(m offices.Message) string {
	var b strings.Builder
	e := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Prüfprotokoll</title></head><body>\n")
	b.WriteString("<h1>Prüfprotokoll</h1>\n<table>\n")
	row := func(k, v string) { fmt.Fprintf(&b, "<tr><th>%s</th><td>%s</td></tr>\n", e(k), e(clean(v))) }
	row("Eingangszeitpunkt", m.ReceivedAt.UTC().Format(time.RFC3339Nano))
	row("Kanal", string(m.Channel))
	row("Absender", m.From.Address)
	row("Betreff", m.Subject)
	row("Original SHA-256", m.Raw.SHA256)
	row("Größe (Bytes)", fmt.Sprint(m.Raw.Size))
	row("Zugeordnet durch", m.Routing.DecidedBy+" "+m.Routing.Rule)
	for _, p := range m.Problems {
		row("Problem", p)
	}
	b.WriteString("</table>\n<h2>Signaturprüfung</h2>\n")
	if m.Report == nil {
		fmt.Fprintf(&b, "<p>%s</p>\n", e(NoReportText))
	} else {
		r := m.Report
		b.WriteString("<table>\n")
		row("Schriftform erfüllt", fmt.Sprint(r.WrittenFormSatisfied))
		row("Begründung", r.WrittenFormReason)
		row("Prüfzeitpunkt", r.ValidationTime.UTC().Format(time.RFC3339))
		row("Prüfsoftware", r.Verifier)
		row("Vollständiger Bericht (SHA-256)", r.Report.SHA256)
		b.WriteString("</table>\n")
		if len(r.Signatures) == 0 {
			b.WriteString("<p>Keine Signaturen gefunden (no signatures found).</p>\n")
		}
		for i, sig := range r.Signatures {
			fmt.Fprintf(&b, "<h3>Signatur %d</h3>\n<table>\n", i+1)
			row("Teil", sig.Part)
			row("Format", sig.Format)
			row("Ergebnis", strings.TrimSpace(sig.Indication+" "+sig.SubIndication))
			row("Qualifikation", sig.Qualification)
			row("Unterzeichner", sig.Signer)
			if !sig.SigningTime.IsZero() {
				row("Signaturzeitpunkt", sig.SigningTime.UTC().Format(time.RFC3339))
			}
			b.WriteString("</table>\n")
		}
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

func writeQP(b *bytes.Buffer, text string) {
	w := quotedprintable.NewWriter(b)
	w.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	w.Close()
}

// clean removes what must never reach a header or a line of ours.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
}

func encodeText(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// mailboxHeader renders an address the original named; one that does not
// parse is shown as a display name only, so the copy stays well-formed.
func mailboxHeader(name, addr string) string {
	if a, err := replies.ParseMailbox(clean(addr)); err == nil {
		return (&mail.Address{Name: clean(name), Address: a.Address}).String()
	}
	shown := clean(strings.TrimSpace(name + " " + addr))
	return (&mail.Address{Name: shown, Address: "unknown@poststelle.invalid"}).String()
}

func addressList(as []gateway.Address) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, mailboxHeader(a.Name, a.Address))
	}
	return strings.Join(parts, ", ")
}

// field writes a header field, folded at spaces near 78 columns.
func field(b *bytes.Buffer, name, value string) {
	col := len(name) + 2
	b.WriteString(name + ": ")
	for i, w := range strings.Split(value, " ") {
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
