package trust

import (
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trustedlist"
)

// eidasDate is when Regulation (EU) 910/2014 took effect for trust services;
// before it the Directive 1999/93/EC statuses and policies apply.
var eidasDate = time.Date(2016, 7, 1, 0, 0, 0, 0, time.UTC)

// Certificate qualification names (DSS CertificateQualification, readable form).
const (
	QCForESigQSCD    = "QC for eSig with QSCD"
	QCForESealQSCD   = "QC for eSeal with QSCD"
	QCForUnknownQSCD = "QC of unknown type with QSCD"
	QCForESig        = "QC for eSig"
	QCForESeal       = "QC for eSeal"
	QCForWSA         = "QC for WSA"
	QCForUnknown     = "QC of unknown type"
	CertForESig      = "Cert for eSig"
	CertForESeal     = "Cert for eSeal"
	CertForWSA       = "Cert for WSA"
	CertForUnknown   = "Cert of unknown type"
	CertNA           = "N/A"
)

// Signature qualification names, exactly as DSS's SignatureQualification
// readable values.
const (
	QESig               = "QESig"
	QESeal              = "QESeal"
	UnknownQCQSCD       = "Unknown-QC-QSCD"
	AdESigQC            = "AdESig-QC"
	AdESealQC           = "AdESeal-QC"
	UnknownQC           = "Unknown-QC"
	AdESig              = "AdESig"
	AdESeal             = "AdESeal"
	UnknownSig          = "Unknown"
	IndeterminatePrefix = "Indeterminate "
	NotAdESQCQSCD       = "Not AdES but QC with QSCD"
	NotAdESQC           = "Not AdES but QC"
	NotAdES             = "Not AdES"
	SigNA               = "N/A"
)

// Certificate types.
const (
	TypeESig    = "ESIGN"
	TypeESeal   = "ESEAL"
	TypeWSA     = "WSA"
	TypeUnknown = "UNKNOWN"
)

// Certificate policy OIDs of ETSI EN 319 411-2 (eIDAS) and TS 101 456 (Directive).
var (
	oidQCPn          = asn1.ObjectIdentifier{0, 4, 0, 194112, 1, 0}
	oidQCPl          = asn1.ObjectIdentifier{0, 4, 0, 194112, 1, 1}
	oidQCPnQSCD      = asn1.ObjectIdentifier{0, 4, 0, 194112, 1, 2}
	oidQCPlQSCD      = asn1.ObjectIdentifier{0, 4, 0, 194112, 1, 3}
	oidQCPPublicSSCD = asn1.ObjectIdentifier{0, 4, 0, 1456, 1, 1}
	oidQCPPublic     = asn1.ObjectIdentifier{0, 4, 0, 1456, 1, 2}
)

// CertQualification is the qualification of a certificate at one time.
type CertQualification struct {
	Name string // one of the QCFor*/CertFor* constants
	QC   bool
	Type string
	QSCD bool
	Time time.Time
	// Services names the trusted-list services that were considered.
	Services []string
}

// Qualification is the qualification decision for a signing certificate.
type Qualification struct {
	AtIssuance CertQualification
	AtSigning  CertQualification
	// Final combines both: qualified only if qualified at issuance and at
	// signing time; type and QSCD from signing time (TS 119 615).
	Final  CertQualification
	Checks []Check
}

// SignatureQualification maps the AdES indication of EN 319 102-1
// (Passed/TOTAL_PASSED, Indeterminate, Failed/TOTAL_FAILED) and the final
// certificate qualification to DSS's signature qualification.
func SignatureQualification(adesIndication string, q CertQualification) string {
	var ades string
	switch adesIndication {
	case Passed, "TOTAL_PASSED":
		ades = Passed
	case Indeterminate:
		ades = Indeterminate
	default:
		ades = Failed
	}
	if q.Name == CertNA {
		if ades == Failed {
			return NotAdES
		}
		return SigNA
	}
	if q.Type == TypeWSA {
		return NotAdES
	}
	if ades == Failed {
		switch {
		case q.QC && q.QSCD:
			return NotAdESQCQSCD
		case q.QC:
			return NotAdESQC
		}
		return NotAdES
	}
	var name string
	switch {
	case q.QC && q.QSCD:
		name = pick(q.Type, QESig, QESeal, UnknownQCQSCD)
	case q.QC:
		name = pick(q.Type, AdESigQC, AdESealQC, UnknownQC)
	default:
		name = pick(q.Type, AdESig, AdESeal, UnknownSig)
	}
	if ades == Indeterminate {
		return IndeterminatePrefix + name
	}
	return name
}

func pick(typ, esig, eseal, unknown string) string {
	switch typ {
	case TypeESig:
		return esig
	case TypeESeal:
		return eseal
	}
	return unknown
}

// SignatureQualification is the signature qualification for the given
// AdES indication of the signature that this result's leaf supports.
func (r *Result) SignatureQualification(adesIndication string) string {
	if r.Qualification == nil {
		return SignatureQualification(adesIndication, CertQualification{Name: CertNA})
	}
	return SignatureQualification(adesIndication, r.Qualification.Final)
}

func (s *Store) qualify(chain []*cert.Certificate, in Input) *Qualification {
	q := &Qualification{}
	leaf := chain[0]
	refs := s.servicesFor(chain)
	signing := in.SigningTime
	if signing.IsZero() {
		signing = in.Time
	}
	add := func(name, result, detail string) {
		q.Checks = append(q.Checks, Check{Name: name, Index: 0, Subject: subject(leaf), Result: result, Detail: detail})
	}
	if len(refs) == 0 {
		add("trustedListReached", Info, "no trusted-list service identifies a certificate of the chain")
		na := CertQualification{Name: CertNA, Type: TypeUnknown}
		q.AtIssuance, q.AtSigning, q.Final = na, na, na
		return q
	}
	add("trustedListReached", Passed, fmt.Sprintf("%d trusted-list service(s) for the chain", len(refs)))
	q.AtIssuance = qualifyAt(leaf, refs, leaf.NotBefore, "AtIssuance", add)
	q.AtSigning = qualifyAt(leaf, refs, signing, "AtSigningTime", add)
	q.Final = combine(q.AtIssuance, q.AtSigning)
	return q
}

func combine(iss, sig CertQualification) CertQualification {
	f := CertQualification{Time: sig.Time, Services: sig.Services}
	if iss.Name == CertNA || sig.Name == CertNA {
		f.Name, f.Type = CertNA, TypeUnknown
		return f
	}
	f.QC = iss.QC && sig.QC
	f.Type = sig.Type
	if f.QC && iss.Type != sig.Type {
		f.Type = TypeUnknown
	}
	f.QSCD = f.QC && sig.QSCD
	f.Name = certQualName(f.QC, f.Type, f.QSCD)
	return f
}

func certQualName(qc bool, typ string, qscd bool) string {
	switch {
	case qc && qscd && typ != TypeWSA:
		return pick(typ, QCForESigQSCD, QCForESealQSCD, QCForUnknownQSCD)
	case qc:
		if typ == TypeWSA {
			return QCForWSA
		}
		return pick(typ, QCForESig, QCForESeal, QCForUnknown)
	}
	if typ == TypeWSA {
		return CertForWSA
	}
	return pick(typ, CertForESig, CertForESeal, CertForUnknown)
}

type serviceVerdict struct {
	name       string
	qc, qscd   bool
	typ        string
	qualifiers []string
}

// qualifyAt applies TS 119 615 at time t: among the CA/QC services whose
// status at t is granted (or, before eIDAS, an equivalent status), the
// certificate content overridden by matching Qualifications decides QC,
// type and QSCD; services must agree.
func qualifyAt(leaf *cert.Certificate, refs []ServiceRef, t time.Time, suffix string, add func(name, result, detail string)) CertQualification {
	out := CertQualification{Time: t}
	var caqc, granted []serviceVerdict
	for _, r := range refs {
		st, ok := r.Service.StateAt(t)
		if !ok || st.Type != trustedlist.ServiceTypeCAQC {
			continue
		}
		name := trustedlist.Name(st.Name)
		out.Services = append(out.Services, name)
		caqc = append(caqc, serviceVerdict{name: name})
		if !grantedStatus(st.Status, t) {
			add("serviceGranted"+suffix, Info, fmt.Sprintf("%s: status %s", name, lastSegment(st.Status)))
			continue
		}
		if len(st.Extensions.UnknownCritical) > 0 {
			add("serviceGranted"+suffix, Info, fmt.Sprintf("%s: unknown critical extensions %v", name, st.Extensions.UnknownCritical))
			continue
		}
		granted = append(granted, verdict(leaf, st, name, t))
	}
	if len(caqc) == 0 {
		add("caQcService"+suffix, Indeterminate, "no CA/QC service at "+t.Format(time.RFC3339))
		out.Name, out.Type = CertNA, TypeUnknown
		return out
	}
	if len(granted) == 0 {
		add("qualified"+suffix, Failed, "no CA/QC service granted at "+t.Format(time.RFC3339))
		out.Type = certType(leaf, nil, t)
		out.Name = certQualName(false, out.Type, false)
		return out
	}
	out.QC, out.QSCD, out.Type = true, true, granted[0].typ
	for _, v := range granted {
		out.QC = out.QC && v.qc
		out.QSCD = out.QSCD && v.qscd
		if v.typ != out.Type {
			out.Type = TypeUnknown
		}
		add("service"+suffix, Info, fmt.Sprintf("%s: QC=%v type=%s QSCD=%v qualifiers=%v", v.name, v.qc, v.typ, v.qscd, shortURIs(v.qualifiers)))
	}
	out.QSCD = out.QC && out.QSCD
	res := Passed
	if !out.QC {
		res = Failed
	}
	add("qualified"+suffix, res, fmt.Sprintf("QC=%v at %s", out.QC, t.Format(time.RFC3339)))
	qres := Passed
	if !out.QSCD {
		qres = Failed
	}
	add("qscd"+suffix, qres, fmt.Sprintf("QSCD=%v", out.QSCD))
	add("type"+suffix, Info, out.Type)
	out.Name = certQualName(out.QC, out.Type, out.QSCD)
	return out
}

func grantedStatus(status string, t time.Time) bool {
	switch status {
	case trustedlist.StatusGranted, trustedlist.StatusRecognisedNational:
		return true
	case trustedlist.StatusUnderSupervision, trustedlist.StatusSupervisionInCessation,
		trustedlist.StatusAccredited, trustedlist.StatusSetByNationalLaw:
		return t.Before(eidasDate)
	}
	return false
}

func verdict(leaf *cert.Certificate, st trustedlist.ServiceState, name string, t time.Time) serviceVerdict {
	v := serviceVerdict{name: name}
	for i := range st.Extensions.Qualifications {
		q := &st.Extensions.Qualifications[i]
		if q.Criteria.Match(leaf) {
			v.qualifiers = append(v.qualifiers, q.Qualifiers...)
		}
	}
	has := func(u string) bool { return slices.Contains(v.qualifiers, u) }
	preEIDAS := leaf.NotBefore.Before(eidasDate)
	// QC: the certificate's claim, overridden by QCStatement / NotQualified.
	v.qc = leaf.QC != nil && leaf.QC.Compliance || hasPolicy(leaf, oidQCPn, oidQCPl, oidQCPnQSCD, oidQCPlQSCD) ||
		preEIDAS && hasPolicy(leaf, oidQCPPublic, oidQCPPublicSSCD)
	if has(trustedlist.QualifierQCStatement) {
		v.qc = true
	}
	if has(trustedlist.QualifierNotQualified) {
		v.qc = false
	}
	v.typ = certType(leaf, v.qualifiers, t)
	if !t.Before(eidasDate) && !serviceAllowsType(st, v.typ) {
		v.qc = false
	}
	// QSCD: the certificate's claim, overridden by the SSCD/QSCD qualifiers.
	v.qscd = leaf.QC != nil && leaf.QC.SSCD || hasPolicy(leaf, oidQCPnQSCD, oidQCPlQSCD) ||
		preEIDAS && hasPolicy(leaf, oidQCPPublicSSCD)
	yes := has(trustedlist.QualifierQCWithSSCD) || has(trustedlist.QualifierQCWithQSCD) || has(trustedlist.QualifierQCQSCDManagedOnBehalf)
	no := has(trustedlist.QualifierQCNoSSCD) || has(trustedlist.QualifierQCNoQSCD)
	switch {
	case yes && no:
		v.qscd = false
	case yes:
		v.qscd = true
	case no:
		v.qscd = false
	}
	return v
}

// certType reads the QcType statement, overridden by the QCFor* qualifiers.
// A qualified certificate without QcType is for eSig (EN 319 412-5; the
// Directive knew only signatures).
func certType(leaf *cert.Certificate, qualifiers []string, t time.Time) string {
	var types []string
	if leaf.QC != nil {
		for _, ty := range leaf.QC.Types {
			switch {
			case ty.Equal(cert.OIDQcTypeESign):
				types = append(types, TypeESig)
			case ty.Equal(cert.OIDQcTypeESeal):
				types = append(types, TypeESeal)
			case ty.Equal(cert.OIDQcTypeWeb):
				types = append(types, TypeWSA)
			default:
				types = append(types, TypeUnknown)
			}
		}
	}
	var over []string
	for _, q := range qualifiers {
		switch q {
		case trustedlist.QualifierQCForESig:
			over = append(over, TypeESig)
		case trustedlist.QualifierQCForESeal, trustedlist.QualifierQCForLegalPerson:
			over = append(over, TypeESeal)
		case trustedlist.QualifierQCForWSA:
			over = append(over, TypeWSA)
		}
	}
	if len(over) > 0 {
		types = over
	}
	slices.Sort(types)
	types = slices.Compact(types)
	switch len(types) {
	case 0:
		return TypeESig
	case 1:
		return types[0]
	}
	return TypeUnknown
}

// serviceAllowsType applies additionalServiceInformation: a service that
// names the purposes it issues for only qualifies those.
func serviceAllowsType(st trustedlist.ServiceState, typ string) bool {
	var allowed []string
	for _, asi := range st.Extensions.AdditionalServiceInfo {
		switch asi {
		case trustedlist.ASIForeSignatures:
			allowed = append(allowed, TypeESig)
		case trustedlist.ASIForeSeals:
			allowed = append(allowed, TypeESeal)
		case trustedlist.ASIForWebSiteAuthentication:
			allowed = append(allowed, TypeWSA)
		}
	}
	return len(allowed) == 0 || slices.Contains(allowed, typ)
}

func hasPolicy(c *cert.Certificate, oids ...asn1.ObjectIdentifier) bool {
	for _, p := range c.Policies {
		for _, o := range oids {
			if p.OID.Equal(o) {
				return true
			}
		}
	}
	return false
}

func lastSegment(uri string) string {
	if i := strings.LastIndexByte(uri, '/'); i >= 0 {
		return uri[i+1:]
	}
	return uri
}

func shortURIs(uris []string) []string {
	out := make([]string, len(uris))
	for i, u := range uris {
		out[i] = lastSegment(u)
	}
	return out
}
