package trust

import (
	"testing"

	"github.com/poststelle/poststelle/crypto/cert"
)

// FuzzParseCRL: seeds from testdata/mkseeds.sh.
func FuzzParseCRL(f *testing.F) {
	f.Add([]byte("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCRL(data)
		if err != nil {
			return
		}
		for _, e := range c.Entries {
			if _, ok := c.Lookup(e.Serial); !ok {
				t.Fatalf("entry %v not found", e.Serial)
			}
		}
	})
}

// FuzzParseOCSP parses full and basic responses and exercises lookups.
func FuzzParseOCSP(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x01})
	dummy := &cert.Certificate{RawSubject: []byte{0x30, 0x00}, RawSubjectPublicKeyInfo: []byte{0x30, 0x00}}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseOCSPResponse(data)
		if err != nil {
			if r, err = ParseBasicOCSPResponse(data); err != nil {
				return
			}
		}
		for _, s := range r.Responses {
			dummy.SerialNumber = s.Serial
			r.Find(dummy, dummy)
		}
		r.CheckSignature(dummy)
	})
}
