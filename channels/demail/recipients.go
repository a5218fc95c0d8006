package demail

import (
	"net/mail"
	"strings"
)

// maxRecipients caps the addresses of one recipient field.
const maxRecipients = 500

// recipients reads X-de-mail-chosen-recipient or -actual-recipient
// (clause 3.1.8): groups "to", "cc" and "bcc", each at most once, each
// "=" and an address list, the groups separated by ";". The TR's footnote
// also allows several addresses of one group separated by ";", so a
// segment without a group name continues the group before it.
func (h *Headers) recipients(values map[string]string, name string) Recipients {
	v, ok := values[name]
	if !ok {
		return Recipients{}
	}
	var r Recipients
	seen := map[string]bool{}
	var cur *[]string
	total := 0
	for _, seg := range splitOutsideQuotes(v, ';') {
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		if key, list, ok := groupPrefix(seg); ok {
			if seen[key] {
				h.problem(name, "group %q used more than once", key)
				return Recipients{}
			}
			seen[key] = true
			cur = map[string]*[]string{"to": &r.To, "cc": &r.Cc, "bcc": &r.Bcc}[key]
			seg = list
		} else if cur == nil {
			h.problem(name, "addresses before a to, cc or bcc group")
			return Recipients{}
		}
		addrs, err := mail.ParseAddressList(seg)
		if err != nil {
			h.problem(name, "address list not readable: %v", err)
			return Recipients{}
		}
		for _, a := range addrs {
			if total++; total > maxRecipients {
				h.problem(name, "more than %d addresses", maxRecipients)
				return Recipients{}
			}
			*cur = append(*cur, a.Address)
		}
	}
	if len(r.To)+len(r.Cc)+len(r.Bcc) == 0 {
		h.problem(name, "no recipient")
	}
	return r
}

// groupPrefix recognises `"to" / "cc" / "bcc" [FWS] "="` at the start of a
// segment; the literals are case-insensitive (RFC 2234 section 2.3).
func groupPrefix(seg string) (key, rest string, ok bool) {
	i := strings.IndexByte(seg, '=')
	if i < 0 {
		return "", "", false
	}
	key = strings.ToLower(strings.TrimSpace(seg[:i]))
	if key != "to" && key != "cc" && key != "bcc" {
		return "", "", false
	}
	return key, seg[i+1:], true
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted
// string, a comment or angle brackets, so that display names such as
// "Amt; Bauamt" survive.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	start, depthParen, inQuote, inAngle := 0, 0, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && (inQuote || depthParen > 0):
			i++
		case c == '"' && depthParen == 0:
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depthParen++
		case c == ')' && depthParen > 0:
			depthParen--
		case depthParen > 0:
		case c == '<':
			inAngle = true
		case c == '>':
			inAngle = false
		case c == sep && !inAngle:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}
