package xjustiz

import (
	"os"
	"testing"
	"time"

	"github.com/poststelle/poststelle/internal/corpus"
)

// BenchmarkParse reads the largest real sample, the XJustiz 3.2.1 message with three
// documents.
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(corpus.Path(b, "egvp", "Messages", "Testnachricht_xjustiz321", "attachments", "xjustiz_nachricht.xml"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildReceipt(b *testing.B) {
	req, err := Parse([]byte(request3), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	a := AnswerTo(req, "x", time.Unix(1, 0))
	a.Received = time.Unix(1, 0)
	for b.Loop() {
		if _, err := BuildReceipt(a); err != nil {
			b.Fatal(err)
		}
	}
}
