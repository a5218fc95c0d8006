package blobkeys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// recordFormat names the layout of a key object in S3.
const recordFormat = "poststelle-blobkey-1"

// maxRecord caps a key object before it is parsed; a live record is about
// 300 bytes.
const maxRecord = 4 << 10

// record is one key object: a live entry, or a tombstone (ErasedAt set and
// no key fields).
type record struct {
	Format     string     `json:"format"`
	SHA256     string     `json:"sha256"`
	Size       int64      `json:"size"`
	Cipher     *blob.Ref  `json:"cipher,omitempty"`
	KEK        string     `json:"kek,omitempty"`
	WrappedKey []byte     `json:"wrappedKey,omitempty"`
	ErasedAt   *time.Time `json:"erasedAt,omitempty"`
}

func liveRecord(plain blob.Ref, e Entry) record {
	c := e.Cipher
	return record{Format: recordFormat, SHA256: plain.SHA256, Size: plain.Size, Cipher: &c, KEK: e.KEK, WrappedKey: e.WrappedKey}
}

func tombstone(plain blob.Ref, at time.Time) record {
	at = at.UTC()
	return record{Format: recordFormat, SHA256: plain.SHA256, Size: plain.Size, ErasedAt: &at}
}

func (r record) encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("blobkeys: encode key record of %s: %w", r.SHA256, err)
	}
	return b, nil
}

// decodeRecord parses a key object stored under sum and checks that it is
// either a well-formed live entry or a tombstone of that reference.
func decodeRecord(sum string, b []byte) (record, error) {
	if len(b) > maxRecord {
		return record{}, fmt.Errorf("%w: key object of %s has %d bytes, limit %d", errBadEntry, sum, len(b), maxRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r record
	if err := dec.Decode(&r); err != nil {
		return record{}, fmt.Errorf("%w: key object of %s: %w", errBadEntry, sum, err)
	}
	if dec.More() {
		return record{}, fmt.Errorf("%w: key object of %s has data after the record", errBadEntry, sum)
	}
	if r.Format != recordFormat {
		return record{}, fmt.Errorf("%w: key object of %s has format %q, this gateway reads %q", errBadEntry, sum, r.Format, recordFormat)
	}
	if r.SHA256 != sum || r.Size < 0 {
		return record{}, fmt.Errorf("%w: key object of %s names %q (size %d)", errBadEntry, sum, r.SHA256, r.Size)
	}
	if r.ErasedAt != nil {
		if r.Cipher != nil || r.KEK != "" || len(r.WrappedKey) != 0 {
			return record{}, fmt.Errorf("%w: tombstone of %s still holds key fields", errBadEntry, sum)
		}
		return r, nil
	}
	if r.Cipher == nil {
		return record{}, fmt.Errorf("%w: key object of %s has neither a ciphertext nor an erasure time", errBadEntry, sum)
	}
	if err := validEntry(r.entry()); err != nil {
		return record{}, fmt.Errorf("key object of %s: %w", sum, err)
	}
	return r, nil
}

func (r record) entry() Entry {
	var c blob.Ref
	if r.Cipher != nil {
		c = *r.Cipher
	}
	return Entry{Cipher: c, WrappedKey: r.WrappedKey, KEK: r.KEK}
}
