package cert

import (
	"os"
	"testing"

	"github.com/poststelle/poststelle/internal/corpus"
)

func FuzzParseCertificate(f *testing.F) {
	for _, p := range [][]string{
		{"signatures", "pki", "D-TRUST_CA_3-1_2016.cer"},
		{"signatures", "pki", "D-TRUST_Root_CA_1_2017.crt"},
		{"osci", "zertifikate", "alice_signature_4096.cer"},
	} {
		b, err := os.ReadFile(corpus.Path(f, p...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := Parse(der)
		if err != nil {
			return
		}
		// Whatever parses must be usable without panics.
		_ = c.String()
		_ = c.SelfIssued()
		_ = c.CheckSignatureFrom(c)
		if c.QC != nil {
			_ = c.QC.HasType(OIDQcTypeESign)
		}
	})
}
