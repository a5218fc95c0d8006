package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/assembly"
)

// contentErasedType is the event that records a crypto-shredding. It is
// read by its JSON fields, as the evidence bundle reads it, so that an
// older verifier build still honours erasures recorded by a newer gateway.
const contentErasedType = "ContentErased"

// blobChecker re-hashes every blob an event refers to (gateway.Payload's
// BlobRefs): raw messages and parts, verification reports, Prüfprotokolle,
// timestamp tokens, answer bodies and attachments. A timestamp token must
// also cover the raw message it claims to (timestampChecker).
//
// An erased blob (blob.ErrErased: its key was destroyed) passes only when a
// ContentErased event of the same log lists it. That event comes after the
// events that refer to the blob, so erased references are collected while
// the log streams past and held against the erasures in finish.
type blobChecker struct {
	store  blob.Backend
	reg    *gateway.Registry
	stamps *timestampChecker
	// erasedSeen are the blobs reads found erased, with the first event
	// that refers to each; recorded are those ContentErased events list.
	erasedSeen map[string]string
	recorded   map[string]bool
	checked    int
	ctx        context.Context
}

func newBlobChecker(ctx context.Context, cfg *Config, l eventstore.Log) (*blobChecker, error) {
	store, err := assembly.OpenBlobs(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	reg := gateway.NewRegistry()
	return &blobChecker{store: store, reg: reg, stamps: &timestampChecker{store: store, log: l, reg: reg},
		erasedSeen: map[string]string{}, recorded: map[string]bool{}, ctx: ctx}, nil
}

// check is the per-event step of log verify.
func (c *blobChecker) check(e *eventstore.Event) error {
	if e.Type == contentErasedType {
		return c.noteErasure(e)
	}
	p, err := c.reg.Decode(e)
	if err != nil {
		return fmt.Errorf("cannot check the blobs of event %s: %w", e.ID, err)
	}
	for _, r := range p.BlobRefs() {
		err := c.store.Verify(c.ctx, r)
		switch {
		case errors.Is(err, blob.ErrErased):
			c.sawErased(r, e)
		case err != nil:
			return fmt.Errorf("event %s (%s): %w", e.ID, e.Type, err)
		default:
			c.checked++
		}
	}
	if ts, ok := p.(*gateway.TimestampApplied); ok {
		err := c.stamps.check(c.ctx, e, ts)
		var gone *erasedRaw
		switch {
		case errors.As(err, &gone):
			c.sawErased(gone.ref, e)
		case err != nil:
			return fmt.Errorf("event %s (%s): %w", e.ID, e.Type, err)
		}
	}
	return nil
}

func (c *blobChecker) sawErased(r blob.Ref, e *eventstore.Event) {
	if _, ok := c.erasedSeen[r.SHA256]; !ok {
		c.erasedSeen[r.SHA256] = e.ID
	}
}

// maxErasedBlobs bounds what one ContentErased may list: it comes from the
// log, which an attacker who holds the key could have written.
const maxErasedBlobs = 1 << 16

func (c *blobChecker) noteErasure(e *eventstore.Event) error {
	var d struct {
		Blobs []blob.Ref `json:"blobs"`
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return fmt.Errorf("event %s (%s): decode: %w", e.ID, e.Type, err)
	}
	if len(d.Blobs) > maxErasedBlobs {
		return fmt.Errorf("event %s (%s) lists %d blobs, more than %d", e.ID, e.Type, len(d.Blobs), maxErasedBlobs)
	}
	for _, r := range d.Blobs {
		c.recorded[r.SHA256] = true
	}
	return nil
}

// finish holds every erased blob against the recorded erasures and reports
// what was checked.
func (c *blobChecker) finish(w io.Writer) error {
	var unrecorded []string
	for sum, ev := range c.erasedSeen {
		if !c.recorded[sum] {
			unrecorded = append(unrecorded, fmt.Sprintf("%s (first referred to by event %s)", sum, ev))
		}
	}
	if len(unrecorded) > 0 {
		slices.Sort(unrecorded)
		return fmt.Errorf("%d blobs are erased, but no ContentErased event records their erasure: %v", len(unrecorded), unrecorded)
	}
	fmt.Fprintf(w, "blobs: %d references re-hashed, %d blobs erased as ContentErased events record\n", c.checked, len(c.erasedSeen))
	return nil
}
