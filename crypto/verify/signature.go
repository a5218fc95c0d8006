package verify

import (
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// evidence is the validation material a signature carries: certificates,
// CRLs and OCSP responses, parsed once and shared by its signers and their
// timestamps. Unparseable items are remembered as problems, not fatal.
type evidence struct {
	certs    []*cert.Certificate
	crls     []*trust.CRL
	ocsp     []*trust.OCSPResponse
	problems []string
}

func newEvidence(sd *cms.SignedData) *evidence {
	ev := &evidence{}
	ev.add(sd)
	return ev
}

// add merges what sd carries (a signature's SignedData or a timestamp token's).
func (ev *evidence) add(sd *cms.SignedData) {
	ev.certs = append(ev.certs, sd.Certificates...)
	for i, raw := range sd.CRLs {
		ev.addCRL(raw, fmt.Sprintf("CRL %d", i+1))
	}
	for i, raw := range sd.OCSPResponses {
		// RFC 5940 carries a complete OCSPResponse; some producers put the
		// BasicOCSPResponse there.
		r, err := trust.ParseOCSPResponse(raw)
		if err != nil {
			r, err = trust.ParseBasicOCSPResponse(raw)
		}
		if err != nil {
			ev.problems = append(ev.problems, fmt.Sprintf("OCSP response %d: %v", i+1, err))
			continue
		}
		ev.ocsp = append(ev.ocsp, r)
	}
	for i, raw := range sd.OtherRevocationInfo {
		// Some CAdES producers (ETSI plugtests, DSS) put a BasicOCSPResponse
		// under the OCSP basic-response OID instead of RFC 5940's
		// id-ri-ocsp-response.
		basic, ok := otherBasicOCSP(raw)
		if !ok {
			continue
		}
		r, err := trust.ParseBasicOCSPResponse(basic)
		if err != nil {
			ev.problems = append(ev.problems, fmt.Sprintf("other revocation info %d: %v", i+1, err))
			continue
		}
		ev.ocsp = append(ev.ocsp, r)
	}
	for _, e := range sd.CertificateErrors {
		ev.problems = append(ev.problems, "certificate: "+e)
	}
}

// oidOCSPBasic is id-pkix-ocsp-basic.
var oidOCSPBasic = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}

// otherBasicOCSP returns the BasicOCSPResponse of an OtherRevocationInfoFormat
// ([1] IMPLICIT SEQUENCE { format OID, info ANY }) of type id-pkix-ocsp-basic.
func otherBasicOCSP(raw []byte) ([]byte, bool) {
	in := cryptobyte.String(raw)
	var body cryptobyte.String
	var format asn1.ObjectIdentifier
	var info cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.Tag(1).Constructed().ContextSpecific()) ||
		!body.ReadASN1ObjectIdentifier(&format) || !format.Equal(oidOCSPBasic) ||
		!body.ReadASN1Element(&info, cbasn1.SEQUENCE) {
		return nil, false
	}
	return info, true
}

func (ev *evidence) addCRL(raw []byte, what string) {
	c, err := trust.ParseCRL(raw)
	if err != nil {
		ev.problems = append(ev.problems, fmt.Sprintf("%s: %v", what, err))
		return
	}
	ev.crls = append(ev.crls, c)
}

// withSigner returns the evidence extended by a signer's CAdES-LT values
// (certificate-values and revocation-values attributes).
func (ev *evidence) withSigner(sr *cms.SignerResult) *evidence {
	if len(sr.CertificateValues) == 0 && len(sr.RevocationValues.CRLs) == 0 && len(sr.RevocationValues.OCSPResponses) == 0 {
		return ev
	}
	out := &evidence{
		certs:    append(append([]*cert.Certificate(nil), ev.certs...), sr.CertificateValues...),
		crls:     append([]*trust.CRL(nil), ev.crls...),
		ocsp:     append([]*trust.OCSPResponse(nil), ev.ocsp...),
		problems: append([]string(nil), ev.problems...),
	}
	for i, raw := range sr.RevocationValues.CRLs {
		out.addCRL(raw, fmt.Sprintf("revocation-values CRL %d", i+1))
	}
	for i, raw := range sr.RevocationValues.OCSPResponses {
		r, err := trust.ParseBasicOCSPResponse(raw)
		if err != nil {
			out.problems = append(out.problems, fmt.Sprintf("revocation-values OCSP %d: %v", i+1, err))
			continue
		}
		out.ocsp = append(out.ocsp, r)
	}
	return out
}

// withTimestampTokens returns the evidence extended by what the timestamp
// tokens carry.
func (ev *evidence) withTimestampTokens(ts []*cms.TimestampResult) *evidence {
	out := ev
	for _, tr := range ts {
		if tr.Token == nil {
			continue
		}
		if out == ev {
			out = &evidence{
				certs:    append([]*cert.Certificate(nil), ev.certs...),
				crls:     append([]*trust.CRL(nil), ev.crls...),
				ocsp:     append([]*trust.OCSPResponse(nil), ev.ocsp...),
				problems: append([]string(nil), ev.problems...),
			}
		}
		out.add(tr.Token)
		if tr.Signer != nil {
			out = out.withSigner(tr.Signer)
		}
	}
	return out
}

// addSignature evaluates one signer and its countersigners and appends them.
func (v *verifier) addSignature(rep *report.Report, sr *cms.SignerResult, parent *evidence, id, parentID, note string) {
	v.addSignatureIn(rep, sr, parent, id, parentID, note, nil)
}

// container is what the file around a signature adds to it (a PDF's
// document timestamps, format and structure checks); nil for CMS files.
type container struct {
	format     string
	checks     []report.Check
	timestamps []report.Timestamp
	// poe is the earliest passed document timestamp covering the signature.
	poe time.Time
	// formatFailure names a structural defect that fails the signature.
	formatFailure string
	// signingTime is the time the container claims (a PDF's /M), used
	// when the signature has no signing-time attribute.
	signingTime *time.Time
}

// addSignatureIn is addSignature for a signer inside a container c.
func (v *verifier) addSignatureIn(rep *report.Report, sr *cms.SignerResult, parent *evidence, id, parentID, note string, c *container) {
	ev := parent.withSigner(sr)
	var format string
	if c == nil || c.format == "" {
		// A container names its own format; only a CMS of v.signed is
		// labelled from its attributes.
		format = signatureFormat(sr, v.signed, parentID != "")
	}
	s := report.Signature{
		ID:                 id,
		Format:             format,
		CounterSignatureOf: parentID,
		Signer:             certificate(sr.Certificate),
		Timestamps:         []report.Timestamp{},
		Chain:              []report.Certificate{},
	}
	if !sr.SigningTime.IsZero() {
		t := sr.SigningTime.UTC()
		s.SigningTime = &t
	}
	s.Checks = cmsChecks(sr.Checks)
	if note != "" {
		s.Checks = append(s.Checks, report.Check{ID: "cms.mime-canonicalization", Description: "signed MIME entity", Result: report.CheckWarning, Detail: note})
	}
	for _, p := range ev.problems {
		s.Checks = append(s.Checks, report.Check{ID: "evidence.unreadable", Description: "validation data carried by the signature", Result: report.CheckWarning, Detail: p})
	}

	// Validation data inside the timestamp tokens (CAdES-LT/LTA producers
	// put the TSA's and sometimes the signer's revocation data there) serves
	// the whole signature, as in DSS.
	ev = ev.withTimestampTokens(sr.Timestamps)

	// Timestamps over the signature value prove that the signature existed
	// at their genTime, once they are themselves valid.
	// Archive timestamps also cover the revocation values before them.
	var poe, revPOE time.Time
	for _, tr := range sr.Timestamps {
		ts := v.embeddedTimestamp(tr, ev)
		s.Timestamps = append(s.Timestamps, ts)
		// A timestamp after the validation time proves nothing at that
		// time, as for a PDF's document timestamps below.
		if ts.Indication != report.Passed || tr.GenTime.After(v.time) {
			continue
		}
		if provesSignature(tr.Kind) && (poe.IsZero() || tr.GenTime.Before(poe)) {
			poe = tr.GenTime
		}
		if provesRevocationData(tr.Kind) && (revPOE.IsZero() || tr.GenTime.Before(revPOE)) {
			revPOE = tr.GenTime
		}
	}
	if c != nil {
		if s.SigningTime == nil {
			s.SigningTime = c.signingTime
		}
		s.Format = c.format
		s.Checks = append(s.Checks, c.checks...)
		s.Timestamps = append(s.Timestamps, c.timestamps...)
		// A document timestamp after the validation time proves nothing
		// at that time.
		if !c.poe.IsZero() && !c.poe.After(v.time) && (poe.IsZero() || c.poe.Before(poe)) {
			poe = c.poe
		}
	}
	best := v.time
	if !poe.IsZero() {
		best = poe.UTC()
	}
	s.BestSignatureTime = &best

	ind, sub := cmsVerdict(sr)
	var chain *trust.Result
	if sr.Certificate != nil {
		chain = v.store.Validate(trust.Input{
			Leaf: sr.Certificate, Intermediates: ev.certs, CRLs: ev.crls, OCSP: ev.ocsp,
			Time: v.time, POE: poe, RevocationPOE: revPOE,
			IgnoreRevocationFreshness: v.ignoreFreshness(),
		})
		s.Chain = chainCertificates(chain)
		s.Checks = append(s.Checks, trustChecks(chain)...)
		if ind == "" {
			ind, sub = chainVerdict(chain, true)
		}
	}
	if ind == "" {
		ind, sub = report.Indeterminate, report.NoSigningCertificateFound
	}
	ind, sub = beforeIssuance(sr.Certificate, best, ind, sub)
	if c != nil && c.formatFailure != "" {
		// A ByteRange or signature dictionary defect: what was signed is
		// not what the file shows (EN 319 102-1 5.2.2, FORMAT_FAILURE).
		ind, sub = report.TotalFailed, report.FormatFailure
	}
	s.Indication, s.SubIndication = ind, sub
	s.Qualification = qualification(chain, ind)
	rep.Signatures = append(rep.Signatures, s)
	for i, cs := range sr.CounterSignatures {
		v.addSignature(rep, cs, ev, fmt.Sprintf("%s-C%d", id, i+1), id, "")
	}
}

// beforeIssuance applies EN 319 102-1 5.5.4: a signature whose best
// signature time lies before its signing certificate's notBefore cannot
// have been made with it, so FAILED/NOT_YET_VALID replaces a passed or
// not-yet-valid verdict (DSS: TSV_IBSTAIDOSC_ANS).
func beforeIssuance(leaf *cert.Certificate, best time.Time, ind report.Indication, sub report.SubIndication) (report.Indication, report.SubIndication) {
	if leaf == nil || !best.Before(leaf.NotBefore) {
		return ind, sub
	}
	if ind == report.TotalPassed || (ind == report.Indeterminate && sub == report.NotYetValid) {
		return report.TotalFailed, report.NotYetValid
	}
	return ind, sub
}

func (v *verifier) ignoreFreshness() bool {
	return v.opts.Policy.RevocationFreshness == FreshnessIgnore
}

// provesSignature reports whether a timestamp of this kind covers the
// signature value (directly or through an archive timestamp), so that its
// genTime is a proof of existence of the signature.
func provesSignature(k cms.TimestampKind) bool {
	switch k {
	case cms.TimestampSignature, cms.TimestampArchiveV1, cms.TimestampArchiveV2, cms.TimestampArchiveV3, cms.TimestampESC:
		return true
	}
	return false
}

// provesRevocationData reports whether a timestamp of this kind covers the
// revocation values of the signature: archive timestamps do; the CAdES-X
// timestamps cover references only, not the values.
func provesRevocationData(k cms.TimestampKind) bool {
	switch k {
	case cms.TimestampArchiveV1, cms.TimestampArchiveV2, cms.TimestampArchiveV3:
		return true
	}
	return false
}

// cmsVerdict maps the cryptographic checks to EN 319 102-1: a broken
// content digest or signature value fails the signature outright; a
// missing signing certificate, content or algorithm leaves it
// indeterminate. An empty indication means the CMS checks are fine and the
// certificate chain decides.
func cmsVerdict(sr *cms.SignerResult) (report.Indication, report.SubIndication) {
	outcome := func(id cms.CheckID) (cms.Outcome, bool) {
		c, ok := sr.Check(id)
		return c.Outcome, ok
	}
	if o, ok := outcome(cms.CheckFormat); ok && o == cms.Failed {
		return report.TotalFailed, report.FormatFailure
	}
	if o, ok := outcome(cms.CheckSigningCertificate); ok && o == cms.Failed {
		// A certificate matches the signer identifier but is not the
		// signer's (its key or the signed reference disagree).
		return report.Indeterminate, report.NoSigningCertificateFound
	}
	if o, ok := outcome(cms.CheckMessageDigest); ok && o == cms.Failed {
		return report.TotalFailed, report.HashFailure
	}
	if o, ok := outcome(cms.CheckSignatureValue); ok && o == cms.Failed {
		return report.TotalFailed, report.SigCryptoFailure
	}
	if o, ok := outcome(cms.CheckDigestAlgorithmConsistency); ok && o == cms.Failed {
		return report.TotalFailed, report.SigCryptoFailure
	}
	for _, id := range []cms.CheckID{cms.CheckSignedAttributes, cms.CheckContentType} {
		if o, ok := outcome(id); ok && o == cms.Failed {
			return report.TotalFailed, report.FormatFailure
		}
	}
	if sr.Certificate == nil {
		return report.Indeterminate, report.NoSigningCertificateFound
	}
	if o, ok := outcome(cms.CheckSigningCertificateRef); ok && o == cms.Failed {
		// The signed reference names another certificate: the signing
		// certificate is not identified (as DSS decides).
		return report.Indeterminate, report.NoSigningCertificateFound
	}
	if o, ok := outcome(cms.CheckMessageDigest); ok && o == cms.NotChecked {
		return report.Indeterminate, report.SignedDataNotFound
	}
	if o, ok := outcome(cms.CheckAlgorithms); ok && o != cms.Passed {
		return report.Indeterminate, report.CryptoConstraintsFailureNoPOE
	}
	if o, ok := outcome(cms.CheckSignatureValue); ok && o != cms.Passed {
		return report.Indeterminate, report.CryptoConstraintsFailureNoPOE
	}
	if !sr.Intact {
		return report.Indeterminate, report.SigCryptoFailure
	}
	return "", ""
}

// chainVerdict maps trust's result. signature selects the signature
// indications (TOTAL_*) instead of the building-block ones (for timestamps).
func chainVerdict(r *trust.Result, signature bool) (report.Indication, report.SubIndication) {
	sub := report.SubIndication(r.SubIndication)
	// trust says TRY_LATER both for stale and for absent revocation data;
	// without any, EN 319 102-1 has nothing to wait for, and DSS reports
	// the chain as not conclusive.
	if sub == report.TryLater && noRevocationData(r) {
		sub = report.CertificateChainGeneralFailure
	}
	switch r.Indication {
	case trust.Passed:
		if signature {
			return report.TotalPassed, report.NoSubIndication
		}
		return report.Passed, report.NoSubIndication
	case trust.Failed:
		if signature {
			return report.TotalFailed, sub
		}
		return report.Failed, sub
	}
	return report.Indeterminate, sub
}

func noRevocationData(r *trust.Result) bool {
	for _, rs := range r.Revocation {
		if rs.Status == "" {
			return true
		}
	}
	return false
}

// qualification follows DSS: without a chain to a trusted-list service the
// certificate's qualification is not determined, and neither is the
// signature's, whatever its indication (trust.SignatureQualification says
// "Not AdES" for a failed signature there; DSS and we say N/A, since the
// failure is already in the indication).
func qualification(chain *trust.Result, ind report.Indication) report.Qualification {
	if chain == nil || chain.Qualification == nil || chain.Qualification.Final.Name == trust.CertNA {
		return report.QualificationNotApplicable
	}
	return report.Qualification(chain.SignatureQualification(string(ind)))
}

// embeddedTimestamp evaluates a timestamp attribute of a signature.
func (v *verifier) embeddedTimestamp(tr *cms.TimestampResult, ev *evidence) report.Timestamp {
	ts := report.Timestamp{Type: timestampType(tr.Kind), GenTime: tr.GenTime.UTC(), SHA256: hexSHA256(tr.Raw), Qualification: report.TimestampQualificationNotApplicable}
	tok, err := tsp.ParseToken(tr.Raw)
	if err != nil {
		ts.Indication, ts.SubIndication = report.Failed, report.FormatFailure
		ts.Checks = append(cmsChecks(tr.Checks), report.Check{ID: "tsp.token", Description: "timestamp token", Result: report.CheckFailed, Detail: err.Error()})
		return ts
	}
	res := tok.Verify(tsp.VerifyOptions{ExtraCertificates: ev.certs})
	// The imprint over the signature value was checked by crypto/cms, which
	// knows what each kind of timestamp covers.
	imprint, _ := findCheck(tr.Checks, cms.CheckTimestampImprint)
	v.finishTimestamp(&ts, tok, res, imprint, ev)
	if idx, ok := findCheck(tr.Checks, cms.CheckATSHashIndex); ok {
		ts.Checks = append(ts.Checks, cmsChecks([]cms.Check{idx})...)
	}
	return ts
}

// standaloneToken evaluates an RFC 3161 token given on its own, against the
// detached data if any.
func (v *verifier) standaloneToken(tok *tsp.Token) report.Timestamp {
	ts := report.Timestamp{Type: report.DetachedTimestamp, GenTime: tok.Info.GenTime.UTC(), SHA256: hexSHA256(tok.Raw), Qualification: report.TimestampQualificationNotApplicable}
	opts := tsp.VerifyOptions{Data: v.opts.Detached}
	switch {
	case opts.Data != nil:
	case v.opts.DetachedReader != nil && tok.Info.Hash.Available():
		opts.Digest = v.streamDigest(tok.Info.Hash)
	case v.opts.DetachedDigest != nil && v.opts.DetachedDigestAlgorithm == tok.Info.Hash:
		opts.Digest = v.opts.DetachedDigest
	}
	res := tok.Verify(opts)
	imprint, _ := res.Check(tsp.CheckImprint)
	v.finishTimestamp(&ts, tok, res, imprint, newEvidence(tok.SignedData))
	return ts
}

// finishTimestamp combines the token checks, the imprint and the TSA's
// certificate chain into the timestamp's verdict.
func (v *verifier) finishTimestamp(ts *report.Timestamp, tok *tsp.Token, res *tsp.Result, imprint cms.Check, ev *evidence) {
	var checks []cms.Check
	for _, c := range res.Checks {
		if c.ID != tsp.CheckImprint {
			checks = append(checks, c)
		}
	}
	checks = append(checks, imprint)
	ts.Checks = cmsChecks(checks)
	ts.TSA = certificate(res.TSACertificate)

	tokEv := &evidence{certs: append(append([]*cert.Certificate(nil), res.Certificates...), ev.certs...), crls: ev.crls, ocsp: ev.ocsp}
	tokEv.add(tok.SignedData)
	var chain *trust.Result
	if res.TSACertificate != nil {
		// Missing revocation data for a TSA certificate is recorded, not
		// held against the timestamp: DSS's default policy does the same,
		// and a TSA's key is protected far better than a signer's card.
		chain = v.store.Validate(trust.Input{Leaf: res.TSACertificate, Intermediates: tokEv.certs, CRLs: tokEv.crls, OCSP: tokEv.ocsp, Time: v.time,
			IgnoreRevocationFreshness: v.ignoreFreshness()})
		ts.Checks = append(ts.Checks, trustChecks(chain)...)
	}
	ts.Indication, ts.SubIndication = timestampVerdict(res, imprint, chain)
}

func timestampVerdict(res *tsp.Result, imprint cms.Check, chain *trust.Result) (report.Indication, report.SubIndication) {
	if imprint.Outcome == cms.Failed {
		return report.Failed, report.HashFailure
	}
	if c, ok := res.Signer.Check(cms.CheckSigningCertificate); ok && c.Outcome == cms.Failed {
		return report.Indeterminate, report.NoSigningCertificateFound
	}
	if c, ok := res.Signer.Check(cms.CheckSignatureValue); ok && c.Outcome == cms.Failed && res.Signer.Certificate != nil {
		return report.Failed, report.SigCryptoFailure
	}
	if imprint.Outcome != cms.Passed {
		return report.Indeterminate, report.SignedDataNotFound
	}
	if ind, sub := cmsVerdict(res.Signer); ind != "" {
		if ind == report.TotalFailed {
			ind = report.Failed
		}
		return ind, sub
	}
	if c, ok := res.Check(tsp.CheckTSAExtKeyUsage); ok && c.Outcome != cms.Passed {
		return report.Indeterminate, report.ChainConstraintsFailure
	}
	if imprint.Outcome != cms.Passed {
		return report.Indeterminate, report.SignedDataNotFound
	}
	return chainVerdict(chain, false)
}

func findCheck(cs []cms.Check, id cms.CheckID) (cms.Check, bool) {
	for _, c := range cs {
		if c.ID == id {
			return c, true
		}
	}
	return cms.Check{ID: id, Outcome: cms.NotChecked, Detail: "not performed"}, false
}

func timestampType(k cms.TimestampKind) report.TimestampType {
	switch k {
	case cms.TimestampSignature:
		return report.SignatureTimestamp
	case cms.TimestampContent:
		return report.ContentTimestamp
	case cms.TimestampESC, cms.TimestampCertCRL:
		return report.ValidationDataTimestamp
	}
	return report.ArchiveTimestamp
}

// signatureFormat names the CAdES level found, with DSS's names
// (SignatureLevel): CMS-NOT-ETSI without a signing-certificate(-v2)
// attribute (plain CMS, whatever else it carries); CAdES-BASELINE-B/-T/-LT/-LTA
// when the signature meets the baseline profile of EN 319 122-1 as DSS
// checks it (signing-time and one signing-certificate reference exactly
// once, content type id-data (countersignatures have none), the signing certificate in
// SignedData.certificates);
// otherwise the extended levels of EN 319 122-2 (CAdES-BES, -EPES, -T, -C, -A).
func signatureFormat(sr *cms.SignerResult, sd *cms.SignedData, counter bool) string {
	if sd == nil {
		sd = &cms.SignedData{}
	}
	si := sr.SignerInfo
	if si == nil || si.SignedAttrsRaw == nil {
		return "CMS-NOT-ETSI"
	}
	certAttrs := len(cms.Attributes(si.SignedAttrs, cms.OIDAttrSigningCertificate)) + len(cms.Attributes(si.SignedAttrs, cms.OIDAttrSigningCertificateV2))
	if certAttrs == 0 {
		return "CMS-NOT-ETSI"
	}
	has := func(k ...cms.TimestampKind) bool {
		for _, t := range sr.Timestamps {
			if slices.Contains(k, t.Kind) && t.Token != nil {
				return true
			}
		}
		return false
	}
	archive := has(cms.TimestampArchiveV1, cms.TimestampArchiveV2, cms.TimestampArchiveV3)
	timestamped := has(cms.TimestampSignature)
	// DSS counts a signing-certificate attribute with several references
	// as "present more than once", and so do we: the baseline wants one.
	baseline := certAttrs == 1 && len(sr.SigningCertificateRefs) <= 1 && attributeValues(si.SignedAttrs, cms.OIDAttrSigningTime) == 1 &&
		(counter || sr.ContentType.Equal(cms.OIDData)) && sr.Certificate != nil && slices.ContainsFunc(sd.Certificates, sr.Certificate.Equal)
	if !baseline {
		return extendedFormat(sr, timestamped)
	}
	revocation := len(sr.RevocationValues.CRLs)+len(sr.RevocationValues.OCSPResponses) > 0 ||
		len(sd.CRLs)+len(sd.OCSPResponses)+len(sd.OtherRevocationInfo) > 0
	switch {
	case !timestamped:
		return "CAdES-BASELINE-B"
	case !revocation:
		return "CAdES-BASELINE-T"
	case !archive:
		return "CAdES-BASELINE-LT"
	}
	return "CAdES-BASELINE-LTA"
}

func attributeValues(attrs []cms.Attribute, oid asn1.ObjectIdentifier) int {
	n := 0
	for _, a := range cms.Attributes(attrs, oid) {
		n += len(a.Values)
	}
	return n
}

func extendedFormat(sr *cms.SignerResult, timestamped bool) string {
	signed, unsigned := sr.SignerInfo.SignedAttrs, sr.SignerInfo.UnsignedAttrs
	present := func(attrs []cms.Attribute, oids ...asn1.ObjectIdentifier) bool {
		for _, o := range oids {
			if len(cms.Attributes(attrs, o)) == 0 {
				return false
			}
		}
		return true
	}
	refs := present(unsigned, cms.OIDAttrCompleteCertRefs, cms.OIDAttrCompleteRevocationRefs)
	x := refs && (present(unsigned, cms.OIDAttrEscTimeStamp) || present(unsigned, cms.OIDAttrCertCRLTimestamp))
	// EN 319 122-2 defines CAdES-A by archive-time-stamp-v3; DSS names a
	// signature with only v2 archive timestamps by its lower level.
	switch {
	case !timestamped && present(signed, cms.OIDAttrSigPolicyID):
		return "CAdES-EPES"
	case !timestamped:
		return "CAdES-BES"
	case present(unsigned, cms.OIDAttrArchiveTimestampV3):
		return "CAdES-A"
	case x && present(unsigned, cms.OIDAttrCertValues, cms.OIDAttrRevocationValues):
		return "CAdES-XL"
	case x:
		return "CAdES-X"
	case refs:
		return "CAdES-C"
	}
	return "CAdES-T"
}

// hexSHA256 identifies a token for the report; empty for none.
func hexSHA256(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// certificate identifies c for the report; nil stays nil.
func certificate(c *cert.Certificate) *report.Certificate {
	if c == nil {
		return nil
	}
	sum := sha256.Sum256(c.Raw)
	serial := ""
	if c.SerialNumber != nil {
		serial = c.SerialNumber.String()
	}
	return &report.Certificate{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: serial,
		SHA256: hex.EncodeToString(sum[:]), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
	}
}

func chainCertificates(r *trust.Result) []report.Certificate {
	out := []report.Certificate{}
	for i, c := range r.Chain {
		rc := certificate(c)
		rc.Trusted = i == len(r.Chain)-1 && r.Anchor != nil
		out = append(out, *rc)
	}
	return out
}

var cmsDescriptions = map[cms.CheckID]string{
	cms.CheckFormat:                     "SignerInfo and attributes are well-formed",
	cms.CheckAlgorithms:                 "digest and signature algorithms are supported",
	cms.CheckSigningCertificate:         "the signing certificate is present",
	cms.CheckSignedAttributes:           "mandatory signed attributes present exactly once",
	cms.CheckContentType:                "content-type attribute matches the content",
	cms.CheckMessageDigest:              "message digest matches the signed content",
	cms.CheckDigestAlgorithmConsistency: "signature algorithm uses the declared digest",
	cms.CheckSignatureValue:             "signature value verifies with the signing certificate's key",
	cms.CheckSigningCertificateRef:      "signed reference to the signing certificate matches",
	cms.CheckTimestampImprint:           "timestamp imprint matches the timestamped data",
	cms.CheckTimestampContent:           "timestamp token holds a well-formed TSTInfo",
	cms.CheckATSHashIndex:               "every entry of the ats-hash-index matches an element of the signature",
	tsp.CheckTSAExtKeyUsage:             "TSA certificate has the critical timeStamping extended key usage only",
}

func cmsChecks(cs []cms.Check) []report.Check {
	out := make([]report.Check, 0, len(cs))
	for _, c := range cs {
		desc := cmsDescriptions[c.ID]
		if desc == "" {
			desc = string(c.ID)
		}
		res := report.CheckOK
		switch c.Outcome {
		case cms.Failed:
			res = report.CheckFailed
		case cms.NotChecked:
			res = report.CheckWarning
		}
		out = append(out, report.Check{ID: "cms." + string(c.ID), Description: desc, Result: res, Detail: c.Detail})
	}
	return out
}

func trustChecks(r *trust.Result) []report.Check {
	var out []report.Check
	add := func(cs []trust.Check) {
		for _, c := range cs {
			res := report.CheckOK
			switch c.Result {
			case trust.Failed:
				res = report.CheckFailed
			case trust.Indeterminate:
				res = report.CheckWarning
			case trust.Info:
				res = report.CheckInfo
			}
			desc := c.Name
			if c.Subject != "" {
				desc += " of " + c.Subject
			}
			detail := c.Detail
			if c.SubIndication != "" {
				detail = c.SubIndication + ": " + detail
			}
			out = append(out, report.Check{ID: "trust." + c.Name, Description: desc, Result: res, Detail: detail})
		}
	}
	add(r.Checks)
	if r.Qualification != nil {
		add(r.Qualification.Checks)
	}
	return out
}

// streamDigest hashes the content opts.DetachedReader opens; nil (and
// contentErr set) when it cannot be read.
func (v *verifier) streamDigest(h crypto.Hash) []byte {
	rc, err := v.opts.DetachedReader()
	if err == nil {
		w := h.New()
		_, err = io.Copy(w, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return w.Sum(nil)
		}
	}
	if v.contentErr == nil {
		v.contentErr = err
	}
	return nil
}
