package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// WriteText writes r as plain text for a terminal or a log. Every string that
// came from the document (names, subjects, details) is sanitized: control
// characters are escaped, so a crafted certificate cannot forge lines or
// terminal escape sequences.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("Prüfprotokoll / Verification report\n")
	p("Document:        %s\n", clean(r.Document.Name))
	p("SHA-256:         %s\n", clean(r.Document.SHA256))
	p("Size:            %d bytes\n", r.Document.Size)
	p("Validation time: %s\n", textTime(r.ValidationTime))
	p("Tool:            %s\n", clean(r.Tool))
	if r.Policy != nil {
		p("Policy:          %s%s\n", clean(r.Policy.Name), clean(policySettings(r.Policy)))
	}
	if r.WrittenFormSatisfied {
		p("Written form:    satisfied (%s)\n", clean(r.WrittenFormReason))
	} else {
		p("Written form:    NOT satisfied (%s)\n", clean(r.WrittenFormReason))
	}
	if c := r.Container; c != nil {
		p("Container:       %s, %d data objects\n", clean(c.Type), len(c.DataObjects))
		for _, o := range c.DataObjects {
			p("  %s (%d bytes) signed by: %s\n", clean(o.Name), o.Size, orDash(clean(strings.Join(o.CoveredBy, ", "))))
		}
		if len(c.Uncovered) > 0 {
			p("  NOT COVERED by any signature: %s\n", clean(strings.Join(c.Uncovered, ", ")))
		}
	}
	if t := r.Transmission; t != nil {
		writeTransmissionText(bw, t)
	}
	if len(r.Signatures) == 0 {
		p("\nNo signatures.\n")
	}
	for i, s := range r.Signatures {
		p("\nSignature %d of %d: %s", i+1, len(r.Signatures), clean(s.ID))
		if s.Format != "" {
			p(" (%s)", clean(s.Format))
		}
		p("\n")
		writeSignatureText(bw, &s)
	}
	for i, t := range r.Timestamps {
		p("\nTimestamp %d of %d\n", i+1, len(r.Timestamps))
		writeTimestampText(bw, "  ", &t)
		writeChecksText(bw, "  ", t.Checks)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: write text: %w", err)
	}
	return nil
}

// writeTransmissionText writes the proof of origin and the XJustiz facts.
func writeTransmissionText(bw *bufio.Writer, t *Transmission) {
	p := func(label, value string) { fmt.Fprintf(bw, "  %-23s %s\n", label, clean(value)) }
	fmt.Fprintf(bw, "\nProof of origin / transmission route (%s)\n", clean(t.Channel))
	p("Origin:", t.Origin+" ("+t.OriginEnglish()+")")
	p("Route:", orDash(t.Route))
	if t.SecureRoute != "" {
		p("Secure route:", "yes, "+t.SecureRoute)
	} else {
		p("Secure route:", "no")
	}
	p("Mailbox:", orDash(t.Mailbox))
	proven := "claimed, not proven"
	if t.SenderSafeIDProven {
		proven = "proven by the VHN certificate"
	}
	p("Sender SAFE-ID:", orDash(t.SenderSafeID)+" ("+proven+")")
	p("Role claimed:", orDash(t.SenderRoleClaimed))
	p("Role proven:", orDash(t.SenderRoleProven))
	if c := t.TransportCertificate; c != nil {
		p("Transport certificate:", c.Subject)
		p("  issued by:", c.Issuer)
		p("  SHA-256:", c.SHA256)
	} else {
		p("Transport certificate:", "-")
	}
	p("Reason:", orDash(t.OriginReason))
	for _, s := range t.ContentSignatures {
		p("OSCI content signature:", s)
	}
	for _, s := range t.Problems {
		p("Problem:", s)
	}
	if x := t.XJustiz; x != nil {
		p("XJustiz message type:", orDash(x.MessageType))
		p("XJustiz version:", orDash(x.Version))
		p("XJustiz message id:", orDash(x.MessageID))
		p("Sender's file number:", orDash(x.SenderFileNumber))
		p("Recipient's file no.:", orDash(x.RecipientFileNumber))
		p("Recipient court:", orDash(x.RecipientCode))
		p("eEB requested:", x.EEBText())
	}
}

// policySettings renders a policy's constraints as " (name=value, ...)".
func policySettings(p *Policy) string {
	if len(p.Constraints) == 0 {
		return ""
	}
	parts := make([]string, len(p.Constraints))
	for i, c := range p.Constraints {
		parts[i] = c.Name + "=" + c.Value
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func writeSignatureText(bw *bufio.Writer, s *Signature) {
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("  %-21s %s\n", "Result:", clean(string(s.Indication)))
	p("  %-21s %s\n", "Sub-indication:", orDash(string(s.SubIndication)))
	p("  %-21s %s\n", "Qualification:", clean(string(s.Qualification)))
	if s.CounterSignatureOf != "" {
		p("  %-21s %s\n", "Countersigns:", clean(s.CounterSignatureOf))
	}
	if s.Signer != nil {
		p("  %-21s %s\n", "Signer:", clean(s.Signer.Subject))
		p("  %-21s %s\n", "Issuer:", clean(s.Signer.Issuer))
		p("  %-21s %s\n", "Serial:", clean(s.Signer.Serial))
		p("  %-21s %s\n", "Certificate SHA-256:", clean(s.Signer.SHA256))
	} else {
		p("  %-21s - (no signing certificate found)\n", "Signer:")
	}
	p("  %-21s %s (claimed)\n", "Signing time:", textTimePtr(s.SigningTime))
	p("  %-21s %s\n", "Best signature time:", textTimePtr(s.BestSignatureTime))
	if len(s.Timestamps) > 0 {
		p("  Timestamps:\n")
		for _, t := range s.Timestamps {
			writeTimestampText(bw, "    ", &t)
		}
	}
	if len(s.Chain) > 0 {
		p("  Chain:\n")
		for i, c := range s.Chain {
			anchor := ""
			if c.Trusted {
				anchor = "  [trust anchor]"
			}
			p("    %d. %s%s\n", i+1, clean(c.Subject), anchor)
		}
	}
	writeChecksText(bw, "  ", s.Checks)
}

func writeTimestampText(bw *bufio.Writer, indent string, t *Timestamp) {
	tsa := "-"
	if t.TSA != nil {
		tsa = clean(t.TSA.Subject)
	}
	fmt.Fprintf(bw, "%s%s %s by %s: %s", indent, clean(string(t.Type)), textTime(t.GenTime), tsa, clean(string(t.Indication)))
	if t.SubIndication != NoSubIndication {
		fmt.Fprintf(bw, "/%s", clean(string(t.SubIndication)))
	}
	if t.Qualification != "" {
		fmt.Fprintf(bw, " (%s)", clean(string(t.Qualification)))
	}
	fmt.Fprintf(bw, "\n")
}

func writeChecksText(bw *bufio.Writer, indent string, cs []Check) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(bw, "%sChecks:\n", indent)
	for _, c := range cs {
		fmt.Fprintf(bw, "%s  %-9s %s: %s", indent, "["+clean(string(c.Result))+"]", clean(c.ID), clean(c.Description))
		if c.Detail != "" {
			fmt.Fprintf(bw, " (%s)", clean(c.Detail))
		}
		fmt.Fprintf(bw, "\n")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

// clean escapes control and other non-printable characters.
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) || r == ' ' {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func textTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func textTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return textTime(*t)
}
