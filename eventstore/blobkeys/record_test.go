package blobkeys

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
)

const testSum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestRecordRoundTrip(t *testing.T) {
	plain := blob.Ref{SHA256: testSum, Size: 4}
	e := Entry{Cipher: blob.Ref{SHA256: testSum, Size: 61}, WrappedKey: bytes.Repeat([]byte{7}, 60), KEK: "0123456789abcdef"}
	for _, r := range []record{liveRecord(plain, e), tombstone(plain, time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))} {
		b, err := r.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(testSum, b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if !got.entry().Equal(r.entry()) || (got.ErasedAt == nil) != (r.ErasedAt == nil) {
			t.Fatalf("round trip of %s: %+v", b, got)
		}
	}
}

// FuzzDecodeRecord: a key object is outside input (anyone with write
// access to the bucket); decoding it never panics, and what it accepts is
// a valid entry or a tombstone of the reference it was read for.
func FuzzDecodeRecord(f *testing.F) {
	plain := blob.Ref{SHA256: testSum, Size: 4}
	e := Entry{Cipher: blob.Ref{SHA256: testSum, Size: 61}, WrappedKey: bytes.Repeat([]byte{7}, 60), KEK: "0123456789abcdef"}
	live, _ := liveRecord(plain, e).encode()
	dead, _ := tombstone(plain, time.Unix(1e9, 0)).encode()
	f.Add(live)
	f.Add(dead)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"format":"poststelle-blobkey-1","sha256":"` + testSum + `","size":1,"erasedAt":"2026-01-01T00:00:00Z","kek":"x"}`))
	f.Add([]byte(`{"format":"poststelle-blobkey-1","sha256":"` + testSum + `","size":1,"cipher":{"sha256":"` + testSum + `","size":-1},"kek":"k","wrappedKey":"AAAA"}`))
	f.Add(append(live, live...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(testSum, b)
		if err != nil {
			return
		}
		if r.SHA256 != testSum || r.Size < 0 {
			t.Fatalf("accepted a record of %q size %d", r.SHA256, r.Size)
		}
		if r.ErasedAt == nil {
			if err := validEntry(r.entry()); err != nil {
				t.Fatalf("accepted an invalid entry: %v", err)
			}
		} else if r.Cipher != nil || len(r.WrappedKey) != 0 || r.KEK != "" {
			t.Fatal("accepted a tombstone with key fields")
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}
