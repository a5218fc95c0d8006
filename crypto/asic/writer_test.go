package asic_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/asic"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
)

// opensslSealer signs the manifest with openssl cms -cades, an independent
// CAdES-B implementation.
func opensslSealer(t *testing.T, p *verifytest.PKI) asic.Sealer {
	return asic.SealerFunc(func(_ context.Context, m []byte) ([]byte, error) { return p.Sign(t, m, false), nil })
}

func TestWriterRoundTrip(t *testing.T) {
	ctx := context.Background()
	p := verifytest.New(t, "p256")
	var b bytes.Buffer
	w, err := asic.NewWriter(&b, asic.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"evidence.json": `{"a":1}`, "message/original.eml": "Subject: x\r\n\r\nHallo\r\n", "log/events/001 Received.json": "{}"}
	for _, name := range []string{"evidence.json", "message/original.eml", "log/events/001 Received.json"} {
		if _, err := w.Add(ctx, name, "text/plain", strings.NewReader(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Seal(ctx, opensslSealer(t, p)); err != nil {
		t.Fatal(err)
	}
	c, err := asic.Open(ctx, b.Bytes(), asic.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != asic.TypeE || c.MimeType != asic.MimeTypeE || len(c.DataObjects) != 3 || len(c.CAdESSignatures) != 1 {
		t.Fatalf("opened %s (%q) with %d objects and %d CAdES signatures", c.Type, c.MimeType, len(c.DataObjects), len(c.CAdESSignatures))
	}
	m, err := c.ManifestFor(asic.SignatureName)
	if err != nil {
		t.Fatal(err)
	}
	for _, cr := range m.Check(c) {
		if cr.Status != asic.RefOK {
			t.Errorf("%s: %s %s", cr.URI, cr.Status, cr.Detail)
		}
		if want, ok := files[cr.Name]; !ok {
			t.Errorf("manifest names %q (URI %q), not a written file", cr.Name, cr.URI)
		} else if got, _ := c.DataObject(cr.Name); string(got) != want {
			t.Errorf("%s holds %q", cr.Name, got)
		}
	}
	store := trust.NewStore()
	if err := store.LoadAnchors(ctx, p.CACert); err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(ctx, b.Bytes(), verify.Options{Trust: store})
	if err != nil {
		t.Fatal(err)
	}
	if !verify.AllPassed(rep) {
		t.Fatalf("crypto/verify does not pass the container: %+v", rep.Signatures)
	}
	if len(rep.Signatures) != 1 || rep.Signatures[0].Indication != report.TotalPassed {
		t.Fatalf("signatures: %+v", rep.Signatures)
	}
}

func TestWriterRefuses(t *testing.T) {
	ctx := context.Background()
	seal := asic.SealerFunc(func(context.Context, []byte) ([]byte, error) { return []byte{0x30, 0}, nil })
	tests := []struct {
		name string
		run  func(w *asic.Writer) error
		want error
	}{
		{"META-INF entry", func(w *asic.Writer) error {
			_, err := w.Add(ctx, "META-INF/x.xml", "", strings.NewReader("x"))
			return err
		}, nil},
		{"dot-dot", func(w *asic.Writer) error { _, err := w.Add(ctx, "../x", "", strings.NewReader("x")); return err }, nil},
		{"twice", func(w *asic.Writer) error {
			w.Add(ctx, "a.txt", "", strings.NewReader("x"))
			_, err := w.Add(ctx, "A.txt", "", strings.NewReader("x"))
			return err
		}, nil},
		{"entry too large", func(w *asic.Writer) error {
			_, err := w.Add(ctx, "big", "", bytes.NewReader(make([]byte, 101)))
			return err
		}, asic.ErrWriterLimit},
		{"too many entries", func(w *asic.Writer) error {
			var err error
			for i := 0; err == nil && i < 10; i++ {
				_, err = w.Add(ctx, "f"+string(rune('a'+i)), "", strings.NewReader("x"))
			}
			return err
		}, asic.ErrWriterLimit},
		{"nothing to seal", func(w *asic.Writer) error { return w.Seal(ctx, seal) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := asic.NewWriter(&bytes.Buffer{}, asic.Limits{MaxEntries: 5, MaxEntrySize: 100})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.run(w)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}
