package cms

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/sigalg"
)

// atsHashIndex is an ats-hash-index (ETSI TS 101 733) or ats-hash-index-v3
// (ETSI EN 319 122-1, 5.5.2) found in an archive-time-stamp-v3 token: the
// hashes of the certificates, CRLs and unsigned attributes the timestamp
// covers, and the encoded element itself, which is part of the imprint.
type atsHashIndex struct {
	raw   []byte
	v3    bool
	hash  crypto.Hash
	certs [][]byte
	crls  [][]byte
	attrs [][]byte
}

var errNoHashIndex = errors.New("the token carries no ats-hash-index or ats-hash-index-v3 attribute")

// findATSHashIndex reads the one hash index among the unsigned attributes
// of the timestamp token's signer.
func findATSHashIndex(tok *SignedData) (*atsHashIndex, error) {
	if tok == nil || len(tok.Signers) == 0 {
		return nil, errNoHashIndex
	}
	attrs := tok.Signers[0].UnsignedAttrs
	v1, v3 := Attributes(attrs, OIDAttrATSHashIndex), Attributes(attrs, OIDAttrATSHashIndexV3)
	var a Attribute
	switch {
	case len(v1)+len(v3) == 0:
		return nil, errNoHashIndex
	case len(v1)+len(v3) > 1:
		return nil, errors.New("the token carries more than one ats-hash-index attribute")
	case len(v3) == 1:
		a = v3[0]
	default:
		a = v1[0]
	}
	if len(a.Values) != 1 {
		return nil, errors.New("ats-hash-index attribute without exactly one value")
	}
	idx, err := parseATSHashIndex(a.Values[0])
	if err != nil {
		return nil, err
	}
	idx.v3 = len(v3) == 1
	return idx, nil
}

// parseATSHashIndex reads
//
//	ATSHashIndex(V3) ::= SEQUENCE {
//	  hashIndAlgorithm AlgorithmIdentifier DEFAULT {algorithm id-sha256},
//	  certificatesHashIndex SEQUENCE OF OCTET STRING,
//	  crlsHashIndex SEQUENCE OF OCTET STRING,
//	  unsignedAttrs(Values)HashIndex SEQUENCE OF OCTET STRING }
func parseATSHashIndex(der []byte) (*atsHashIndex, error) {
	idx := &atsHashIndex{raw: der, hash: crypto.SHA256}
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("malformed ats-hash-index")
	}
	// The algorithm is a SEQUENCE like the three lists: it is present when
	// four elements follow.
	var probe cryptobyte.String = seq
	n := 0
	for !probe.Empty() && n < 5 {
		if !probe.SkipASN1(cbasn1.SEQUENCE) {
			return nil, errors.New("malformed ats-hash-index")
		}
		n++
	}
	if n == 4 {
		var ai sigalg.AlgorithmIdentifier
		if !sigalg.ReadAlgorithmIdentifier(&seq, &ai) {
			return nil, errors.New("malformed ats-hash-index algorithm")
		}
		h, err := sigalg.DigestAlgorithm(ai)
		if err != nil {
			return nil, fmt.Errorf("ats-hash-index algorithm: %w", err)
		}
		idx.hash = h
	} else if n != 3 {
		return nil, errors.New("malformed ats-hash-index: wrong number of fields")
	}
	for _, list := range []*[][]byte{&idx.certs, &idx.crls, &idx.attrs} {
		var l cryptobyte.String
		if !seq.ReadASN1(&l, cbasn1.SEQUENCE) {
			return nil, errors.New("malformed ats-hash-index list")
		}
		for !l.Empty() {
			var h cryptobyte.String
			if !l.ReadASN1(&h, cbasn1.OCTET_STRING) || len(*list) >= maxATSIndexEntries {
				return nil, errors.New("malformed or oversized ats-hash-index entry")
			}
			*list = append(*list, h)
		}
	}
	return idx, nil
}

// maxATSIndexEntries bounds each list of a hash index; the certificates
// and revocation values of a signature are capped far below.
const maxATSIndexEntries = 4096

// archiveV3Check computes the imprint of an archive-time-stamp-v3 (ETSI EN
// 319 122-1, 5.5.3): eContentType, the hash of the signed content, the
// SignerInfo fields version to signature as encoded, and the hash index as
// found in the token. The index itself is checked by hashIndexCheck.
func (v *verifier) archiveV3Check(si *SignerInfo, info tstImprint, tok *SignedData) Check {
	idx, err := findATSHashIndex(tok)
	if err != nil {
		return Check{CheckTimestampImprint, Failed, "archive-time-stamp v3: " + err.Error()}
	}
	prefix, fields, ok := v.archiveV3Parts(si, info.hash)
	if !ok {
		return Check{CheckTimestampImprint, NotChecked, "signed content not available"}
	}
	candidates := [][]byte{fields}
	if sorted := derSortedSet(si.SignedAttrs); sorted != nil && si.SignedAttrsRaw != nil && !bytes.Equal(sorted, si.SignedAttrsRaw) {
		if alt, ok := signerFieldsWith(si, sorted); ok {
			candidates = append(candidates, alt)
		}
	}
	for i, f := range candidates {
		d := info.hash.New()
		d.Write(prefix)
		d.Write(f)
		d.Write(idx.raw)
		if subtle.ConstantTimeCompare(d.Sum(nil), info.imprint) == 1 {
			detail := "archive-time-stamp v3 (" + idx.name() + ")"
			if i > 0 {
				detail += ", signed attributes DER re-sorted"
			}
			return Check{CheckTimestampImprint, Passed, detail}
		}
	}
	return Check{CheckTimestampImprint, Failed, "archive-time-stamp v3 imprint does not match the signature and its " + idx.name()}
}

// hashIndexCheck checks the archive-time-stamp-v3's index against the
// certificates, revocation data and unsigned attributes present: an entry
// that matches none means something covered was removed or altered since.
// As in DSS that is a warning (not-checked), not a failure of the imprint,
// which covers the index as it stands.
func (v *verifier) hashIndexCheck(si *SignerInfo, tok *SignedData) Check {
	idx, err := findATSHashIndex(tok)
	if err != nil {
		return Check{CheckATSHashIndex, NotChecked, err.Error()}
	}
	if note := v.checkHashIndex(si, idx); note != "" {
		return Check{CheckATSHashIndex, NotChecked, note}
	}
	return Check{CheckATSHashIndex, Passed, idx.name() + ": every entry matches an element present"}
}

func (idx *atsHashIndex) name() string {
	if idx.v3 {
		return "ats-hash-index-v3"
	}
	return "ats-hash-index"
}

// archiveV3Parts returns the eContentType element followed by the hash of
// the signed content, and the SignerInfo fields up to the signature.
func (v *verifier) archiveV3Parts(si *SignerInfo, h crypto.Hash) (prefix, fields []byte, ok bool) {
	if h == 0 || !h.Available() {
		return nil, nil, false
	}
	_, sdSeq, ok := signedDataFields(v.sd.Raw)
	var eci, ctype cryptobyte.String
	if !ok || !sdSeq.SkipASN1(cbasn1.INTEGER) || !sdSeq.SkipASN1(cbasn1.SET) ||
		!sdSeq.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1Element(&ctype, cbasn1.OBJECT_IDENTIFIER) {
		return nil, nil, false
	}
	digest := v.contentDigest(h)
	if digest == nil {
		return nil, nil, false
	}
	fields, ok = signerFieldsWith(si, nil)
	if !ok {
		return nil, nil, false
	}
	return append(append([]byte(nil), ctype...), digest...), fields, true
}

// signerFieldsWith returns the SignerInfo's fields except the unsigned
// attributes, as transmitted; with signedAttrs set (a SET OF element), the
// signed attributes are replaced by it under their [0] tag.
func signerFieldsWith(si *SignerInfo, signedAttrs []byte) ([]byte, bool) {
	s := cryptobyte.String(si.Raw)
	var fields cryptobyte.String
	if !s.ReadASN1(&fields, cbasn1.SEQUENCE) {
		return nil, false
	}
	var b bytes.Buffer
	for !fields.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !fields.ReadAnyASN1Element(&el, &tag) {
			return nil, false
		}
		switch tag {
		case cbasn1.Tag(1).Constructed().ContextSpecific():
			continue
		case cbasn1.Tag(0).Constructed().ContextSpecific():
			if signedAttrs != nil {
				b.WriteByte(0xa0)
				b.Write(signedAttrs[1:])
				continue
			}
		}
		b.Write(el)
	}
	return b.Bytes(), true
}

// signedDataFields returns the content of the ContentInfo's SignedData
// SEQUENCE.
func signedDataFields(raw []byte) (cryptobyte.String, cryptobyte.String, bool) {
	s := cryptobyte.String(raw)
	var ci, body, sdSeq cryptobyte.String
	ok := s.ReadASN1(&ci, cbasn1.SEQUENCE) && ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) &&
		ci.ReadASN1(&body, cbasn1.Tag(0).Constructed().ContextSpecific()) && body.ReadASN1(&sdSeq, cbasn1.SEQUENCE)
	return ci, sdSeq, ok
}

// checkHashIndex returns "" when every entry of the index matches an
// element present, else a note naming the lists with unmatched entries.
// An unsupported index algorithm is noted too.
func (v *verifier) checkHashIndex(si *SignerInfo, idx *atsHashIndex) string {
	if !idx.hash.Available() {
		return "ats-hash-index algorithm not supported, entries not checked"
	}
	certs, crls := v.certificatesAndCRLs()
	var attrs [][]byte
	for _, a := range si.UnsignedAttrs {
		if !idx.v3 {
			attrs = append(attrs, a.Raw)
			continue
		}
		typ := attrTypeElement(a.Raw)
		for _, val := range a.Values {
			attrs = append(attrs, append(append([]byte(nil), typ...), val...))
		}
	}
	var missing []string
	for _, l := range []struct {
		name    string
		entries [][]byte
		present [][]byte
	}{{"certificates", idx.certs, certs}, {"crls", idx.crls, crls}, {"unsigned attributes", idx.attrs, attrs}} {
		if n := unmatched(idx.hash, l.entries, l.present); n > 0 {
			missing = append(missing, fmt.Sprintf("%d of %d %s entries", n, len(l.entries), l.name))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "the hash index is not valid: " + strings.Join(missing, ", ") + " match no element present (removed or altered after the timestamp)"
}

func unmatched(h crypto.Hash, entries, present [][]byte) int {
	sums := make(map[string]bool, len(present))
	for _, p := range present {
		sums[string(hashOf(h, p))] = true
	}
	n := 0
	for _, e := range entries {
		if !sums[string(e)] {
			n++
		}
	}
	return n
}

// certificatesAndCRLs returns the elements of SignedData.certificates and
// SignedData.crls, each with its tag and length.
func (v *verifier) certificatesAndCRLs() (certs, crls [][]byte) {
	_, sdSeq, ok := signedDataFields(v.sd.Raw)
	if !ok || !sdSeq.SkipASN1(cbasn1.INTEGER) || !sdSeq.SkipASN1(cbasn1.SET) || !sdSeq.SkipASN1(cbasn1.SEQUENCE) {
		return nil, nil
	}
	read := func(tag cbasn1.Tag) [][]byte {
		var set cryptobyte.String
		var has bool
		if !sdSeq.ReadOptionalASN1(&set, &has, tag) || !has {
			return nil
		}
		var out [][]byte
		for !set.Empty() {
			var el cryptobyte.String
			var t cbasn1.Tag
			if !set.ReadAnyASN1Element(&el, &t) {
				break
			}
			out = append(out, el)
		}
		return out
	}
	certs = read(cbasn1.Tag(0).Constructed().ContextSpecific())
	crls = read(cbasn1.Tag(1).Constructed().ContextSpecific())
	return certs, crls
}

// attrTypeElement returns the attrType OBJECT IDENTIFIER element of an
// encoded Attribute.
func attrTypeElement(raw []byte) []byte {
	s := cryptobyte.String(raw)
	var seq, oid cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return nil
	}
	return oid
}
