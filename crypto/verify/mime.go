package verify

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/report"
)

// Limits on a MIME structure, which is attacker-controlled.
const (
	maxMIMEDepth = 8
	maxMIMEParts = 200
)

// entity is one MIME entity split into its header and body, both as
// transmitted.
type entity struct {
	header textproto.MIMEHeader
	body   []byte
}

// mime verifies the S/MIME signatures in a message: multipart/signed
// entities and application/pkcs7-mime signed-data, also nested inside
// other multiparts and attached messages.
func (v *verifier) mime(rep *report.Report, data []byte) error {
	w := &mimeWalker{v: v, rep: rep}
	if err := w.walk(data, 0); err != nil {
		return err
	}
	if w.found == 0 {
		return fmt.Errorf("%w: the message holds no S/MIME signature", ErrMalformed)
	}
	return nil
}

type mimeWalker struct {
	v     *verifier
	rep   *report.Report
	parts int
	found int
}

func (w *mimeWalker) walk(raw []byte, depth int) error {
	if depth > maxMIMEDepth {
		return fmt.Errorf("%w: MIME nested deeper than %d levels", ErrMalformed, maxMIMEDepth)
	}
	w.parts++
	if w.parts > maxMIMEParts {
		return fmt.Errorf("%w: more than %d MIME parts", ErrMalformed, maxMIMEParts)
	}
	e, err := splitEntity(raw)
	if err != nil {
		return err
	}
	mt, params, err := mime.ParseMediaType(e.header.Get("Content-Type"))
	if err != nil {
		mt = "text/plain"
	}
	switch {
	case mt == "multipart/signed":
		return w.signed(e, params["boundary"])
	case mt == "application/pkcs7-mime" || mt == "application/x-pkcs7-mime":
		return w.enveloping(e)
	case strings.HasPrefix(mt, "multipart/"):
		parts, err := splitMultipart(e.body, params["boundary"])
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := w.walk(p, depth+1); err != nil {
				return err
			}
		}
	case mt == "message/rfc822":
		body, err := decodeBody(e)
		if err != nil {
			return err
		}
		return w.walk(body, depth+1)
	}
	return nil
}

// signed verifies a multipart/signed: the first part exactly as
// transmitted is the signed content (RFC 8551 section 3.5), the second the
// detached signature.
func (w *mimeWalker) signed(e entity, boundary string) error {
	parts, err := splitMultipart(e.body, boundary)
	if err != nil {
		return err
	}
	if len(parts) != 2 {
		return fmt.Errorf("%w: multipart/signed with %d parts instead of 2", ErrMalformed, len(parts))
	}
	sigEntity, err := splitEntity(parts[1])
	if err != nil {
		return err
	}
	sig, err := decodeBody(sigEntity)
	if err != nil {
		return err
	}
	sd, err := cms.Parse(sig)
	if err != nil {
		return fmt.Errorf("%w: multipart/signed signature part: %w", ErrMalformed, err)
	}
	w.found++
	saved := w.v.opts.MIMEContent
	w.v.opts.MIMEContent = true
	w.v.signedData(w.rep, sd, parts[0])
	w.v.opts.MIMEContent = saved
	return nil
}

// enveloping verifies application/pkcs7-mime signed-data; enveloped
// (encrypted) data cannot be verified here.
func (w *mimeWalker) enveloping(e entity) error {
	body, err := decodeBody(e)
	if err != nil {
		return err
	}
	sd, err := cms.Parse(body)
	if err != nil {
		return fmt.Errorf("%w: application/pkcs7-mime: %w (encrypted S/MIME cannot be verified)", ErrMalformed, err)
	}
	w.found++
	w.v.signedData(w.rep, sd, nil)
	return nil
}

// splitEntity separates header and body at the first empty line.
func splitEntity(raw []byte) (entity, error) {
	var hdr, body []byte
	switch {
	case bytes.HasPrefix(raw, []byte("\r\n")):
		body = raw[2:]
	case bytes.HasPrefix(raw, []byte("\n")):
		body = raw[1:]
	default:
		i, n := bytes.Index(raw, []byte("\r\n\r\n")), 4
		if j := bytes.Index(raw, []byte("\n\n")); j >= 0 && (i < 0 || j < i) {
			i, n = j, 2
		}
		if i < 0 {
			hdr = raw
		} else {
			hdr, body = raw[:i], raw[i+n:]
		}
	}
	h := textproto.MIMEHeader{}
	if len(hdr) > 0 {
		r := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n\r\n"))))
		var err error
		h, err = r.ReadMIMEHeader()
		if err != nil {
			return entity{}, fmt.Errorf("%w: MIME header: %w", ErrMalformed, err)
		}
	}
	return entity{header: h, body: body}, nil
}

// splitMultipart returns the body parts of a multipart body, each exactly
// as transmitted between its delimiter lines (RFC 2046 section 5.1.1: the
// line break before a delimiter belongs to the delimiter).
func splitMultipart(body []byte, boundary string) ([][]byte, error) {
	if boundary == "" || len(boundary) > 70 {
		return nil, fmt.Errorf("%w: multipart without a valid boundary", ErrMalformed)
	}
	delim := []byte("--" + boundary)
	var parts [][]byte
	start := -1
	for pos := 0; pos < len(body); {
		end := bytes.IndexByte(body[pos:], '\n')
		lineEnd := len(body)
		next := len(body)
		if end >= 0 {
			lineEnd, next = pos+end, pos+end+1
		}
		line := bytes.TrimRight(body[pos:lineEnd], "\r")
		if bytes.HasPrefix(line, delim) {
			rest := line[len(delim):]
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing {
				rest = rest[2:]
			}
			if len(bytes.Trim(rest, " \t")) == 0 {
				if start >= 0 {
					partEnd := pos
					if partEnd > start && body[partEnd-1] == '\n' {
						partEnd--
						if partEnd > start && body[partEnd-1] == '\r' {
							partEnd--
						}
					}
					parts = append(parts, body[start:partEnd])
					if len(parts) > maxMIMEParts {
						return nil, fmt.Errorf("%w: more than %d MIME parts", ErrMalformed, maxMIMEParts)
					}
				}
				if closing {
					return parts, nil
				}
				start = next
			}
		}
		pos = next
	}
	if start < 0 {
		return nil, fmt.Errorf("%w: multipart boundary %q never occurs", ErrMalformed, boundary)
	}
	return nil, fmt.Errorf("%w: multipart without closing boundary", ErrMalformed)
}

// decodeBody undoes the content transfer encoding.
func decodeBody(e entity) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(e.header.Get("Content-Transfer-Encoding"))) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, e.body)
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		if err != nil {
			return nil, fmt.Errorf("%w: base64 body: %w", ErrMalformed, err)
		}
		return out[:n], nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(e.body)))
		if err != nil {
			return nil, fmt.Errorf("%w: quoted-printable body: %w", ErrMalformed, err)
		}
		return out, nil
	}
	return e.body, nil
}
