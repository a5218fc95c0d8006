package trustedlist

import (
	"testing"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

const seedTL = `<TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#" xmlns:q="http://uri.etsi.org/TrstSvc/SvcInfoExt/eSigDir-1999-93-EC-TrustedList/#" xmlns:x="http://uri.etsi.org/01903/v1.3.2#"><SchemeInformation><TSLVersionIdentifier>5</TSLVersionIdentifier><TSLSequenceNumber>1</TSLSequenceNumber><TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric</TSLType><SchemeTerritory>DE</SchemeTerritory><ListIssueDateTime>2020-01-01T00:00:00Z</ListIssueDateTime><NextUpdate><dateTime>2020-07-01T00:00:00Z</dateTime></NextUpdate></SchemeInformation><TrustServiceProviderList><TrustServiceProvider><TSPInformation><TSPName><Name xml:lang="en">P</Name></TSPName></TSPInformation><TSPServices><TSPService><ServiceInformation><ServiceTypeIdentifier>http://uri.etsi.org/TrstSvc/Svctype/CA/QC</ServiceTypeIdentifier><ServiceDigitalIdentity><DigitalId><X509SKI>AAEC</X509SKI></DigitalId></ServiceDigitalIdentity><ServiceStatus>http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted</ServiceStatus><StatusStartingTime>2016-07-01T00:00:00Z</StatusStartingTime><ServiceInformationExtensions><Extension Critical="true"><q:Qualifications><q:QualificationElement><q:Qualifiers><q:Qualifier uri="http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/QCWithQSCD"/></q:Qualifiers><q:CriteriaList assert="atLeastOne"><q:PolicySet><q:PolicyIdentifier><x:Identifier>urn:oid:0.4.0.194112.1.2</x:Identifier></q:PolicyIdentifier></q:PolicySet><q:CriteriaList assert="none"><q:KeyUsage><q:KeyUsageBit name="nonRepudiation">true</q:KeyUsageBit></q:KeyUsage></q:CriteriaList></q:CriteriaList></q:QualificationElement></q:Qualifications></Extension><Extension Critical="false"><AdditionalServiceInformation><URI>http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSignatures</URI></AdditionalServiceInformation></Extension></ServiceInformationExtensions></ServiceInformation><ServiceHistory><ServiceHistoryInstance><ServiceTypeIdentifier>http://uri.etsi.org/TrstSvc/Svctype/CA/QC</ServiceTypeIdentifier><ServiceStatus>http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/accredited</ServiceStatus><StatusStartingTime>2010-01-01T00:00:00Z</StatusStartingTime></ServiceHistoryInstance></ServiceHistory></TSPService></TSPServices></TrustServiceProvider></TrustServiceProviderList></TrustServiceStatusList>`

func TestParseSeed(t *testing.T) {
	tl, err := Parse([]byte(seedTL), xmldsig.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := tl.Providers[0].Services[0]
	q := s.Current.Extensions.Qualifications[0]
	if q.Qualifiers[0] != QualifierQCWithQSCD || q.Criteria.Assert != "atLeastOne" || q.Criteria.PolicySets[0][0] != "0.4.0.194112.1.2" ||
		len(q.Criteria.Nested) != 1 || q.Criteria.Nested[0].Assert != "none" || !q.Criteria.Nested[0].KeyUsage[0]["nonRepudiation"] {
		t.Errorf("qualification %+v", q)
	}
	if s.Current.Extensions.AdditionalServiceInfo[0] != ASIForeSignatures || len(s.History) != 1 || string(s.Current.Identity.SKIs[0]) != "\x00\x01\x02" {
		t.Errorf("service %+v", s)
	}
	if tl.NextUpdate.Year() != 2020 || tl.Providers[0].Services[0].History[0].Status != StatusAccredited {
		t.Errorf("list %+v", tl)
	}
}

// FuzzParse feeds arbitrary documents to the list reader (the signature is
// not checked here: Parse must be robust on its own).
func FuzzParse(f *testing.F) {
	f.Add([]byte(seedTL))
	f.Fuzz(func(t *testing.T, data []byte) {
		tl, err := Parse(data, xmldsig.Limits{MaxBytes: 1 << 20, MaxNodes: 20000})
		if err != nil {
			return
		}
		tl.ServiceCertificates()
		tl.SigningCertificatesFor("DE")
		for _, p := range tl.Providers {
			for _, s := range p.Services {
				s.StateAt(tl.IssueDate)
			}
		}
	})
}
