package cms

import (
	"bufio"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
)

// ContentReader streams the encapsulated content of a ContentInfo holding
// SignedData, for callers that only need to see what is signed (the e-mail
// intake unpacking an opaque S/MIME message or a .p7m file) and must not
// hold a whole enveloping signature in memory. It reads the input once,
// up to the end of the content; nothing after it (certificates, signer
// infos) is parsed, so it proves nothing about the signature: Parse and
// Verify do that.
//
// BER is accepted as Parse accepts it: indefinite lengths, non-minimal
// length octets and segmented (constructed) OCTET STRINGs. Malformed input
// yields errors wrapping ErrFormat; a failure of the underlying reader is
// returned wrapped, without ErrFormat, so that callers can tell the two
// apart.
type ContentReader struct {
	// EContentType is the type of the encapsulated content.
	EContentType asn1.ObjectIdentifier
	// HasContent is false for a detached signature, whose Read returns
	// io.EOF at once.
	HasContent bool

	br  *bufio.Reader
	pos int64 // bytes consumed from br
	// frames are the enclosing constructed OCTET STRINGs (and the [0]
	// around the content), innermost last.
	frames []frame
	// outer are the elements opened on the way to the content, whose
	// lengths bound everything inside them.
	outer []frame
	seg   int64 // bytes left in the current primitive segment
	err   error
}

// frame is an open constructed element: end is its end offset, or -1 for
// an indefinite length that ends at an end-of-contents marker.
type frame struct{ end int64 }

const (
	tagSequence          = 0x30
	tagSet               = 0x31
	tagOID               = 0x06
	tagInteger           = 0x02
	tagOctetString       = 0x04
	tagOctetStringCons   = 0x24
	tagContext0Cons      = 0xa0
	maxSmallElement      = 1 << 10 // OIDs and the version are far smaller
	maxStreamElementSize = 1 << 62
)

// NewContentReader reads r up to the start of the encapsulated content.
func NewContentReader(r io.Reader) (*ContentReader, error) {
	c := &ContentReader{br: bufio.NewReaderSize(r, 16<<10)}
	if err := c.open(); err != nil {
		return nil, err
	}
	return c, nil
}

// open walks ContentInfo → SignedData → encapContentInfo up to eContent.
func (c *ContentReader) open() error {
	if _, err := c.expect(tagSequence, "ContentInfo"); err != nil {
		return err
	}
	ct, err := c.oid("contentType")
	if err != nil {
		return err
	}
	if !ct.Equal(OIDSignedData) {
		return formatErr("content type %s is not signedData", ct)
	}
	if _, err := c.expect(tagContext0Cons, "ContentInfo content"); err != nil {
		return err
	}
	if _, err := c.expect(tagSequence, "SignedData"); err != nil {
		return err
	}
	if _, err := c.small(tagInteger, "version"); err != nil {
		return err
	}
	if err := c.skipElement(tagSet, "digestAlgorithms"); err != nil {
		return err
	}
	eci, err := c.expect(tagSequence, "encapContentInfo")
	if err != nil {
		return err
	}
	if c.EContentType, err = c.oid("eContentType"); err != nil {
		return err
	}
	if ended, err := c.atEnd(eci); err != nil || ended {
		return err // detached: no eContent
	}
	wrap, err := c.expect(tagContext0Cons, "eContent")
	if err != nil {
		return err
	}
	tag, length, err := c.header()
	if err != nil {
		return err
	}
	c.HasContent = true
	c.frames = append(c.frames, wrap)
	switch tag {
	case tagOctetString:
		if length < 0 {
			return formatErr("eContent: primitive OCTET STRING with indefinite length")
		}
		return c.startSegment(length)
	case tagOctetStringCons:
		return c.push(length)
	}
	return formatErr("eContent: tag %#x is not an OCTET STRING", tag)
}

// Read implements io.Reader over the content octets, segments joined.
func (c *ContentReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if !c.HasContent {
		return 0, io.EOF
	}
	for c.seg == 0 {
		if err := c.nextSegment(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if int64(len(p)) > c.seg {
		p = p[:c.seg]
	}
	n, err := c.br.Read(p)
	c.pos += int64(n)
	c.seg -= int64(n)
	if err != nil {
		c.err = c.inputErr(err, "eContent")
		if n > 0 {
			return n, nil
		}
		return 0, c.err
	}
	return n, nil
}

// nextSegment moves to the next primitive segment, closing the frames
// that end before it; io.EOF when the content is complete.
func (c *ContentReader) nextSegment() error {
	for len(c.frames) > 0 {
		top := c.frames[len(c.frames)-1]
		ended, err := c.atEnd(top)
		if err != nil {
			return err
		}
		if !ended {
			break
		}
		c.frames = c.frames[:len(c.frames)-1]
		if len(c.frames) == 0 {
			return io.EOF
		}
	}
	if len(c.frames) == 0 {
		return io.EOF
	}
	tag, length, err := c.header()
	if err != nil {
		return err
	}
	switch {
	case len(c.frames) == 1:
		// Only the [0] is open: its one OCTET STRING ended, so must it.
		return formatErr("eContent: more than one element")
	case tag == tagOctetString && length >= 0:
		return c.startSegment(length)
	case tag == tagOctetStringCons:
		return c.push(length)
	}
	return formatErr("eContent: segment with tag %#x", tag)
}

func (c *ContentReader) startSegment(length int64) error {
	if err := c.fits(length); err != nil {
		return err
	}
	c.seg = length
	return nil
}

func (c *ContentReader) push(length int64) error {
	if len(c.frames) > MaxDepth {
		return formatErr("eContent: nested deeper than %d", MaxDepth)
	}
	f := frame{end: -1}
	if length >= 0 {
		if err := c.fits(length); err != nil {
			return err
		}
		f.end = c.pos + length
	}
	c.frames = append(c.frames, f)
	return nil
}

// fits checks that length bytes from here stay inside every open frame.
func (c *ContentReader) fits(length int64) error {
	for _, stack := range [][]frame{c.outer, c.frames} {
		for _, f := range stack {
			if f.end >= 0 && c.pos+length > f.end {
				return formatErr("element of %d bytes overruns its enclosing element", length)
			}
		}
	}
	return nil
}

// atEnd reports whether the element f ends here, consuming the
// end-of-contents marker of an indefinite one.
func (c *ContentReader) atEnd(f frame) (bool, error) {
	if f.end >= 0 {
		if c.pos > f.end {
			return false, formatErr("element overruns its enclosing element")
		}
		return c.pos == f.end, nil
	}
	b, err := c.br.Peek(2)
	if err != nil {
		return false, c.inputErr(err, "end of element")
	}
	if b[0] != 0 || b[1] != 0 {
		return false, nil
	}
	c.br.Discard(2)
	c.pos += 2
	return true, nil
}

// expect reads the header of a constructed element with the given tag and
// returns it as a frame.
func (c *ContentReader) expect(want byte, what string) (frame, error) {
	tag, length, err := c.header()
	if err != nil {
		return frame{}, err
	}
	if tag != int(want) {
		return frame{}, formatErr("%s: tag %#x, want %#x", what, tag, want)
	}
	f := frame{end: -1}
	if length >= 0 {
		if err := c.fits(length); err != nil {
			return frame{}, err
		}
		f.end = c.pos + length
	}
	c.outer = append(c.outer, f)
	return f, nil
}

// small reads a primitive element of at most maxSmallElement bytes.
func (c *ContentReader) small(want byte, what string) ([]byte, error) {
	tag, length, err := c.header()
	if err != nil {
		return nil, err
	}
	switch {
	case tag != int(want):
		return nil, formatErr("%s: tag %#x, want %#x", what, tag, want)
	case length < 0 || length > maxSmallElement:
		return nil, formatErr("%s: length %d", what, length)
	}
	if err := c.fits(length); err != nil {
		return nil, err
	}
	b := make([]byte, length)
	n, err := io.ReadFull(c.br, b)
	c.pos += int64(n)
	if err != nil {
		return nil, c.inputErr(err, what)
	}
	return b, nil
}

func (c *ContentReader) oid(what string) (asn1.ObjectIdentifier, error) {
	b, err := c.small(tagOID, what)
	if err != nil {
		return nil, err
	}
	var oid asn1.ObjectIdentifier
	full := append([]byte{tagOID, byte(len(b))}, b...)
	if len(b) > 127 {
		return nil, formatErr("%s: OID of %d bytes", what, len(b))
	}
	if rest, err := asn1.Unmarshal(full, &oid); err != nil || len(rest) > 0 {
		return nil, formatErr("%s: not an OID", what)
	}
	return oid, nil
}

// skipElement reads past one element with the given tag, whatever it
// holds, without keeping it.
func (c *ContentReader) skipElement(want byte, what string) error {
	tag, length, err := c.header()
	if err != nil {
		return err
	}
	if tag != int(want) {
		return formatErr("%s: tag %#x, want %#x", what, tag, want)
	}
	return c.skipBody(tag, length, 0)
}

func (c *ContentReader) skipBody(tag int, length int64, depth int) error {
	if depth > MaxDepth {
		return formatErr("nested deeper than %d", MaxDepth)
	}
	if length >= 0 {
		if err := c.fits(length); err != nil {
			return err
		}
		n, err := c.br.Discard(int(min(length, 1<<30)))
		c.pos += int64(n)
		if err != nil {
			return c.inputErr(err, "skipped element")
		}
		if int64(n) < length {
			return c.skipBody(tag, length-int64(n), depth)
		}
		return nil
	}
	for {
		ended, err := c.atEnd(frame{end: -1})
		if err != nil || ended {
			return err
		}
		t, l, err := c.header()
		if err != nil {
			return err
		}
		if err := c.skipBody(t, l, depth+1); err != nil {
			return err
		}
	}
}

// header reads identifier and length octets. The tag is returned as its
// first octet for low tag numbers; high tag numbers (never expected here)
// come back as -1. length is -1 for the indefinite form, which only
// constructed elements may use.
func (c *ContentReader) header() (tag int, length int64, err error) {
	b, err := c.byte()
	if err != nil {
		return 0, 0, err
	}
	tag = int(b)
	constructed := b&0x20 != 0
	if b&0x1f == 0x1f {
		tag = -1
		for i := 0; ; i++ {
			x, err := c.byte()
			if err != nil {
				return 0, 0, err
			}
			if i >= 4 {
				return 0, 0, formatErr("tag number too large")
			}
			if x&0x80 == 0 {
				break
			}
		}
	}
	l, err := c.byte()
	if err != nil {
		return 0, 0, err
	}
	switch {
	case l < 0x80:
		return tag, int64(l), nil
	case l == 0x80:
		if !constructed {
			return 0, 0, formatErr("indefinite length on a primitive element")
		}
		return tag, -1, nil
	case l > 0x88:
		return 0, 0, formatErr("length of %d octets", l&0x7f)
	}
	for range int(l & 0x7f) {
		x, err := c.byte()
		if err != nil {
			return 0, 0, err
		}
		if length > maxStreamElementSize>>8 {
			return 0, 0, formatErr("length too large")
		}
		length = length<<8 | int64(x)
	}
	return tag, length, nil
}

func (c *ContentReader) byte() (byte, error) {
	b, err := c.br.ReadByte()
	if err != nil {
		return 0, c.inputErr(err, "element header")
	}
	c.pos++
	return b, nil
}

// inputErr makes the end of input a format error (the structure is
// truncated) and passes any other failure of the reader on.
func (c *ContentReader) inputErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr("%s: truncated at offset %d", what, c.pos)
	}
	return fmt.Errorf("cms: read %s: %w", what, err)
}
