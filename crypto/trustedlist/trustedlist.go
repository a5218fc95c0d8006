// Package trustedlist reads ETSI TS 119 612 trusted lists (TSL versions 3
// to 6) and the EU list of trusted lists: scheme information, pointers to
// other lists, trust service providers and their services with status
// history, digital identities and service information extensions
// (Qualifications, additionalServiceInformation).
//
// A list is only read through the document element its own enveloped
// signature covers (crypto/xmldsig rejects wrapped documents), and Load
// accepts it only when that signature verifies with one of the configured
// signing certificates. Versions 5 and 6 are accepted by default, as in
// DSS; version 3 (gematik TSL) and 4 (pre-eIDAS national lists such as the
// 2015 de-tl.xml) are parsed, but Load refuses them unless Config allows
// them, because the qualification rules of ETSI TS 119 615 assume the
// eIDAS-era semantics of v5/v6.
package trustedlist

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Namespaces of ETSI TS 119 612.
const (
	NamespaceTSL             = "http://uri.etsi.org/02231/v2#"
	NamespaceAdditionalTypes = "http://uri.etsi.org/02231/v2/additionaltypes#"
	NamespaceSIE             = "http://uri.etsi.org/TrstSvc/SvcInfoExt/eSigDir-1999-93-EC-TrustedList/#"
	NamespaceXAdES           = "http://uri.etsi.org/01903/v1.3.2#"
)

// Well-known URIs.
const (
	TypeLOTL        = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists"
	TypeEUGeneric   = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUgeneric"
	ServiceTypeCAQC = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"

	StatusGranted                = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted"
	StatusWithdrawn              = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/withdrawn"
	StatusRecognisedNational     = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/recognisedatnationallevel"
	StatusDeprecatedNational     = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/deprecatedatnationallevel"
	StatusUnderSupervision       = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/undersupervision"
	StatusSupervisionInCessation = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/supervisionincessation"
	StatusSupervisionCeased      = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/supervisionceased"
	StatusSupervisionRevoked     = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/supervisionrevoked"
	StatusAccredited             = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/accredited"
	StatusAccreditationCeased    = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/accreditationceased"
	StatusAccreditationRevoked   = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/accreditationrevoked"
	StatusSetByNationalLaw       = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/setbynationallaw"

	sieURI = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/"
	// Qualifier URIs of the Qualifications extension.
	QualifierQCWithSSCD            = sieURI + "QCWithSSCD"
	QualifierQCNoSSCD              = sieURI + "QCNoSSCD"
	QualifierQCSSCDStatusAsInCert  = sieURI + "QCSSCDStatusAsInCert"
	QualifierQCWithQSCD            = sieURI + "QCWithQSCD"
	QualifierQCNoQSCD              = sieURI + "QCNoQSCD"
	QualifierQCQSCDStatusAsInCert  = sieURI + "QCQSCDStatusAsInCert"
	QualifierQCQSCDManagedOnBehalf = sieURI + "QCQSCDManagedOnBehalf"
	QualifierQCForLegalPerson      = sieURI + "QCForLegalPerson"
	QualifierQCForESig             = sieURI + "QCForESig"
	QualifierQCForESeal            = sieURI + "QCForESeal"
	QualifierQCForWSA              = sieURI + "QCForWSA"
	QualifierNotQualified          = sieURI + "NotQualified"
	QualifierQCStatement           = sieURI + "QCStatement"
	// additionalServiceInformation URIs.
	ASIForeSignatures           = sieURI + "ForeSignatures"
	ASIForeSeals                = sieURI + "ForeSeals"
	ASIForWebSiteAuthentication = sieURI + "ForWebSiteAuthentication"
	ASIRootCAQC                 = sieURI + "RootCA-QC"
)

// DefaultAcceptedVersions returns the TSL versions Load accepts by default.
func DefaultAcceptedVersions() []int { return []int{5, 6} }

// ErrVersion is wrapped when a list's TSLVersionIdentifier is not accepted.
var ErrVersion = errors.New("trustedlist: TSL version not accepted")

// LangString is a multilingual name.
type LangString struct {
	Lang, Value string
}

// TrustedList is a parsed trusted list or list of trusted lists.
type TrustedList struct {
	Version            int
	SequenceNumber     int
	Type               string // TSLType URI
	SchemeOperatorName []LangString
	SchemeTerritory    string
	IssueDate          time.Time
	// NextUpdate is zero for a closed list.
	NextUpdate         time.Time
	DistributionPoints []string
	Pointers           []Pointer
	Providers          []Provider
	// Signature is set by Load: the verified enveloped signature.
	Signature *xmldsig.Signature
	// SHA256 is the digest of the document bytes, to identify the copy.
	SHA256 [32]byte
	// Warnings are structure problems that did not stop parsing, such as
	// certificates that could not be read.
	Warnings []string
}

// Pointer is an OtherTSLPointer, e.g. from the LOTL to a national list.
type Pointer struct {
	Location           string
	Type               string
	Territory          string
	MimeType           string
	SchemeOperatorName []LangString
	// Certificates may sign the list pointed at.
	Certificates []*cert.Certificate
}

// Provider is a TrustServiceProvider.
type Provider struct {
	Name      []LangString
	TradeName []LangString
	Services  []Service
}

// Service is a TSPService: its current state and its history, newest first.
type Service struct {
	Current ServiceState
	History []ServiceState
}

// ServiceState is ServiceInformation or one ServiceHistoryInstance.
type ServiceState struct {
	Type        string
	Name        []LangString
	Identity    DigitalIdentity
	Status      string
	StatusStart time.Time
	Extensions  Extensions
}

// DigitalIdentity lists how the service is identified. All forms present
// identify the same key.
type DigitalIdentity struct {
	Certificates []*cert.Certificate
	SubjectNames []string
	SKIs         [][]byte
}

// Extensions are the interpreted ServiceInformationExtensions.
type Extensions struct {
	Qualifications []Qualification
	// AdditionalServiceInfo lists additionalServiceInformation URIs
	// (ForeSignatures, ForeSeals, ForWebSiteAuthentication, RootCA-QC ...).
	AdditionalServiceInfo []string
	// ExpiredCertsRevocationInfo is zero when absent.
	ExpiredCertsRevocationInfo time.Time
	// UnknownCritical names critical extensions we do not interpret; per
	// TS 119 612 a relying party must then not rely on the service.
	UnknownCritical []string
}

// Qualification is one QualificationElement: qualifiers applying to the
// certificates matching Criteria.
type Qualification struct {
	Qualifiers []string
	Criteria   Criteria
}

// Criteria is a CriteriaList (TS 119 612 clause 5.5.9.2).
type Criteria struct {
	Assert string // "all", "atLeastOne" or "none"
	// KeyUsage: each entry is one KeyUsage criterion, bit name -> value.
	KeyUsage []map[string]bool
	// PolicySets: each entry is a set of policy OIDs all of which must be
	// present.
	PolicySets [][]string
	// ExtendedKeyUsage: each entry is a set of EKU OIDs all of which must be present.
	ExtendedKeyUsage [][]string
	Nested           []Criteria
	// Unsupported names criteria we cannot evaluate; such a list matches
	// nothing, so an unknown criterion never grants a qualifier.
	Unsupported []string
}

// StateAt returns the service state in force at t: the newest state whose
// StatusStart is not after t.
func (s *Service) StateAt(t time.Time) (ServiceState, bool) {
	if !s.Current.StatusStart.After(t) {
		return s.Current, true
	}
	for _, h := range s.History {
		if !h.StatusStart.After(t) {
			return h, true
		}
	}
	return ServiceState{}, false
}

// Name returns the English (or else first) name.
func Name(names []LangString) string {
	for _, n := range names {
		if strings.EqualFold(n.Lang, "en") {
			return n.Value
		}
	}
	if len(names) > 0 {
		return names[0].Value
	}
	return ""
}

// IsLOTL reports whether the list is a list of trusted lists.
func (tl *TrustedList) IsLOTL() bool {
	return strings.HasSuffix(tl.Type, "listofthelists")
}

// PointersTo returns the pointers to lists of a territory (e.g. "DE").
func (tl *TrustedList) PointersTo(territory string) []Pointer {
	var out []Pointer
	for _, p := range tl.Pointers {
		if strings.EqualFold(p.Territory, territory) {
			out = append(out, p)
		}
	}
	return out
}

// SigningCertificatesFor collects the certificates the list authorises to
// sign the list of territory, for Load of a national list found via the LOTL.
func (tl *TrustedList) SigningCertificatesFor(territory string) []*cert.Certificate {
	var out []*cert.Certificate
	for _, p := range tl.PointersTo(territory) {
		if p.MimeType != "" && !strings.Contains(p.MimeType, "xml") {
			continue // the PDF form of the same list
		}
		out = append(out, p.Certificates...)
	}
	return out
}

// ServiceCertificates returns the distinct certificates of all service
// identities, current and historical.
func (tl *TrustedList) ServiceCertificates() []*cert.Certificate {
	seen := map[[32]byte]bool{}
	var out []*cert.Certificate
	for _, p := range tl.Providers {
		for _, s := range p.Services {
			for _, st := range append([]ServiceState{s.Current}, s.History...) {
				for _, c := range st.Identity.Certificates {
					if fp := sha256.Sum256(c.Raw); !seen[fp] {
						seen[fp] = true
						out = append(out, c)
					}
				}
			}
		}
	}
	return out
}

// Config controls Load.
type Config struct {
	// SigningCertificates are the certificates trusted to sign this list
	// (from the LOTL pointer or configured out of band, e.g. gematik's
	// TSL Signing Unit). Required.
	SigningCertificates []*cert.Certificate
	// AcceptedVersions defaults to DefaultAcceptedVersions.
	AcceptedVersions []int
	Limits           xmldsig.Limits
}

// Load parses data and verifies the list's own signature against the
// configured signing certificates and its version against the accepted ones.
func Load(data []byte, cfg Config) (*TrustedList, error) {
	if len(cfg.SigningCertificates) == 0 {
		return nil, errors.New("trustedlist: no signing certificates configured")
	}
	doc, err := xmldsig.Parse(data, cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("trustedlist: %w", err)
	}
	sig, err := xmldsig.Verify(doc, xmldsig.Options{Candidates: cfg.SigningCertificates})
	if err != nil {
		return nil, fmt.Errorf("trustedlist: verify signature: %w", err)
	}
	tl, err := fromDocument(doc)
	if err != nil {
		return nil, err
	}
	tl.Signature = sig
	tl.SHA256 = sha256.Sum256(data)
	accepted := cfg.AcceptedVersions
	if len(accepted) == 0 {
		accepted = DefaultAcceptedVersions()
	}
	if !slices.Contains(accepted, tl.Version) {
		return tl, fmt.Errorf("%w: version %d, accepted %v", ErrVersion, tl.Version, accepted)
	}
	return tl, nil
}

// Parse reads a list without verifying its signature or version, for
// inspection and tooling. Never base trust decisions on its result.
func Parse(data []byte, lim xmldsig.Limits) (*TrustedList, error) {
	doc, err := xmldsig.Parse(data, lim)
	if err != nil {
		return nil, fmt.Errorf("trustedlist: %w", err)
	}
	tl, err := fromDocument(doc)
	if err != nil {
		return nil, err
	}
	tl.SHA256 = sha256.Sum256(data)
	return tl, nil
}
