package osci

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadRequest: the supplier's whole reading of a posted request (framing,
// transport decryption, envelope, client signature) never panics, leaves no spooled
// file behind when it refuses, and answers every refusal with a defined code.
func FuzzReadRequest(f *testing.F) {
	// The supplier has no key: opening the sample PKCS#12 files (legacy PBE through
	// math/big) and 4096-bit RSA decryptions take the instrumented fuzz workers
	// longer than a run lasts, and xmlenc's own targets cover the decryption. An
	// encrypted request is refused as undecryptable; the library's plaintext copy is
	// the request as a client could send it unencrypted, with a signature to check.
	plain, err := os.ReadFile(filepath.Join("testdata", "library", "getmessageid", "request.plain.mime"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	s := Supplier{Limits: fuzzLimits}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		req, err := s.ReadRequest(context.Background(), bytes.NewReader(data), DirSpool{Dir: dir})
		if err != nil {
			if c := FeedbackCode(err); !c.Known() || !c.Error() {
				t.Fatalf("refusal with code %s: %v", c, err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("%d spooled files left after a refusal", len(left))
			}
			return
		}
		if req.Signature != nil && !req.Signature.Valid() {
			t.Fatal("accepted with an invalid signature")
		}
	})
}
