// Package tltest makes ETSI TS 119 612 trusted lists and qualified
// certificates for tests: a list signed by a test scheme operator, with
// CA/QC services in the states and with the qualifiers a test needs, and
// the qcStatements extension (EN 319 412-5) a qualified certificate
// carries. Nothing here is for production use.
package tltest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Service is one CA/QC service of a test list.
type Service struct {
	// CA is the service's certificate (its digital identity).
	CA *x509.Certificate
	// Name defaults to the CA's common name.
	Name string
	// Status defaults to granted.
	Status string
	// StatusStart defaults to a year before the list's issue date.
	StatusStart time.Time
	// Qualifiers are Qualifications extension qualifier URIs
	// (trustedlist.Qualifier*) that apply to every certificate of the CA.
	Qualifiers []string
	// AdditionalServiceInfo are URIs such as trustedlist.ASIForeSeals.
	AdditionalServiceInfo []string
	// History, newest first, are earlier states of the same service.
	History []State
}

// State is an earlier status of a service.
type State struct {
	Status      string
	StatusStart time.Time
}

// List is a national trusted list (TSL version 5, EUgeneric).
type List struct {
	// Territory defaults to "XX".
	Territory string
	// Issued defaults to now; the list is valid for 180 days after.
	Issued   time.Time
	Sequence int
	Services []Service
}

// Sign writes l as XML with an enveloped RSA-SHA256 signature over the
// whole document (exclusive C14N), made with key and carrying signer in
// KeyInfo, as a scheme operator signs its list.
func Sign(l List, key *rsa.PrivateKey, signer *x509.Certificate) ([]byte, error) {
	doc := l.xml()
	return signEnveloped(doc, "</tsl:TrustServiceStatusList>", key, signer.Raw)
}

func (l List) xml() string {
	issued := l.Issued
	if issued.IsZero() {
		issued = time.Now()
	}
	issued = issued.UTC().Truncate(time.Second)
	terr := l.Territory
	if terr == "" {
		terr = "XX"
	}
	var b strings.Builder
	b.WriteString(`<tsl:TrustServiceStatusList xmlns:tsl="` + trustedlist.NamespaceTSL + `" xmlns:tslx="` + trustedlist.NamespaceSIE + `" Id="tsl" TSLTag="http://uri.etsi.org/19612/TSLTag">`)
	fmt.Fprintf(&b, `<tsl:SchemeInformation><tsl:TSLVersionIdentifier>5</tsl:TSLVersionIdentifier><tsl:TSLSequenceNumber>%d</tsl:TSLSequenceNumber>`, max(l.Sequence, 1))
	b.WriteString(`<tsl:TSLType>` + trustedlist.TypeEUGeneric + `</tsl:TSLType>`)
	b.WriteString(`<tsl:SchemeOperatorName><tsl:Name xml:lang="en">Test Scheme Operator</tsl:Name></tsl:SchemeOperatorName>`)
	b.WriteString(`<tsl:SchemeTerritory>` + html.EscapeString(terr) + `</tsl:SchemeTerritory>`)
	b.WriteString(`<tsl:ListIssueDateTime>` + issued.Format(time.RFC3339) + `</tsl:ListIssueDateTime>`)
	b.WriteString(`<tsl:NextUpdate><tsl:dateTime>` + issued.Add(180*24*time.Hour).Format(time.RFC3339) + `</tsl:dateTime></tsl:NextUpdate>`)
	b.WriteString(`</tsl:SchemeInformation><tsl:TrustServiceProviderList><tsl:TrustServiceProvider>`)
	b.WriteString(`<tsl:TSPInformation><tsl:TSPName><tsl:Name xml:lang="en">Test QTSP</tsl:Name></tsl:TSPName></tsl:TSPInformation><tsl:TSPServices>`)
	for _, s := range l.Services {
		s.write(&b, issued)
	}
	b.WriteString(`</tsl:TSPServices></tsl:TrustServiceProvider></tsl:TrustServiceProviderList></tsl:TrustServiceStatusList>`)
	return b.String()
}

func (s Service) write(b *strings.Builder, issued time.Time) {
	name := s.Name
	if name == "" {
		name = s.CA.Subject.CommonName
	}
	status := s.Status
	if status == "" {
		status = trustedlist.StatusGranted
	}
	start := s.StatusStart
	if start.IsZero() {
		start = issued.Add(-365 * 24 * time.Hour)
	}
	state := func(tag, status string, start time.Time, ext bool) {
		b.WriteString(`<tsl:` + tag + `><tsl:ServiceTypeIdentifier>` + trustedlist.ServiceTypeCAQC + `</tsl:ServiceTypeIdentifier>`)
		b.WriteString(`<tsl:ServiceName><tsl:Name xml:lang="en">` + html.EscapeString(name) + `</tsl:Name></tsl:ServiceName>`)
		b.WriteString(`<tsl:ServiceDigitalIdentity><tsl:DigitalId><tsl:X509Certificate>` + base64.StdEncoding.EncodeToString(s.CA.Raw) +
			`</tsl:X509Certificate></tsl:DigitalId></tsl:ServiceDigitalIdentity>`)
		b.WriteString(`<tsl:ServiceStatus>` + status + `</tsl:ServiceStatus>`)
		b.WriteString(`<tsl:StatusStartingTime>` + start.UTC().Format(time.RFC3339) + `</tsl:StatusStartingTime>`)
		if ext {
			s.extensions(b)
		}
		b.WriteString(`</tsl:` + tag + `>`)
	}
	b.WriteString(`<tsl:TSPService>`)
	state("ServiceInformation", status, start, true)
	if len(s.History) > 0 {
		b.WriteString(`<tsl:ServiceHistory>`)
		for _, h := range s.History {
			state("ServiceHistoryInstance", h.Status, h.StatusStart, true)
		}
		b.WriteString(`</tsl:ServiceHistory>`)
	}
	b.WriteString(`</tsl:TSPService>`)
}

func (s Service) extensions(b *strings.Builder) {
	if len(s.Qualifiers) == 0 && len(s.AdditionalServiceInfo) == 0 {
		return
	}
	b.WriteString(`<tsl:ServiceInformationExtensions>`)
	for _, u := range s.AdditionalServiceInfo {
		b.WriteString(`<tsl:Extension Critical="false"><tsl:AdditionalServiceInformation><tsl:URI xml:lang="en">` + u +
			`</tsl:URI></tsl:AdditionalServiceInformation></tsl:Extension>`)
	}
	if len(s.Qualifiers) > 0 {
		// The criteria match every certificate with a digitalSignature or
		// nonRepudiation key usage: the qualifiers apply to all of the CA's.
		b.WriteString(`<tsl:Extension Critical="true"><tslx:Qualifications><tslx:QualificationElement><tslx:Qualifiers>`)
		for _, q := range s.Qualifiers {
			b.WriteString(`<tslx:Qualifier uri="` + q + `"/>`)
		}
		b.WriteString(`</tslx:Qualifiers><tslx:CriteriaList assert="atLeastOne">` +
			`<tslx:KeyUsage><tslx:KeyUsageBit name="digitalSignature">true</tslx:KeyUsageBit></tslx:KeyUsage>` +
			`<tslx:KeyUsage><tslx:KeyUsageBit name="nonRepudiation">true</tslx:KeyUsageBit></tslx:KeyUsage>` +
			`</tslx:CriteriaList></tslx:QualificationElement></tslx:Qualifications></tsl:Extension>`)
	}
	b.WriteString(`</tsl:ServiceInformationExtensions>`)
}

const dsNS = "http://www.w3.org/2000/09/xmldsig#"

// signEnveloped inserts an enveloped signature before closing, the end
// tag of the document element, and computes it.
func signEnveloped(doc, closing string, key *rsa.PrivateKey, der []byte) ([]byte, error) {
	if !strings.HasSuffix(doc, closing) {
		return nil, errors.New("tltest: document does not end with " + closing)
	}
	sig := `<ds:Signature xmlns:ds="` + dsNS + `" Id="tsl-signature"><ds:SignedInfo>` +
		`<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>` +
		`<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>` +
		`<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>` +
		`<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>` +
		`<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>DIGEST</ds:DigestValue></ds:Reference>` +
		`</ds:SignedInfo><ds:SignatureValue>SIGVALUE</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(der) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>`
	doc = strings.TrimSuffix(doc, closing) + sig + closing
	c := xmldsig.C14N{Exclusive: true}
	parsed, err := xmldsig.Parse([]byte(doc), xmldsig.Limits{})
	if err != nil {
		return nil, fmt.Errorf("tltest: parse: %w", err)
	}
	digest := sha256.Sum256(c.CanonicalizeDocument(parsed, parsed.Root.Child(dsNS, "Signature")))
	doc = strings.Replace(doc, "DIGEST", base64.StdEncoding.EncodeToString(digest[:]), 1)
	if parsed, err = xmldsig.Parse([]byte(doc), xmldsig.Limits{}); err != nil {
		return nil, fmt.Errorf("tltest: parse: %w", err)
	}
	signed := sha256.Sum256(c.Canonicalize(parsed.Root.Child(dsNS, "Signature").Child(dsNS, "SignedInfo"), nil))
	value, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, signed[:])
	if err != nil {
		return nil, fmt.Errorf("tltest: sign: %w", err)
	}
	return []byte(strings.Replace(doc, "SIGVALUE", base64.StdEncoding.EncodeToString(value), 1)), nil
}

// QCType is the QcType statement of a qualified certificate.
type QCType int

// QcType values (EN 319 412-5 clause 4.2.3).
const (
	QCESign QCType = iota + 1
	QCESeal
)

// QCStatements is the qcStatements extension (RFC 3739, EN 319 412-5) of a
// qualified certificate: QcCompliance, QcSSCD when qscd, and QcType.
func QCStatements(typ QCType, qscd bool) pkix.Extension {
	type statement struct {
		ID    asn1.ObjectIdentifier
		Value asn1.RawValue `asn1:"optional"`
	}
	stmts := []statement{{ID: cert.OIDQcCompliance}}
	if qscd {
		stmts = append(stmts, statement{ID: cert.OIDQcSSCD})
	}
	t := cert.OIDQcTypeESign
	if typ == QCESeal {
		t = cert.OIDQcTypeESeal
	}
	types, err := asn1.Marshal([]asn1.ObjectIdentifier{t})
	if err != nil {
		panic(err) // a constant value; cannot fail
	}
	stmts = append(stmts, statement{ID: cert.OIDQcType, Value: asn1.RawValue{FullBytes: types}})
	der, err := asn1.Marshal(stmts)
	if err != nil {
		panic(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}, Value: der}
}
