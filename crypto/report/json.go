package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxJSONSize caps what ReadJSON and ParseDSS accept. A report for a
// document with hundreds of signatures and full check lists stays far below.
const MaxJSONSize = 32 << 20

// WriteJSON writes r as indented JSON followed by a newline.
//
// This is the contract of `poststelle verify --format json`: the top level
// has a "signatures" array whose items always carry "indication",
// "subIndication" (null when none), "qualification" (DSS's names, "N/A" when
// not determined), "signer" (null when no signing certificate was found) and
// "signingTime" (the claimed time, null when absent). Field names never
// change; new fields may be added.
func WriteJSON(w io.Writer, r *Report) error {
	b, err := json.MarshalIndent(normalized(r), "", "  ")
	if err != nil {
		return fmt.Errorf("report: encode json: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("report: write json: %w", err)
	}
	return nil
}

// normalized returns a copy of r whose lists are empty rather than nil, so
// that consumers always see arrays, never null.
func normalized(r *Report) *Report {
	c := *r
	c.Signatures = append(make([]Signature, 0, len(r.Signatures)), r.Signatures...)
	for i := range c.Signatures {
		s := &c.Signatures[i]
		if s.Timestamps == nil {
			s.Timestamps = []Timestamp{}
		}
		if s.Chain == nil {
			s.Chain = []Certificate{}
		}
		if s.Checks == nil {
			s.Checks = []Check{}
		}
	}
	return &c
}

// ReadJSON reads a report written by WriteJSON, at most MaxJSONSize bytes,
// and validates its enumerated values.
func ReadJSON(rd io.Reader) (*Report, error) {
	b, err := readCapped(rd, MaxJSONSize)
	if err != nil {
		return nil, fmt.Errorf("report: read json: %w", err)
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("report: decode json: %w", err)
	}
	if dec.More() {
		return nil, errors.New("report: decode json: trailing data after the report")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// readCapped reads all of rd, failing when it holds more than max bytes.
func readCapped(rd io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rd, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("input larger than %d bytes", max)
	}
	return b, nil
}
