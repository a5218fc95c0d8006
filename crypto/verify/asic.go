package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/poststelle/poststelle/crypto/asic"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// asicFile verifies every signature and timestamp of an ASiC container
// and records which data objects each covers; data objects nobody covers
// are listed in the report's container section.
func (v *verifier) asicFile(ctx context.Context, rep *report.Report, data []byte) error {
	c, err := asic.Open(ctx, data, asic.Limits{MaxTotalSize: MaxInputSize * 2})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	cov := coverage{}
	for _, f := range c.XAdESSignatures {
		if err := v.asicXAdES(ctx, rep, c, f, cov); err != nil {
			return err
		}
	}
	for _, f := range c.CAdESSignatures {
		v.asicCAdES(rep, c, f, cov)
	}
	for i, f := range c.Timestamps {
		v.asicTimestamp(rep, c, f, i+1, cov)
	}
	rep.Container = containerSection(c, cov)
	return nil
}

// coverage maps a data object's name to the signatures that cover it.
type coverage map[string][]string

func (cov coverage) add(name, by string) {
	for _, b := range cov[name] {
		if b == by {
			return
		}
	}
	cov[name] = append(cov[name], by)
}

func containerSection(c *asic.Container, cov coverage) *report.Container {
	out := &report.Container{Type: c.Type, DataObjects: []report.ContainerObject{}, Uncovered: []string{}}
	covered := map[string]bool{}
	for _, f := range c.DataObjects {
		sum := sha256.Sum256(f.Data)
		by := cov[f.Name]
		if by == nil {
			by = []string{}
		}
		covered[f.Name] = len(by) > 0
		out.DataObjects = append(out.DataObjects, report.ContainerObject{Name: f.Name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(f.Data)), CoveredBy: by})
	}
	out.Uncovered = append(out.Uncovered, c.Uncovered(covered)...)
	return out
}

// asicXAdES verifies the signatures of one META-INF/*signatures*.xml; their
// references name data objects of the container.
func (v *verifier) asicXAdES(ctx context.Context, rep *report.Report, c *asic.Container, f asic.File, cov coverage) error {
	doc, err := xmldsig.Parse(f.Data, xmlLimits)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, f.Name, err)
	}
	det := func(uri string) ([]byte, bool) {
		b, _, ok := c.Resolve(uri)
		return b, ok
	}
	first := len(rep.Signatures)
	results, err := v.xmlSignatures(ctx, rep, doc, det, false)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	for i, res := range results {
		s := &rep.Signatures[first+i]
		var names []string
		for _, r := range res.References {
			if r.Kind != xmldsig.RefDetached || r.Status != xmldsig.RefOK {
				continue
			}
			if _, name, ok := c.Resolve(r.URI); ok {
				cov.add(name, s.ID)
				names = append(names, name)
			}
		}
		s.Checks = append(s.Checks, coverageCheck(f.Name, names))
	}
	return nil
}

func coverageCheck(entry string, names []string) report.Check {
	c := report.Check{ID: "asic.coverage", Description: "data objects of the container covered by this signature (" + entry + ")", Result: report.CheckInfo, Detail: strings.Join(names, ", ")}
	if len(names) == 0 {
		c.Result, c.Detail = report.CheckWarning, "none"
	}
	return c
}

// asicCAdES verifies a META-INF/*signature*.p7s: in ASiC-S a detached CAdES
// signature over the one data object, in ASiC-E over the ASiCManifest that
// names it, whose listed digests must then match the data objects.
func (v *verifier) asicCAdES(rep *report.Report, c *asic.Container, f asic.File, cov coverage) {
	sd, err := cms.Parse(f.Data)
	if err != nil || len(sd.Signers) == 0 {
		rep.Signatures = append(rep.Signatures, v.unreadableSignature(f.Name, fmt.Errorf("not a CMS signature: %v", err)))
		return
	}
	var content []byte
	var manifest *asic.Manifest
	if c.Type == asic.TypeS {
		content = c.DataObjects[0].Data
	} else {
		manifest, err = c.ManifestFor(f.Name)
		if err != nil {
			rep.Signatures = append(rep.Signatures, v.unreadableSignature(f.Name, err))
			return
		}
		for _, m := range c.Manifests {
			if m.Name == manifest.Name {
				content = m.Data
			}
		}
	}
	first := len(rep.Signatures)
	res := v.signedDataResult(rep, sd, content)
	k := 0 // the top-level signer s belongs to; countersignatures follow it
	for i := first; i < len(rep.Signatures); i++ {
		s := &rep.Signatures[i]
		if s.CounterSignatureOf != "" {
			continue
		}
		intact := k < len(res.Signers) && messageDigestOK(res.Signers[k])
		k++
		var names []string
		if manifest == nil {
			if intact {
				names = append(names, c.DataObjects[0].Name)
			}
		} else {
			names = v.applyManifest(s, c, manifest, intact)
		}
		for _, n := range names {
			cov.add(n, s.ID)
		}
		s.Checks = append(s.Checks, coverageCheck(f.Name, names))
	}
}

func messageDigestOK(sr *cms.SignerResult) bool {
	c, ok := sr.Check(cms.CheckMessageDigest)
	return ok && c.Outcome == cms.Passed
}

// applyManifest checks the manifest's digests for signature s (which
// signed the manifest): a missing object leaves the signature without its
// signed data, a wrong digest fails it, as a wrong message digest would.
func (v *verifier) applyManifest(s *report.Signature, c *asic.Container, m *asic.Manifest, intact bool) []string {
	var names []string
	missing, mismatch := false, false
	for _, cr := range m.Check(c) {
		chk := report.Check{ID: "asic.manifest", Description: "ASiCManifest " + m.Name + " entry " + cr.URI, Result: report.CheckOK, Detail: cr.Detail}
		switch cr.Status {
		case asic.RefOK:
			if intact {
				names = append(names, cr.Name)
			}
		case asic.RefMissing:
			missing = true
			chk.Result = report.CheckFailed
		default:
			mismatch = true
			chk.Result = report.CheckFailed
		}
		s.Checks = append(s.Checks, chk)
	}
	if s.Indication == report.TotalPassed || s.Indication == report.Indeterminate && !failedBeforeData(s.SubIndication) {
		switch {
		case mismatch:
			s.Indication, s.SubIndication = report.TotalFailed, report.HashFailure
		case missing:
			s.Indication, s.SubIndication = report.Indeterminate, report.SignedDataNotFound
		}
		if mismatch || missing {
			s.Qualification = report.QualificationNotApplicable
		}
	}
	return names
}

// failedBeforeData reports sub-indications decided before the signed data
// is looked at (EN 319 102-1 order), which a manifest problem must not
// replace.
func failedBeforeData(sub report.SubIndication) bool {
	return sub == report.FormatFailure || sub == report.NoSigningCertificateFound
}

// asicTimestamp verifies a META-INF/*timestamp*.tst: in ASiC-S over the
// data object, in ASiC-E over the ASiCManifest that names it.
func (v *verifier) asicTimestamp(rep *report.Report, c *asic.Container, f asic.File, n int, cov coverage) {
	tok, err := tsp.ParseToken(f.Data)
	if err != nil {
		rep.Timestamps = append(rep.Timestamps, report.Timestamp{Type: report.ContentTimestamp, Indication: report.Failed, SubIndication: report.FormatFailure,
			Qualification: report.TimestampQualificationNotApplicable, Checks: []report.Check{{ID: "tsp.token", Description: f.Name, Result: report.CheckFailed, Detail: err.Error()}}})
		return
	}
	var data []byte
	var manifest *asic.Manifest
	if c.Type == asic.TypeS {
		data = c.DataObjects[0].Data
	} else if manifest, err = c.ManifestFor(f.Name); err == nil {
		for _, m := range c.Manifests {
			if m.Name == manifest.Name {
				data = m.Data
			}
		}
	}
	res := tok.Verify(tsp.VerifyOptions{Data: data})
	imprint, _ := res.Check(tsp.CheckImprint)
	ts := report.Timestamp{Type: report.ContentTimestamp, GenTime: tok.Info.GenTime.UTC(), Qualification: report.TimestampQualificationNotApplicable}
	v.finishTimestamp(&ts, tok, res, imprint, newEvidence(tok.SignedData))
	by := fmt.Sprintf("timestamp %d", n)
	if imprint.Outcome == cms.Passed {
		if manifest == nil {
			cov.add(c.DataObjects[0].Name, by)
		} else {
			for _, cr := range manifest.Check(c) {
				if cr.Status == asic.RefOK {
					cov.add(cr.Name, by)
				}
			}
		}
	}
	rep.Timestamps = append(rep.Timestamps, ts)
}

// unreadableSignature is the verdict on a signature entry that cannot be
// read at all.
func (v *verifier) unreadableSignature(name string, err error) report.Signature {
	v.signatures++
	best := v.time
	return report.Signature{
		ID: fmt.Sprintf("S-%d", v.signatures), Indication: report.TotalFailed, SubIndication: report.FormatFailure,
		Qualification: report.QualificationNotApplicable, Timestamps: []report.Timestamp{}, Chain: []report.Certificate{},
		BestSignatureTime: &best,
		Checks:            []report.Check{{ID: "asic.signature", Description: "signature entry " + name, Result: report.CheckFailed, Detail: err.Error()}},
	}
}
