package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/pades/padestest"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
)

// signedPDF signs a generated one-page PDF with p (openssl cms -cades).
func signedPDF(t testing.TB, p *verifytest.PKI, subFilter string) []byte {
	t.Helper()
	pdf, err := padestest.Sign(padestest.Unsigned("Antrag Az. 63-2026-117", 0), "Sig", subFilter,
		func(covered []byte) ([]byte, error) { return p.Sign(t, covered, false), nil })
	if err != nil {
		t.Fatal(err)
	}
	return pdf
}

func findCheck(s report.Signature, id string) (report.Check, bool) {
	for _, c := range s.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return report.Check{}, false
}

// TestGeneratedPDFs verifies PDFs signed at test time, and the negatives
// made from them, end to end: our own PDF writer, openssl's CMS, the CA's
// CRL inside the signature and the CA as the only anchor.
func TestGeneratedPDFs(t *testing.T) {
	p := verifytest.New(t, "rsa")
	store := anchors(t, p)
	signed := signedPDF(t, p, "ETSI.CAdES.detached")
	altered := bytes.Replace(bytes.Clone(signed), []byte("(Antrag Az."), []byte("(Antrag Az:"), 1)
	rewritten, err := padestest.RewriteSignature(signed)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		data   []byte
		ind    report.Indication
		sub    report.SubIndication
		change report.CheckResult // result of pades.modified-after-signing, "" when absent
	}{
		{"signed", signed, report.TotalPassed, "", ""},
		{"pkcs7 subfilter", signedPDF(t, p, "adbe.pkcs7.detached"), report.TotalPassed, "", ""},
		{"altered byte", altered, report.TotalFailed, report.HashFailure, ""},
		{"annotation after signing", padestest.AddAnnotation(signed), report.TotalPassed, "", report.CheckInfo},
		{"content changed after signing", padestest.ChangeContent(signed, "Antrag abgelehnt"), report.TotalPassed, "", report.CheckWarning},
		{"signature dictionary rewritten", rewritten, report.TotalFailed, report.FormatFailure, report.CheckInfo},
		{"truncated", signed[:len(signed)-200], report.TotalFailed, report.FormatFailure, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := verify.Verify(context.Background(), tc.data, verify.Options{Trust: store})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Signatures) != 1 {
				t.Fatalf("%d signatures, want 1", len(rep.Signatures))
			}
			s := rep.Signatures[0]
			if s.Indication != tc.ind || s.SubIndication != tc.sub {
				t.Errorf("%s/%s, want %s/%s; checks %+v", s.Indication, s.SubIndication, tc.ind, tc.sub, s.Checks)
			}
			c, ok := findCheck(s, "pades.modified-after-signing")
			if ok != (tc.change != "") || c.Result != tc.change {
				t.Errorf("modification check %+v (present %v), want %q", c, ok, tc.change)
			}
			if err := rep.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestUnsignedPDF: a PDF without signatures is a report with none, which
// does not pass (exit status 1 of poststelle verify), as DSS reports it.
func TestUnsignedPDF(t *testing.T) {
	rep, err := verify.Verify(context.Background(), padestest.Unsigned("ohne Signatur", 0), verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Signatures) != 0 || verify.AllPassed(rep) {
		t.Errorf("unsigned PDF: %d signatures, passed %v", len(rep.Signatures), verify.AllPassed(rep))
	}
}

// TestGeneratedPDFDocumentTimestamp: a document timestamp after the
// signature is listed with it, proves its existence and makes it T level;
// alone in a PDF it is a standalone timestamp.
func TestGeneratedPDFDocumentTimestamp(t *testing.T) {
	p := verifytest.New(t, "rsa")
	tsa := tsptest.New(t, tsptest.Normal)
	tsaPEM := filepath.Join(t.TempDir(), "tsa.pem")
	if err := os.WriteFile(tsaPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tsa.CertDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := verify.LoadTrust(context.Background(), verify.TrustConfig{Paths: []string{p.CACert, tsaPEM}})
	if err != nil {
		t.Fatal(err)
	}
	stamp := func(covered []byte) ([]byte, error) {
		sum := sha256.Sum256(covered)
		alg := []byte{0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}
		return tsa.Token(alg, sum[:], nil), nil
	}
	stamped, err := padestest.SignSecond(signedPDF(t, p, "ETSI.CAdES.detached"), "DocTimeStamp", "ETSI.RFC3161", stamp)
	if err != nil {
		t.Fatal(err)
	}
	// A minute later: the validation time is kept to the second, the
	// token's genTime to the millisecond.
	at := time.Now().Add(time.Minute)
	rep, err := verify.Verify(context.Background(), stamped, verify.Options{Trust: store, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Signatures) != 1 || len(rep.Timestamps) != 0 {
		t.Fatalf("%d signatures, %d standalone timestamps; want 1 and 0", len(rep.Signatures), len(rep.Timestamps))
	}
	s := rep.Signatures[0]
	if s.Indication != report.TotalPassed || len(s.Timestamps) != 1 || s.Timestamps[0].Type != report.DocumentTimestamp ||
		s.Timestamps[0].Indication != report.Passed {
		t.Fatalf("signature %s/%s with timestamps %+v", s.Indication, s.SubIndication, s.Timestamps)
	}
	if !s.BestSignatureTime.Equal(s.Timestamps[0].GenTime) || s.Format != "PAdES-BES" {
		t.Errorf("best signature time %v, timestamp %v, format %s", s.BestSignatureTime, s.Timestamps[0].GenTime, s.Format)
	}
	alone, err := padestest.Sign(padestest.Unsigned("Antrag", 0), "DocTimeStamp", "ETSI.RFC3161", stamp)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = verify.Verify(context.Background(), alone, verify.Options{Trust: store})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Signatures) != 0 || len(rep.Timestamps) != 1 || rep.Timestamps[0].Indication != report.Passed || !verify.AllPassed(rep) {
		t.Errorf("document timestamp alone: %+v", rep.Timestamps)
	}
}

// TestGeneratedPDFDocMDP: an annotation after a certification signature is
// reported against its DocMDP permission, without changing the verdict.
func TestGeneratedPDFDocMDP(t *testing.T) {
	p := verifytest.New(t, "rsa")
	store := anchors(t, p)
	for perm, want := range map[int]report.CheckResult{1: report.CheckWarning, 2: report.CheckWarning, 3: report.CheckOK} {
		certified, err := padestest.Certify(padestest.Unsigned("Bescheid", 0), perm,
			func(covered []byte) ([]byte, error) { return p.Sign(t, covered, false), nil })
		if err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Verify(context.Background(), padestest.AddAnnotation(certified), verify.Options{Trust: store})
		if err != nil {
			t.Fatal(err)
		}
		s := rep.Signatures[0]
		c, ok := findCheck(s, "pades.docmdp")
		if !ok || c.Result != want || s.Indication != report.TotalPassed {
			t.Errorf("P=%d: docmdp check %+v (present %v), indication %s; want %s", perm, c, ok, s.Indication, want)
		}
		if s.SigningTime == nil {
			t.Errorf("P=%d: no signing time", perm)
		}
	}
}
