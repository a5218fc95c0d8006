package trust

import (
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// listFor builds a verified-looking trusted list with one CA/QC service
// for ca; states are given newest first.
func listFor(ca *cert.Certificate, states ...trustedlist.ServiceState) *trustedlist.TrustedList {
	for i := range states {
		states[i].Identity.Certificates = []*cert.Certificate{ca}
		if states[i].Type == "" {
			states[i].Type = trustedlist.ServiceTypeCAQC
		}
		states[i].Name = []trustedlist.LangString{{Lang: "en", Value: "Test QTSP CA"}}
	}
	return &trustedlist.TrustedList{
		Version: 5, SchemeTerritory: "XX", Signature: &xmldsig.Signature{},
		Providers: []trustedlist.Provider{{Services: []trustedlist.Service{{Current: states[0], History: states[1:]}}}},
	}
}

func TestQualificationMatrix(t *testing.T) {
	p := newTestPKI(t)
	now := p.now
	day := 24 * time.Hour
	longAgo := now.Add(-1000 * day)
	granted := trustedlist.ServiceState{Status: trustedlist.StatusGranted, StatusStart: longAgo}
	withQ := func(st trustedlist.ServiceState, qualifiers ...string) trustedlist.ServiceState {
		st.Extensions.Qualifications = append(st.Extensions.Qualifications, trustedlist.Qualification{
			Qualifiers: qualifiers,
			Criteria:   trustedlist.Criteria{Assert: "atLeastOne", PolicySets: [][]string{{"0.4.0.194112.1.2"}}},
		})
		return st
	}
	withASI := func(st trustedlist.ServiceState, asi ...string) trustedlist.ServiceState {
		st.Extensions.AdditionalServiceInfo = asi
		return st
	}
	withdrawnNow := trustedlist.ServiceState{Status: trustedlist.StatusWithdrawn, StatusStart: now.Add(-10 * day)}
	tests := []struct {
		name     string
		states   []trustedlist.ServiceState
		wantCert string
		wantSig  string
	}{
		{"granted, cert says QC+QSCD+esign", []trustedlist.ServiceState{granted}, QCForESigQSCD, QESig},
		{"withdrawn before signing", []trustedlist.ServiceState{withdrawnNow, granted}, CertForESig, AdESig},
		{"QCNoQSCD qualifier", []trustedlist.ServiceState{withQ(granted, trustedlist.QualifierQCNoQSCD)}, QCForESig, AdESigQC},
		{"NotQualified qualifier", []trustedlist.ServiceState{withQ(granted, trustedlist.QualifierNotQualified)}, CertForESig, AdESig},
		{"QCForESeal qualifier", []trustedlist.ServiceState{withQ(granted, trustedlist.QualifierQCForESeal)}, QCForESealQSCD, QESeal},
		{"service only for seals", []trustedlist.ServiceState{withASI(granted, trustedlist.ASIForeSeals)}, CertForESig, AdESig},
		{"service for signatures", []trustedlist.ServiceState{withASI(granted, trustedlist.ASIForeSignatures)}, QCForESigQSCD, QESig},
		{"not a CA/QC service", []trustedlist.ServiceState{{Type: "http://uri.etsi.org/TrstSvc/Svctype/CA/PKC", Status: trustedlist.StatusGranted, StatusStart: longAgo}}, CertNA, SigNA},
		{"pre-eIDAS status after eIDAS", []trustedlist.ServiceState{{Status: trustedlist.StatusAccredited, StatusStart: longAgo}}, CertForESig, AdESig},
		{"unknown critical extension", []trustedlist.ServiceState{func() trustedlist.ServiceState {
			st := granted
			st.Extensions.UnknownCritical = []string{"{urn:x}y"}
			return st
		}()}, CertForESig, AdESig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore()
			s.AddCertificate(p.cert["root"], "root")
			if err := s.AddTrustedList(listFor(p.cert["int"], tc.states...)); err != nil {
				t.Fatal(err)
			}
			r := s.Validate(Input{Leaf: p.cert["leaf"], Intermediates: []*cert.Certificate{p.cert["int"]}, CRLs: []*CRL{p.crl("int")}, Time: now})
			if r.Indication != Passed {
				t.Fatalf("%s/%s", r.Indication, r.SubIndication)
			}
			if r.Qualification.Final.Name != tc.wantCert || r.SignatureQualification(Passed) != tc.wantSig {
				t.Errorf("got %s / %s, want %s / %s; %+v", r.Qualification.Final.Name, r.SignatureQualification(Passed), tc.wantCert, tc.wantSig, r.Qualification.Checks)
			}
		})
	}
}

func TestSignatureQualificationNames(t *testing.T) {
	qcQSCD := CertQualification{Name: QCForESigQSCD, QC: true, QSCD: true, Type: TypeESig}
	sealQC := CertQualification{Name: QCForESeal, QC: true, Type: TypeESeal}
	plain := CertQualification{Name: CertForESeal, Type: TypeESeal}
	wsa := CertQualification{Name: QCForWSA, QC: true, Type: TypeWSA}
	na := CertQualification{Name: CertNA}
	tests := []struct {
		ind  string
		q    CertQualification
		want string
	}{
		{Passed, qcQSCD, "QESig"}, {"TOTAL_PASSED", qcQSCD, "QESig"}, {Indeterminate, qcQSCD, "Indeterminate QESig"}, {Failed, qcQSCD, "Not AdES but QC with QSCD"},
		{Passed, sealQC, "AdESeal-QC"}, {Indeterminate, sealQC, "Indeterminate AdESeal-QC"}, {"TOTAL_FAILED", sealQC, "Not AdES but QC"},
		{Passed, plain, "AdESeal"}, {Indeterminate, plain, "Indeterminate AdESeal"}, {Failed, plain, "Not AdES"},
		{Passed, wsa, "Not AdES"}, {Passed, na, "N/A"}, {Indeterminate, na, "N/A"},
		{Passed, CertQualification{QC: true, QSCD: true, Type: TypeUnknown, Name: QCForUnknownQSCD}, "Unknown-QC-QSCD"},
	}
	for _, tc := range tests {
		if got := SignatureQualification(tc.ind, tc.q); got != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.ind, tc.q.Name, got, tc.want)
		}
	}
}

func TestLargeExponentTampered(t *testing.T) {
	// Covered positively by TestGermanQESFromTrustedList; a flipped bit in
	// the signature must make the fallback fail.
	certs := certsFromP7MCorpus(t, "Signature-C-DE_CRY-3.p7m")
	var leaf, ca *cert.Certificate
	for _, c := range certs {
		switch c.Subject.CommonName {
		case "Matthias Schlede":
			leaf = c
		case "D-TRUST Qualified CA 1 2008:PN":
			ca = c
		}
	}
	if err := checkSignatureLargeExponent(leaf, ca); err != nil {
		t.Fatalf("genuine: %v", err)
	}
	bad := &cert.Certificate{SignatureAlgorithm: leaf.SignatureAlgorithm, RawTBSCertificate: leaf.RawTBSCertificate,
		Signature: append([]byte(nil), leaf.Signature...)}
	bad.Signature[10] ^= 1
	if err := checkSignatureLargeExponent(bad, ca); err == nil {
		t.Fatal("tampered signature verified")
	}
}
