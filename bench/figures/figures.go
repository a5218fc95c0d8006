// Package figures is the JSON form in which each benchmark harness hands its
// measurements to the report (bench/report): one file per harness run, with
// named figures, so that the report can set a figure beside its baseline
// from the same run without parsing any harness's human output.
package figures

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// MaxFileSize caps a figures file: a harness writes a few dozen figures,
// so anything larger is not one of ours.
const MaxFileSize = 1 << 20

// Run is one harness run.
type Run struct {
	// Harness names the harness ("sqlite", "smtp", "osci", "sse", "kafka",
	// "kafka-producerperf", "scaling"); the report looks figures up by it.
	Harness string `json:"harness"`
	// Started is when the run began (UTC).
	Started time.Time `json:"started"`
	// Params are the harness's settings, as the report prints them.
	Params map[string]string `json:"params,omitempty"`
	// Figures are the measurements.
	Figures []Figure `json:"figures"`
}

// Figure is one measurement.
type Figure struct {
	Key   string  `json:"key"`
	Label string  `json:"label"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// P50Ms and P99Ms are latency percentiles in milliseconds, when the
	// harness measured them.
	P50Ms float64 `json:"p50_ms,omitempty"`
	P99Ms float64 `json:"p99_ms,omitempty"`
}

// New starts a run of the named harness now.
func New(harness string) *Run {
	return &Run{Harness: harness, Started: time.Now().UTC().Truncate(time.Second), Params: map[string]string{}}
}

// Add appends a figure and returns it, so that the caller can set its
// percentiles.
func (r *Run) Add(key, label string, value float64, unit string) *Figure {
	r.Figures = append(r.Figures, Figure{Key: key, Label: label, Value: value, Unit: unit})
	return &r.Figures[len(r.Figures)-1]
}

// Latency sets the percentiles from durations.
func (f *Figure) Latency(p50, p99 time.Duration) *Figure {
	f.P50Ms, f.P99Ms = ms(p50), ms(p99)
	return f
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Get returns the figure with the key.
func (r *Run) Get(key string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Key == key {
			return f, true
		}
	}
	return Figure{}, false
}

// Write writes the run to path (creating its directory), replacing it
// atomically so that a report never reads half a file.
func Write(path string, r *Run) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode figures of %s: %w", r.Harness, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("write figures: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write figures: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write figures: %w", err)
	}
	return nil
}

// Decode reads one run from r, refusing more than MaxFileSize bytes,
// unknown fields and anything after the JSON value.
func Decode(r io.Reader) (*Run, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read figures: %w", err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("figures: more than %d bytes", MaxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var run Run
	if err := dec.Decode(&run); err != nil {
		return nil, fmt.Errorf("decode figures: %w", err)
	}
	if dec.More() {
		return nil, errors.New("figures: data after the JSON value")
	}
	if run.Harness == "" {
		return nil, errors.New("figures: no harness named")
	}
	return &run, nil
}

// Read reads the run in the file at path.
func Read(path string) (*Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read figures: %w", err)
	}
	defer f.Close()
	run, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return run, nil
}
