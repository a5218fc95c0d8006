package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/pades"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// pdfFile verifies every signature and document timestamp of a PDF with
// crypto/pades, then validates their certificates as for CMS, with the DSS
// dictionary's certificates and revocation data as validation material and
// passed document timestamps as proof of existence of the signatures they
// cover.
func (v *verifier) pdfFile(ctx context.Context, rep *report.Report, data []byte) error {
	res, err := pades.Verify(ctx, bytes.NewReader(data), int64(len(data)), pades.Options{})
	if err != nil {
		if errors.Is(err, pades.ErrMalformed) {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return fmt.Errorf("verify: PDF: %w", err)
	}
	ev := dssEvidence(res.DSS)
	docTS := make([]report.Timestamp, len(res.Signatures))
	for i, s := range res.Signatures {
		if s.DocumentTimestamp() {
			docTS[i] = v.documentTimestamp(s, ev)
		}
	}
	signatures := 0
	for i, s := range res.Signatures {
		if s.DocumentTimestamp() {
			continue
		}
		signatures++
		c := pdfContainer(res, i, docTS)
		id := fmt.Sprintf("S-%d", v.signatures+1)
		if s.CMS == nil || len(s.CMS.Signers) == 0 {
			v.signatures++
			rep.Signatures = append(rep.Signatures, unreadablePDFSignature(id, s, c))
			continue
		}
		sev := ev.merged(newEvidence(s.SignedData))
		for _, sr := range s.CMS.Signers {
			v.signatures++
			c.format = padesFormat(s, sr, res, i, sr.Certificate != nil && v.revocationComplete(sr.Certificate, sev))
			v.addSignatureIn(rep, sr, sev, fmt.Sprintf("S-%d", v.signatures), "", "", c)
		}
	}
	if signatures == 0 {
		for i, s := range res.Signatures {
			ts := docTS[i]
			ts.Checks = append(ts.Checks, structureChecks(s)...)
			rep.Timestamps = append(rep.Timestamps, ts)
		}
	}
	return nil
}

// merged returns the evidence of both.
func (ev *evidence) merged(o *evidence) *evidence {
	out := &evidence{}
	for _, e := range []*evidence{ev, o} {
		out.certs = append(out.certs, e.certs...)
		out.crls = append(out.crls, e.crls...)
		out.ocsp = append(out.ocsp, e.ocsp...)
		out.problems = append(out.problems, e.problems...)
	}
	return out
}

func dssEvidence(d *pades.DSS) *evidence {
	ev := &evidence{}
	if d == nil {
		return ev
	}
	ev.certs = append(ev.certs, d.Certificates...)
	for i, raw := range d.CRLs {
		ev.addCRL(raw, fmt.Sprintf("DSS CRL %d", i+1))
	}
	for i, raw := range d.OCSPs {
		r, err := trust.ParseOCSPResponse(raw)
		if err != nil {
			r, err = trust.ParseBasicOCSPResponse(raw)
		}
		if err != nil {
			ev.problems = append(ev.problems, fmt.Sprintf("DSS OCSP response %d: %v", i+1, err))
			continue
		}
		ev.ocsp = append(ev.ocsp, r)
	}
	ev.problems = append(ev.problems, d.Problems...)
	return ev
}

// pdfContainer collects what the PDF adds to its i-th signature: the
// document timestamps of later revisions, the structure checks and the
// changes made after it.
func pdfContainer(res *pades.Result, i int, docTS []report.Timestamp) *container {
	s := res.Signatures[i]
	c := &container{checks: structureChecks(s)}
	for _, p := range s.Problems {
		if p.ID == "byterange" || p.ID == "dictionary" || p.ID == "contents" {
			c.formatFailure = p.Detail
			break
		}
	}
	for j := i + 1; j < len(res.Signatures); j++ {
		if !res.Signatures[j].DocumentTimestamp() || res.Signatures[j].RevisionEnd <= s.RevisionEnd {
			continue
		}
		ts := docTS[j]
		c.timestamps = append(c.timestamps, ts)
		if ts.Indication == report.Passed && (c.poe.IsZero() || ts.GenTime.Before(c.poe)) {
			c.poe = ts.GenTime
		}
	}
	c.checks = append(c.checks, changeChecks(s)...)
	if mdp := docMDPCheck(s); mdp != nil {
		c.checks = append(c.checks, *mdp)
	}
	if t, ok := pades.ParseDate(s.M); ok {
		c.signingTime = &t
	}
	return c
}

// structureChecks reports the ByteRange and signature dictionary checks.
func structureChecks(s *pades.Signature) []report.Check {
	if len(s.Problems) == 0 {
		return []report.Check{{ID: "pades.byterange", Description: "the ByteRange covers the whole signed revision except exactly /Contents", Result: report.CheckOK}}
	}
	var out []report.Check
	for _, p := range s.Problems {
		res := report.CheckFailed
		if p.ID == "changes" {
			res = report.CheckWarning
		}
		out = append(out, report.Check{ID: "pades." + p.ID, Description: "PDF signature structure", Result: res, Detail: p.Detail})
	}
	return out
}

// changeChecks summarises the changes after the signed revision: permitted
// ones as information, others as a warning, since they alter what a reader
// sees without touching the signature (DSS warns likewise).
func changeChecks(s *pades.Signature) []report.Check {
	if len(s.Changes) == 0 {
		return nil
	}
	counts := map[pades.ChangeKind]int{}
	var content []string
	for _, ch := range s.Changes {
		counts[ch.Kind]++
		if ch.Kind == pades.ChangeContent && len(content) < 5 {
			content = append(content, ch.Object.String()+" ("+ch.Detail+")")
		}
	}
	var parts []string
	for _, k := range []pades.ChangeKind{pades.ChangeSignature, pades.ChangeValidationData, pades.ChangeFormFill, pades.ChangeAnnotation, pades.ChangeMetadata, pades.ChangeContent} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", k, counts[k]))
		}
	}
	detail := "objects changed after the signed revision: " + strings.Join(parts, ", ")
	if counts[pades.ChangeContent] > 0 {
		return []report.Check{{ID: "pades.modified-after-signing", Description: "the document was modified after signing beyond the permitted changes",
			Result: report.CheckWarning, Detail: detail + "; e.g. " + strings.Join(content, ", ")}}
	}
	return []report.Check{{ID: "pades.modified-after-signing", Description: "changes after signing are permitted ones (signatures, validation data, form filling, annotations, metadata)",
		Result: report.CheckInfo, Detail: detail}}
}

// docMDPCheck judges the changes after a certification signature against
// its DocMDP permission; PAdES adds validation data and document
// timestamps to every level (EN 319 142-1 5.4).
func docMDPCheck(s *pades.Signature) *report.Check {
	if s.DocMDP == 0 {
		return nil
	}
	allowed := map[pades.ChangeKind]bool{pades.ChangeValidationData: true, pades.ChangeMetadata: true}
	if s.DocMDP >= 2 {
		allowed[pades.ChangeFormFill], allowed[pades.ChangeSignature] = true, true
	}
	if s.DocMDP >= 3 {
		allowed[pades.ChangeAnnotation] = true
	}
	for _, ch := range s.Changes {
		if !allowed[ch.Kind] {
			return &report.Check{ID: "pades.docmdp", Description: fmt.Sprintf("changes after the certification signature are within DocMDP permission %d", s.DocMDP),
				Result: report.CheckWarning, Detail: fmt.Sprintf("%s change of %s (%s) is not permitted", ch.Kind, ch.Object, ch.Detail)}
		}
	}
	return &report.Check{ID: "pades.docmdp", Description: fmt.Sprintf("changes after the certification signature are within DocMDP permission %d", s.DocMDP), Result: report.CheckOK}
}

// unreadablePDFSignature reports a signature whose CMS cannot be read.
func unreadablePDFSignature(id string, s *pades.Signature, c *container) report.Signature {
	detail := "no signer"
	if s.ParseErr != nil {
		detail = s.ParseErr.Error()
	}
	checks := append([]report.Check{{ID: "cms.parse", Description: "the CMS in /Contents is readable", Result: report.CheckFailed, Detail: detail}}, c.checks...)
	return report.Signature{
		ID: id, Format: "PDF-NOT-ETSI", Indication: report.TotalFailed, SubIndication: report.FormatFailure,
		Qualification: report.QualificationNotApplicable, Timestamps: append([]report.Timestamp{}, c.timestamps...),
		Chain: []report.Certificate{}, Checks: checks,
	}
}

// documentTimestamp evaluates a /DocTimeStamp like any timestamp; its
// imprint was checked against the covered bytes by crypto/pades.
func (v *verifier) documentTimestamp(s *pades.Signature, ev *evidence) report.Timestamp {
	ts := report.Timestamp{Type: report.DocumentTimestamp, Qualification: report.TimestampQualificationNotApplicable}
	if s.Token == nil {
		ts.Indication, ts.SubIndication = report.Failed, report.FormatFailure
		detail := "unreadable"
		if s.ParseErr != nil {
			detail = s.ParseErr.Error()
		}
		ts.Checks = []report.Check{{ID: "tsp.token", Description: "timestamp token", Result: report.CheckFailed, Detail: detail}}
		return ts
	}
	ts.GenTime = s.Token.Info.GenTime.UTC()
	imprint, _ := s.Timestamp.Check(tsp.CheckImprint)
	v.finishTimestamp(&ts, s.Token, s.Timestamp, imprint, ev)
	if len(s.Problems) > 0 && ts.Indication != report.Failed {
		ts.Indication, ts.SubIndication = report.Failed, report.FormatFailure
	}
	ts.Checks = append(ts.Checks, structureChecks(s)...)
	return ts
}

// padesFormat names the level as DSS does: PAdES-BASELINE-B/T/LT/LTA for
// ETSI.CAdES.detached with one signing-certificate attribute holding one
// reference and no signing-time attribute (EN 319 142-1 6.3), PAdES-BES for
// other CAdES, PKCS7-B/T/LT/LTA for adbe.pkcs7.detached, and PDF-NOT-ETSI
// otherwise. LT wants a DSS dictionary and revocation data in the document
// for the signer's chain (revocation, see revocationComplete), LTA a later
// document timestamp over it.
func padesFormat(s *pades.Signature, sr *cms.SignerResult, res *pades.Result, i int, revocation bool) string {
	level := "B"
	hasSigTS := false
	for _, t := range sr.Timestamps {
		if t.Kind == cms.TimestampSignature {
			hasSigTS = true
		}
	}
	var firstDocTS int64
	for _, o := range res.Signatures[i+1:] {
		if o.DocumentTimestamp() && firstDocTS == 0 {
			firstDocTS = o.RevisionEnd
		}
	}
	var dssAfter int64
	for _, r := range res.DSSRevisions {
		if r > s.RevisionEnd && dssAfter == 0 {
			dssAfter = r
		}
	}
	// A DSS dictionary without revocation data for the signer's chain
	// leaves the signature at T (DSS: all required revocation data present).
	lt := dssAfter > 0 && revocation
	switch {
	case lt && lastDocTSAfter(res, dssAfter):
		level = "LTA"
	case lt && (hasSigTS || firstDocTS > 0):
		level = "LT"
	case hasSigTS || firstDocTS > 0:
		level = "T"
	}
	switch s.SubFilter {
	case pades.SubFilterPKCS7Detached, pades.SubFilterPKCS7SHA1:
		return "PKCS7-" + level
	case pades.SubFilterCAdES:
		if sr.SignerInfo == nil || len(sr.SigningCertificateRefs) == 0 {
			return "PDF-NOT-ETSI"
		}
		// Several signing-certificate attributes or references (DSS:
		// BBB_ICS_ISASCPU "present more than once") are neither baseline
		// nor BES for DSS.
		attrs := len(cms.Attributes(sr.SignerInfo.SignedAttrs, cms.OIDAttrSigningCertificate)) +
			len(cms.Attributes(sr.SignerInfo.SignedAttrs, cms.OIDAttrSigningCertificateV2))
		if attrs > 1 || len(sr.SigningCertificateRefs) > 1 {
			return "PDF-NOT-ETSI"
		}
		if !sr.SigningTime.IsZero() {
			return "PAdES-BES"
		}
		return "PAdES-BASELINE-" + level
	}
	return "PDF-NOT-ETSI"
}

// maxChainDepth bounds the walk up a chain of the document's certificates.
const maxChainDepth = 16

// revocationComplete is DSS's "all required revocation data present" for
// the signer's chain: every certificate from leaf up to, not including, a
// trust anchor or a self-issued certificate has revocation data in ev. Where
// the document holds no issuer the chain ends there, as it does for DSS.
func (v *verifier) revocationComplete(leaf *cert.Certificate, ev *evidence) bool {
	anchors := v.store.Anchors()
	isAnchor := func(c *cert.Certificate) bool {
		for _, a := range anchors {
			if bytes.Equal(a.Cert.Raw, c.Raw) || (cert.NameEqual(a.Cert.RawSubject, c.RawSubject) &&
				bytes.Equal(a.Cert.RawSubjectPublicKeyInfo, c.RawSubjectPublicKeyInfo)) {
				return true
			}
		}
		return false
	}
	c := leaf
	for range maxChainDepth {
		if isAnchor(c) || cert.NameEqual(c.RawSubject, c.RawIssuer) {
			return true
		}
		if !ev.revocationFor(c) {
			return false
		}
		var next *cert.Certificate
		for _, o := range ev.certs {
			if cert.NameEqual(o.RawSubject, c.RawIssuer) && !bytes.Equal(o.Raw, c.Raw) {
				next = o
				break
			}
		}
		if next == nil {
			return true
		}
		c = next
	}
	return false
}

// revocationFor says whether the evidence holds a CRL of c's issuer or an
// OCSP response about c.
func (ev *evidence) revocationFor(c *cert.Certificate) bool {
	for _, crl := range ev.crls {
		if bytes.Equal(crl.RawIssuer, c.RawIssuer) {
			return true
		}
	}
	for _, r := range ev.ocsp {
		for _, single := range r.Responses {
			if single.Serial == nil || single.Serial.Cmp(c.SerialNumber) != 0 || !single.HashAlgorithm.Available() {
				continue
			}
			h := single.HashAlgorithm.New()
			h.Write(c.RawIssuer)
			if bytes.Equal(h.Sum(nil), single.IssuerNameHash) {
				return true
			}
		}
	}
	return false
}

func lastDocTSAfter(res *pades.Result, end int64) bool {
	for _, o := range res.Signatures {
		if o.DocumentTimestamp() && o.RevisionEnd > end {
			return true
		}
	}
	return false
}
