package xmldsig

import (
	"testing"
)

// FuzzVerify drives the parser, both canonicalizations and the signature
// checks with arbitrary documents; seeds are in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(excSpecDoc))
	f.Add([]byte(`<a xmlns="urn:x" Id="i"><b xmlns="">t&amp;<![CDATA[x]]></b>` + withRef("#i") + `</a>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse(data, Limits{MaxBytes: 1 << 20, MaxNodes: 10000})
		if err != nil {
			return
		}
		C14N{Exclusive: true}.CanonicalizeDocument(doc, nil)
		C14N{Comments: true}.Canonicalize(doc.Root, nil)
		_, _ = Verify(doc, Options{})
	})
}
