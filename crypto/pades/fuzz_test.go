package pades_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/poststelle/poststelle/crypto/pades"
	"github.com/poststelle/poststelle/crypto/pades/padestest"
)

// FuzzVerify feeds arbitrary bytes to the PDF reader and the signature
// checks: an error wrapping ErrMalformed or a result, never a panic; the
// limits keep every input's time and memory bounded. Seeds are committed
// under testdata/fuzz/FuzzVerify (generated documents, signed with a
// stand-in CMS, updated, and broken).
func FuzzVerify(f *testing.F) {
	unsigned := padestest.Unsigned("Antrag", 0)
	junk := func([]byte) ([]byte, error) { return []byte{0x30, 0x03, 0x02, 0x01, 0x01}, nil }
	signed, err := padestest.Sign(unsigned, "Sig", "ETSI.CAdES.detached", junk)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(unsigned)
	f.Add(padestest.AddAnnotation(signed))
	f.Add(padestest.ChangeContent(signed, "x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := pades.Limits{MaxObjectBytes: 1 << 20, MaxStreamBytes: 1 << 20, MaxDecodedBytes: 4 << 20}
		res, err := pades.Verify(context.Background(), bytes.NewReader(data), int64(len(data)), pades.Options{Limits: lim})
		if err != nil {
			if !errors.Is(err, pades.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		for _, s := range res.Signatures {
			if len(s.Problems) == 0 && s.RevisionEnd > int64(len(data)) {
				t.Fatalf("signature ending at %d of %d bytes without a problem", s.RevisionEnd, len(data))
			}
		}
	})
}
