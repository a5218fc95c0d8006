package osci

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strconv"
	"strings"
)

// EnvelopeContentID is the Content-ID of the SOAP part, the first part of every message.
const EnvelopeContentID = "osci@message"

// Errors a caller maps to feedback: ErrFormat to 9100 (not an OSCI message), ErrTooLarge
// to 9904 (maximum message size exceeded).
var (
	ErrFormat   = errors.New("osci: malformed message")
	ErrTooLarge = errors.New("osci: message too large")
)

const (
	maxContentIDBytes = 1024
	maxPartHeaders    = 32
)

// Part is one attachment part of a message, its bytes kept in a Spool as they were on the
// wire (a Content-Transfer-Encoding is not undone here: signatures and ciphertext
// references are over the part as sent, and the transforms that decode it say so).
type Part struct {
	// ContentID is the Content-ID without its angle brackets; content references
	// name it as "cid:" + ContentID.
	ContentID        string
	ContentType      string
	TransferEncoding string
	Header           textproto.MIMEHeader
	Size             int64
	SHA256           [32]byte
	Data             Spooled
}

// Open returns a reader of the part's bytes.
func (p *Part) Open() (io.ReadCloser, error) { return p.Data.Open() }

// Multipart is a message as framed on the wire: the SOAP envelope and the attachments.
type Multipart struct {
	// Envelope is the SOAP part's bytes.
	Envelope []byte
	// Parts are the attachment parts in wire order; their Content-IDs are unique.
	Parts []*Part
}

// Part returns the attachment with the Content-ID id, nil when there is none.
func (m *Multipart) Part(id string) *Part {
	for _, p := range m.Parts {
		if p.ContentID == id {
			return p
		}
	}
	return nil
}

// Spooled returns the spooled bytes of every part, for a spool's clean-up.
func (m *Multipart) Spooled() []Spooled {
	out := make([]Spooled, 0, len(m.Parts))
	for _, p := range m.Parts {
		out = append(out, p.Data)
	}
	return out
}

// ReadMessage reads a message that carries its own MIME headers (MIME-Version,
// Content-Type), as stored in files and EGVP exports.
func ReadMessage(ctx context.Context, r io.Reader, lim Limits, spool Spool) (*Multipart, error) {
	lim = lim.withDefaults()
	cr := &capReader{r: r, left: lim.MaxMessageBytes}
	br := bufio.NewReaderSize(cr, 32<<10)
	// The reference library starts its SOAP faults with an empty line.
	for i := 0; i < 4; i++ {
		if b, err := br.Peek(2); err != nil || string(b) != "\r\n" {
			break
		}
		_, _ = br.Discard(2)
	}
	h, err := readMessageHeader(br, lim)
	if err != nil {
		return nil, err
	}
	if v := h.Get("Mime-Version"); v != "" && strings.TrimSpace(v) != "1.0" {
		return nil, fmt.Errorf("%w: MIME-Version %q", ErrFormat, v)
	}
	return readParts(ctx, h.Get("Content-Type"), br, lim, spool)
}

// readMessageHeader reads and parses the MIME header block a message starts with,
// within lim.MaxHeaderBytes.
func readMessageHeader(br *bufio.Reader, lim Limits) (textproto.MIMEHeader, error) {
	block, err := readHeaderBlock(br, lim.MaxHeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("osci: reading the message header: %w", err)
	}
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(block))).ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("%w: message header: %v", ErrFormat, err)
	}
	return h, nil
}

// ReadEnvelope reads only the SOAP part of a message that carries its own MIME headers,
// as ReadMessage frames it, and stops there: for a stored message whose attachments are
// at hand elsewhere (an EGVP Enterprise export keeps them as files) or whose later parts
// a text conversion damaged.
func ReadEnvelope(ctx context.Context, r io.Reader, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	br := bufio.NewReaderSize(&capReader{r: r, left: lim.MaxMessageBytes}, 32<<10)
	h, err := readMessageHeader(br, lim)
	if err != nil {
		return nil, err
	}
	boundary, err := relatedBoundary(h.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := multipart.NewReader(br, boundary).NextRawPart()
	if err != nil {
		return nil, partErr(0, err)
	}
	id, err := partContentID(p.Header, lim)
	if err != nil {
		return nil, fmt.Errorf("%w: part 0: %v", ErrFormat, err)
	}
	return readEnvelopePart(p, id, lim)
}

// ReadBody reads a message whose top-level Content-Type arrived apart from the body, as an
// HTTP request or response carries it.
func ReadBody(ctx context.Context, contentType string, r io.Reader, lim Limits, spool Spool) (*Multipart, error) {
	lim = lim.withDefaults()
	return readParts(ctx, contentType, &capReader{r: r, left: lim.MaxMessageBytes}, lim, spool)
}

func readParts(ctx context.Context, contentType string, r io.Reader, lim Limits, spool Spool) (*Multipart, error) {
	m := &Multipart{}
	if err := readPartsInto(ctx, contentType, r, lim, spool, m); err != nil {
		// The parts spooled before the framing failed belong to no message.
		removeSpooled(spool, m)
		return nil, err
	}
	return m, nil
}

func readPartsInto(ctx context.Context, contentType string, r io.Reader, lim Limits, spool Spool, m *Multipart) error {
	boundary, err := relatedBoundary(contentType)
	if err != nil {
		return err
	}
	mr := multipart.NewReader(r, boundary)
	ids := map[string]bool{}
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return partErr(n, err)
		}
		if n == lim.MaxParts {
			return fmt.Errorf("%w: more than %d MIME parts", ErrTooLarge, lim.MaxParts)
		}
		id, err := partContentID(p.Header, lim)
		if err != nil {
			return fmt.Errorf("%w: part %d: %v", ErrFormat, n, err)
		}
		if ids[id] {
			return fmt.Errorf("%w: Content-ID <%s> appears twice", ErrFormat, id)
		}
		ids[id] = true
		if n == 0 {
			if m.Envelope, err = readEnvelopePart(p, id, lim); err != nil {
				return err
			}
			continue
		}
		part, err := spoolPart(ctx, p, id, lim, spool)
		if err != nil {
			return err
		}
		m.Parts = append(m.Parts, part)
	}
	if m.Envelope == nil {
		return fmt.Errorf("%w: no MIME parts", ErrFormat)
	}
	return nil
}

// partErr keeps a size overrun recognisable through multipart's wrapping.
func partErr(n int, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("%w: MIME part %d: %v", ErrFormat, n, err)
}

func relatedBoundary(contentType string) (string, error) {
	mt, params, err := parseMediaType(contentType)
	if err != nil {
		return "", fmt.Errorf("%w: Content-Type %.200q: %v", ErrFormat, contentType, err)
	}
	if mt != "multipart/related" {
		return "", fmt.Errorf("%w: Content-Type %s, not Multipart/Related", ErrFormat, mt)
	}
	if t, ok := params["type"]; ok && !strings.EqualFold(t, "text/xml") {
		return "", fmt.Errorf("%w: Multipart/Related of type %q, not text/xml", ErrFormat, t)
	}
	b := params["boundary"]
	if b == "" || len(b) > 70 {
		return "", fmt.Errorf("%w: missing or overlong MIME boundary", ErrFormat)
	}
	return b, nil
}

func partContentID(h textproto.MIMEHeader, lim Limits) (string, error) {
	size := 0
	for k, vs := range h {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if len(h) > maxPartHeaders || size > lim.MaxHeaderBytes {
		return "", fmt.Errorf("header of %d fields, %d bytes is over the limit", len(h), size)
	}
	if len(h.Values("Content-Id")) != 1 {
		return "", errors.New("not exactly one Content-ID")
	}
	raw := strings.TrimSpace(h.Get("Content-Id"))
	if len(raw) < 3 || raw[0] != '<' || raw[len(raw)-1] != '>' || len(raw) > maxContentIDBytes {
		return "", fmt.Errorf("Content-ID %.64q is not <...>", raw)
	}
	id := raw[1 : len(raw)-1]
	if strings.ContainsAny(id, "<>\r\n\x00") {
		return "", fmt.Errorf("Content-ID %.64q holds a forbidden character", raw)
	}
	return id, nil
}

func readEnvelopePart(p *multipart.Part, id string, lim Limits) ([]byte, error) {
	if id != EnvelopeContentID {
		return nil, fmt.Errorf("%w: first part is <%s>, not <%s>", ErrFormat, id, EnvelopeContentID)
	}
	mt, params, err := parseMediaType(p.Header.Get("Content-Type"))
	if err != nil || mt != "text/xml" {
		return nil, fmt.Errorf("%w: SOAP part of type %q, not text/xml", ErrFormat, p.Header.Get("Content-Type"))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, fmt.Errorf("%w: SOAP part in charset %q, not UTF-8", ErrFormat, cs)
	}
	if err := plainEncoding(p.Header.Get("Content-Transfer-Encoding")); err != nil {
		return nil, fmt.Errorf("%w: SOAP part: %v", ErrFormat, err)
	}
	data, err := io.ReadAll(io.LimitReader(p, int64(lim.MaxEnvelopeBytes)+1))
	if err != nil {
		return nil, partErr(0, err)
	}
	if len(data) > lim.MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: SOAP part over %d bytes", ErrTooLarge, lim.MaxEnvelopeBytes)
	}
	// The SOAP part's Content-Length is not checked: the reference library 2.4.1
	// announces the transport envelope short by the length of the certificate it
	// contains, and its own reader ignores the value. The boundary delimits the part.
	return data, nil
}

// parseMediaType is mime.ParseMediaType made to accept what OSCI libraries write:
// "type=text/xml" unquoted, though "/" is a tspecial that RFC 2045 wants quoted.
func parseMediaType(v string) (string, map[string]string, error) {
	mt, params, err := mime.ParseMediaType(v)
	if err == nil {
		return mt, params, nil
	}
	head, rest, _ := strings.Cut(v, ";")
	fields := strings.Split(rest, ";")
	if len(fields) > 8 {
		return "", nil, err
	}
	for i, f := range fields {
		k, val, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && strings.ContainsRune(val, '/') && !strings.ContainsAny(val, "\"\\ ") {
			fields[i] = k + "=" + strconv.Quote(val)
		}
	}
	return mime.ParseMediaType(head + ";" + strings.Join(fields, ";"))
}

// plainEncoding accepts the identity encodings; "8-bit" is what the reference library
// writes for attachments.
func plainEncoding(cte string) error {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "8-bit", "binary":
		return nil
	}
	return fmt.Errorf("Content-Transfer-Encoding %q", cte)
}

func spoolPart(ctx context.Context, p *multipart.Part, id string, lim Limits, spool Spool) (*Part, error) {
	cte := strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding"))
	if err := plainEncoding(cte); err != nil && !strings.EqualFold(cte, "base64") {
		return nil, fmt.Errorf("%w: part <%s>: %v", ErrFormat, id, err)
	}
	part := &Part{ContentID: id, ContentType: p.Header.Get("Content-Type"), TransferEncoding: cte, Header: p.Header}
	h := sha256.New()
	body := &sourceReader{r: &capReader{r: p, left: lim.MaxAttachmentBytes}}
	counted := &countWriter{w: h}
	data, err := spool.Put(ctx, id, io.TeeReader(body, counted))
	switch {
	case err == nil:
	case errors.Is(body.err, ErrTooLarge):
		return nil, fmt.Errorf("%w: part <%s> over %d bytes", ErrTooLarge, id, lim.MaxAttachmentBytes)
	case body.err != nil && ctx.Err() == nil:
		// The message broke off or its framing is wrong, whatever the spool made of it.
		return nil, fmt.Errorf("%w: part <%s>: %v", ErrFormat, id, body.err)
	default:
		return nil, fmt.Errorf("osci: spooling part <%s>: %w", id, err)
	}
	part.Data, part.Size = data, counted.n
	copy(part.SHA256[:], h.Sum(nil))
	if err := checkContentLength(p.Header, part.Size); err != nil {
		removeSpooled(spool, &Multipart{Parts: []*Part{part}})
		return nil, err
	}
	return part, nil
}

func checkContentLength(h textproto.MIMEHeader, got int64) error {
	v := h.Get("Content-Length")
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n != got {
		return fmt.Errorf("%w: Content-Length %q but %d bytes", ErrFormat, v, got)
	}
	return nil
}

// readHeaderBlock reads header lines up to and including the empty line.
func readHeaderBlock(br *bufio.Reader, max int) ([]byte, error) {
	var block []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(block)+len(line) > max || err == bufio.ErrBufferFull {
			return nil, fmt.Errorf("%w: header over %d bytes", ErrTooLarge, max)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: header: %v", ErrFormat, err)
		}
		block = append(block, line...)
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return block, nil
		}
	}
}

// capReader fails, rather than truncates, once more than left bytes are read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, ErrTooLarge
	}
	return n, err
}

// sourceReader remembers the error the message itself gave, as opposed to the spool's.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

// OutPart is an attachment to write.
type OutPart struct {
	ContentID   string
	ContentType string // application/octet-stream when empty
	// TransferEncoding is written as Content-Transfer-Encoding; binary when empty.
	// It labels Body, which is written as it is.
	TransferEncoding string
	// Size is the exact length of Body; it goes into Content-Length, which the
	// reference library's reader relies on.
	Size int64
	Body io.Reader
}

// NewBoundary returns a fresh MIME boundary in the library's style.
func NewBoundary() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "MIME_boundary_" + hex.EncodeToString(b[:])
}

// ContentType is the top-level Content-Type of a message with the boundary.
func ContentType(boundary string) string {
	return "Multipart/Related; boundary=" + boundary + "; type=text/xml"
}

// WriteMessage writes a message with the envelope as <osci@message> and parts after it.
// With headers set it starts with MIME-Version and Content-Type, as the message form of
// files; for HTTP the caller sends ContentType(boundary) as the header and leaves them out.
func WriteMessage(w io.Writer, boundary string, headers bool, envelope []byte, parts []OutPart) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	if headers {
		fmt.Fprintf(bw, "MIME-Version: 1.0\r\nContent-Type: %s\r\n", ContentType(boundary))
	}
	fmt.Fprintf(bw, "\r\n--%s\r\nContent-Type: text/xml; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <%s>\r\n\r\n", boundary, EnvelopeContentID)
	bw.Write(envelope)
	for _, p := range parts {
		if p.ContentID == "" || strings.ContainsAny(p.ContentID, "<>\r\n\x00") || p.ContentID == EnvelopeContentID {
			return fmt.Errorf("osci: writing a message: invalid Content-ID %q", p.ContentID)
		}
		ct := p.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		cte := p.TransferEncoding
		if cte == "" {
			cte = "binary"
		}
		if strings.ContainsAny(ct+cte, "\r\n") {
			return fmt.Errorf("osci: writing part <%s>: invalid Content-Type or Content-Transfer-Encoding", p.ContentID)
		}
		fmt.Fprintf(bw, "\r\n--%s\r\nContent-Type: %s\r\nContent-Transfer-Encoding: %s\r\nContent-ID: <%s>\r\nContent-Length: %d\r\n\r\n", boundary, ct, cte, p.ContentID, p.Size)
		n, err := io.Copy(bw, io.LimitReader(p.Body, p.Size+1))
		if err != nil {
			return fmt.Errorf("osci: writing part <%s>: %w", p.ContentID, err)
		}
		if n != p.Size {
			return fmt.Errorf("osci: writing part <%s>: %d bytes, announced %d", p.ContentID, n, p.Size)
		}
	}
	fmt.Fprintf(bw, "\r\n--%s--\r\n", boundary)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("osci: writing a message: %w", err)
	}
	return nil
}
