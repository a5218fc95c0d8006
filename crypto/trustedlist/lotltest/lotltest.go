// Package lotltest makes a list of trusted lists and the national lists it
// points to, signed with test keys, for tests of the trusted-list refresh
// and of what uses its lists. The XML signature is made the way the EU LOTL
// is signed (enveloped, URI="", exclusive C14N, RSA-SHA256), with
// crypto/xmldsig's canonicalization. It does not import trustedlist, so that
// trustedlist's own tests can use it.
package lotltest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Signer is a scheme operator's key and self-signed certificate, made
// for the test.
type Signer struct {
	key  *rsa.PrivateKey
	Cert *cert.Certificate
}

// NewSigner makes an RSA key and a self-signed certificate named cn.
func NewSigner(t testing.TB, cn string) *Signer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Country: []string{"DE"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cert.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{key: key, Cert: c}
}

// URIs of ETSI TS 119 612 (spelled out: this package must not import
// trustedlist, whose own tests use it).
const (
	nsTSL             = "http://uri.etsi.org/02231/v2#"
	nsAdditionalTypes = "http://uri.etsi.org/02231/v2/additionaltypes#"
	typeLOTL          = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists"
	typeEUGeneric     = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric"
	serviceTypeCAQC   = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"
	statusGranted     = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted"
)

const (
	placeholderDigest = "DIGEST-PLACEHOLDER"
	placeholderValue  = "SIGNATURE-PLACEHOLDER"
)

// Sign adds an enveloped XML signature (exclusive C14N, RSA-SHA256,
// reference URI="" with the enveloped-signature transform, as the LOTL
// and national lists are signed) as the last child of the document element.
func (s *Signer) Sign(t testing.TB, unsigned string) []byte {
	t.Helper()
	sig := `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="sig"><ds:SignedInfo>` +
		`<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>` +
		`<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>` +
		`<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>` +
		`<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>` +
		`<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>` + placeholderDigest + `</ds:DigestValue></ds:Reference>` +
		`</ds:SignedInfo><ds:SignatureValue>` + placeholderValue + `</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(s.Cert.Raw) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>`
	end := strings.LastIndex(unsigned, "</")
	doc := unsigned[:end] + sig + unsigned[end:]
	exc := xmldsig.C14N{Exclusive: true}
	parsed, sigEl := parseSigned(t, doc)
	d := sha256.Sum256(exc.CanonicalizeDocument(parsed, sigEl))
	doc = strings.Replace(doc, placeholderDigest, base64.StdEncoding.EncodeToString(d[:]), 1)
	_, sigEl = parseSigned(t, doc)
	si := sha256.Sum256(exc.Canonicalize(sigEl.Child(xmldsig.NamespaceDSig, "SignedInfo"), nil))
	v, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, si[:])
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Replace(doc, placeholderValue, base64.StdEncoding.EncodeToString(v), 1))
}

func parseSigned(t testing.TB, doc string) (*xmldsig.Document, *xmldsig.Element) {
	t.Helper()
	d, err := xmldsig.Parse([]byte(doc), xmldsig.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	el := d.Root.Child(xmldsig.NamespaceDSig, "Signature")
	if el == nil {
		t.Fatal("no signature element")
	}
	return d, el
}

func b64(c *cert.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }

// Pointer is one OtherTSLPointer of a test LOTL.
type Pointer struct {
	Territory, Location, MIME string
	Signers                   []*cert.Certificate
}

// LOTL is a list of trusted lists (version v) pointing at the given lists.
func LOTL(v, seq int, next time.Time, ptrs []Pointer) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<TrustServiceStatusList xmlns="%s" xmlns:tslx="%s" Id="tsl" TSLTag="http://uri.etsi.org/19612/TSLTag"><SchemeInformation>`, nsTSL, nsAdditionalTypes)
	fmt.Fprintf(&b, `<TSLVersionIdentifier>%d</TSLVersionIdentifier><TSLSequenceNumber>%d</TSLSequenceNumber><TSLType>%s</TSLType>`, v, seq, typeLOTL)
	b.WriteString(`<SchemeOperatorName><Name xml:lang="en">Test Commission</Name></SchemeOperatorName><SchemeTerritory>EU</SchemeTerritory><PointersToOtherTSL>`)
	for _, p := range ptrs {
		fmt.Fprintf(&b, `<OtherTSLPointer><ServiceDigitalIdentities>`)
		for _, c := range p.Signers {
			fmt.Fprintf(&b, `<ServiceDigitalIdentity><DigitalId><X509Certificate>%s</X509Certificate></DigitalId></ServiceDigitalIdentity>`, b64(c))
		}
		typ := typeEUGeneric
		if p.Territory == "EU" {
			typ = typeLOTL
		}
		fmt.Fprintf(&b, `</ServiceDigitalIdentities><TSLLocation>%s</TSLLocation><AdditionalInformation>`, p.Location)
		fmt.Fprintf(&b, `<OtherInformation><TSLType>%s</TSLType></OtherInformation><OtherInformation><SchemeTerritory>%s</SchemeTerritory></OtherInformation>`, typ, p.Territory)
		fmt.Fprintf(&b, `<OtherInformation><tslx:MimeType>%s</tslx:MimeType></OtherInformation></AdditionalInformation></OtherTSLPointer>`, p.MIME)
	}
	fmt.Fprintf(&b, `</PointersToOtherTSL><ListIssueDateTime>%s</ListIssueDateTime><NextUpdate><dateTime>%s</dateTime></NextUpdate></SchemeInformation></TrustServiceStatusList>`,
		time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), next.UTC().Format(time.RFC3339))
	return b.String()
}

// National is a national list (version v) with one CA/QC service whose
// identity is ca and whose name is service.
func National(v, seq int, territory, service string, ca *cert.Certificate) string {
	return fmt.Sprintf(`<TrustServiceStatusList xmlns="%s" Id="tsl" TSLTag="http://uri.etsi.org/19612/TSLTag"><SchemeInformation>`+
		`<TSLVersionIdentifier>%d</TSLVersionIdentifier><TSLSequenceNumber>%d</TSLSequenceNumber><TSLType>%s</TSLType>`+
		`<SchemeOperatorName><Name xml:lang="en">Test operator %s</Name></SchemeOperatorName><SchemeTerritory>%s</SchemeTerritory>`+
		`<ListIssueDateTime>%s</ListIssueDateTime><NextUpdate><dateTime>%s</dateTime></NextUpdate></SchemeInformation>`+
		`<TrustServiceProviderList><TrustServiceProvider><TSPInformation><TSPName><Name xml:lang="en">Test TSP</Name></TSPName></TSPInformation>`+
		`<TSPServices><TSPService><ServiceInformation><ServiceTypeIdentifier>%s</ServiceTypeIdentifier>`+
		`<ServiceName><Name xml:lang="en">%s</Name></ServiceName><ServiceDigitalIdentity><DigitalId><X509Certificate>%s</X509Certificate></DigitalId></ServiceDigitalIdentity>`+
		`<ServiceStatus>%s</ServiceStatus><StatusStartingTime>2020-01-01T00:00:00Z</StatusStartingTime></ServiceInformation></TSPService></TSPServices>`+
		`</TrustServiceProvider></TrustServiceProviderList></TrustServiceStatusList>`,
		nsTSL, v, seq, typeEUGeneric, territory, territory,
		time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), time.Now().UTC().Add(30*24*time.Hour).Format(time.RFC3339),
		serviceTypeCAQC, service, b64(ca), statusGranted)
}
