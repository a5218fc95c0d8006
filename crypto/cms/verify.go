package cms

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/asn1time"
	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// VerifyOptions supply what the SignedData does not carry itself.
type VerifyOptions struct {
	// DetachedContent is the signed content of a detached signature. It is
	// ignored when the content is attached.
	DetachedContent []byte
	// DetachedDigest is the digest of detached content when only the digest
	// is known (DetachedDigestAlgorithm must then be set). Used when
	// DetachedContent is nil.
	DetachedDigest          []byte
	DetachedDigestAlgorithm crypto.Hash
	// DetachedReader, used when DetachedContent is nil, opens the detached
	// content as a stream. The content is hashed as it is read and not
	// kept, so content of any size costs a small buffer; it is opened once
	// per digest algorithm needed. Only the two checks that need the
	// content itself read it whole (up to MaxSize): Ed25519 without signed
	// attributes and archive-time-stamp v2. A failure to read is not a
	// verdict on the signature: it is reported in Result.ContentErr.
	DetachedReader func() (io.ReadCloser, error)
	// ExtraCertificates are searched for the signing certificate after the
	// SignedData's own certificates (for example from a trusted list).
	ExtraCertificates []*cert.Certificate
}

// Result is the verification of a SignedData.
type Result struct {
	SignedData *SignedData
	Signers    []*SignerResult
	// ContentErr is the first failure to read the content through
	// VerifyOptions.DetachedReader. Checks that needed the content are
	// then NotChecked; callers should retry rather than report them.
	ContentErr error
}

// Verify checks every signer. It never returns an error: problems are
// reported as failed or not-checked checks per signer.
func (sd *SignedData) Verify(opts VerifyOptions) *Result {
	budget := maxVerifications
	v := &verifier{sd: sd, opts: opts, digests: map[crypto.Hash][]byte{}, budget: &budget}
	v.certs = append(append([]*cert.Certificate(nil), sd.Certificates...), opts.ExtraCertificates...)
	res := &Result{SignedData: sd}
	for i, si := range sd.Signers {
		r := v.verifySigner(si, 0)
		r.Index = i
		res.Signers = append(res.Signers, r)
	}
	res.ContentErr = v.contentErr
	return res
}

type verifier struct {
	sd    *SignedData
	opts  VerifyOptions
	certs []*cert.Certificate
	// digests caches the content digest per algorithm: content can be large.
	digests map[crypto.Hash][]byte
	// budget counts the public-key operations left, shared with the
	// verifiers of nested timestamp tokens.
	budget *int
	// contentErr is the first failure of opts.DetachedReader.
	contentErr error
}

var errBudget = errors.New("verification budget exhausted (too many signatures, certificates or timestamps)")

// contentDigest returns the digest of the signed content, or nil when it is
// not available (detached without content).
func (v *verifier) contentDigest(h crypto.Hash) []byte {
	if d, ok := v.digests[h]; ok {
		return d
	}
	var d []byte
	switch {
	case v.sd.HasContent:
		d = hashOf(h, v.sd.Content)
	case v.opts.DetachedContent != nil:
		d = hashOf(h, v.opts.DetachedContent)
	case v.opts.DetachedReader != nil:
		if !h.Available() {
			return nil
		}
		if err := v.readDetached(func(r io.Reader) error {
			w := h.New()
			if _, err := io.Copy(w, r); err != nil {
				return err
			}
			d = w.Sum(nil)
			return nil
		}); err != nil {
			return nil // not cached: a later check may succeed
		}
	case v.opts.DetachedDigest != nil && v.opts.DetachedDigestAlgorithm == h:
		d = v.opts.DetachedDigest
	}
	v.digests[h] = d
	return d
}

// readDetached opens the detached content through opts.DetachedReader and
// hands it to f; a failure is remembered in contentErr.
func (v *verifier) readDetached(f func(io.Reader) error) error {
	rc, err := v.opts.DetachedReader()
	if err == nil {
		err = f(rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		err = fmt.Errorf("cms: read detached content: %w", err)
		if v.contentErr == nil {
			v.contentErr = err
		}
	}
	return err
}

// detachedBytes returns the detached content itself, read whole from
// opts.DetachedReader if need be; nil when there is none.
func (v *verifier) detachedBytes() []byte {
	if v.opts.DetachedContent != nil || v.opts.DetachedReader == nil {
		return v.opts.DetachedContent
	}
	var b []byte
	if err := v.readDetached(func(r io.Reader) error {
		var err error
		b, err = io.ReadAll(io.LimitReader(r, MaxSize+1))
		if err == nil && len(b) > MaxSize {
			err = fmt.Errorf("more than %d bytes", MaxSize)
		}
		return err
	}); err != nil {
		return nil
	}
	return b
}

func hashOf(h crypto.Hash, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

// target is what a signer signs: the content (with its type) for a
// signer of the SignedData, the parent's signature value for a countersigner.
type target struct {
	counter     bool
	contentType asn1.ObjectIdentifier
	digest      func(crypto.Hash) []byte
}

func (v *verifier) verifySigner(si *SignerInfo, depth int) *SignerResult {
	t := target{contentType: v.sd.EContentType, digest: v.contentDigest}
	return v.verifyTarget(si, t, depth)
}

func (v *verifier) verifyTarget(si *SignerInfo, t target, depth int) *SignerResult {
	r := &SignerResult{SignerInfo: si}
	r.add(CheckFormat, Passed, "")
	algOK := v.algorithms(r, si)
	v.findCertificate(r, si)
	attrsOK := v.signedAttributes(r, si, t)
	if algOK {
		v.signatureValue(r, si)
	} else {
		r.add(CheckSignatureValue, NotChecked, "unsupported algorithm")
	}
	v.signingCertificateRefs(r, si)
	v.rejectUnprovenCertificate(r)
	if depth < maxNesting {
		v.unsignedAttributes(r, si, depth)
	}
	r.Valid = r.Intact && attrsOK
	for _, c := range r.Checks {
		if c.Outcome == Failed || (c.Outcome == NotChecked && c.ID != CheckSigningCertificateRef) {
			r.Valid = false
		}
	}
	return r
}

// rejectUnprovenCertificate withdraws the signing certificate when the
// only evidence for it is the signer identifier while both the signature
// and the signing-certificate reference contradict it: DSS then reports
// NO_SIGNING_CERTIFICATE_FOUND rather than a broken signature.
func (v *verifier) rejectUnprovenCertificate(r *SignerResult) {
	sig, _ := r.Check(CheckSignatureValue)
	ref, _ := r.Check(CheckSigningCertificateRef)
	if sig.Outcome != Failed || ref.Outcome != Failed {
		return
	}
	for i := range r.Checks {
		if r.Checks[i].ID == CheckSigningCertificate {
			r.Checks[i].Outcome = Failed
			r.Checks[i].Detail = "the certificate matching the signer identifier (" + r.Certificate.String() +
				") neither verifies the signature nor matches the signing-certificate reference"
		}
	}
}

func (v *verifier) algorithms(r *SignerResult, si *SignerInfo) bool {
	h, err := sigalg.DigestAlgorithm(si.DigestAlgorithm)
	if err != nil {
		r.add(CheckAlgorithms, NotChecked, "digest algorithm: "+err.Error())
		return false
	}
	r.DigestAlgorithm = h
	alg, err := sigalg.ParseSignatureAlgorithm(si.SignatureAlgorithm)
	if err != nil {
		r.add(CheckAlgorithms, NotChecked, "signature algorithm: "+err.Error())
		return false
	}
	named := alg.Hash != 0
	alg = alg.WithHash(h)
	r.SignatureAlgorithm = alg
	r.add(CheckAlgorithms, Passed, fmt.Sprintf("digest %s, signature %s", sigalg.HashName(h), alg.Name()))
	// See DIFFERENCES.md: an identifier naming a digest that differs from
	// digestAlgorithm is contradictory; RSASSA-PSS carries its digest as a
	// parameter and may differ.
	switch {
	case !named || alg.Hash == h || alg.Scheme == sigalg.SchemeEd25519:
		r.add(CheckDigestAlgorithmConsistency, Passed, "")
	case alg.Scheme == sigalg.SchemeRSAPSS:
		r.add(CheckDigestAlgorithmConsistency, Passed, fmt.Sprintf("RSASSA-PSS hash %s differs from digestAlgorithm %s (permitted)", sigalg.HashName(alg.Hash), sigalg.HashName(h)))
	default:
		r.add(CheckDigestAlgorithmConsistency, Failed, fmt.Sprintf("signature algorithm %s names digest %s, digestAlgorithm is %s", alg.Name(), sigalg.HashName(alg.Hash), sigalg.HashName(h)))
	}
	return true
}

func (v *verifier) findCertificate(r *SignerResult, si *SignerInfo) {
	var found []*cert.Certificate
	for _, c := range v.certs {
		if si.SID.Matches(c) && !containsCert(found, c) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		r.add(CheckSigningCertificate, Failed, "no certificate matches "+si.SID.String())
		return
	case 1:
		r.Certificate = found[0]
		r.add(CheckSigningCertificate, Passed, "")
		return
	}
	// Several distinct certificates match (same key identifier, or
	// re-issued with the same serial): take the one whose key verifies.
	for _, c := range found {
		if c.PublicKey != nil && v.trySignature(si, c) == nil {
			r.Certificate = c
			r.add(CheckSigningCertificate, Passed, fmt.Sprintf("%s (one of %d matching certificates)", c, len(found)))
			return
		}
	}
	r.Certificate = found[0]
	r.add(CheckSigningCertificate, Passed, fmt.Sprintf("%s (first of %d matching certificates; none verifies)", found[0], len(found)))
}

func containsCert(list []*cert.Certificate, c *cert.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// uniqueSignedAttrs must occur at most once (RFC 5652 section 11, CAdES).
var uniqueSignedAttrs = []asn1.ObjectIdentifier{OIDAttrContentType, OIDAttrMessageDigest, OIDAttrSigningTime,
	OIDAttrSigningCertificate, OIDAttrSigningCertificateV2}

func (v *verifier) signedAttributes(r *SignerResult, si *SignerInfo, t target) bool {
	if si.SignedAttrsRaw == nil {
		// Without signed attributes the signature covers the content itself.
		if t.counter {
			r.add(CheckSignedAttributes, Passed, "no signed attributes")
		} else {
			r.add(CheckSignedAttributes, Passed, "no signed attributes")
			if !v.sd.EContentType.Equal(OIDData) {
				r.add(CheckContentType, Failed, "signed attributes are required for content type "+v.sd.EContentType.String())
			}
		}
		return true
	}
	ok := true
	var problems []string
	for _, oid := range uniqueSignedAttrs {
		if a := Attributes(si.SignedAttrs, oid); len(a) > 1 || (len(a) == 1 && len(a[0].Values) != 1) {
			problems = append(problems, "attribute "+oid.String()+" occurs more than once")
		}
	}
	for _, oid := range []asn1.ObjectIdentifier{OIDAttrCounterSignature} {
		if len(Attributes(si.SignedAttrs, oid)) > 0 {
			problems = append(problems, "countersignature among signed attributes")
		}
	}
	// Content type.
	cts := Attributes(si.SignedAttrs, OIDAttrContentType)
	switch {
	case t.counter && len(cts) > 0:
		problems = append(problems, "content-type attribute in a countersignature")
	case t.counter:
	case len(cts) == 0:
		problems = append(problems, "content-type attribute missing")
		r.add(CheckContentType, Failed, "content-type attribute missing")
	default:
		var ct asn1.ObjectIdentifier
		s := cryptobyte.String(cts[0].Values[0])
		if !s.ReadASN1ObjectIdentifier(&ct) || !s.Empty() {
			r.add(CheckContentType, Failed, "malformed content-type attribute")
		} else if r.ContentType = ct; !ct.Equal(t.contentType) {
			r.add(CheckContentType, Failed, fmt.Sprintf("content-type attribute %s, eContentType %s", ct, t.contentType))
		} else {
			r.add(CheckContentType, Passed, ct.String())
		}
	}
	// Signing time.
	if st := Attributes(si.SignedAttrs, OIDAttrSigningTime); len(st) > 0 {
		s := cryptobyte.String(st[0].Values[0])
		if tm, err := asn1time.Read(&s); err == nil && s.Empty() {
			r.SigningTime = tm
		} else {
			problems = append(problems, "malformed signing-time attribute")
		}
	}
	if len(problems) > 0 {
		ok = false
		r.add(CheckSignedAttributes, Failed, joinProblems(problems))
	} else {
		r.add(CheckSignedAttributes, Passed, "")
	}
	// Message digest.
	mds := Attributes(si.SignedAttrs, OIDAttrMessageDigest)
	if len(mds) == 0 {
		r.add(CheckMessageDigest, Failed, "message-digest attribute missing")
		return false
	}
	s := cryptobyte.String(mds[0].Values[0])
	var md cryptobyte.String
	if !s.ReadASN1(&md, cbasn1.OCTET_STRING) || !s.Empty() {
		r.add(CheckMessageDigest, Failed, "malformed message-digest attribute")
		return false
	}
	r.MessageDigest = md
	if r.DigestAlgorithm == 0 {
		r.add(CheckMessageDigest, NotChecked, "digest algorithm unsupported")
		return ok
	}
	want := t.digest(r.DigestAlgorithm)
	switch {
	case want == nil:
		r.add(CheckMessageDigest, NotChecked, "signed content not available (detached signature)")
	case subtle.ConstantTimeCompare(want, md) != 1:
		r.add(CheckMessageDigest, Failed, fmt.Sprintf("message-digest attribute %X, %s of the content %X", []byte(md), sigalg.HashName(r.DigestAlgorithm), want))
	default:
		r.add(CheckMessageDigest, Passed, sigalg.HashName(r.DigestAlgorithm))
	}
	return ok
}

func joinProblems(p []string) string {
	var b bytes.Buffer
	for i, s := range p {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// Encodings of the signed attributes a signature was found to cover.
const (
	EncodingTransmitted = "as transmitted"
	EncodingNormalized  = "minimal lengths"
	EncodingDERSorted   = "DER re-sorted"
)

func (v *verifier) trySignature(si *SignerInfo, c *cert.Certificate) error {
	_, err := v.trySignatureEncodings(si, c)
	return err
}

// trySignatureEncodings verifies over the signed attributes as transmitted,
// then (see DIFFERENCES.md) over their minimal-length and DER-sorted forms.
func (v *verifier) trySignatureEncodings(si *SignerInfo, c *cert.Certificate) (string, error) {
	err := v.trySignatureOver(si, c, si.SignedAttrsRaw)
	if err == nil || si.SignedAttrsRaw == nil || !errors.Is(err, sigalg.ErrSignature) {
		return EncodingTransmitted, err
	}
	if *v.budget <= 0 {
		return EncodingTransmitted, errBudget
	}
	if si.SignedAttrsNormalized != nil && v.trySignatureOver(si, c, si.SignedAttrsNormalized) == nil {
		return EncodingNormalized, nil
	}
	if sorted := derSortedSet(si.SignedAttrs); sorted != nil && !bytes.Equal(sorted, si.SignedAttrsRaw) &&
		v.trySignatureOver(si, c, sorted) == nil {
		return EncodingDERSorted, nil
	}
	return EncodingTransmitted, err
}

// derSortedSet encodes attributes as a DER SET OF: elements sorted by
// their encodings.
func derSortedSet(attrs []Attribute) []byte {
	if len(attrs) == 0 {
		return nil
	}
	els := make([][]byte, len(attrs))
	n := 0
	for i, a := range attrs {
		els[i] = a.Raw
		n += len(a.Raw)
	}
	slices.SortFunc(els, bytes.Compare)
	out := append([]byte{0x31}, appendLength(nil, n)...)
	for _, e := range els {
		out = append(out, e...)
	}
	return out
}

func (v *verifier) trySignatureOver(si *SignerInfo, c *cert.Certificate, signed []byte) error {
	if *v.budget <= 0 {
		return errBudget
	}
	*v.budget--
	h, err := sigalg.DigestAlgorithm(si.DigestAlgorithm)
	if err != nil {
		return err
	}
	alg, err := sigalg.ParseSignatureAlgorithm(si.SignatureAlgorithm)
	if err != nil {
		return err
	}
	alg = alg.WithHash(h)
	if c.PublicKey == nil {
		return fmt.Errorf("signing certificate key: %w", c.PublicKeyError)
	}
	if signed != nil {
		return alg.Verify(c.PublicKey, signed, si.Signature)
	}
	// No signed attributes: the signature is over the content itself.
	if alg.Scheme == sigalg.SchemeEd25519 {
		content := v.sd.Content
		if !v.sd.HasContent {
			content = v.detachedBytes()
		}
		if content == nil {
			return errNoContent
		}
		return alg.Verify(c.PublicKey, content, si.Signature)
	}
	d := v.contentDigest(alg.Hash)
	if d == nil {
		return errNoContent
	}
	return alg.VerifyDigest(c.PublicKey, d, si.Signature)
}

var errNoContent = errors.New("signed content not available (detached signature)")

func (v *verifier) signatureValue(r *SignerResult, si *SignerInfo) {
	if r.Certificate == nil {
		r.add(CheckSignatureValue, NotChecked, "no signing certificate")
		return
	}
	enc, err := v.trySignatureEncodings(si, r.Certificate)
	switch {
	case err == nil:
		r.Intact = true
		detail := r.SignatureAlgorithm.Name() + " with " + sigalg.KeyTypeName(r.Certificate.PublicKey)
		if si.SignedAttrsRaw != nil {
			r.SignedAttrsEncoding = enc
			detail += ", signed attributes " + enc
		}
		r.add(CheckSignatureValue, Passed, detail)
	case errors.Is(err, sigalg.ErrUnsupported), errors.Is(err, errNoContent), errors.Is(err, errBudget):
		r.add(CheckSignatureValue, NotChecked, err.Error())
	default:
		detail := err.Error()
		if alt := r.SignatureAlgorithm; alt.Hash != r.DigestAlgorithm && r.DigestAlgorithm != 0 && si.SignedAttrsRaw != nil &&
			alt.Scheme != sigalg.SchemeRSAPSS && alt.Scheme != sigalg.SchemeEd25519 {
			alt.Hash = r.DigestAlgorithm
			if alt.Verify(r.Certificate.PublicKey, si.SignedAttrsRaw, si.Signature) == nil {
				detail += "; it verifies only with the digestAlgorithm " + sigalg.HashName(r.DigestAlgorithm) +
					" instead of the signature algorithm's digest (mixed digest algorithms, see DIFFERENCES.md)"
			}
		}
		if r.SignatureAlgorithm.Scheme == sigalg.SchemeRSAPKCS1v15 && si.SignedAttrsRaw != nil {
			if d := diagnosePKCS1(r.Certificate.PublicKey, r.SignatureAlgorithm.Hash, si.Signature, signedAttrEncodings(si)); d != "" {
				detail += "; " + d
			}
		}
		r.add(CheckSignatureValue, Failed, detail)
	}
}

// signedAttrEncodings are the encodings of the signed attributes that
// trySignatureEncodings tries, by name.
func signedAttrEncodings(si *SignerInfo) map[string][]byte {
	out := map[string][]byte{EncodingTransmitted: si.SignedAttrsRaw}
	if si.SignedAttrsNormalized != nil {
		out[EncodingNormalized] = si.SignedAttrsNormalized
	}
	if sorted := derSortedSet(si.SignedAttrs); sorted != nil {
		out[EncodingDERSorted] = sorted
	}
	return out
}

func (v *verifier) signingCertificateRefs(r *SignerResult, si *SignerInfo) {
	v1 := Attributes(si.SignedAttrs, OIDAttrSigningCertificate)
	v2 := Attributes(si.SignedAttrs, OIDAttrSigningCertificateV2)
	if len(v1)+len(v2) == 0 {
		r.add(CheckSigningCertificateRef, NotChecked, "no signing-certificate attribute")
		return
	}
	var refs []CertRef
	for _, a := range append(v1, v2...) {
		version := 1
		if a.Type.Equal(OIDAttrSigningCertificateV2) {
			version = 2
		}
		for _, val := range a.Values {
			rs, err := ParseSigningCertificate(val, version)
			if err != nil {
				r.add(CheckSigningCertificateRef, Failed, err.Error())
				return
			}
			refs = append(refs, rs...)
		}
	}
	matched := 0
	for i := range refs {
		if r.Certificate != nil {
			refs[i].match(r.Certificate)
			if refs[i].DigestMatch && (!refs[i].HasIssuer || refs[i].IssuerSerialMatch) {
				matched++
			}
		}
	}
	r.SigningCertificateRefs = refs
	r.SigningCertificateRefUnique = len(refs) == 1
	switch {
	case r.Certificate == nil:
		r.add(CheckSigningCertificateRef, NotChecked, fmt.Sprintf("%d references, no signing certificate", len(refs)))
	case matched == 0:
		r.add(CheckSigningCertificateRef, Failed, fmt.Sprintf("none of %d references matches the signing certificate", len(refs)))
	default:
		r.add(CheckSigningCertificateRef, Passed, fmt.Sprintf("%d of %d references match", matched, len(refs)))
	}
}

func (ref *CertRef) match(c *cert.Certificate) {
	if ref.Hash != 0 {
		d, err := c.Digest(ref.Hash)
		ref.DigestMatch = err == nil && bytes.Equal(d, ref.Digest)
	}
	if ref.HasIssuer && ref.SerialNumber != nil && c.SerialNumber.Cmp(ref.SerialNumber) == 0 {
		for _, n := range ref.IssuerNames {
			if cert.NameEqual(n, c.RawIssuer) {
				ref.IssuerSerialMatch = true
			}
		}
	}
}

// ParseSigningCertificate parses a SigningCertificate (version 1, RFC 2634)
// or SigningCertificateV2 (version 2, RFC 5035) attribute value.
func ParseSigningCertificate(der []byte, version int) ([]CertRef, error) {
	s := cryptobyte.String(der)
	var sc, ids cryptobyte.String
	if !s.ReadASN1(&sc, cbasn1.SEQUENCE) || !s.Empty() || !sc.ReadASN1(&ids, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed signing-certificate attribute")
	}
	var refs []CertRef
	for !ids.Empty() {
		if len(refs) >= 64 {
			return nil, errors.New("too many certificate references")
		}
		var id cryptobyte.String
		if !ids.ReadASN1(&id, cbasn1.SEQUENCE) {
			return nil, errors.New("malformed ESSCertID")
		}
		ref := CertRef{Version: version, Hash: crypto.SHA1, HashOID: sigalg.OIDDigestSHA1}
		if version == 2 {
			ref.Hash, ref.HashOID = crypto.SHA256, sigalg.OIDDigestSHA256
			if id.PeekASN1Tag(cbasn1.SEQUENCE) {
				var ai sigalg.AlgorithmIdentifier
				if !sigalg.ReadAlgorithmIdentifier(&id, &ai) {
					return nil, errors.New("malformed ESSCertIDv2 hashAlgorithm")
				}
				ref.HashOID = ai.OID
				h, err := sigalg.DigestAlgorithm(ai)
				if err != nil {
					ref.Hash = 0 // reported as a non-matching digest
				} else {
					ref.Hash = h
				}
			}
		}
		var digest cryptobyte.String
		if !id.ReadASN1(&digest, cbasn1.OCTET_STRING) {
			return nil, errors.New("malformed ESSCertID certHash")
		}
		ref.Digest = digest
		if !id.Empty() {
			var is, names cryptobyte.String
			ref.SerialNumber = new(big.Int)
			if !id.ReadASN1(&is, cbasn1.SEQUENCE) || !is.ReadASN1(&names, cbasn1.SEQUENCE) ||
				!readSerial(&is, ref.SerialNumber) || !is.Empty() || !id.Empty() {
				return nil, errors.New("malformed ESSCertID issuerSerial")
			}
			ref.HasIssuer = true
			for !names.Empty() {
				var gn cryptobyte.String
				var tag cbasn1.Tag
				if !names.ReadAnyASN1(&gn, &tag) {
					return nil, errors.New("malformed issuerSerial GeneralNames")
				}
				if tag == cbasn1.Tag(4).Constructed().ContextSpecific() {
					ref.IssuerNames = append(ref.IssuerNames, gn)
				}
			}
		}
		refs = append(refs, ref)
	}
	return refs, nil
}
