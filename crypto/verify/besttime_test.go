package verify

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/internal/corpus"
)

func TestBeforeIssuance(t *testing.T) {
	issued := time.Date(2021, 5, 28, 7, 0, 0, 0, time.UTC)
	leaf := &cert.Certificate{SerialNumber: big.NewInt(1), NotBefore: issued}
	before, after := issued.Add(-time.Second), issued.Add(time.Second)
	tests := []struct {
		name    string
		leaf    *cert.Certificate
		best    time.Time
		ind     report.Indication
		sub     report.SubIndication
		wantInd report.Indication
		wantSub report.SubIndication
	}{
		{"passed, best before issuance", leaf, before, report.TotalPassed, "", report.TotalFailed, report.NotYetValid},
		{"not yet valid, best before issuance", leaf, before, report.Indeterminate, report.NotYetValid, report.TotalFailed, report.NotYetValid},
		{"passed, best after issuance", leaf, after, report.TotalPassed, "", report.TotalPassed, ""},
		{"best at issuance", leaf, issued, report.TotalPassed, "", report.TotalPassed, ""},
		{"other indeterminate kept", leaf, before, report.Indeterminate, report.NoCertificateChainFound, report.Indeterminate, report.NoCertificateChainFound},
		{"failure kept", leaf, before, report.TotalFailed, report.HashFailure, report.TotalFailed, report.HashFailure},
		{"no signing certificate", nil, before, report.Indeterminate, report.NoSigningCertificateFound, report.Indeterminate, report.NoSigningCertificateFound},
	}
	for _, tc := range tests {
		ind, sub := beforeIssuance(tc.leaf, tc.best, tc.ind, tc.sub)
		if ind != tc.wantInd || sub != tc.wantSub {
			t.Errorf("%s: %s/%s, want %s/%s", tc.name, ind, sub, tc.wantInd, tc.wantSub)
		}
	}
}

// TestSignatureTimestampAfterValidationTime: a signature timestamp that
// passes but was made after the validation time proves nothing at that
// time; one second later it is the best-signature time.
func TestSignatureTimestampAfterValidationTime(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpus.Path(t, "signatures"), "cades", "Signature-CBp-LT-2.p7m"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := LoadTrust(context.Background(), TrustConfig{Paths: []string{filepath.Join(oracleDir, "anchors", "cades", "Signature-CBp-LT-2.p7m")}})
	if err != nil {
		t.Fatal(err)
	}
	genTime := time.Date(2013, 12, 4, 15, 0, 55, 0, time.UTC)
	for _, tc := range []struct {
		at, wantBest time.Time
	}{
		{genTime.Add(-time.Second), genTime.Add(-time.Second)},
		{genTime.Add(24 * time.Hour), genTime},
	} {
		rep, err := Verify(context.Background(), data, Options{Time: tc.at, Trust: store})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Signatures) != 1 || len(rep.Signatures[0].Timestamps) == 0 {
			t.Fatalf("at %s: no signature with a timestamp", tc.at)
		}
		s := rep.Signatures[0]
		if ts := s.Timestamps[0]; ts.Indication != report.Passed || !ts.GenTime.Equal(genTime) {
			t.Fatalf("at %s: timestamp %s at %s, want PASSED at %s", tc.at, ts.Indication, ts.GenTime, genTime)
		}
		if s.BestSignatureTime == nil || !s.BestSignatureTime.Equal(tc.wantBest) {
			t.Errorf("at %s: best-signature time %v, want %s", tc.at, s.BestSignatureTime, tc.wantBest)
		}
	}
}
