package cms

import (
	"errors"
	"fmt"
)

// MaxDepth caps the nesting of ASN.1 elements. Real CMS with nested
// timestamps and archive attributes stays below 40.
const MaxDepth = 64

// berConverter rewrites BER into the definite-length, minimal-length subset
// that cryptobyte parses: indefinite lengths become definite, non-minimal
// length octets become minimal, and constructed OCTET STRINGs are joined
// into primitive ones. Everything else, including the order of SET
// elements, is kept, so DER input comes out byte for byte unchanged.
//
// Each input byte is read once and written at most once per nesting level
// (the content of a constructed element is moved once its length is known),
// so the work is bounded by MaxDepth times the input size: linear.
type berConverter struct {
	in  []byte
	pos int
	out []byte
	// elements counts parsed elements, so tests can assert linear work.
	elements int
	// original maps the output offset of every definite-length [0]
	// constructed element (the tag of signedAttrs) to its input bytes: the
	// signature covers signed attributes as transmitted, which may differ
	// from the normalized form in non-minimal lengths.
	original []originalSpan
}

type originalSpan struct {
	off  int // in out; shifted when an ancestor's length octets are inserted
	orig []byte
}

var errTruncated = errors.New("truncated element")

// normalizeBER converts in as described at berConverter. The input must
// hold exactly one element, optionally followed by zero padding.
func normalizeBER(in []byte) (out []byte, original map[int][]byte, err error) {
	// Most input is already DER-like: check without copying first.
	if end, ok := cleanElement(in, 0, 0); ok && (end == len(in) || allZero(in[end:])) {
		return in[:end:end], nil, nil
	}
	c := &berConverter{in: in, out: make([]byte, 0, len(in)+len(in)/8+16)}
	if err := c.element(0, false); err != nil {
		return nil, nil, fmt.Errorf("ber offset %d: %w", c.pos, err)
	}
	if c.pos != len(in) && !allZero(in[c.pos:]) {
		return nil, nil, fmt.Errorf("ber: %d bytes of trailing data", len(in)-c.pos)
	}
	original = make(map[int][]byte, len(c.original))
	for _, sp := range c.original {
		original[sp.off] = sp.orig
	}
	return c.out, original, nil
}

// cleanElement reports whether the element at in[pos:] and everything in
// it uses minimal definite lengths and no constructed OCTET STRING, so that
// normalization would not change it; end is where the element ends.
func cleanElement(in []byte, pos, depth int) (end int, ok bool) {
	if depth > MaxDepth {
		return 0, false
	}
	c := berConverter{in: in, pos: pos}
	tag, constructed, length, err := c.header()
	if err != nil || length < 0 || isEOC(tag, length) {
		return 0, false
	}
	hdrLen := c.pos - pos - len(tag)
	if minimal := len(appendLength(nil, length)); hdrLen != minimal {
		return 0, false
	}
	end = c.pos + length
	if !constructed {
		return end, true
	}
	if len(tag) == 1 && tag[0] == 0x24 {
		return 0, false
	}
	for p := c.pos; p < end; {
		next, ok := cleanElement(in[:end], p, depth+1)
		if !ok {
			return 0, false
		}
		p = next
	}
	return end, true
}

// allZero reports whether b is zero padding, which some signing tools
// append to fixed-size buffers; it is tolerated (and dropped), anything else
// after the ContentInfo is not.
func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// header reads identifier and length octets. length is -1 for indefinite.
func (c *berConverter) header() (tag []byte, constructed bool, length int, err error) {
	start := c.pos
	if c.pos >= len(c.in) {
		return nil, false, 0, errTruncated
	}
	b := c.in[c.pos]
	c.pos++
	constructed = b&0x20 != 0
	if b&0x1f == 0x1f {
		// High tag number: base-128, at most 4 octets (tag < 2^28).
		for i := 0; ; i++ {
			if c.pos >= len(c.in) {
				return nil, false, 0, errTruncated
			}
			if i >= 4 {
				return nil, false, 0, errors.New("tag number too large")
			}
			t := c.in[c.pos]
			c.pos++
			if i == 0 && t == 0x80 {
				return nil, false, 0, errors.New("non-minimal tag number")
			}
			if t&0x80 == 0 {
				break
			}
		}
	}
	tag = c.in[start:c.pos]
	if c.pos >= len(c.in) {
		return nil, false, 0, errTruncated
	}
	l := c.in[c.pos]
	c.pos++
	switch {
	case l < 0x80:
		length = int(l)
	case l == 0x80:
		if !constructed {
			return nil, false, 0, errors.New("indefinite length on a primitive element")
		}
		length = -1
	case l == 0xff:
		return nil, false, 0, errors.New("reserved length octet")
	default:
		n := int(l & 0x7f)
		if n > 4 {
			return nil, false, 0, errors.New("length too large")
		}
		if c.pos+n > len(c.in) {
			return nil, false, 0, errTruncated
		}
		for _, d := range c.in[c.pos : c.pos+n] {
			length = length<<8 | int(d)
		}
		c.pos += n
	}
	if length > len(c.in)-c.pos {
		return nil, false, 0, fmt.Errorf("length %d exceeds the remaining %d bytes", length, len(c.in)-c.pos)
	}
	return tag, constructed, length, nil
}

func isEOC(tag []byte, length int) bool { return len(tag) == 1 && tag[0] == 0 && length == 0 }

// element converts one element at c.pos. With flatten, only the content
// octets of an OCTET STRING are appended (for joining segments).
func (c *berConverter) element(depth int, flatten bool) error {
	if depth > MaxDepth {
		return fmt.Errorf("nesting deeper than %d", MaxDepth)
	}
	c.elements++
	inStart := c.pos
	tag, constructed, length, err := c.header()
	if err != nil {
		return err
	}
	if isEOC(tag, length) {
		return errors.New("unexpected end-of-contents")
	}
	octetString := len(tag) == 1 && tag[0]&0xdf == 0x04
	if flatten && !octetString {
		return errors.New("segment of a constructed OCTET STRING is not an OCTET STRING")
	}
	if !constructed {
		if !flatten {
			c.out = append(c.out, tag...)
			c.out = appendLength(c.out, length)
		}
		c.out = append(c.out, c.in[c.pos:c.pos+length]...)
		c.pos += length
		return nil
	}
	join := octetString // constructed OCTET STRING: make it primitive
	var start int
	elemStart := len(c.out)
	if !flatten {
		if join {
			c.out = append(c.out, 0x04)
		} else {
			c.out = append(c.out, tag...)
		}
		start = len(c.out)
	}
	end := c.pos + length
	for {
		if length >= 0 && c.pos >= end {
			if c.pos != end {
				return errors.New("child element overruns its parent")
			}
			break
		}
		if length < 0 && c.pos+2 <= len(c.in) && c.in[c.pos] == 0 && c.in[c.pos+1] == 0 {
			c.pos += 2
			break
		}
		if err := c.element(depth+1, flatten || join); err != nil {
			return err
		}
		if length >= 0 && c.pos > end {
			return errors.New("child element overruns its parent")
		}
	}
	if !flatten {
		c.insertLength(start)
		if length >= 0 && len(tag) == 1 && tag[0] == 0xa0 {
			c.original = append(c.original, originalSpan{elemStart, c.in[inStart:c.pos]})
		}
	}
	return nil
}

// insertLength inserts the length octets for the content written since start.
func (c *berConverter) insertLength(start int) {
	n := len(c.out) - start
	var lb [5]byte
	l := appendLength(lb[:0], n)
	c.out = append(c.out, l...) // grow
	copy(c.out[start+len(l):], c.out[start:start+n])
	copy(c.out[start:], l)
	// Descendants recorded in original moved by len(l); they are the
	// most recent entries (post-order), so the walk stops at the first
	// entry before this element.
	for i := len(c.original) - 1; i >= 0 && c.original[i].off >= start; i-- {
		c.original[i].off += len(l)
	}
}

func appendLength(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n < 1<<8:
		return append(b, 0x81, byte(n))
	case n < 1<<16:
		return append(b, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// NormalizeBER converts one BER element to the definite-length,
// minimal-length form with joined OCTET STRINGs that strict DER parsers
// (cryptobyte) read; DER input is returned unchanged. It runs in linear
// time and rejects nesting deeper than MaxDepth.
func NormalizeBER(in []byte) ([]byte, error) {
	out, _, err := normalizeBER(in)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return out, nil
}
