package trustedlist

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Caps on list content, far above real lists (the LOTL has ~100 pointers,
// large national lists a few hundred services).
const (
	maxProviders     = 10000
	maxServices      = 50000
	maxCertsPerID    = 64
	maxCriteriaDepth = 8
)

type reader struct {
	tl       *TrustedList
	services int
}

func (r *reader) warn(format string, args ...any) {
	if len(r.tl.Warnings) < 1000 {
		r.tl.Warnings = append(r.tl.Warnings, fmt.Sprintf(format, args...))
	}
}

func fromDocument(doc *xmldsig.Document) (*TrustedList, error) {
	root := doc.Root
	if !root.Is(NamespaceTSL, "TrustServiceStatusList") {
		return nil, fmt.Errorf("trustedlist: document element is {%s}%s, not a TrustServiceStatusList", root.Space, root.Local)
	}
	r := &reader{tl: &TrustedList{}}
	si := root.Child(NamespaceTSL, "SchemeInformation")
	if si == nil {
		return nil, fmt.Errorf("trustedlist: SchemeInformation missing")
	}
	if err := r.schemeInformation(si); err != nil {
		return nil, fmt.Errorf("trustedlist: SchemeInformation: %w", err)
	}
	if list := root.Child(NamespaceTSL, "TrustServiceProviderList"); list != nil {
		tsps := list.ChildrenNamed(NamespaceTSL, "TrustServiceProvider")
		if len(tsps) > maxProviders {
			return nil, fmt.Errorf("trustedlist: %d providers exceed the limit %d", len(tsps), maxProviders)
		}
		for i, tsp := range tsps {
			p, err := r.provider(tsp)
			if err != nil {
				return nil, fmt.Errorf("trustedlist: provider %d: %w", i+1, err)
			}
			r.tl.Providers = append(r.tl.Providers, p)
		}
	}
	return r.tl, nil
}

func (r *reader) schemeInformation(si *xmldsig.Element) error {
	tl := r.tl
	var err error
	if tl.Version, err = intText(si.Child(NamespaceTSL, "TSLVersionIdentifier")); err != nil {
		return fmt.Errorf("TSLVersionIdentifier: %w", err)
	}
	if tl.SequenceNumber, err = intText(si.Child(NamespaceTSL, "TSLSequenceNumber")); err != nil {
		return fmt.Errorf("TSLSequenceNumber: %w", err)
	}
	tl.Type = strings.TrimSpace(si.Child(NamespaceTSL, "TSLType").Text())
	tl.SchemeOperatorName = names(si.Child(NamespaceTSL, "SchemeOperatorName"))
	tl.SchemeTerritory = strings.TrimSpace(si.Child(NamespaceTSL, "SchemeTerritory").Text())
	if tl.IssueDate, err = dateTime(si.Child(NamespaceTSL, "ListIssueDateTime")); err != nil {
		return fmt.Errorf("ListIssueDateTime: %w", err)
	}
	if nu := si.Path(NamespaceTSL, "NextUpdate", "dateTime"); nu != nil {
		if tl.NextUpdate, err = dateTime(nu); err != nil {
			return fmt.Errorf("NextUpdate: %w", err)
		}
	}
	tl.DistributionPoints = uris(si.Child(NamespaceTSL, "DistributionPoints"))
	if ptrs := si.Child(NamespaceTSL, "PointersToOtherTSL"); ptrs != nil {
		for i, p := range ptrs.ChildrenNamed(NamespaceTSL, "OtherTSLPointer") {
			tl.Pointers = append(tl.Pointers, r.pointer(p, i+1))
		}
	}
	return nil
}

func (r *reader) pointer(p *xmldsig.Element, n int) Pointer {
	var out Pointer
	out.Location = strings.TrimSpace(p.Child(NamespaceTSL, "TSLLocation").Text())
	if ids := p.Child(NamespaceTSL, "ServiceDigitalIdentities"); ids != nil {
		for _, sdi := range ids.ChildrenNamed(NamespaceTSL, "ServiceDigitalIdentity") {
			id := r.identity(sdi, fmt.Sprintf("pointer %d", n))
			out.Certificates = append(out.Certificates, id.Certificates...)
		}
	}
	if ai := p.Child(NamespaceTSL, "AdditionalInformation"); ai != nil {
		for _, oi := range ai.ChildrenNamed(NamespaceTSL, "OtherInformation") {
			for _, e := range oi.Elements() {
				switch {
				case e.Is(NamespaceTSL, "TSLType"):
					out.Type = strings.TrimSpace(e.Text())
				case e.Is(NamespaceTSL, "SchemeTerritory"):
					out.Territory = strings.TrimSpace(e.Text())
				case e.Is(NamespaceAdditionalTypes, "MimeType"):
					out.MimeType = strings.TrimSpace(e.Text())
				case e.Is(NamespaceTSL, "SchemeOperatorName"):
					out.SchemeOperatorName = names(e)
				}
			}
		}
	}
	return out
}

func (r *reader) provider(tsp *xmldsig.Element) (Provider, error) {
	var p Provider
	info := tsp.Child(NamespaceTSL, "TSPInformation")
	p.Name = names(info.Child(NamespaceTSL, "TSPName"))
	p.TradeName = names(info.Child(NamespaceTSL, "TSPTradeName"))
	svcs := tsp.Child(NamespaceTSL, "TSPServices")
	if svcs == nil {
		return p, nil
	}
	for i, s := range svcs.ChildrenNamed(NamespaceTSL, "TSPService") {
		r.services++
		if r.services > maxServices {
			return p, fmt.Errorf("more than %d services", maxServices)
		}
		svc, err := r.service(s, fmt.Sprintf("%s service %d", Name(p.Name), i+1))
		if err != nil {
			return p, fmt.Errorf("service %d: %w", i+1, err)
		}
		p.Services = append(p.Services, svc)
	}
	return p, nil
}

func (r *reader) service(s *xmldsig.Element, where string) (Service, error) {
	var svc Service
	si := s.Child(NamespaceTSL, "ServiceInformation")
	if si == nil {
		return svc, fmt.Errorf("ServiceInformation missing")
	}
	var err error
	if svc.Current, err = r.state(si, where); err != nil {
		return svc, err
	}
	if h := s.Child(NamespaceTSL, "ServiceHistory"); h != nil {
		for i, hi := range h.ChildrenNamed(NamespaceTSL, "ServiceHistoryInstance") {
			st, err := r.state(hi, fmt.Sprintf("%s history %d", where, i+1))
			if err != nil {
				return svc, fmt.Errorf("history %d: %w", i+1, err)
			}
			svc.History = append(svc.History, st)
		}
	}
	// TS 119 612 orders history newest first; sort defensively so that
	// StateAt never depends on the producer.
	sortStates(svc.History)
	return svc, nil
}

func sortStates(states []ServiceState) {
	for i := 1; i < len(states); i++ {
		for j := i; j > 0 && states[j].StatusStart.After(states[j-1].StatusStart); j-- {
			states[j], states[j-1] = states[j-1], states[j]
		}
	}
}

func (r *reader) state(e *xmldsig.Element, where string) (ServiceState, error) {
	var st ServiceState
	st.Type = strings.TrimSpace(e.Child(NamespaceTSL, "ServiceTypeIdentifier").Text())
	st.Name = names(e.Child(NamespaceTSL, "ServiceName"))
	st.Status = strings.TrimSpace(e.Child(NamespaceTSL, "ServiceStatus").Text())
	var err error
	if st.StatusStart, err = dateTime(e.Child(NamespaceTSL, "StatusStartingTime")); err != nil {
		return st, fmt.Errorf("StatusStartingTime: %w", err)
	}
	if sdi := e.Child(NamespaceTSL, "ServiceDigitalIdentity"); sdi != nil {
		st.Identity = r.identity(sdi, where)
	}
	if ext := e.Child(NamespaceTSL, "ServiceInformationExtensions"); ext != nil {
		st.Extensions = r.extensions(ext, where)
	}
	return st, nil
}

func (r *reader) identity(sdi *xmldsig.Element, where string) DigitalIdentity {
	var id DigitalIdentity
	for _, d := range sdi.ChildrenNamed(NamespaceTSL, "DigitalId") {
		for _, e := range d.Elements() {
			switch {
			case e.Is(NamespaceTSL, "X509Certificate"):
				if len(id.Certificates) >= maxCertsPerID {
					r.warn("%s: more than %d certificates", where, maxCertsPerID)
					continue
				}
				c, err := parseCert(e.Text())
				if err != nil {
					r.warn("%s: X509Certificate: %v", where, err)
					continue
				}
				id.Certificates = append(id.Certificates, c)
			case e.Is(NamespaceTSL, "X509SubjectName"):
				id.SubjectNames = append(id.SubjectNames, strings.TrimSpace(e.Text()))
			case e.Is(NamespaceTSL, "X509SKI"):
				ski, err := decodeBase64(e.Text())
				if err != nil {
					r.warn("%s: X509SKI: %v", where, err)
					continue
				}
				id.SKIs = append(id.SKIs, ski)
			}
		}
	}
	return id
}

func (r *reader) extensions(ext *xmldsig.Element, where string) Extensions {
	var out Extensions
	for _, x := range ext.ChildrenNamed(NamespaceTSL, "Extension") {
		critical := strings.TrimSpace(attr(x, "Critical")) == "true"
		for _, e := range x.Elements() {
			switch {
			case e.Is(NamespaceSIE, "Qualifications"):
				for _, qe := range e.ChildrenNamed(NamespaceSIE, "QualificationElement") {
					out.Qualifications = append(out.Qualifications, qualification(qe))
				}
			case e.Is(NamespaceTSL, "AdditionalServiceInformation"):
				if u := strings.TrimSpace(e.Child(NamespaceTSL, "URI").Text()); u != "" {
					out.AdditionalServiceInfo = append(out.AdditionalServiceInfo, u)
				}
			case e.Is(NamespaceTSL, "ExpiredCertsRevocationInfo"):
				t, err := dateTime(e)
				if err != nil {
					r.warn("%s: ExpiredCertsRevocationInfo: %v", where, err)
					continue
				}
				out.ExpiredCertsRevocationInfo = t
			case e.Is(NamespaceTSL, "TakenOverBy") || e.Is(NamespaceAdditionalTypes, "TakenOverBy"):
				// informational
			default:
				if critical {
					out.UnknownCritical = append(out.UnknownCritical, "{"+e.Space+"}"+e.Local)
				}
			}
		}
	}
	return out
}

func qualification(qe *xmldsig.Element) Qualification {
	var q Qualification
	if qs := qe.Child(NamespaceSIE, "Qualifiers"); qs != nil {
		for _, qu := range qs.ChildrenNamed(NamespaceSIE, "Qualifier") {
			q.Qualifiers = append(q.Qualifiers, strings.TrimSpace(attr(qu, "uri")))
		}
	}
	if cl := qe.Child(NamespaceSIE, "CriteriaList"); cl != nil {
		q.Criteria = criteria(cl, 0)
	} else {
		q.Criteria.Unsupported = append(q.Criteria.Unsupported, "missing CriteriaList")
	}
	return q
}

func criteria(cl *xmldsig.Element, depth int) Criteria {
	c := Criteria{Assert: strings.TrimSpace(attr(cl, "assert"))}
	if depth > maxCriteriaDepth {
		c.Unsupported = append(c.Unsupported, "CriteriaList nested too deep")
		return c
	}
	for _, e := range cl.Elements() {
		switch e.Local {
		case "KeyUsage":
			bits := map[string]bool{}
			for _, b := range e.Elements() {
				if b.Local == "KeyUsageBit" {
					bits[attr(b, "name")] = strings.TrimSpace(b.Text()) == "true"
				}
			}
			c.KeyUsage = append(c.KeyUsage, bits)
		case "PolicySet":
			var set []string
			for _, pi := range e.Elements() {
				if id := pi.Child(NamespaceXAdES, "Identifier"); pi.Local == "PolicyIdentifier" && id != nil {
					set = append(set, oidText(id.Text()))
				}
			}
			c.PolicySets = append(c.PolicySets, set)
		case "ExtendedKeyUsage":
			var set []string
			for _, kp := range e.Elements() {
				if kp.Local != "KeyPurposeId" {
					continue
				}
				if id := kp.Child(NamespaceXAdES, "Identifier"); id != nil {
					set = append(set, oidText(id.Text()))
				} else {
					set = append(set, oidText(kp.Text()))
				}
			}
			c.ExtendedKeyUsage = append(c.ExtendedKeyUsage, set)
		case "CriteriaList":
			c.Nested = append(c.Nested, criteria(e, depth+1))
		case "Description", "otherCriteriaList":
			if e.Local == "otherCriteriaList" {
				c.Unsupported = append(c.Unsupported, e.Local)
			}
		default:
			c.Unsupported = append(c.Unsupported, e.Local)
		}
	}
	return c
}

func oidText(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "urn:oid:")
	return s
}

func attr(e *xmldsig.Element, name string) string {
	v, _ := e.Attr(name)
	return v
}

func names(e *xmldsig.Element) []LangString {
	if e == nil {
		return nil
	}
	var out []LangString
	for _, n := range e.ChildrenNamed(NamespaceTSL, "Name") {
		lang, _ := n.AttrNS(xmldsig.NamespaceXML, "lang")
		out = append(out, LangString{Lang: lang, Value: strings.TrimSpace(n.Text())})
	}
	return out
}

func uris(e *xmldsig.Element) []string {
	if e == nil {
		return nil
	}
	var out []string
	for _, u := range e.ChildrenNamed(NamespaceTSL, "URI") {
		out = append(out, strings.TrimSpace(u.Text()))
	}
	return out
}

func intText(e *xmldsig.Element) (int, error) {
	if e == nil {
		return 0, fmt.Errorf("missing")
	}
	n, err := strconv.Atoi(strings.TrimSpace(e.Text()))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a non-negative integer: %q", e.Text())
	}
	return n, nil
}

func dateTime(e *xmldsig.Element) (time.Time, error) {
	if e == nil {
		return time.Time{}, fmt.Errorf("missing")
	}
	s := strings.TrimSpace(e.Text())
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	// xsd:dateTime without a zone; TS 119 612 requires UTC anyway.
	if t, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("not an xsd:dateTime: %q", s)
}

func parseCert(b64 string) (*cert.Certificate, error) {
	der, err := decodeBase64(b64)
	if err != nil {
		return nil, err
	}
	return cert.Parse(der)
}

func decodeBase64(s string) ([]byte, error) {
	if len(s) > 4*cert.MaxSize {
		return nil, fmt.Errorf("base64 value of %d characters is too long", len(s))
	}
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(clean)
}
