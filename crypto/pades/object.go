package pades

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Object is a PDF object: nil (null), bool, int64, float64, Name, String,
// Array, Dict, Ref or *Stream.
type Object any

// Name is a PDF name without its slash, #xx escapes decoded.
type Name string

// String is a literal or hexadecimal string. Start and End are the file
// offsets of its first and one past its last delimiter, which the ByteRange
// check needs for /Contents; they are zero inside object streams.
type String struct {
	Value      []byte
	Hex        bool
	Start, End int64
}

// Array is a PDF array.
type Array []Object

// Dict is a PDF dictionary.
type Dict map[Name]Object

// Ref is an indirect reference.
type Ref struct {
	Num int64
	Gen int64
}

func (r Ref) String() string { return fmt.Sprintf("%d %d R", r.Num, r.Gen) }

// Stream is a stream object: its dictionary and where its data starts in
// the file. The data is read only on demand.
type Stream struct {
	Dict   Dict
	Offset int64
}

// ErrMalformed is wrapped by every error about the PDF's structure.
var ErrMalformed = errors.New("pades: malformed PDF")

// errShort says that an object runs past the bytes read so far; the caller
// reads a larger window and tries again.
var errShort = errors.New("pades: object runs past the read window")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// lexer reads objects from buf, which holds the file bytes from offset base.
// atEOF says that buf reaches the end of the file, so running out of bytes
// is an error rather than a reason to read more.
type lexer struct {
	buf      []byte
	base     int64
	pos      int
	atEOF    bool
	maxDepth int
}

func isWhite(c byte) bool {
	return c == 0 || c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

func isDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

func isRegular(c byte) bool { return !isWhite(c) && !isDelim(c) }

// short is the error for running out of bytes.
func (l *lexer) short() error {
	if l.atEOF {
		return malformed("unexpected end of file at offset %d", l.base+int64(l.pos))
	}
	return errShort
}

// skip passes whitespace and comments.
func (l *lexer) skip() {
	for l.pos < len(l.buf) {
		c := l.buf[l.pos]
		switch {
		case isWhite(c):
			l.pos++
		case c == '%':
			for l.pos < len(l.buf) && l.buf[l.pos] != '\n' && l.buf[l.pos] != '\r' {
				l.pos++
			}
		default:
			return
		}
	}
}

// keyword reads a run of regular characters.
func (l *lexer) keyword() []byte {
	start := l.pos
	for l.pos < len(l.buf) && isRegular(l.buf[l.pos]) {
		l.pos++
	}
	return l.buf[start:l.pos]
}

// expectKeyword reads kw, which must stand on its own.
func (l *lexer) expectKeyword(kw string) error {
	l.skip()
	start := l.pos
	w := l.keyword()
	if l.pos == len(l.buf) && !l.atEOF {
		return errShort
	}
	if string(w) != kw {
		return malformed("%q expected at offset %d", kw, l.base+int64(start))
	}
	return nil
}

// object parses one direct object (or a reference).
func (l *lexer) object(depth int) (Object, error) {
	if depth > l.maxDepth {
		return nil, malformed("objects nested deeper than %d at offset %d", l.maxDepth, l.base+int64(l.pos))
	}
	l.skip()
	if l.pos >= len(l.buf) {
		return nil, l.short()
	}
	start := l.pos
	switch c := l.buf[l.pos]; {
	case c == '/':
		l.pos++
		return l.name()
	case c == '(':
		return l.literal()
	case c == '<':
		if l.pos+1 >= len(l.buf) {
			return nil, l.short()
		}
		if l.buf[l.pos+1] == '<' {
			return l.dict(depth)
		}
		return l.hex()
	case c == '[':
		l.pos++
		return l.array(depth)
	case c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9'):
		return l.numberOrRef()
	case isRegular(c):
		w := l.keyword()
		if l.pos == len(l.buf) && !l.atEOF {
			return nil, errShort
		}
		switch string(w) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null":
			return nil, nil
		}
		return nil, malformed("unexpected keyword %q at offset %d", w, l.base+int64(start))
	default:
		return nil, malformed("unexpected %q at offset %d", c, l.base+int64(start))
	}
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (l *lexer) name() (Object, error) {
	raw := l.keyword()
	if l.pos == len(l.buf) && !l.atEOF {
		return nil, errShort
	}
	if bytes.IndexByte(raw, '#') < 0 {
		return Name(raw), nil
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '#' && i+2 < len(raw) {
			h, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if ok1 && ok2 {
				out = append(out, h<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, raw[i])
	}
	return Name(out), nil
}

func (l *lexer) literal() (Object, error) {
	start := l.pos
	l.pos++
	var out []byte
	nest := 1
	for {
		if l.pos >= len(l.buf) {
			return nil, l.short()
		}
		c := l.buf[l.pos]
		l.pos++
		switch c {
		case '(':
			nest++
		case ')':
			nest--
			if nest == 0 {
				return String{Value: out, Start: l.base + int64(start), End: l.base + int64(l.pos)}, nil
			}
		case '\\':
			if l.pos >= len(l.buf) {
				return nil, l.short()
			}
			e := l.buf[l.pos]
			l.pos++
			switch e {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case '\r':
				if l.pos < len(l.buf) && l.buf[l.pos] == '\n' {
					l.pos++
				}
				continue
			case '\n':
				continue
			default:
				if e >= '0' && e <= '7' {
					v := int(e - '0')
					for k := 0; k < 2 && l.pos < len(l.buf) && l.buf[l.pos] >= '0' && l.buf[l.pos] <= '7'; k++ {
						v = v*8 + int(l.buf[l.pos]-'0')
						l.pos++
					}
					c = byte(v)
				} else {
					c = e
				}
			}
		}
		out = append(out, c)
	}
}

func (l *lexer) hex() (Object, error) {
	start := l.pos
	l.pos++
	end := bytes.IndexByte(l.buf[l.pos:], '>')
	if end < 0 {
		return nil, l.short()
	}
	body := l.buf[l.pos : l.pos+end]
	out := make([]byte, 0, len(body)/2+1)
	var hi byte
	half := false
	for _, c := range body {
		if isWhite(c) {
			continue
		}
		v, ok := unhex(c)
		if !ok {
			return nil, malformed("bad hex digit %q at offset %d", c, l.base+int64(start))
		}
		if half {
			out = append(out, hi<<4|v)
		} else {
			hi = v
		}
		half = !half
	}
	if half {
		out = append(out, hi<<4)
	}
	l.pos += end + 1
	return String{Value: out, Hex: true, Start: l.base + int64(start), End: l.base + int64(l.pos)}, nil
}

func (l *lexer) array(depth int) (Object, error) {
	var out Array
	for {
		l.skip()
		if l.pos >= len(l.buf) {
			return nil, l.short()
		}
		if l.buf[l.pos] == ']' {
			l.pos++
			return out, nil
		}
		o, err := l.object(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
}

func (l *lexer) dict(depth int) (Object, error) {
	l.pos += 2
	out := Dict{}
	for {
		l.skip()
		if l.pos+1 >= len(l.buf) {
			return nil, l.short()
		}
		if l.buf[l.pos] == '>' && l.buf[l.pos+1] == '>' {
			l.pos += 2
			return out, nil
		}
		if l.buf[l.pos] != '/' {
			return nil, malformed("dictionary key expected at offset %d", l.base+int64(l.pos))
		}
		l.pos++
		k, err := l.name()
		if err != nil {
			return nil, err
		}
		v, err := l.object(depth + 1)
		if err != nil {
			return nil, err
		}
		out[k.(Name)] = v
	}
}

// numberOrRef reads a number, or "num gen R".
func (l *lexer) numberOrRef() (Object, error) {
	start := l.pos
	n, isInt, err := l.number()
	if err != nil {
		return nil, err
	}
	if !isInt {
		return n, nil
	}
	num := n.(int64)
	// A reference is "int int R"; anything else leaves the first integer.
	save := l.pos
	l.skip()
	if l.pos < len(l.buf) && l.buf[l.pos] >= '0' && l.buf[l.pos] <= '9' {
		g, gInt, err := l.number()
		if err == nil && gInt {
			l.skip()
			if l.pos >= len(l.buf) && !l.atEOF {
				return nil, errShort
			}
			if l.pos < len(l.buf) && l.buf[l.pos] == 'R' && (l.pos+1 >= len(l.buf) || !isRegular(l.buf[l.pos+1])) {
				if l.pos+1 >= len(l.buf) && !l.atEOF {
					return nil, errShort
				}
				l.pos++
				gen := g.(int64)
				if num < 0 || gen < 0 || gen > 65535 {
					return nil, malformed("bad reference at offset %d", l.base+int64(start))
				}
				return Ref{Num: num, Gen: gen}, nil
			}
		} else if errors.Is(err, errShort) {
			return nil, err
		}
	} else if l.pos >= len(l.buf) && !l.atEOF {
		return nil, errShort
	}
	l.pos = save
	return num, nil
}

func (l *lexer) number() (Object, bool, error) {
	start := l.pos
	w := l.keyword()
	if l.pos == len(l.buf) && !l.atEOF {
		return nil, false, errShort
	}
	if len(w) > 40 {
		return nil, false, malformed("number too long at offset %d", l.base+int64(start))
	}
	if i, err := strconv.ParseInt(string(w), 10, 64); err == nil {
		return i, true, nil
	}
	if msvcNonFinite(w) {
		// Some Windows producers print infinities as "-1.#INF": a value
		// no signature check reads, so it need not stop the parse.
		return float64(0), false, nil
	}
	f, err := strconv.ParseFloat(string(w), 64)
	if err != nil || bytes.ContainsAny(w, "eExXnN_pP") {
		return nil, false, malformed("bad number %q at offset %d", w, l.base+int64(start))
	}
	return f, false, nil
}

func msvcNonFinite(w []byte) bool {
	for _, suf := range []string{"#INF", "#IND", "#QNAN"} {
		if i := bytes.Index(w, []byte(suf)); i > 0 && i+len(suf) == len(w) {
			return true
		}
	}
	return false
}
