package mailmsg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Field is one header field as it appeared in the message: the name as
// written and the value unfolded (line breaks removed) but otherwise
// undecoded, so that it may still hold encoded words and 8-bit bytes.
type Field struct {
	Name  string
	Value string
}

// Header is a header section in the order the fields appeared.
type Header []Field

// Get returns the first value of the named field (case-insensitive).
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values returns every value of the named field in order.
func (h Header) Values(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// errHeaderTooLarge means a header section exceeded its byte limit.
var errHeaderTooLarge = errors.New("header section too large")

// readHeader reads a header section from br, up to and including the empty
// line that ends it. It is deliberately forgiving, because a message that
// arrived is evidence whatever its shape: lines that are not fields are
// reported as problems and skipped. The only refusal is a section longer
// than max bytes, after which the reader is left mid-section.
func readHeader(br *bufio.Reader, max int) (Header, []string, error) {
	var (
		h        Header
		problems problemList
		cur      []byte // the field being unfolded
		total    int
	)
	flush := func() {
		if cur == nil {
			return
		}
		name, value, ok := bytes.Cut(cur, []byte(":"))
		switch {
		case !ok:
			problems.add(fmt.Sprintf("header line without colon skipped: %q", clip(cur, 60)))
		case len(bytes.TrimSpace(name)) == 0:
			problems.add(fmt.Sprintf("header field without name skipped: %q", clip(cur, 60)))
		default:
			n := bytes.TrimRight(name, " \t")
			if !validFieldName(n) {
				problems.add(fmt.Sprintf("header field name with invalid characters: %q", clip(n, 60)))
			}
			h = append(h, Field{Name: string(n), Value: string(bytes.TrimSpace(value))})
		}
		cur = nil
	}
	for {
		line, err := readLine(br, max-total)
		total += len(line)
		if errors.Is(err, errHeaderTooLarge) {
			flush()
			return h, problems.list(), fmt.Errorf("%w (limit %d bytes)", errHeaderTooLarge, max)
		}
		if err != nil && err != io.EOF {
			flush()
			return h, problems.list(), err
		}
		content := trimEOL(line)
		if len(content) == 0 {
			// The empty line ending the section, or the end of input.
			flush()
			return h, problems.list(), nil
		}
		if content[0] == ' ' || content[0] == '\t' {
			if cur == nil {
				problems.add(fmt.Sprintf("continuation line without a field skipped: %q", clip(content, 60)))
			} else {
				cur = append(cur, content...)
			}
		} else {
			flush()
			cur = append([]byte(nil), content...)
		}
		if err == io.EOF {
			flush()
			return h, problems.list(), nil
		}
	}
}

// readLine returns the next line including its line ending. A line longer
// than max is refused with errHeaderTooLarge.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, errHeaderTooLarge
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// validFieldName reports whether n consists of printable US-ASCII except
// colon (RFC 5322 section 2.2).
func validFieldName(n []byte) bool {
	for _, c := range n {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// clip shortens b for quoting in a problem report.
func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
