package xjustiz

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/internal/corpus"
)

// FuzzParse: any input is read or refused without panic, and a message that reads is
// answered by an eEB that reads back.
func FuzzParse(f *testing.F) {
	for _, tc := range samples {
		data, err := os.ReadFile(filepath.Join(append([]string{corpus.Dir(f)}, tc.path...)...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(request3))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, Limits{MaxBytes: 1 << 16})
		if err != nil {
			return
		}
		a := AnswerTo(m, "fuzz", time.Unix(1, 0))
		a.Received = time.Unix(1, 0)
		out, err := BuildReceipt(a)
		if err != nil {
			return
		}
		if _, err := Parse(out, Limits{}); err != nil {
			t.Fatalf("the answer does not read back: %v\n%s", err, out)
		}
	})
}
