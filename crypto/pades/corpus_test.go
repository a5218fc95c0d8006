package pades

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func verifyFile(t *testing.T, path string) *Result {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(context.Background(), f, st.Size(), Options{})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return res
}

func problemIDs(s *Signature) []string {
	var out []string
	for _, p := range s.Problems {
		out = append(out, p.ID)
	}
	return out
}

// TestCorpusStructure checks what the corpus samples are known to hold
// (testdata/signatures/MANIFEST.tsv): signature counts, document
// timestamps, the structural defects of the negatives, intact CMS values
// and changes after signing.
func TestCorpusStructure(t *testing.T) {
	tests := []struct {
		file       string
		sigs       int
		docTS      int
		problems   map[int]string // signature index -> first problem id
		contentMod int            // index of a signature with content changes after it, -1 none
		dss        bool
	}{
		{"pdf-signed-original.pdf", 1, 0, nil, -1, false},
		{"pdf-signed-corrupted.pdf", 1, 0, map[int]string{0: "byterange"}, -1, false},
		{"pdf-signed-out-of-byteRange.pdf", 1, 0, map[int]string{0: "byterange"}, -1, false},
		{"pdf-byterange-overlap.pdf", 2, 0, map[int]string{1: "byterange"}, -1, false},
		{"pdf-spoofing-attack.pdf", 1, 0, map[int]string{0: "dictionary"}, 0, false},
		{"modified_after_signature.pdf", 1, 0, nil, 0, false},
		{"dss-2236/hide.pdf", 1, 0, nil, 0, false},
		{"dss-2236/replace.pdf", 1, 0, nil, 0, false},
		{"PAdES-LT.pdf", 4, 1, nil, -1, true},
		{"Signature-P-DE_SCI-4.pdf", 2, 1, nil, -1, true},
		{"pades-5-signatures-and-1-document-timestamp.pdf", 6, 1, nil, -1, false},
		{"retrieved-modified_after_signature.pdf", 0, 0, nil, -1, false},
		{"dss-PLAIN-ECDSA/TeleSec_PKS_eIDAS_QES_CA_1-baseline-b.pdf", 1, 0, nil, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res := verifyFile(t, filepath.Join("../../testdata/signatures/pades", tt.file))
			if len(res.Signatures) != tt.sigs {
				t.Fatalf("%d signatures, want %d", len(res.Signatures), tt.sigs)
			}
			if (res.DSS != nil) != tt.dss {
				t.Errorf("DSS dictionary found: %v, want %v", res.DSS != nil, tt.dss)
			}
			docTS := 0
			for i, s := range res.Signatures {
				ids := problemIDs(s)
				want := tt.problems[i]
				switch {
				case want == "" && len(ids) > 0:
					t.Errorf("signature %d: unexpected problems %v", i, s.Problems)
				case want != "" && (len(ids) == 0 || ids[0] != want):
					t.Errorf("signature %d: problems %v, want %s first", i, s.Problems, want)
				}
				if s.DocumentTimestamp() {
					docTS++
					if s.Timestamp == nil || !s.Timestamp.Valid && want == "" {
						t.Errorf("document timestamp %d does not verify", i)
					}
					continue
				}
				if s.CMS == nil || len(s.CMS.Signers) == 0 {
					t.Errorf("signature %d: no CMS result (%v)", i, s.ParseErr)
					continue
				}
				content := false
				for _, c := range s.Changes {
					content = content || c.Kind == ChangeContent
				}
				if (i == tt.contentMod) != content && (i == tt.contentMod || len(res.Signatures) == 1) {
					t.Errorf("signature %d: content changed after it %v, want %v (changes %v)", i, content, i == tt.contentMod, s.Changes)
				}
			}
			if docTS != tt.docTS {
				t.Errorf("%d document timestamps, want %d", docTS, tt.docTS)
			}
		})
	}
}

// TestDigestOfIntactSignature: the intact sample's CMS digest matches the
// streamed ByteRange; the corrupted twin's does not.
func TestDigestOfIntactSignature(t *testing.T) {
	for file, want := range map[string]bool{"pdf-signed-original.pdf": true, "pdf-signed-corrupted.pdf": false} {
		res := verifyFile(t, filepath.Join("../../testdata/signatures/pades", file))
		sr := res.Signatures[0].CMS.Signers[0]
		if sr.Valid != want {
			t.Errorf("%s: CMS valid %v, want %v (%v)", file, sr.Valid, want, sr.Checks)
		}
	}
}
