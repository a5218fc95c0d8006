package cms

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"strings"
	"testing"
)

const hostileSize = 2 << 20

func countElements(t *testing.T, in []byte) (int, error) {
	t.Helper()
	c := &berConverter{in: in}
	err := c.element(0, false)
	return c.elements, err
}

func TestHostileInputs(t *testing.T) {
	deepIndef := bytes.Repeat([]byte{0x30, 0x80}, hostileSize/2)
	deepSegments := append([]byte{0x30, 0x80, 0x06, 0x01, 0x01}, bytes.Repeat([]byte{0x24, 0x80}, hostileSize/2)...)
	siblings := append(append([]byte{0x30, 0x80}, bytes.Repeat([]byte{0x05, 0x00}, hostileSize/2)...), 0, 0)
	segments := append(append([]byte{0x24, 0x80}, bytes.Repeat([]byte{0x04, 0x01, 'x'}, hostileSize/3)...), 0, 0)
	deepDefinite := []byte{0x05, 0x00}
	for i := 0; i < 100; i++ {
		deepDefinite = append(append([]byte{0x30}, appendLength(nil, len(deepDefinite))...), deepDefinite...)
	}
	tests := []struct {
		name        string
		in          []byte
		wantErr     string
		maxElements int
	}{
		{"nested indefinite", deepIndef, "nesting deeper", MaxDepth + 2},
		{"nested constructed OCTET STRING", deepSegments, "nesting deeper", MaxDepth + 3},
		{"many siblings", siblings, "", hostileSize/2 + 1},
		{"nested definite (DER fast path)", deepDefinite, "nesting deeper", MaxDepth + 2},
		{"one-byte segments", segments, "", hostileSize/3 + 1},
		{"huge length", []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00}, "exceeds", 1},
		{"5-byte length", []byte{0x30, 0x85, 0x01, 0, 0, 0, 0}, "too large", 1},
		{"unterminated indefinite", []byte{0x30, 0x80, 0x05, 0x00}, "truncated", 3},
		{"indefinite primitive", []byte{0x04, 0x80, 0x00, 0x00}, "primitive", 1},
		{"stray end-of-contents", []byte{0x30, 0x02, 0x00, 0x00}, "end-of-contents", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := countElements(t, tt.in)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			// Linear work: each element is visited once.
			if n > tt.maxElements {
				t.Errorf("visited %d elements, bound %d", n, tt.maxElements)
			}
			// Parse must reject all of these (none is a SignedData) with a
			// format error and never panic.
			if _, err := Parse(tt.in); !errors.Is(err, ErrFormat) {
				t.Errorf("Parse: %v, want ErrFormat", err)
			}
		})
	}
}

func TestSegmentedContentJoined(t *testing.T) {
	in := []byte{0x24, 0x80, 0x04, 0x02, 'a', 'b', 0x24, 0x80, 0x04, 0x01, 'c', 0x00, 0x00, 0x04, 0x00, 0x00, 0x00}
	out, _, err := normalizeBER(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x04, 0x03, 'a', 'b', 'c'}; !bytes.Equal(out, want) {
		t.Fatalf("got % x, want % x", out, want)
	}
	if _, _, err := normalizeBER([]byte{0x24, 0x03, 0x02, 0x01, 0x00}); err == nil {
		t.Fatal("non-OCTET STRING segment accepted")
	}
}

func TestDERUnchanged(t *testing.T) {
	der := readCorpus(t, "signatures", "cades", "CAdESDoubleLTA.p7m")
	out, _, err := normalizeBER(der)
	if err != nil || !bytes.Equal(out, der) {
		t.Fatalf("DER input changed by normalization (err %v)", err)
	}
}

func TestNonMinimalLengthNormalized(t *testing.T) {
	out, orig, err := normalizeBER([]byte{0x30, 0x81, 0x05, 0xa0, 0x81, 0x02, 0x05, 0x00, 0x00})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x30, 0x04, 0xa0, 0x02, 0x05, 0x00}; !bytes.Equal(out, want) {
		t.Fatalf("got % x", out)
	}
	if got := orig[2]; !bytes.Equal(got, []byte{0xa0, 0x81, 0x02, 0x05, 0x00}) {
		t.Fatalf("original of [0] element: % x", got)
	}
}

// BenchmarkNormalizeHostile shows linear scaling: compare ns/op of the
// 1 MB and 2 MB sub-benchmarks (about 2x). No timing assertions in tests.
func BenchmarkNormalizeHostile(b *testing.B) {
	for _, size := range []int{1 << 20, 2 << 20} {
		in := append(append([]byte{0x30, 0x80}, bytes.Repeat([]byte{0x24, 0x80, 0x04, 0x01, 'x', 0x00, 0x00}, size/7)...), 0, 0)
		b.Run(strings.Repeat("M", size>>20), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for i := 0; i < b.N; i++ {
				if _, _, err := normalizeBER(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzParseSignedData(f *testing.F) {
	for _, p := range []string{"dss-2011/cades-detached.pkcs7", "counterSig.p7m", "wrongContentHints.p7m", "Signature-C-B-B-8.p7m"} {
		b, err := os.ReadFile(corpusFile(f, "cades", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not wrapping ErrFormat: %v", err)
			}
			return
		}
		res := sd.Verify(VerifyOptions{DetachedContent: []byte("Hello World")})
		for _, r := range res.Signers {
			if r.Valid && !r.Intact {
				t.Fatal("valid but not intact")
			}
		}
	})
}

func TestVerificationBudget(t *testing.T) {
	sd, err := Parse(readCorpus(t, "signatures", "cades", "dss-2011", "cades-enveloping.pkcs7"))
	if err != nil {
		t.Fatal(err)
	}
	budget := 0
	v := &verifier{sd: sd, digests: map[crypto.Hash][]byte{}, budget: &budget, certs: sd.Certificates}
	r := v.verifySigner(sd.Signers[0], 0)
	if c, _ := r.Check(CheckSignatureValue); c.Outcome != NotChecked || !strings.Contains(c.Detail, "budget") {
		t.Fatalf("signature check with exhausted budget: %+v", c)
	}
	if r.Valid || r.Intact {
		t.Fatal("valid without verification")
	}
}

// FuzzATSHashIndex feeds the ats-hash-index parser, seeded with the indexes
// of the corpus's archive-time-stamp-v3 samples: an error or an index whose
// lists respect the entry cap, never a panic.
func FuzzATSHashIndex(f *testing.F) {
	for _, p := range []string{"CAdESDoubleLTA.p7m", "cades-ats-v3-wrong-cert.p7m", "Signature-C-B-LTA-10.p7m"} {
		sd, err := Parse(readCorpus(f, "signatures", "cades", p))
		if err != nil {
			f.Fatal(err)
		}
		for _, ts := range sd.Verify(VerifyOptions{}).Signers[0].Timestamps {
			if idx, err := findATSHashIndex(ts.Token); err == nil {
				f.Add(idx.raw)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := parseATSHashIndex(data)
		if err != nil {
			return
		}
		for _, l := range [][][]byte{idx.certs, idx.crls, idx.attrs} {
			if len(l) > maxATSIndexEntries {
				t.Fatalf("%d entries, cap %d", len(l), maxATSIndexEntries)
			}
		}
		if idx.hash == 0 {
			t.Fatal("index without hash algorithm")
		}
	})
}
