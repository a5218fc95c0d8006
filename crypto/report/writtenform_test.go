package report

import (
	"strings"
	"testing"
)

func TestEvaluateWrittenForm(t *testing.T) {
	passed := func(id string, q Qualification) Signature {
		return Signature{ID: id, Indication: TotalPassed, Qualification: q}
	}
	tests := []struct {
		name       string
		sigs       []Signature
		acceptSeal bool
		want       bool
		reason     string
	}{
		{"no signatures", nil, false, false, "carries no signature"},
		{"valid QES", []Signature{passed("S-1", QESig)}, false, true, "S-1 is a valid qualified electronic signature"},
		{"QES among others", []Signature{passed("S-1", AdESig), passed("S-2", QESig)}, false, true, "S-2"},
		{"seal not accepted", []Signature{passed("S-1", QESeal)}, false, false, "does not replace the written form here"},
		{"seal accepted", []Signature{passed("S-1", QESeal)}, true, true, "qualified electronic seal (QESeal), which is accepted"},
		{"AdES with QC is not enough", []Signature{passed("S-1", AdESigQC)}, true, false, "valid but not qualified (AdESig-QC)"},
		{"indeterminate QES", []Signature{{ID: "S-1", Indication: Indeterminate, SubIndication: TryLater, Qualification: IndeterminateQESig}},
			false, false, "S-1 is INDETERMINATE/TRY_LATER"},
		{"failed QES", []Signature{{ID: "S-1", Indication: TotalFailed, SubIndication: HashFailure, Qualification: QESig}},
			false, false, "TOTAL_FAILED/HASH_FAILURE"},
		{"only a countersignature is QES", []Signature{
			{ID: "S-1", Indication: Indeterminate, SubIndication: NoCertificateChainFound, Qualification: QualificationNotApplicable},
			{ID: "S-2", CounterSignatureOf: "S-1", Indication: TotalPassed, Qualification: QESig},
		}, false, false, "S-1 is INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND"},
		{"only countersignatures", []Signature{{ID: "S-2", CounterSignatureOf: "S-1", Indication: TotalPassed, Qualification: QESig}},
			false, false, "carries no signature"},
		{"every reason listed", []Signature{passed("S-1", AdESig), {ID: "S-2", Indication: TotalFailed, SubIndication: SigCryptoFailure, Qualification: QESig}},
			false, false, "S-1 is valid but not qualified (AdESig); signature S-2 is TOTAL_FAILED/SIG_CRYPTO_FAILURE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := EvaluateWrittenForm(tt.sigs, WrittenFormPolicy{AcceptSeal: tt.acceptSeal})
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("got (%v, %q), want (%v, …%q…)", got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestApplyWrittenForm(t *testing.T) {
	r := &Report{Signatures: []Signature{{ID: "S-1", Indication: TotalPassed, Qualification: QESeal}}}
	r.ApplyWrittenForm(WrittenFormPolicy{AcceptSeal: true})
	if !r.WrittenFormSatisfied || r.WrittenFormReason == "" {
		t.Errorf("seal accepted: got %v %q", r.WrittenFormSatisfied, r.WrittenFormReason)
	}
	r.ApplyWrittenForm(WrittenFormPolicy{})
	if r.WrittenFormSatisfied {
		t.Errorf("seal not accepted: still satisfied (%q)", r.WrittenFormReason)
	}
}

func TestConsistent(t *testing.T) {
	tests := []struct {
		ind  Indication
		sub  SubIndication
		want bool
	}{
		{TotalPassed, NoSubIndication, true},
		{TotalPassed, HashFailure, false},
		{Passed, NoSubIndication, true},
		{TotalFailed, HashFailure, true},
		{TotalFailed, Revoked, true},
		{TotalFailed, NotYetValid, true},
		{TotalFailed, OutOfBoundsNoPOE, false},
		{Failed, SigCryptoFailure, true},
		{Indeterminate, NoCertificateChainFound, true},
		{Indeterminate, SignedDataNotFound, true},
		{Indeterminate, Expired, true},
		{Indeterminate, HashFailure, false},
		{Indeterminate, NoSubIndication, true},
		{"BOGUS", NoSubIndication, false},
	}
	for _, tt := range tests {
		if got := Consistent(tt.ind, tt.sub); got != tt.want {
			t.Errorf("Consistent(%s, %q) = %v, want %v", tt.ind, tt.sub, got, tt.want)
		}
	}
}

// TestNamesMatchStandard pins every name the brief and EN 319 102-1 list, so a
// typo in a constant fails here rather than in a comparison with DSS.
func TestNamesMatchStandard(t *testing.T) {
	subs := "FORMAT_FAILURE HASH_FAILURE SIG_CRYPTO_FAILURE REVOKED SIG_CONSTRAINTS_FAILURE CHAIN_CONSTRAINTS_FAILURE " +
		"CERTIFICATE_CHAIN_GENERAL_FAILURE CRYPTO_CONSTRAINTS_FAILURE EXPIRED NOT_YET_VALID POLICY_PROCESSING_ERROR " +
		"SIGNATURE_POLICY_NOT_AVAILABLE TIMESTAMP_ORDER_FAILURE NO_SIGNING_CERTIFICATE_FOUND NO_CERTIFICATE_CHAIN_FOUND " +
		"REVOKED_NO_POE REVOKED_CA_NO_POE OUT_OF_BOUNDS_NO_POE OUT_OF_BOUNDS_NOT_REVOKED CRYPTO_CONSTRAINTS_FAILURE_NO_POE " +
		"NO_POE TRY_LATER SIGNED_DATA_NOT_FOUND NO_CERTIFICATE_CHAIN_FOUND_NO_POE REVOCATION_OUT_OF_BOUNDS_NO_POE"
	for _, s := range strings.Fields(subs) {
		if !SubIndication(s).Valid() {
			t.Errorf("sub-indication %s unknown", s)
		}
	}
	// DSS 6.4's SignatureQualification.getReadable values.
	quals := []string{"QESig", "QESeal", "Unknown-QC-QSCD", "AdESig-QC", "AdESeal-QC", "Unknown-QC", "AdESig", "AdESeal",
		"Unknown", "Indeterminate QESig", "Indeterminate QESeal", "Indeterminate Unknown-QC-QSCD", "Indeterminate AdESig-QC",
		"Indeterminate AdESeal-QC", "Indeterminate Unknown-QC", "Indeterminate AdESig", "Indeterminate AdESeal",
		"Indeterminate Unknown", "Not AdES but QC with QSCD", "Not AdES but QC", "Not AdES", "N/A"}
	for _, q := range quals {
		if !Qualification(q).Valid() {
			t.Errorf("qualification %q unknown", q)
		}
	}
	if len(qualifications) != len(quals) {
		t.Errorf("%d qualifications defined, DSS has %d", len(qualifications), len(quals))
	}
	if Qualification("QES").Valid() || SubIndication("HASH_FAIL").Valid() {
		t.Error("made-up names accepted")
	}
}
