package verification

import (
	"bytes"
	"context"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// TestContainsMarker finds the marker wherever it lies, also across the
// boundary of two reads, and not where only a part of it is.
func TestContainsMarker(t *testing.T) {
	bs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v := &verifier{deps: Deps{Blobs: bs}}
	marker := []byte("/ByteRange")
	const chunk = 64 << 10
	for _, tc := range []struct {
		name string
		at   int // offset of the marker; -1 for none
		size int
		cut  bool // only the first half of the marker at the end
	}{
		{"at the start", 0, 100, false},
		{"across the first read's end", chunk - 4, 3 * chunk, false},
		{"right after the first read", chunk, 3 * chunk, false},
		{"at the very end", 3*chunk - len(marker), 3 * chunk, false},
		{"absent", -1, 3 * chunk, false},
		{"half at the end", 3*chunk - 5, 3 * chunk, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte{'x'}, tc.size)
			if tc.at >= 0 {
				copy(data[tc.at:], marker)
			}
			ref, err := bs.PutBytes(context.Background(), data)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.containsMarker(context.Background(), ref, marker)
			if want := tc.at >= 0 && !tc.cut; err != nil || got != want {
				t.Fatalf("found %v (%v), want %v", got, err, want)
			}
		})
	}
}
