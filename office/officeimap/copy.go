package officeimap

import (
	"bytes"
	"fmt"
	"html"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/mail/mailcompose"
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
	boundary := mailcompose.DerivedBoundary(m.Office + "\x00" + m.Stream)
	var b bytes.Buffer
	field := func(name, value string) { mailcompose.WriteField(&b, name, value) }
	field("Message-ID", replies.OfficeCopyID(m.Office, m.Stream))
	field("Date", copyDate(m).Format(time.RFC1123Z))
	field("From", mailcompose.ShownMailbox(m.From))
	if to := mailcompose.ShownMailboxes(m.To); to != "" {
		field("To", to)
	}
	if cc := mailcompose.ShownMailboxes(m.Cc); cc != "" {
		field("Cc", cc)
	}
	field("Subject", mailcompose.Text(mailcompose.Clean(m.Subject)))
	if id := replies.OriginalMessageID(receivedOf(m)); id != "" {
		field("References", id)
	}
	field("X-Poststelle-Office", m.Office)
	field("X-Poststelle-Stream", m.Stream)
	field("X-Poststelle-Channel", mailcompose.Clean(string(m.Channel)))
	if m.EEB != nil {
		// The request and its due date are fixed at receipt, so the copy
		// keeps its bytes under its UID; whether it is answered is the
		// $EEB keyword's.
		field("X-Poststelle-EEB", eebHeader(m.EEB))
	}
	field("MIME-Version", "1.0")
	field("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	b.WriteString("\r\n")

	mp := mailcompose.NewMultipart(&b, boundary)
	mp.Next()
	mailcompose.WriteTextPart(&b, "text/plain; charset=utf-8", "", coverNote(m, c.inline))
	mp.Next()
	mailcompose.WriteTextPart(&b, "text/html; charset=utf-8", "attachment; filename=pruefprotokoll.html", reportHTML(m))
	mp.Next()
	if c.inline {
		field("Content-Type", "message/rfc822")
		field("Content-Disposition", "attachment; filename=original.eml")
		b.WriteString("\r\n")
		c.prefix = b.Bytes()
		var end bytes.Buffer
		mailcompose.NewMultipart(&end, boundary).Close()
		c.suffix = end.Bytes()
		return c
	}
	field("Content-Type", "text/plain; charset=utf-8")
	b.WriteString("\r\nThe original is too large to show here; download it through the office API.\r\n")
	mp.Close()
	c.prefix = b.Bytes()
	return c
}

// receivedOf is the part of a queued message's receipt that names its
// sender's message id, for replies.OriginalMessageID.
func receivedOf(m offices.Message) *gateway.MessageReceived {
	return &gateway.MessageReceived{Channel: m.Channel, SenderMessageID: m.SenderMessageID, Metadata: m.Metadata}
}

// copyDate is the original's Date when it parses, the receipt time otherwise.
func copyDate(m offices.Message) time.Time {
	if d, err := mail.ParseDate(m.Metadata["date"]); err == nil {
		return d
	}
	return m.ReceivedAt
}

func coverNote(m offices.Message, inline bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Eingang / received: %s\n", m.ReceivedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Kanal / channel: %s\n", mailcompose.Clean(string(m.Channel)))
	fmt.Fprintf(&b, "Absender / sender: %s\n", mailcompose.Clean(m.From.Address))
	fmt.Fprintf(&b, "Betreff / subject: %s\n", mailcompose.Clean(m.Subject))
	fmt.Fprintf(&b, "Original: SHA-256 %s, %d bytes\n", m.Raw.SHA256, m.Raw.Size)
	if t := m.EEB; t != nil {
		due := t.Due.UTC().Format(time.RFC3339)
		fmt.Fprintf(&b, "\nEmpfangsbekenntnis (eEB) angefordert, fällig bis %s (interne Frist, keine gerichtliche).\n", due)
		fmt.Fprintf(&b, "The court asks for an electronic acknowledgement of receipt (eEB), due by %s (the site's period, not the court's).\n", due)
		if len(t.Documents) > 0 {
			fmt.Fprintf(&b, "Dokumente / documents: %s\n", mailcompose.Clean(strings.Join(t.Documents, ", ")))
		}
		b.WriteString("Bestätigen oder ablehnen in der Web-Oberfläche oder über die Office-API; eine E-Mail-Antwort ist kein eEB.\n")
		b.WriteString("Acknowledge or refuse it in the web UI or through the office API; an e-mail answer is not an eEB.\n")
	}
	if inline {
		b.WriteString("\nDas Original ist unverändert angehängt (original.eml), das Prüfprotokoll als pruefprotokoll.html.\n")
		b.WriteString("The original is attached unchanged (original.eml), the verification report as pruefprotokoll.html.\n")
	}
	return b.String()
}

// eebHeader is the X-Poststelle-EEB value: "requested; due=<RFC 3339 UTC>"
// and the documents' XJustiz ids.
func eebHeader(t *offices.EEBTask) string {
	v := "requested; due=" + t.Due.UTC().Format(time.RFC3339)
	if len(t.Documents) > 0 {
		// XJustiz ids are ASCII; anything else would need an encoding a
		// header parameter does not have, so it shows as '?'.
		v += "; documents=" + strings.Map(func(r rune) rune {
			if r <= ' ' || r >= 0x7f || r == ';' {
				return '?'
			}
			return r
		}, strings.Join(t.Documents, ","))
	}
	return v
}

func reportHTML(m offices.Message) string {
	var b strings.Builder
	e := html.EscapeString
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Prüfprotokoll</title></head><body>\n")
	b.WriteString("<h1>Prüfprotokoll</h1>\n<table>\n")
	row := func(k, v string) { fmt.Fprintf(&b, "<tr><th>%s</th><td>%s</td></tr>\n", e(k), e(mailcompose.Clean(v))) }
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
	b.WriteString("</table>\n")
	if d := m.DeMail; d != nil {
		// The provider's evidence is fixed at receipt, so the copy stays
		// the same bytes under its UID.
		b.WriteString("<h2>De-Mail</h2>\n<table>\n")
		row("Schriftform durch De-Mail erfüllt", fmt.Sprint(d.WrittenForm))
		row("Absenderbestätigt", fmt.Sprint(d.Authoritative))
		row("Integritätsprüfung", strings.TrimSpace(d.Verdict+": "+d.VerdictDetail))
		row("Qualifikation der Provider-Signatur", strings.TrimSpace(d.Qualification+" "+d.QualificationDetail))
		row("Absender (vom Provider bestätigt)", d.Sender)
		row("Authentisierungsniveau", strings.TrimSpace(d.AuthLevel+" "+d.AuthMechanism))
		row("Provider", d.OriginatorProvider)
		row("De-Mail-Nachrichten-ID", d.MessageID)
		row("Provider-Zertifikat (SHA-256)", d.ProviderCertificate)
		b.WriteString("</table>\n")
	}
	b.WriteString("<h2>Signaturprüfung</h2>\n")
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
