package postbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// A submission is a multipart/form-data body (RFC 7578) with one part named
// "message", the Envelope as JSON, and any number of parts named
// "attachment", each with a filename (RFC 7578 section 4.2) and its own
// Content-Type. Multipart rather than JSON with base64: attachments stream
// into the blob store as they arrive and are stored as the portal sent
// them, without a third of overhead and without a decoder in between.

// Envelope is the "message" part: what the portal says about the message.
type Envelope struct {
	// Subject is the message's subject line.
	Subject string `json:"subject"`
	// SenderReference is the portal's own id of the message; an answer
	// refers to it (MessageReceived.SenderMessageID).
	SenderReference string `json:"senderReference"`
	// PostboxReference is the citizen's postbox at the portal, where the
	// answer is to go (MessageReceived.From).
	PostboxReference string `json:"postboxReference"`
	// SenderName is the citizen's name as the portal knows it.
	SenderName string `json:"senderName,omitempty"`
	// ServiceIdentifier names the administrative service the message is
	// for (a LeiKa key or URN, the portal's own code); a routing hint.
	ServiceIdentifier string `json:"serviceIdentifier,omitempty"`
	// RoutingHints are further routing facts (a file number, an office
	// code); each becomes MessageReceived.Metadata["postbox.hint.<key>"].
	RoutingHints map[string]string `json:"routingHints,omitempty"`
}

// Limits on the parts of a submission: everything in it comes from outside.
const (
	maxEnvelopeBytes = 64 << 10
	maxSubjectBytes  = 998
	maxRefBytes      = 256
	maxHints         = 16
	maxHintValue     = 256
	maxFilenameBytes = 255
	maxMediaType     = 255
	// maxPartHeaderBytes caps one part's header block: mime/multipart
	// would otherwise accept megabytes of header lines per part.
	maxPartHeaderBytes = 16 << 10
)

var hintKey = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestError is a submission the API refuses with a problem document;
// nothing is recorded for it.
type requestError struct {
	status int
	slug   string
	detail string
}

func (e *requestError) Error() string { return e.detail }

func badRequest(slug, format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, slug: slug, detail: fmt.Sprintf(format, args...)}
}

// submission is a parsed request: the envelope and the attachments, each
// already in the blob store.
type submission struct {
	env   Envelope
	parts []gateway.Part
}

// putFunc stores one attachment, refusing more than max bytes.
type putFunc func(r io.Reader, max int64) (blob.Ref, error)

// parseSubmission reads a multipart/form-data body with the given boundary
// and stores each attachment with put. maxBytes caps an attachment (the
// whole body is capped before), maxParts the number of attachments. A
// malformed body is a *requestError; an error of put is returned wrapped.
func parseSubmission(body io.Reader, boundary string, maxBytes int64, maxParts int, put putFunc) (*submission, error) {
	if boundary == "" || len(boundary) > 70 {
		// RFC 2046 section 5.1.1: 1 to 70 characters.
		return nil, badRequest("bad-multipart", "the multipart boundary is missing or longer than 70 characters")
	}
	hl := &headerLimit{r: body}
	mr := multipart.NewReader(hl, boundary)
	var sub submission
	haveEnvelope := false
	for {
		hl.begin()
		p, err := mr.NextRawPart()
		hl.end()
		if errors.Is(err, io.EOF) {
			break
		}
		if hl.over {
			return nil, badRequest("bad-multipart", "a part's header is longer than %d bytes", maxPartHeaderBytes)
		}
		if err != nil {
			return nil, badRequest("bad-multipart", "the multipart body does not parse: %v", err)
		}
		switch p.FormName() {
		case "message":
			if haveEnvelope {
				return nil, badRequest("bad-message", `more than one part is named "message"`)
			}
			haveEnvelope = true
			if err := readEnvelope(p, &sub.env); err != nil {
				return nil, err
			}
		case "attachment":
			if len(sub.parts) == maxParts {
				return nil, badRequest("too-many-attachments", "more than %d attachments", maxParts)
			}
			part, err := attachmentPart(p, len(sub.parts)+1)
			if err != nil {
				return nil, err
			}
			src := &readErr{r: p}
			ref, err := put(src, maxBytes)
			if src.err != nil && !errors.Is(src.err, blob.ErrCorrupt) {
				// The body ended inside the part or broke its framing.
				return nil, badRequest("bad-multipart", "attachment %d does not read: %v", len(sub.parts)+1, src.err)
			}
			if err != nil {
				return nil, fmt.Errorf("store attachment %d: %w", len(sub.parts)+1, err)
			}
			part.Blob = ref
			sub.parts = append(sub.parts, part)
		default:
			return nil, badRequest("bad-multipart", `a part is named %q; want "message" or "attachment"`, truncate(p.FormName(), 64))
		}
	}
	if !haveEnvelope {
		return nil, badRequest("bad-message", `no part is named "message"`)
	}
	return &sub, nil
}

func readEnvelope(p *multipart.Part, env *Envelope) error {
	if ct := p.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return badRequest("bad-message", `the "message" part is %q; want application/json`, truncate(ct, 64))
		}
	}
	b, err := io.ReadAll(io.LimitReader(p, maxEnvelopeBytes+1))
	if err != nil {
		return badRequest("bad-multipart", "the message part does not read: %v", err)
	}
	if len(b) > maxEnvelopeBytes {
		return badRequest("bad-message", "the message part is longer than %d bytes", maxEnvelopeBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(env); err != nil {
		return badRequest("bad-message", "the message part is not the message object: %v", err)
	}
	if dec.More() {
		return badRequest("bad-message", "the message part holds more than one JSON value")
	}
	return checkEnvelope(env)
}

func checkEnvelope(env *Envelope) error {
	fields := []struct {
		name     string
		v        string
		max      int
		required bool
	}{
		{"subject", env.Subject, maxSubjectBytes, false},
		{"senderReference", env.SenderReference, maxRefBytes, true},
		{"postboxReference", env.PostboxReference, maxRefBytes, true},
		{"senderName", env.SenderName, maxRefBytes, false},
		{"serviceIdentifier", env.ServiceIdentifier, maxRefBytes, false},
	}
	for _, f := range fields {
		switch {
		case f.required && f.v == "":
			return badRequest("bad-message", "%s is required", f.name)
		case len(f.v) > f.max:
			return badRequest("bad-message", "%s is longer than %d bytes", f.name, f.max)
		case !printable(f.v):
			return badRequest("bad-message", "%s holds control characters or is not UTF-8", f.name)
		}
	}
	if len(env.RoutingHints) > maxHints {
		return badRequest("bad-message", "more than %d routing hints", maxHints)
	}
	for k, v := range env.RoutingHints {
		if !hintKey.MatchString(k) {
			return badRequest("bad-message", "routing hint %q: want a key of 1 to 64 of A-Z a-z 0-9 . _ -", truncate(k, 64))
		}
		if len(v) > maxHintValue || !printable(v) {
			return badRequest("bad-message", "routing hint %s: the value is longer than %d bytes or not printable UTF-8", k, maxHintValue)
		}
	}
	return nil
}

// attachmentPart describes attachment number n from its part header. The
// filename is kept as the portal wrote it (an office sees what the citizen
// uploaded); what could not be understood is listed in the part's Problems.
func attachmentPart(p *multipart.Part, n int) (gateway.Part, error) {
	part := gateway.Part{Path: strconv.Itoa(n), Kind: "attachment", MediaType: "application/octet-stream"}
	name := p.FileName()
	switch {
	case name == "":
		return part, badRequest("bad-attachment", "attachment %d has no filename", n)
	case len(name) > maxFilenameBytes || !printable(name):
		return part, badRequest("bad-attachment", "attachment %d: the filename is longer than %d bytes or not printable UTF-8", n, maxFilenameBytes)
	}
	part.Filename = name
	if ct := p.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || len(mt) > maxMediaType {
			part.Problems = append(part.Problems, fmt.Sprintf("Content-Type %q does not parse; kept as application/octet-stream", truncate(ct, 64)))
		} else {
			part.MediaType = mt
		}
	}
	if cte := p.Header.Get("Content-Transfer-Encoding"); cte != "" {
		// RFC 7578 section 4.7: deprecated in form data; the bytes are
		// stored as sent, not decoded.
		part.Problems = append(part.Problems, fmt.Sprintf("Content-Transfer-Encoding %q ignored; stored as sent", truncate(cte, 32)))
	}
	return part, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// headerLimit counts the bytes mime/multipart reads while it parses a part's
// header (between begin and end) and ends the stream early when they exceed
// maxPartHeaderBytes. The multipart reader's own buffer makes the count
// approximate, which is enough for a cap.
type headerLimit struct {
	r        io.Reader
	counting bool
	n        int
	over     bool
}

func (h *headerLimit) begin() { h.counting, h.n = true, 0 }
func (h *headerLimit) end()   { h.counting = false }

func (h *headerLimit) Read(p []byte) (int, error) {
	if h.counting {
		if h.n >= maxPartHeaderBytes+64<<10 {
			h.over = true
			return 0, errors.New("part header too long")
		}
	}
	n, err := h.r.Read(p)
	if h.counting {
		h.n += n
	}
	return n, err
}

// readErr remembers the error its reader ended with other than io.EOF: a
// multipart body that breaks off inside a part, as opposed to the blob
// store failing to take the part.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}
