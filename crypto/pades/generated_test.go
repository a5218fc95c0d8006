package pades_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/pades"
	"github.com/poststelle/poststelle/crypto/pades/padestest"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
)

// sha256Alg is the DER AlgorithmIdentifier of SHA-256 (absent parameters).
var sha256Alg = []byte{0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}

func verifyBytes(t *testing.T, pdf []byte) *pades.Result {
	t.Helper()
	res, err := pades.Verify(context.Background(), bytes.NewReader(pdf), int64(len(pdf)), pades.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func kinds(s *pades.Signature) map[pades.ChangeKind]int {
	out := map[pades.ChangeKind]int{}
	for _, c := range s.Changes {
		out[c.Kind]++
	}
	return out
}

// TestGenerated signs generated PDFs with openssl (CAdES) and the test TSA
// (document timestamps) and checks what crypto/pades finds in them and in
// their altered copies.
func TestGenerated(t *testing.T) {
	p := verifytest.New(t, "p256")
	tsa := tsptest.New(t, tsptest.Normal)
	cades := func(covered []byte) ([]byte, error) { return p.Sign(t, covered, false), nil }
	stamp := func(covered []byte) ([]byte, error) {
		sum := sha256.Sum256(covered)
		return tsa.Token(sha256Alg, sum[:], nil), nil
	}
	signed, err := padestest.Sign(padestest.Unsigned("Antrag", 0), "Sig", "ETSI.CAdES.detached", cades)
	if err != nil {
		t.Fatal(err)
	}
	stamped, err := padestest.Sign(padestest.Unsigned("Antrag", 0), "DocTimeStamp", "ETSI.RFC3161", stamp)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("signed", func(t *testing.T) {
		res := verifyBytes(t, signed)
		if len(res.Signatures) != 1 || len(res.Signatures[0].Problems) != 0 {
			t.Fatalf("signatures %+v", res.Signatures)
		}
		s := res.Signatures[0]
		if s.CMS == nil || !s.CMS.Signers[0].Valid || s.RevisionEnd != int64(len(signed)) || len(s.Changes) != 0 {
			t.Errorf("CMS %+v, revision end %d of %d, changes %v", s.CMS, s.RevisionEnd, len(signed), s.Changes)
		}
	})
	t.Run("altered byte", func(t *testing.T) {
		res := verifyBytes(t, bytes.Replace(bytes.Clone(signed), []byte("(Antrag)"), []byte("(Antrog)"), 1))
		c, _ := res.Signatures[0].CMS.Signers[0].Check(cms.CheckMessageDigest)
		if c.Outcome != cms.Failed {
			t.Errorf("message digest %v, want failed", c)
		}
	})
	t.Run("document timestamp", func(t *testing.T) {
		res := verifyBytes(t, stamped)
		s := res.Signatures[0]
		if !s.DocumentTimestamp() || s.Timestamp == nil || !s.Timestamp.Valid {
			t.Fatalf("document timestamp %+v", s)
		}
		res = verifyBytes(t, bytes.Replace(bytes.Clone(stamped), []byte("(Antrag)"), []byte("(Antrog)"), 1))
		if res.Signatures[0].Timestamp.Valid {
			t.Error("document timestamp valid over altered bytes")
		}
	})
	t.Run("changes", func(t *testing.T) {
		annotated := verifyBytes(t, padestest.AddAnnotation(signed)).Signatures[0]
		if k := kinds(annotated); k[pades.ChangeAnnotation] != 2 || k[pades.ChangeContent] != 0 {
			t.Errorf("annotation update classified %v (%v)", k, annotated.Changes)
		}
		changed := verifyBytes(t, padestest.ChangeContent(signed, "Abgelehnt")).Signatures[0]
		if k := kinds(changed); k[pades.ChangeContent] != 1 {
			t.Errorf("content update classified %v", k)
		}
		// A document timestamp over the signed file is a further signature.
		both, err := padestest.SignSecond(signed, "DocTimeStamp", "ETSI.RFC3161", stamp)
		if err != nil {
			t.Fatal(err)
		}
		res := verifyBytes(t, both)
		if len(res.Signatures) != 2 || !res.Signatures[1].DocumentTimestamp() || !res.Signatures[1].Timestamp.Valid {
			t.Fatalf("signature and document timestamp: %+v", res.Signatures)
		}
		if k := kinds(res.Signatures[0]); k[pades.ChangeContent] != 0 || k[pades.ChangeSignature] != 2 || k[pades.ChangeFormFill] != 1 {
			t.Errorf("document timestamp update classified %v (%v)", k, res.Signatures[0].Changes)
		}
	})
	t.Run("rewritten dictionary", func(t *testing.T) {
		rw, err := padestest.RewriteSignature(signed)
		if err != nil {
			t.Fatal(err)
		}
		s := verifyBytes(t, rw).Signatures[0]
		if len(s.Problems) == 0 || s.Problems[0].ID != "dictionary" {
			t.Errorf("problems %v, want the dictionary inconsistency", s.Problems)
		}
	})
}
