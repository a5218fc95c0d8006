package evidencebundle_test

import (
	"context"
	"testing"

	"github.com/poststelle/poststelle/gateway/evidencebundle"
)

// FuzzVerify feeds hostile containers to the verifier: it must answer with
// findings and never panic or fail to end. The seed corpus
// (testdata/fuzz/FuzzVerify) holds a real bundle, so the fuzzer mutates
// every layer: ZIP, manifest, seal, index, leaves and proofs.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := evidencebundle.Verify(context.Background(), data, evidencebundle.VerifyOptions{})
		if err != nil {
			t.Fatalf("Verify returned an error without a cancelled context: %v", err)
		}
		if len(res.Findings) == 0 {
			t.Fatal("no findings")
		}
	})
}
