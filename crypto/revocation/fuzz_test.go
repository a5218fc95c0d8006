package revocation

import (
	"testing"

	"github.com/poststelle/poststelle/crypto/trust"
)

// FuzzResponseNonce feeds whole OCSPResponses (seeds: responses from
// openssl with and without nonce) through ResponseStatus and, via trust's
// parser, ResponseNonce; and raw bytes through ResponseNonce directly.
func FuzzResponseNonce(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x03})
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		ResponseNonce(data)
		if _, err := ResponseStatus(data); err != nil {
			return
		}
		r, err := trust.ParseOCSPResponse(data)
		if err != nil {
			return
		}
		n, present, err := ResponseNonce(r.RawTBS)
		if err == nil && !present && n != nil {
			t.Fatalf("nonce %x without extension", n)
		}
	})
}
