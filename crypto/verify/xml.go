package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// xmlLimits bound the XML parser for signed documents: the size cap of
// Verify, and depth and attribute counts no XAdES producer comes near.
var xmlLimits = xmldsig.Limits{MaxBytes: MaxInputSize, MaxDepth: 64, MaxNodes: 2_000_000, MaxAttributes: 64}

// xmlFile verifies every XML signature of an XML document.
func (v *verifier) xmlFile(ctx context.Context, rep *report.Report, data []byte) error {
	doc, err := xmldsig.Parse(data, xmlLimits)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var det xmldsig.Detached
	switch {
	case v.opts.Detached != nil:
		det = func(string) ([]byte, bool) { return v.opts.Detached, true }
	case v.opts.DetachedReader != nil:
		// A reference's transforms may need the content as a whole (XML
		// to canonicalize), so it is read, within the input cap, once.
		var content []byte
		var read bool
		det = func(string) ([]byte, bool) {
			if !read {
				read = true
				content = v.readDetached()
			}
			return content, content != nil
		}
	}
	_, err = v.xmlSignatures(ctx, rep, doc, det, true)
	return err
}

// xmlSignatures verifies the signatures of doc and returns their checks in
// the order of the report's new signatures. With wholeDocument, a
// signature inside the document must cover the document element: that is
// what a reader of the file takes as signed, and signature wrapping moves
// the signed data elsewhere.
func (v *verifier) xmlSignatures(ctx context.Context, rep *report.Report, doc *xmldsig.Document, det xmldsig.Detached, wholeDocument bool) ([]*xmldsig.Result, error) {
	sigs, err := xmldsig.FindSignatures(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%w: XML document without ds:Signature", ErrMalformed)
	}
	var out []*xmldsig.Result
	for _, el := range sigs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res := xmldsig.VerifySignature(ctx, doc, el, xmldsig.SignatureOptions{Detached: det, Limits: xmlLimits})
		v.signatures++
		rep.Signatures = append(rep.Signatures, v.xmlSignature(res, fmt.Sprintf("S-%d", v.signatures), wholeDocument))
		out = append(out, res)
	}
	return out, nil
}

// xmlSignature turns one checked XML signature into its verdict, in the
// order of EN 319 102-1: format, identification of the signing
// certificate, signed data found, digests, signature value, then the
// certificate chain at the best signature time.
func (v *verifier) xmlSignature(res *xmldsig.Result, id string, wholeDocument bool) report.Signature {
	s := report.Signature{ID: id, Format: xmlFormat(res), Timestamps: []report.Timestamp{}, Chain: []report.Certificate{}}
	s.Checks = []report.Check{}
	check := func(cid, desc string, err error, failed bool) {
		c := report.Check{ID: cid, Description: desc, Result: report.CheckOK}
		if err != nil {
			c.Detail = err.Error()
			c.Result = report.CheckWarning
			if failed {
				c.Result = report.CheckFailed
			}
		}
		s.Checks = append(s.Checks, c)
	}
	best := v.time
	s.BestSignatureTime = &best
	if res.FormatErr != nil {
		check("xmldsig.format", "the signature is well-formed XML-DSig", res.FormatErr, true)
		s.Indication, s.SubIndication, s.Qualification = report.TotalFailed, report.FormatFailure, report.QualificationNotApplicable
		return s
	}
	check("xmldsig.format", "the signature is well-formed XML-DSig", nil, false)
	x := res.XAdES
	if x != nil && !x.SigningTime.IsZero() {
		t := x.SigningTime.UTC()
		s.SigningTime = &t
	}
	signer, idErr := signingCertificate(res)
	check("xades.signing-certificate", "the signing certificate is identified", idErr, true)
	if signer != nil {
		s.Signer = certificate(signer)
	}
	if x != nil && x.SignedProperties != nil {
		var err error
		if !x.SignedPropertiesReferenced {
			err = errors.New("no reference of type SignedProperties covers xades:SignedProperties: the properties are not signed")
		}
		check("xades.signed-properties", "the qualifying properties are signed", err, false)
	}
	notFound, mismatch := v.referenceChecks(&s, res, wholeDocument)
	valueErr := res.ValueErr
	if valueErr == nil && signer != nil && !bytes.Equal(res.Signer.Raw, signer.Raw) {
		valueErr = fmt.Errorf("the value verifies with %s, not with the signing certificate", res.Signer.Subject)
	}
	if res.AlgorithmErr != nil {
		check("xmldsig.algorithm", "the signature method is supported", res.AlgorithmErr, true)
	} else {
		check("xmldsig.signature-value", "the signature value verifies with the signing certificate's key", valueErr, true)
	}

	ev := xmlEvidence(res)
	for _, p := range ev.problems {
		s.Checks = append(s.Checks, report.Check{ID: "evidence.unreadable", Description: "validation data carried by the signature", Result: report.CheckWarning, Detail: p})
	}
	poe := v.xmlTimestamps(&s, res, ev)
	if !poe.IsZero() {
		best = poe.UTC()
	}

	switch {
	case idErr != nil:
		s.Indication, s.SubIndication = report.Indeterminate, report.NoSigningCertificateFound
	case res.AlgorithmErr != nil:
		s.Indication, s.SubIndication = report.Indeterminate, report.CryptoConstraintsFailureNoPOE
	case notFound:
		s.Indication, s.SubIndication = report.Indeterminate, report.SignedDataNotFound
	case mismatch:
		s.Indication, s.SubIndication = report.TotalFailed, report.HashFailure
	case valueErr != nil:
		s.Indication, s.SubIndication = report.TotalFailed, report.SigCryptoFailure
	}
	var chain *trust.Result
	if signer != nil {
		chain = v.store.Validate(trust.Input{Leaf: signer, Intermediates: ev.certs, CRLs: ev.crls, OCSP: ev.ocsp, Time: v.time, POE: poe})
		s.Chain = chainCertificates(chain)
		s.Checks = append(s.Checks, trustChecks(chain)...)
		if s.Indication == "" {
			s.Indication, s.SubIndication = chainVerdict(chain, true)
		}
	}
	s.Qualification = qualification(chain, s.Indication)
	return s
}

// signingCertificate identifies the signer's certificate: with a signing
// certificate property, the candidate it names (EN 319 132-1 5.2.2);
// without one, the candidate whose key verifies the value, else the first
// KeyInfo certificate.
func signingCertificate(res *xmldsig.Result) (*cert.Certificate, error) {
	candidates := res.Candidates(nil)
	if len(candidates) == 0 {
		if res.KeyInfoErr != nil {
			return nil, res.KeyInfoErr
		}
		return nil, errors.New("no certificate in ds:KeyInfo or xades:CertificateValues")
	}
	x := res.XAdES
	if x == nil || len(x.SigningCertificates) == 0 {
		if res.Signer != nil {
			return res.Signer, nil
		}
		return candidates[0], nil
	}
	var lastErr error
	for _, c := range candidates {
		if lastErr = x.MatchSigningCertificate(c); lastErr == nil {
			return c, nil
		}
	}
	// DSS shows the certificate whose key verified even when the signed
	// reference names another; so does the report, as not identified.
	return res.Signer, fmt.Errorf("no candidate certificate matches the signed signing certificate reference: %v", lastErr)
}

// referenceChecks records each reference and tells whether signed data
// was not found or a digest did not match.
func (v *verifier) referenceChecks(s *report.Signature, res *xmldsig.Result, wholeDocument bool) (notFound, mismatch bool) {
	for i, r := range res.References {
		c := report.Check{ID: "xmldsig.reference", Description: fmt.Sprintf("reference %d (%s, %s) digest matches", i+1, refLabel(r.URI), r.Kind), Result: report.CheckOK}
		switch r.Status {
		case xmldsig.RefNotFound:
			notFound = true
			c.Result, c.Detail = report.CheckFailed, r.Err.Error()
		case xmldsig.RefDigestMismatch:
			mismatch = true
			c.Result, c.Detail = report.CheckFailed, r.Err.Error()
		}
		s.Checks = append(s.Checks, c)
	}
	var err error
	switch {
	case len(res.DataReferences()) == 0:
		err = errors.New("no reference to a signed data object")
	case wholeDocument && !res.Enveloping && !res.CoversDocument():
		err = errors.New("the signature sits inside the document but no reference covers the document element: what a reader sees is not what was signed")
	}
	if err != nil {
		notFound = true
		s.Checks = append(s.Checks, report.Check{ID: "xmldsig.signed-data", Description: "the signed data is the document", Result: report.CheckFailed, Detail: err.Error()})
	}
	return notFound, mismatch
}

func refLabel(uri string) string {
	if uri == "" {
		return `URI=""`
	}
	return uri
}

// xmlFormat names the signature format in DSS's spelling: XML-NOT-ETSI
// without usable qualifying properties or signed data objects, XAdES-BES
// when the properties are not signed or no certificate is at hand, else
// the baseline level the unsigned properties reach.
func xmlFormat(res *xmldsig.Result) string {
	x := res.XAdES
	if res.FormatErr != nil || x == nil || x.SignedProperties == nil || len(res.DataReferences()) == 0 {
		return "XML-NOT-ETSI"
	}
	for _, r := range res.References {
		if r.Type == xmldsig.TypeSignedProps && r.Kind != xmldsig.RefSignedProperties {
			return "XML-NOT-ETSI"
		}
	}
	if !x.SignedPropertiesReferenced || len(res.Candidates(nil)) == 0 {
		return "XAdES-BES"
	}
	if !dataObjectFormats(res) {
		// EN 319 132-1 6.3: a baseline signature describes every signed
		// data object with a DataObjectFormat; without, DSS names the
		// EN 319 132 level.
		return map[string]string{"B": "XAdES-BES", "T": "XAdES-T", "LT": "XAdES-LT", "LTA": "XAdES-A"}[x.Level()]
	}
	return "XAdES-BASELINE-" + x.Level()
}

// dataObjectFormats reports whether every data-object reference has a
// xades:DataObjectFormat pointing at its Id.
func dataObjectFormats(res *xmldsig.Result) bool {
	for _, r := range res.DataReferences() {
		found := false
		for _, ref := range res.XAdES.DataObjectFormats {
			found = found || (r.ID != "" && ref == "#"+r.ID)
		}
		if !found {
			return false
		}
	}
	return true
}

// xmlEvidence collects the validation data an XML signature carries:
// KeyInfo certificates and the XAdES certificate and revocation values.
func xmlEvidence(res *xmldsig.Result) *evidence {
	ev := &evidence{certs: res.Candidates(nil)}
	x := res.XAdES
	if x == nil {
		return ev
	}
	for i, raw := range x.CRLValues {
		ev.addCRL(raw, fmt.Sprintf("xades:EncapsulatedCRLValue %d", i+1))
	}
	for i, raw := range x.OCSPValues {
		// XAdES carries a complete OCSPResponse; be lenient as for CMS.
		r, err := trust.ParseOCSPResponse(raw)
		if err != nil {
			r, err = trust.ParseBasicOCSPResponse(raw)
		}
		if err != nil {
			ev.problems = append(ev.problems, fmt.Sprintf("xades:EncapsulatedOCSPValue %d: %v", i+1, err))
			continue
		}
		ev.ocsp = append(ev.ocsp, r)
	}
	return ev
}

// xmlTimestamps verifies the XAdES timestamps and returns the earliest
// proof of existence of the signature they give.
func (v *verifier) xmlTimestamps(s *report.Signature, res *xmldsig.Result, ev *evidence) time.Time {
	x := res.XAdES
	if x == nil {
		return time.Time{}
	}
	type job struct {
		ts     xmldsig.Timestamp
		typ    report.TimestampType
		data   []byte
		ok     bool
		proves bool
	}
	var jobs []job
	for _, ts := range x.AllDataObjectsTimestamps {
		data, ok := res.AllDataObjectsTimestampData()
		jobs = append(jobs, job{ts, report.ContentTimestamp, data, ok, false})
	}
	for _, ts := range x.SignatureTimestamps {
		jobs = append(jobs, job{ts, report.SignatureTimestamp, res.SignatureTimestampData(ts), true, true})
	}
	for k, ts := range x.ArchiveTimestamps {
		data, ok := res.ArchiveTimestampData(k)
		jobs = append(jobs, job{ts, report.ArchiveTimestamp, data, ok, true})
	}
	// Validation data in the tokens serves the whole signature, as for CAdES.
	for _, j := range jobs {
		if tok, err := tsp.ParseToken(j.ts.Token); err == nil {
			ev.add(tok.SignedData)
		}
	}
	var poe time.Time
	for _, j := range jobs {
		rt := v.xmlTimestamp(j.ts, j.typ, j.data, j.ok, ev)
		s.Timestamps = append(s.Timestamps, rt)
		if j.proves && rt.Indication == report.Passed && (poe.IsZero() || rt.GenTime.Before(poe)) {
			poe = rt.GenTime
		}
	}
	return poe
}

func (v *verifier) xmlTimestamp(ts xmldsig.Timestamp, typ report.TimestampType, data []byte, haveData bool, ev *evidence) report.Timestamp {
	rt := report.Timestamp{Type: typ, Qualification: report.TimestampQualificationNotApplicable}
	tok, err := tsp.ParseToken(ts.Token)
	if err != nil {
		rt.Indication, rt.SubIndication = report.Failed, report.FormatFailure
		rt.Checks = []report.Check{{ID: "tsp.token", Description: "timestamp token", Result: report.CheckFailed, Detail: err.Error()}}
		return rt
	}
	rt.GenTime = tok.Info.GenTime.UTC()
	opts := tsp.VerifyOptions{ExtraCertificates: ev.certs}
	if haveData {
		opts.Data = data
		if opts.Data == nil {
			opts.Data = []byte{}
		}
	}
	res := tok.Verify(opts)
	imprint, _ := res.Check(tsp.CheckImprint)
	if !haveData {
		imprint = cms.Check{ID: cms.CheckTimestampImprint, Outcome: cms.NotChecked, Detail: "the timestamped data objects were not found"}
	}
	v.finishTimestamp(&rt, tok, res, imprint, ev)
	return rt
}

// readDetached reads the content opts.DetachedReader opens, up to
// MaxInputSize; nil (and contentErr set) when it cannot.
func (v *verifier) readDetached() []byte {
	rc, err := v.opts.DetachedReader()
	if err == nil {
		var b []byte
		b, err = io.ReadAll(io.LimitReader(rc, MaxInputSize+1))
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err == nil && len(b) > MaxInputSize {
			err = fmt.Errorf("detached content of more than %d bytes", MaxInputSize)
		}
		if err == nil {
			return b
		}
	}
	if v.contentErr == nil {
		v.contentErr = err
	}
	return nil
}
