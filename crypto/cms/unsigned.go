package cms

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/asn1time"
	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

var timestampAttrs = []struct {
	oid    asn1.ObjectIdentifier
	kind   TimestampKind
	signed bool
}{
	{OIDAttrContentTimeStamp, TimestampContent, true},
	{OIDAttrSignatureTimeStamp, TimestampSignature, false},
	{OIDAttrEscTimeStamp, TimestampESC, false},
	{OIDAttrCertCRLTimestamp, TimestampCertCRL, false},
	{OIDAttrArchiveTimestampV1, TimestampArchiveV1, false},
	{OIDAttrArchiveTimestampV2, TimestampArchiveV2, false},
	{OIDAttrArchiveTimestampV3, TimestampArchiveV3, false},
}

func (v *verifier) unsignedAttributes(r *SignerResult, si *SignerInfo, depth int) {
	for _, a := range Attributes(si.UnsignedAttrs, OIDAttrCertValues) {
		for _, val := range a.Values {
			r.CertificateValues = append(r.CertificateValues, parseCertSequence(val)...)
		}
	}
	for _, a := range Attributes(si.UnsignedAttrs, OIDAttrRevocationValues) {
		for _, val := range a.Values {
			rv, err := ParseRevocationValues(val)
			if err != nil {
				r.add(CheckFormat, Failed, "revocation-values attribute: "+err.Error())
				continue
			}
			r.RevocationValues.CRLs = append(r.RevocationValues.CRLs, rv.CRLs...)
			r.RevocationValues.OCSPResponses = append(r.RevocationValues.OCSPResponses, rv.OCSPResponses...)
		}
	}
	for i, a := range Attributes(si.UnsignedAttrs, OIDAttrCounterSignature) {
		for _, val := range a.Values {
			s := cryptobyte.String(val)
			csi, err := parseSignerInfo(&s, v.sd.origin)
			if err != nil || !s.Empty() {
				cr := &SignerResult{Index: i}
				cr.add(CheckFormat, Failed, fmt.Sprintf("countersignature: %v", err))
				r.CounterSignatures = append(r.CounterSignatures, cr)
				continue
			}
			parentSig := si.Signature
			t := target{counter: true, digest: func(h crypto.Hash) []byte { return hashOf(h, parentSig) }}
			cr := v.verifyTarget(csi, t, depth+1)
			cr.Index = len(r.CounterSignatures)
			r.CounterSignatures = append(r.CounterSignatures, cr)
		}
	}
	for _, ta := range timestampAttrs {
		attrs := si.UnsignedAttrs
		if ta.signed {
			attrs = si.SignedAttrs
		}
		for _, a := range Attributes(attrs, ta.oid) {
			for _, val := range a.Values {
				if len(r.Timestamps) >= maxTimestamps {
					r.add(CheckFormat, NotChecked, fmt.Sprintf("more than %d timestamps; the rest are not evaluated", maxTimestamps))
					return
				}
				r.Timestamps = append(r.Timestamps, v.timestamp(r, si, ta.kind, a, val, depth))
			}
		}
	}
}

func parseCertSequence(der []byte) []*cert.Certificate {
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil
	}
	var out []*cert.Certificate
	for !seq.Empty() && len(out) < maxCertificates {
		var el cryptobyte.String
		if !seq.ReadASN1Element(&el, cbasn1.SEQUENCE) {
			break
		}
		if c, err := cert.Parse(el); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// ParseRevocationValues parses a CAdES revocationValues attribute value.
func ParseRevocationValues(der []byte) (RevocationValues, error) {
	var rv RevocationValues
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return rv, errors.New("malformed RevocationValues")
	}
	read := func(tag int) ([][]byte, error) {
		var list cryptobyte.String
		var has bool
		if !seq.ReadOptionalASN1(&list, &has, cbasn1.Tag(tag).Constructed().ContextSpecific()) {
			return nil, errors.New("malformed RevocationValues")
		}
		if !has {
			return nil, nil
		}
		var inner cryptobyte.String
		if !list.ReadASN1(&inner, cbasn1.SEQUENCE) || !list.Empty() {
			return nil, errors.New("malformed RevocationValues list")
		}
		var out [][]byte
		for !inner.Empty() {
			var el cryptobyte.String
			if !inner.ReadASN1Element(&el, cbasn1.SEQUENCE) || len(out) >= maxCRLs {
				return nil, errors.New("malformed revocation value")
			}
			out = append(out, el)
		}
		return out, nil
	}
	var err error
	if rv.CRLs, err = read(0); err != nil {
		return rv, err
	}
	if rv.OCSPResponses, err = read(1); err != nil {
		return rv, err
	}
	return rv, nil
}

func (v *verifier) timestamp(r *SignerResult, si *SignerInfo, kind TimestampKind, attr Attribute, val []byte, depth int) *TimestampResult {
	tr := &TimestampResult{Kind: kind, Raw: val}
	if len(val) == 0 || val[0] != 0x30 {
		// Seen in ETSI plugtests: the token wrapped in an OCTET STRING.
		tr.Checks = append(tr.Checks, Check{CheckFormat, Failed, "timestamp attribute value is not a ContentInfo"})
		return tr
	}
	tok, err := parseContentInfo(val, v.sd.origin)
	if err != nil {
		tr.Checks = append(tr.Checks, Check{CheckFormat, Failed, err.Error()})
		return tr
	}
	tr.Token = tok
	if !tok.EContentType.Equal(OIDTSTInfo) || !tok.HasContent {
		tr.Checks = append(tr.Checks, Check{CheckTimestampContent, Failed, "token does not encapsulate a TSTInfo"})
		return tr
	}
	info, err := parseTSTInfoImprint(tok.Content)
	if err != nil {
		tr.Checks = append(tr.Checks, Check{CheckTimestampContent, Failed, err.Error()})
		return tr
	}
	tr.GenTime, tr.ImprintHash, tr.Imprint = info.genTime, info.hash, info.imprint
	tr.Checks = append(tr.Checks, Check{CheckTimestampContent, Passed, ""})
	if len(tok.Signers) == 0 {
		tr.Checks = append(tr.Checks, Check{CheckSignatureValue, Failed, "token has no signer"})
	} else {
		tv := &verifier{sd: tok, digests: map[crypto.Hash][]byte{}, budget: v.budget}
		tv.certs = append(append(append([]*cert.Certificate(nil), tok.Certificates...), v.certs...), r.CertificateValues...)
		tr.Signer = tv.verifySigner(tok.Signers[0], depth+1)
	}
	tr.Checks = append(tr.Checks, v.imprintCheck(si, kind, attr, info, tok))
	if kind == TimestampArchiveV3 {
		tr.Checks = append(tr.Checks, v.hashIndexCheck(si, tok))
	}
	return tr
}

func (v *verifier) imprintCheck(si *SignerInfo, kind TimestampKind, attr Attribute, info tstImprint, tok *SignedData) Check {
	if info.hash == 0 {
		return Check{CheckTimestampImprint, NotChecked, "unsupported imprint hash"}
	}
	var want []byte
	switch kind {
	case TimestampSignature:
		want = hashOf(info.hash, si.Signature)
	case TimestampContent:
		want = v.contentDigest(info.hash)
		if want == nil {
			return Check{CheckTimestampImprint, NotChecked, "signed content not available"}
		}
	case TimestampArchiveV2:
		withTag, withoutTag, ok := v.archiveV2Input(si, info.genTime)
		if !ok {
			return Check{CheckTimestampImprint, NotChecked, "signed content not available"}
		}
		if bytes.Equal(hashOf(info.hash, withTag), info.imprint) {
			return Check{CheckTimestampImprint, Passed, "archive-time-stamp v2 (TS 101 733 v2.2.1)"}
		}
		if bytes.Equal(hashOf(info.hash, withoutTag), info.imprint) {
			return Check{CheckTimestampImprint, Passed, "archive-time-stamp v2 (TS 101 733 v1.8.3, unsigned attributes without tag)"}
		}
		return Check{CheckTimestampImprint, Failed, "archive-time-stamp v2 imprint matches neither the v2.2.1 nor the v1.8.3 computation"}
	case TimestampArchiveV3:
		return v.archiveV3Check(si, info, tok)
	default:
		return Check{CheckTimestampImprint, NotChecked, string(kind) + " imprint is not verified"}
	}
	if subtle.ConstantTimeCompare(want, info.imprint) != 1 {
		return Check{CheckTimestampImprint, Failed, fmt.Sprintf("imprint %X, expected %X", info.imprint, want)}
	}
	return Check{CheckTimestampImprint, Passed, sigalg.HashName(info.hash)}
}

// archiveV2Input builds the two candidate inputs of an archive-time-stamp
// v2 (ETSI TS 101 733 annex K): the encapContentInfo element, the detached
// content if any, the certificates and crls fields, the SignerInfo fields
// with DER signed attributes, and the unsigned attributes except archive
// timestamps not older than this one. Version 2.2.1 wraps the unsigned
// attributes in their [1] tag and length, 1.8.3 did not; annex K note 3
// recommends accepting both.
func (v *verifier) archiveV2Input(si *SignerInfo, genTime time.Time) (withTag, withoutTag []byte, ok bool) {
	var b bytes.Buffer
	s := cryptobyte.String(v.sd.Raw)
	var ci, body, sdSeq, eci cryptobyte.String
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&body, cbasn1.Tag(0).Constructed().ContextSpecific()) || !body.ReadASN1(&sdSeq, cbasn1.SEQUENCE) ||
		!sdSeq.SkipASN1(cbasn1.INTEGER) || !sdSeq.SkipASN1(cbasn1.SET) || !sdSeq.ReadASN1Element(&eci, cbasn1.SEQUENCE) {
		return nil, nil, false
	}
	b.Write(eci)
	if !v.sd.HasContent {
		content := v.detachedBytes()
		if content == nil {
			return nil, nil, false
		}
		b.Write(content)
	}
	for _, tag := range []cbasn1.Tag{cbasn1.Tag(0).Constructed().ContextSpecific(), cbasn1.Tag(1).Constructed().ContextSpecific()} {
		if !sdSeq.PeekASN1Tag(tag) {
			continue
		}
		var el cryptobyte.String
		if !sdSeq.ReadASN1Element(&el, tag) {
			return nil, nil, false
		}
		b.Write(el)
	}
	sis := cryptobyte.String(si.Raw)
	var fields cryptobyte.String
	if !sis.ReadASN1(&fields, cbasn1.SEQUENCE) {
		return nil, nil, false
	}
	for !fields.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !fields.ReadAnyASN1Element(&el, &tag) {
			return nil, nil, false
		}
		switch tag {
		case cbasn1.Tag(1).Constructed().ContextSpecific():
			continue
		case cbasn1.Tag(0).Constructed().ContextSpecific():
			if sorted := derSortedSet(si.SignedAttrs); sorted != nil {
				b.WriteByte(0xa0)
				b.Write(sorted[1:])
				continue
			}
		}
		b.Write(el)
	}
	var attrs []byte
	for _, a := range si.UnsignedAttrs {
		if a.Type.Equal(OIDAttrArchiveTimestampV2) || a.Type.Equal(OIDAttrArchiveTimestampV3) {
			if t, err := tokenGenTime(a, v.sd.origin); err != nil || !t.Before(genTime) {
				continue
			}
		}
		attrs = append(attrs, a.Raw...)
	}
	prefix := b.Bytes()
	withoutTag = append(append([]byte(nil), prefix...), attrs...)
	withTag = append(append(append([]byte(nil), prefix...), append([]byte{0xa1}, appendLength(nil, len(attrs))...)...), attrs...)
	return withTag, withoutTag, true
}

func tokenGenTime(a Attribute, o *origin) (time.Time, error) {
	if len(a.Values) != 1 {
		return time.Time{}, errors.New("not one value")
	}
	tok, err := parseContentInfo(a.Values[0], o)
	if err != nil {
		return time.Time{}, err
	}
	info, err := parseTSTInfoImprint(tok.Content)
	return info.genTime, err
}

type tstImprint struct {
	hash    crypto.Hash
	imprint []byte
	genTime time.Time
}

// parseTSTInfoImprint reads the fields of a TSTInfo that cms needs; the
// complete TSTInfo is parsed by crypto/tsp.
func parseTSTInfoImprint(der []byte) (tstImprint, error) {
	var out tstImprint
	s := cryptobyte.String(der)
	var seq, mi, hashed, gt cryptobyte.String
	var ai sigalg.AlgorithmIdentifier
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.SkipASN1(cbasn1.INTEGER) || !seq.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
		!seq.ReadASN1(&mi, cbasn1.SEQUENCE) || !sigalg.ReadAlgorithmIdentifier(&mi, &ai) ||
		!mi.ReadASN1(&hashed, cbasn1.OCTET_STRING) || !mi.Empty() ||
		!seq.SkipASN1(cbasn1.INTEGER) || !seq.ReadASN1(&gt, cbasn1.GeneralizedTime) {
		return out, errors.New("malformed TSTInfo")
	}
	t, err := asn1time.ParseGeneralizedFraction(gt)
	if err != nil {
		return out, fmt.Errorf("TSTInfo genTime: %w", err)
	}
	out.genTime, out.imprint = t, hashed
	if h, err := sigalg.DigestAlgorithm(ai); err == nil {
		out.hash = h
	}
	return out, nil
}
