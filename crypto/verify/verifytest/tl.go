package verifytest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Service status and qualifier URIs of ETSI TS 119 612 used by the lists
// TrustedList writes.
const (
	StatusGranted   = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted"
	StatusWithdrawn = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/withdrawn"

	QualifierQCWithSSCD = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/QCWithSSCD"
	QualifierQCNoSSCD   = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/QCNoSSCD"
	QualifierQCForESig  = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/QCForESig"
	QualifierQCForESeal = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/QCForESeal"
)

// ServiceStatus is one entry of a service's status: the current one first,
// then its history, newest first.
type ServiceStatus struct {
	Status string
	Start  time.Time
}

// TLOptions describe a test trusted list with one provider and one CA/QC
// service for the CA certificate at CACert (PEM).
type TLOptions struct {
	CACert string
	// Statuses: current first, then the history, newest first.
	Statuses []ServiceStatus
	// Qualifiers, if any, apply to certificates with the QCP-n-qscd policy
	// (0.4.0.194112.1.2) the test signers carry.
	Qualifiers []string
	Issued     time.Time
	Territory  string
}

// TrustedList writes an ETSI TS 119 612 version 5 trusted list, signed
// (enveloped XML-DSig with XAdES signed properties, exclusive C14N,
// RSA-SHA256) by a scheme operator key made for it, whose certificate is in
// the list's KeyInfo and is returned (PEM) to be configured as the list's
// signer. The canonical forms are computed with crypto/xmldsig; DSS,
// verifying the same list, checks them independently.
func TrustedList(t testing.TB, o TLOptions) (list, operatorPEM []byte) {
	t.Helper()
	caPEM, err := os.ReadFile(o.CACert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		t.Fatal("verifytest: CA certificate is not PEM")
	}
	if o.Territory == "" {
		o.Territory = "DE"
	}
	key, operator := schemeOperator(t, o.Issued)
	doc := tlBody(o, base64.StdEncoding.EncodeToString(block.Bytes))
	return signTL(t, doc, key, operator, o.Issued), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: operator})
}

func schemeOperator(t testing.TB, at time.Time) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(at.Unix()),
		Subject:      pkix.Name{CommonName: "Poststelle Test Scheme Operator", Organization: []string{"Poststelle Test"}, Country: []string{"DE"}},
		NotBefore:    at.Add(-24 * time.Hour), NotAfter: at.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func tlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func tlBody(o TLOptions, caB64 string) string {
	var b strings.Builder
	w := func(s string, a ...any) { fmt.Fprintf(&b, s, a...) }
	w(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	w(`<tsl:TrustServiceStatusList xmlns:tsl="http://uri.etsi.org/02231/v2#" xmlns:tslx="http://uri.etsi.org/TrstSvc/SvcInfoExt/eSigDir-1999-93-EC-TrustedList/#" xmlns:xades="http://uri.etsi.org/01903/v1.3.2#" Id="tsl" TSLTag="http://uri.etsi.org/19612/TSLTag">`)
	w(`<tsl:SchemeInformation><tsl:TSLVersionIdentifier>5</tsl:TSLVersionIdentifier><tsl:TSLSequenceNumber>1</tsl:TSLSequenceNumber>`)
	w(`<tsl:TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric</tsl:TSLType>`)
	w(`<tsl:SchemeOperatorName><tsl:Name xml:lang="en">Poststelle Test Scheme Operator</tsl:Name></tsl:SchemeOperatorName>`)
	w(`<tsl:SchemeOperatorAddress><tsl:PostalAddresses><tsl:PostalAddress xml:lang="en"><tsl:StreetAddress>Teststr. 1</tsl:StreetAddress><tsl:Locality>Berlin</tsl:Locality><tsl:CountryName>%s</tsl:CountryName></tsl:PostalAddress></tsl:PostalAddresses>`, o.Territory)
	w(`<tsl:ElectronicAddress><tsl:URI xml:lang="en">mailto:tl@example.org</tsl:URI></tsl:ElectronicAddress></tsl:SchemeOperatorAddress>`)
	w(`<tsl:SchemeName><tsl:Name xml:lang="en">%s:Poststelle test trusted list</tsl:Name></tsl:SchemeName>`, o.Territory)
	w(`<tsl:SchemeInformationURI><tsl:URI xml:lang="en">https://example.org/tl</tsl:URI></tsl:SchemeInformationURI>`)
	w(`<tsl:StatusDeterminationApproach>http://uri.etsi.org/TrstSvc/TrustedList/StatusDetn/EUappropriate</tsl:StatusDeterminationApproach>`)
	w(`<tsl:SchemeTypeCommunityRules><tsl:URI xml:lang="en">http://uri.etsi.org/TrstSvc/TrustedList/schemerules/EUcommon</tsl:URI></tsl:SchemeTypeCommunityRules>`)
	w(`<tsl:SchemeTerritory>%s</tsl:SchemeTerritory>`, o.Territory)
	w(`<tsl:PolicyOrLegalNotice><tsl:TSLLegalNotice xml:lang="en">Test list, no legal effect.</tsl:TSLLegalNotice></tsl:PolicyOrLegalNotice>`)
	w(`<tsl:HistoricalInformationPeriod>65535</tsl:HistoricalInformationPeriod>`)
	w(`<tsl:ListIssueDateTime>%s</tsl:ListIssueDateTime><tsl:NextUpdate><tsl:dateTime>%s</tsl:dateTime></tsl:NextUpdate>`, tlTime(o.Issued), tlTime(o.Issued.Add(180*24*time.Hour)))
	w(`</tsl:SchemeInformation>`)
	w(`<tsl:TrustServiceProviderList><tsl:TrustServiceProvider><tsl:TSPInformation>`)
	w(`<tsl:TSPName><tsl:Name xml:lang="en">Poststelle Test QTSP</tsl:Name></tsl:TSPName>`)
	w(`<tsl:TSPAddress><tsl:PostalAddresses><tsl:PostalAddress xml:lang="en"><tsl:StreetAddress>Teststr. 2</tsl:StreetAddress><tsl:Locality>Berlin</tsl:Locality><tsl:CountryName>%s</tsl:CountryName></tsl:PostalAddress></tsl:PostalAddresses>`, o.Territory)
	w(`<tsl:ElectronicAddress><tsl:URI xml:lang="en">mailto:qtsp@example.org</tsl:URI></tsl:ElectronicAddress></tsl:TSPAddress>`)
	w(`<tsl:TSPInformationURI><tsl:URI xml:lang="en">https://example.org/qtsp</tsl:URI></tsl:TSPInformationURI></tsl:TSPInformation>`)
	w(`<tsl:TSPServices><tsl:TSPService>`)
	for i, st := range o.Statuses {
		if i == 0 {
			w(`<tsl:ServiceInformation>`)
		} else {
			if i == 1 {
				w(`<tsl:ServiceHistory>`)
			}
			w(`<tsl:ServiceHistoryInstance>`)
		}
		w(`<tsl:ServiceTypeIdentifier>http://uri.etsi.org/TrstSvc/Svctype/CA/QC</tsl:ServiceTypeIdentifier>`)
		w(`<tsl:ServiceName><tsl:Name xml:lang="en">Poststelle Test CA</tsl:Name></tsl:ServiceName>`)
		w(`<tsl:ServiceDigitalIdentity><tsl:DigitalId><tsl:X509Certificate>%s</tsl:X509Certificate></tsl:DigitalId></tsl:ServiceDigitalIdentity>`, caB64)
		w(`<tsl:ServiceStatus>%s</tsl:ServiceStatus><tsl:StatusStartingTime>%s</tsl:StatusStartingTime>`, st.Status, tlTime(st.Start))
		w(`<tsl:ServiceInformationExtensions>`)
		w(`<tsl:Extension Critical="false"><tsl:AdditionalServiceInformation><tsl:URI xml:lang="en">http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSignatures</tsl:URI></tsl:AdditionalServiceInformation></tsl:Extension>`)
		w(`<tsl:Extension Critical="false"><tsl:AdditionalServiceInformation><tsl:URI xml:lang="en">http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/ForeSeals</tsl:URI></tsl:AdditionalServiceInformation></tsl:Extension>`)
		if len(o.Qualifiers) > 0 {
			w(`<tsl:Extension Critical="true"><tslx:Qualifications><tslx:QualificationElement><tslx:Qualifiers>`)
			for _, q := range o.Qualifiers {
				w(`<tslx:Qualifier uri="%s"/>`, q)
			}
			w(`</tslx:Qualifiers><tslx:CriteriaList assert="atLeastOne"><tslx:PolicySet><tslx:PolicyIdentifier><xades:Identifier>urn:oid:0.4.0.194112.1.2</xades:Identifier></tslx:PolicyIdentifier></tslx:PolicySet></tslx:CriteriaList>`)
			w(`</tslx:QualificationElement></tslx:Qualifications></tsl:Extension>`)
		}
		w(`</tsl:ServiceInformationExtensions>`)
		if i == 0 {
			w(`</tsl:ServiceInformation>`)
		} else {
			w(`</tsl:ServiceHistoryInstance>`)
		}
	}
	if len(o.Statuses) > 1 {
		w(`</tsl:ServiceHistory>`)
	}
	w(`</tsl:TSPService></tsl:TSPServices></tsl:TrustServiceProvider></tsl:TrustServiceProviderList>`)
	w(`SIGNATURE</tsl:TrustServiceStatusList>` + "\n")
	return b.String()
}

const (
	dsNS        = "http://www.w3.org/2000/09/xmldsig#"
	algSHA256   = "http://www.w3.org/2001/04/xmlenc#sha256"
	algRSA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	algEnvelope = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
)

// signTL fills the SIGNATURE placeholder of doc with an enveloped
// signature over the whole list and the XAdES signed properties.
func signTL(t testing.TB, doc string, key *rsa.PrivateKey, operator []byte, at time.Time) []byte {
	t.Helper()
	certDigest := sha256.Sum256(operator)
	sp := `<xades:SignedProperties Id="xades-sp"><xades:SignedSignatureProperties>` +
		`<xades:SigningTime>` + tlTime(at) + `</xades:SigningTime>` +
		`<xades:SigningCertificateV2><xades:Cert><xades:CertDigest><ds:DigestMethod Algorithm="` + algSHA256 + `"/><ds:DigestValue>` +
		base64.StdEncoding.EncodeToString(certDigest[:]) + `</ds:DigestValue></xades:CertDigest></xades:Cert></xades:SigningCertificateV2>` +
		`</xades:SignedSignatureProperties></xades:SignedProperties>`
	sig := func(docDigest, spDigest, value string) string {
		return `<ds:Signature xmlns:ds="` + dsNS + `" Id="tl-signature"><ds:SignedInfo>` +
			`<ds:CanonicalizationMethod Algorithm="` + xmldsig.AlgExcC14N + `"/><ds:SignatureMethod Algorithm="` + algRSA256 + `"/>` +
			`<ds:Reference Id="tl-ref" URI=""><ds:Transforms><ds:Transform Algorithm="` + algEnvelope + `"/><ds:Transform Algorithm="` + xmldsig.AlgExcC14N + `"/></ds:Transforms>` +
			`<ds:DigestMethod Algorithm="` + algSHA256 + `"/><ds:DigestValue>` + docDigest + `</ds:DigestValue></ds:Reference>` +
			`<ds:Reference Type="http://uri.etsi.org/01903#SignedProperties" URI="#xades-sp"><ds:Transforms><ds:Transform Algorithm="` + xmldsig.AlgExcC14N + `"/></ds:Transforms>` +
			`<ds:DigestMethod Algorithm="` + algSHA256 + `"/><ds:DigestValue>` + spDigest + `</ds:DigestValue></ds:Reference>` +
			`</ds:SignedInfo><ds:SignatureValue>` + value + `</ds:SignatureValue>` +
			`<ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + base64.StdEncoding.EncodeToString(operator) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo>` +
			`<ds:Object><xades:QualifyingProperties Target="#tl-signature">` + sp + `</xades:QualifyingProperties></ds:Object></ds:Signature>`
	}
	exc := xmldsig.C14N{Exclusive: true}
	parse := func(s string) *xmldsig.Document {
		d, err := xmldsig.Parse([]byte(s), xmldsig.DefaultLimits())
		if err != nil {
			t.Fatalf("verifytest: trusted list: %v", err)
		}
		return d
	}
	draft := parse(strings.Replace(doc, "SIGNATURE", sig("", "", ""), 1))
	sigEl := draft.Root.Child(dsNS, "Signature")
	docSum := sha256.Sum256(exc.CanonicalizeDocument(draft, sigEl))
	spEl, err := draft.ElementByID("xades-sp")
	if err != nil {
		t.Fatal(err)
	}
	spSum := sha256.Sum256(exc.Canonicalize(spEl, nil))
	d1, d2 := base64.StdEncoding.EncodeToString(docSum[:]), base64.StdEncoding.EncodeToString(spSum[:])
	withDigests := parse(strings.Replace(doc, "SIGNATURE", sig(d1, d2, ""), 1))
	si := withDigests.Root.Child(dsNS, "Signature").Child(dsNS, "SignedInfo")
	h := sha256.Sum256(exc.Canonicalize(si, nil))
	value, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Replace(doc, "SIGNATURE", sig(d1, d2, base64.StdEncoding.EncodeToString(value)), 1))
}
