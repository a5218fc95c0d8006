package egvp

import (
	"context"
	"testing"

	"github.com/poststelle/poststelle/internal/corpus"
)

// BenchmarkRead gives the beBPo eEB sample its EGVP meaning; the envelope is parsed
// once, outside the loop, as the OSCI channel hands it over parsed.
func BenchmarkRead(b *testing.B) {
	d := readDelivery(b, corpus.Path(b, "egvp", "Messages", "TestnachrichtEeb_1"), false, true)
	for b.Loop() {
		if _, err := Read(context.Background(), d, Config{}, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
