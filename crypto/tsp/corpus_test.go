package tsp

import (
	"crypto"
	"crypto/sha256"
	"os"
	"testing"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/internal/corpus"
)

func readTSP(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(corpus.Path(t, "signatures", "tsp", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func outcome(t *testing.T, r *Result, id cms.CheckID) cms.Outcome {
	t.Helper()
	c, ok := r.Check(id)
	if !ok {
		t.Fatalf("check %s missing", id)
	}
	return c.Outcome
}

func TestDTrustToken(t *testing.T) {
	tok, err := ParseToken(readTSP(t, "d-trust.tsr"))
	if err != nil {
		t.Fatal(err)
	}
	data := readTSP(t, "d-trust.tsr.timestamped-data.txt")
	r := tok.Verify(VerifyOptions{Data: data})
	if !r.Signer.Intact || outcome(t, r, CheckImprint) != cms.Passed {
		t.Fatalf("checks %+v", r.Checks)
	}
	if r.Signer.SignatureAlgorithm.Scheme != sigalg.SchemeRSAPSS {
		t.Errorf("algorithm %s, DSS: RSASSA-PSS", r.Signer.SignatureAlgorithm.Name())
	}
	if tok.Info.GenTime.Year() != 2018 || tok.Info.Hash != crypto.SHA256 {
		t.Errorf("genTime %v hash %v", tok.Info.GenTime, tok.Info.Hash)
	}
	if outcome(t, r, CheckTSAExtKeyUsage) != cms.Passed {
		t.Errorf("EKU check failed")
	}
	if !r.Valid {
		t.Errorf("not valid: %v", failedChecks(r))
	}
	// DSS: without data the imprint is not found; with wrong data not intact.
	if r := tok.Verify(VerifyOptions{}); outcome(t, r, CheckImprint) != cms.NotChecked || r.Valid || !r.Signer.Intact {
		t.Errorf("without data: %v", failedChecks(r))
	}
	if r := tok.Verify(VerifyOptions{Data: []byte("Wrong data")}); outcome(t, r, CheckImprint) != cms.Failed || r.Valid {
		t.Errorf("wrong data accepted")
	}
}

func TestDisigTwoCertificates(t *testing.T) {
	tok, err := ParseToken(readTSP(t, "disig.tst"))
	if err != nil {
		t.Fatal(err)
	}
	r := tok.Verify(VerifyOptions{})
	if len(tok.SignedData.Certificates) != 2 || len(r.Signer.SigningCertificateRefs) != 2 {
		t.Errorf("certificates %d refs %d, DSS: 2 and 2", len(tok.SignedData.Certificates), len(r.Signer.SigningCertificateRefs))
	}
	if !r.Signer.Intact || outcome(t, r, cms.CheckSigningCertificateRef) != cms.Passed {
		t.Errorf("checks %+v", r.Checks)
	}
}

func TestArchiveTimestampImprint(t *testing.T) {
	tok, err := ParseToken(readTSP(t, "archive_timestamp.tst"))
	if err != nil {
		t.Fatal(err)
	}
	data := readTSP(t, "archive_timestamp.tst.timestamped-data.xml")
	if !tok.MatchesData(data) || tok.MatchesData([]byte{1, 2, 3}) || tok.MatchesData(nil) {
		t.Error("imprint matching wrong")
	}
	d := sha256.Sum256(data)
	r := tok.Verify(VerifyOptions{Digest: d[:]})
	if outcome(t, r, CheckImprint) != cms.Passed || !r.Signer.Intact || r.Signer.SignatureAlgorithm.Name() != "SHA-256withRSA" {
		t.Errorf("checks %+v", r.Checks)
	}
}

func TestBEREncodedTokenWithOCSP(t *testing.T) {
	tok, err := ParseToken(readTSP(t, "tst_with_broken_ocsp.tst"))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.SignedData.BER {
		t.Error("token should be recognised as BER")
	}
	r := tok.Verify(VerifyOptions{})
	ocsp := len(tok.SignedData.OCSPResponses) + len(r.Signer.RevocationValues.OCSPResponses)
	if ocsp != 1 {
		t.Errorf("OCSP responses: %d, DSS: 1", ocsp)
	}
}

func TestTwoReferenceKinds(t *testing.T) {
	tok, err := ParseToken(readTSP(t, "tst-two-refs.tst"))
	if err != nil {
		t.Fatal(err)
	}
	r := tok.Verify(VerifyOptions{})
	refs := r.Signer.SigningCertificateRefs
	if len(refs) != 2 || refs[0].Version == refs[1].Version {
		t.Fatalf("refs %+v, DSS: 2 (v1 and v2)", refs)
	}
	if len(tok.SignedData.Certificates) != 1 || !r.Signer.Intact {
		t.Errorf("certificates %d intact %v", len(tok.SignedData.Certificates), r.Signer.Intact)
	}
}
