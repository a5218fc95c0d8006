package demail

import (
	"bytes"
	"fmt"
)

// Caps on what the parser reads. A De-Mail header section is small; these
// bounds keep a hostile message from costing more than a few hundred
// kilobytes however it is shaped.
const (
	// MaxHeaderBytes caps the header section.
	MaxHeaderBytes = 256 << 10
	// MaxFields caps the number of header fields.
	MaxFields = 2000
	// MaxFieldBytes caps one field, folded lines included. The provider
	// certificate is the largest field a provider writes.
	MaxFieldBytes = 32 << 10
	// MaxPrivateIDChars is the length limit of X-de-mail-private-id that
	// TR 01201 Teil 3.4 (PVD IO) 1.8 clause 3.1.17 sets.
	MaxPrivateIDChars = 1024
)

// rawField is one header field exactly as it appeared: Raw holds the
// name, colon, value and every folded line with their line endings, which
// is what "simple" canonicalisation (RFC 6376 section 3.4.1) hashes.
type rawField struct {
	Name  string // as written, without trailing whitespace
	Value string // unfolded: line endings removed, outer whitespace trimmed
	Raw   []byte
}

// splitMessage cuts msg into its header fields and its body. It never
// fails: whatever is malformed is reported in problems and skipped, and a
// header section over the caps stops the split (the rest is not read).
// body is nil when the message has no empty line ending the header.
func splitMessage(msg []byte) (fields []rawField, body []byte, problems []string) {
	rest := msg
	for len(rest) > 0 {
		if len(msg)-len(rest) > MaxHeaderBytes {
			return fields, nil, append(problems, fmt.Sprintf("header section larger than %d bytes, not read further", MaxHeaderBytes))
		}
		line, after := cutLine(rest)
		if isBlank(line) {
			return fields, after, problems
		}
		if line[0] == ' ' || line[0] == '\t' {
			problems = append(problems, "continuation line without a field skipped")
			rest = after
			continue
		}
		// Gather the folded continuation lines of this field.
		end := len(line)
		for end < len(rest) && (rest[end] == ' ' || rest[end] == '\t') {
			next, _ := cutLine(rest[end:])
			end += len(next)
		}
		raw := rest[:end]
		rest = rest[end:]
		if len(raw) > MaxFieldBytes {
			problems = append(problems, fmt.Sprintf("header field of %d bytes (limit %d) skipped", len(raw), MaxFieldBytes))
			continue
		}
		if len(fields) == MaxFields {
			return fields, nil, append(problems, fmt.Sprintf("more than %d header fields, not read further", MaxFields))
		}
		name, value, ok := bytes.Cut(raw, []byte(":"))
		name = bytes.TrimRight(name, " \t")
		if !ok || len(name) == 0 || !validFieldName(name) {
			problems = append(problems, fmt.Sprintf("malformed header line skipped: %q", clip(raw, 40)))
			continue
		}
		if bytes.Count(raw, []byte("\n")) != bytes.Count(raw, []byte("\r\n")) {
			problems = append(problems, fmt.Sprintf("header field %s has a line not ending in CR LF", name))
		}
		fields = append(fields, rawField{Name: string(name), Value: unfold(value), Raw: raw})
	}
	return fields, nil, problems
}

// cutLine returns the first line of b including its LF, and the rest.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1], b[i+1:]
	}
	return b, nil
}

func isBlank(line []byte) bool {
	return len(line) == 0 || string(line) == "\n" || string(line) == "\r\n"
}

// unfold removes the line endings of a folded value (RFC 5322 section
// 2.2.3) and trims the outer whitespace.
func unfold(v []byte) string {
	v = bytes.ReplaceAll(v, []byte("\r\n"), nil)
	v = bytes.ReplaceAll(v, []byte("\n"), nil)
	return string(bytes.Trim(v, " \t"))
}

// validFieldName: printable US-ASCII except colon (RFC 5322 section 2.2).
func validFieldName(n []byte) bool {
	for _, c := range n {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

func clip(b []byte, n int) string {
	b = bytes.TrimRight(b, "\r\n")
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
