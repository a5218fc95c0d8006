package tsp

import (
	"testing"

	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
)

func FuzzParseTimeStampToken(f *testing.F) {
	for _, name := range []string{"d-trust.tsr", "tst-two-refs.tst", "tst_with_broken_ocsp.tst"} {
		f.Add(readTSP(f, name))
	}
	f.Add(tsptest.StatusOnly(StatusRejection, "x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if tok, err := ParseToken(data); err == nil {
			r := tok.Verify(VerifyOptions{Data: []byte("Test123")})
			if r.Valid && !r.Signer.Intact {
				t.Fatal("valid but not intact")
			}
		}
		if resp, err := ParseResponse(data); err == nil && resp.Token != nil {
			_ = resp.Token.Verify(VerifyOptions{})
		}
		if req, err := ParseRequest(data); err == nil {
			if _, err := req.Marshal(); err != nil && req.Hash != 0 && len(req.HashedMessage) == req.Hash.Size() {
				t.Fatalf("parsed request does not marshal: %v", err)
			}
		}
	})
}
