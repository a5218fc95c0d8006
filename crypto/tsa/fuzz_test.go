package tsa

import (
	"context"
	"crypto"
	"testing"

	"github.com/poststelle/poststelle/crypto/tsp"
)

// FuzzRespond: any body gets a well-formed TimeStampResp, never a panic;
// a granted one carries a token over exactly the requested imprint.
func FuzzRespond(f *testing.F) {
	for _, r := range []*tsp.Request{
		{Hash: crypto.SHA256, HashedMessage: make([]byte, 32), CertReq: true},
		{Hash: crypto.SHA512, HashedMessage: make([]byte, 64), Policy: testPolicy},
		{Hash: crypto.SHA1, HashedMessage: make([]byte, 20)},
	} {
		b, err := r.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	fx := newFixture(f, f.TempDir(), nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := tsp.ParseResponse(fx.srv.Respond(context.Background(), body))
		if err != nil {
			t.Fatalf("response does not parse: %v", err)
		}
		if resp.Token == nil {
			return
		}
		req, err := tsp.ParseRequest(body)
		if err != nil {
			t.Fatalf("granted a request that does not parse: %v", err)
		}
		if string(resp.Token.Info.HashedMessage) != string(req.HashedMessage) || resp.Token.Info.Hash != req.Hash {
			t.Fatal("token over another imprint")
		}
	})
}
