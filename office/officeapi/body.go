package officeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// bodyReadTimeout bounds how long a client may take to send a JSON body,
// so that one declaring more bytes than it sends cannot hold a handler
// until the server's read timeout.
const bodyReadTimeout = 30 * time.Second

// bodyError is a refused request body and the status that says why.
type bodyError struct {
	status int
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// decodeBody decodes exactly one JSON value from r into v: fields v does
// not know are refused, the body may hold nothing but white space after
// the value, and reading more than max bytes fails. r should be an
// http.MaxBytesReader of max, so that the server also stops reading.
func decodeBody(r io.Reader, max int64, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyReadError(err, max, "malformed JSON: ")
	}
	// A second value or anything else after the first is not one request.
	switch _, err := dec.Token(); {
	case err == io.EOF:
		return nil
	case err == nil:
		return &bodyError{http.StatusBadRequest, "request body continues after the JSON value"}
	default:
		return bodyReadError(err, max, "request body continues after the JSON value: ")
	}
}

func bodyReadError(err error, max int64, prefix string) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", max)}
	case errors.Is(err, io.EOF):
		return &bodyError{http.StatusBadRequest, "empty request body"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &bodyError{http.StatusBadRequest, "request body ended early (shorter than its Content-Length, or truncated JSON)"}
	}
	return &bodyError{http.StatusBadRequest, prefix + err.Error()}
}

// decodeJSON is the one way an endpoint reads its JSON request body. It
// answers the request itself and returns false when the body is refused:
// 415 when it is not declared application/json, 413 when its declared
// Content-Length or its actual size exceeds max (checked before reading),
// 400 when it is not exactly one JSON value of v's shape, or ends before
// the length it declared.
func (s *Server) decodeJSON(w http.ResponseWriter, r *request, max int64, v any) bool {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "send application/json")
		return false
	}
	if r.ContentLength > max {
		// Refused unread; net/http closes the connection rather than
		// draining a body this large.
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes declared, the limit is %d bytes", r.ContentLength, max))
		return false
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	err := decodeBody(http.MaxBytesReader(w, r.Body, max), max, v)
	var be *bodyError
	if errors.As(err, &be) {
		writeError(w, be.status, be.msg)
		return false
	}
	return true
}
