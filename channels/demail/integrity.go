package demail

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	// The hashes of clause 3.1.21 ("a" tag) must be linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/trust"
)

// SignedHeaders is the header list ("h" tag) TR 01201 Teil 3.4 clause
// 3.1.21 prescribes, in its order. X-de-mail-private-id is in the list
// only when the message has one.
var SignedHeaders = []string{
	"from", "date", "message-id", "subject", "reply-to",
	FieldConfirmDispatch, FieldConfirmReceipt, FieldConfirmRetrieve,
	FieldAuthoritative, FieldPrivate, FieldSender, FieldChosenRecipient,
	FieldAuthMechanism, FieldAuthLevel, FieldOriginatorProvider,
	FieldMessageType, FieldVersion, FieldPrivateID, FieldMessageID,
	FieldAccountHolder,
}

// certificateQuery is the "q" tag a signed message must carry (clause 3.1.21).
const certificateQuery = "x-header/x-de-mail-signature-certificate"

// Verdict is the outcome of the integrity check.
type Verdict string

// Verdicts, from best to worst.
const (
	// ProviderSigned: the signature is valid and made with a certificate
	// of the configured provider that was valid at the check time.
	ProviderSigned Verdict = "provider-signed"
	// HashIntact: the message is only hashed (no signature, which the TR
	// allows except for absenderbestätigt messages) and the hash matches.
	// Anyone can compute such a hash: it shows the message unchanged, not
	// who wrote it.
	HashIntact Verdict = "hash-intact"
	// Expired: the signature is valid and chains to the provider's CA, but
	// the certificate was not valid at the check time.
	Expired Verdict = "certificate-expired"
	// Revoked: the signature is valid and chains to the provider's CA, but
	// the provider's CRL lists the certificate as revoked at the check time.
	Revoked Verdict = "certificate-revoked"
	// Untrusted: the signature is valid but its certificate is not one of
	// the configured provider's, or the provider is not configured.
	Untrusted Verdict = "untrusted"
	// Broken: the body hash, header hash or signature does not match: the
	// message or a protected header was changed.
	Broken Verdict = "broken"
	// NotTR: the integrity field does not follow clause 3.1.21 (header
	// list, canonicalisation, algorithm, certificate query).
	NotTR Verdict = "not-as-specified"
	// Missing: no X-de-mail-integrity field.
	Missing Verdict = "missing"
)

// Integrity is the result of Verify.
type Integrity struct {
	Verdict Verdict
	// Hash and Signature name the algorithms of the "a" tag; Signature is
	// empty for a hash-only message.
	Hash      string
	Signature string
	// Certificate is the provider's signature certificate, when one was
	// given and readable.
	Certificate *cert.Certificate
	// Chain is the path validation of Certificate against the provider's
	// configured CA; nil when not run.
	Chain *trust.Result
	// Qualification is the signature qualification of the provider's
	// signature (DSS's names: QESeal, QESig, AdESeal-QC, "Indeterminate
	// QESeal", ...) decided with the configured trusted lists; empty when
	// the signature was not checked that far, NotChecked when no trusted
	// list is configured.
	Qualification string
	// QualificationDetail says what the qualification rests on.
	QualificationDetail string
	// Detail says why the verdict is what it is.
	Detail string
	// Notes are findings that did not decide the verdict (an ignored "l"
	// tag, a repeated protected header).
	Notes []string
}

// Trusted reports whether the provider's signature holds.
func (i *Integrity) Trusted() bool { return i.Verdict == ProviderSigned }

// NotChecked is the Qualification of a provider signature when no trusted
// list is configured.
const NotChecked = "not checked"

// Qualified reports whether the provider's signature is a qualified
// electronic seal or signature (eIDAS Art. 3 (27), (12)) at the check time:
// valid, with revocation status known, under a qualified certificate on a
// trusted list, its key on a QSCD. De-Mail-Gesetz § 5 Abs. 5 asks this of
// an absenderbestätigt message's provider signature.
func (i *Integrity) Qualified() bool {
	return i.Trusted() && (i.Qualification == trust.QESeal || i.Qualification == trust.QESig)
}

// hashes of the "a" tag (clause 3.1.21, RFC 5754 spellings).
var hashes = map[string]crypto.Hash{"sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}

// schemes of the "a" tag.
var schemes = map[string]sigalg.Scheme{"rsa": sigalg.SchemeRSAPKCS1v15, "ec-dsa": sigalg.SchemeECDSA, "rsassa-pss": sigalg.SchemeRSAPSS}

// Verify checks the provider's integrity protection of msg (header section
// and body as received) as TR 01201 Teil 3.4 clause 3.1.21 specifies: DKIM
// (RFC 6376) with simple/simple canonicalisation over the TR's header
// list, the key taken from X-de-mail-signature-certificate and that
// certificate checked against the configured provider at time at, never
// against DNS. It never fails; everything is in the result.
func Verify(msg []byte, tr *Trust, at time.Time) *Integrity {
	fields, body, _ := splitMessage(msg)
	res := &Integrity{}
	integ, notes := firstField(fields, FieldIntegrity)
	res.Notes = append(res.Notes, notes...)
	if integ == nil {
		res.Verdict, res.Detail = Missing, "no "+FieldIntegrity+" field"
		return res
	}
	tags, err := parseTags(integ.Value)
	if err != nil {
		res.Verdict, res.Detail = NotTR, "integrity field: "+err.Error()
		return res
	}
	hash, scheme, err := res.algorithm(tags)
	if err != nil {
		res.Verdict, res.Detail = NotTR, err.Error()
		return res
	}
	if err := res.checkParameters(tags, fields, scheme); err != nil {
		res.Verdict, res.Detail = NotTR, err.Error()
		return res
	}
	if err := checkBodyHash(tags, body, hash); err != nil {
		res.Verdict, res.Detail = Broken, err.Error()
		return res
	}
	input, notes := headerHashInput(fields, integ)
	res.Notes = append(res.Notes, notes...)
	b, err := decodeBase64(tags["b"])
	if err != nil || len(b) == 0 {
		res.Verdict, res.Detail = NotTR, "b tag is not base64"
		return res
	}
	h := hash.New()
	h.Write(input)
	digest := h.Sum(nil)
	if scheme == sigalg.SchemeUnknown {
		if subtle.ConstantTimeCompare(digest, b) != 1 {
			res.Verdict, res.Detail = Broken, "header hash does not match: a protected header field was changed"
			return res
		}
		if first(fields, FieldAuthoritative) == "yes" {
			res.Verdict, res.Detail = NotTR, "an absenderbestätigt message must be signed, this one is only hashed (clause 3.1.13)"
			return res
		}
		res.Verdict, res.Detail = HashIntact, "hash matches; no provider signature"
		return res
	}
	res.verifySignature(fields, tr, at, sigalg.Algorithm{Scheme: scheme, Hash: hash, PSS: pss(scheme, hash)}, digest, b)
	return res
}

// algorithm reads the "a" tag: "hash" or "hash/signature".
func (res *Integrity) algorithm(tags tagList) (crypto.Hash, sigalg.Scheme, error) {
	a, ok := tags["a"]
	if !ok {
		return 0, 0, fmt.Errorf("no a tag")
	}
	hn, sn, signed := strings.Cut(strings.TrimSpace(a), "/")
	hash, ok := hashes[hn]
	if !ok {
		return 0, 0, fmt.Errorf("hash algorithm %q is not sha256, sha384 or sha512", clip([]byte(hn), 20))
	}
	res.Hash = hn
	if !signed {
		return hash, sigalg.SchemeUnknown, nil
	}
	scheme, ok := schemes[sn]
	if !ok {
		return 0, 0, fmt.Errorf("signature algorithm %q is not rsa, ec-dsa or rsassa-pss", clip([]byte(sn), 20))
	}
	res.Signature = sn
	return hash, scheme, nil
}

// checkParameters enforces the other tags of clause 3.1.21.
func (res *Integrity) checkParameters(tags tagList, fields []rawField, scheme sigalg.Scheme) error {
	if v, ok := tags["v"]; ok && v != "1" {
		return fmt.Errorf("v tag %q, want 1", clip([]byte(v), 10))
	}
	if c, ok := tags["c"]; ok && c != "simple/simple" && c != "simple" {
		// RFC 6376 section 3.5: absent and "simple" both mean simple/simple.
		return fmt.Errorf("canonicalisation %q, the TR requires simple/simple", clip([]byte(c), 30))
	}
	if _, ok := tags["l"]; ok {
		res.Notes = append(res.Notes, "l tag present and ignored: the TR forbids it and the whole body is hashed")
	}
	if _, ok := tags["bh"]; !ok {
		return fmt.Errorf("no bh tag")
	}
	if _, ok := tags["b"]; !ok {
		return fmt.Errorf("no b tag")
	}
	if scheme != sigalg.SchemeUnknown && strings.TrimSpace(tags["q"]) != certificateQuery {
		return fmt.Errorf("q tag %q, a signed message needs %q", clip([]byte(tags["q"]), 60), certificateQuery)
	}
	return checkHeaderList(tags["h"], fields)
}

// checkHeaderList requires exactly the TR's list in its order, with
// X-de-mail-private-id when the message has one.
func checkHeaderList(h string, fields []rawField) error {
	var got []string
	for _, n := range strings.Split(h, ":") {
		got = append(got, strings.ToLower(strings.TrimSpace(stripWhitespace(n))))
	}
	pid, _ := firstField(fields, FieldPrivateID)
	hasPrivateID := pid != nil
	var want []string
	for _, n := range SignedHeaders {
		if n == FieldPrivateID && !hasPrivateID && !contains(got, n) {
			continue
		}
		want = append(want, n)
	}
	if strings.Join(got, ":") != strings.Join(want, ":") {
		return fmt.Errorf("header list %q is not the one of TR 01201 Teil 3.4 clause 3.1.21", clip([]byte(h), 120))
	}
	return nil
}

func checkBodyHash(tags tagList, body []byte, hash crypto.Hash) error {
	bh, err := decodeBase64(tags["bh"])
	if err != nil {
		return fmt.Errorf("bh tag is not base64")
	}
	h := hash.New()
	h.Write(simpleBody(body))
	if subtle.ConstantTimeCompare(h.Sum(nil), bh) != 1 {
		return fmt.Errorf("body hash does not match: the body was changed")
	}
	return nil
}

// simpleBody is the "simple" body canonicalisation (RFC 6376 section
// 3.4.3): trailing empty lines removed, one CRLF at the end.
func simpleBody(body []byte) []byte {
	for bytes.HasSuffix(body, []byte("\r\n")) {
		body = body[:len(body)-2]
	}
	return append(body[:len(body):len(body)], '\r', '\n')
}

// headerHashInput builds the data the header hash covers (RFC 6376
// section 3.7): each field of the list as received, the topmost where a
// field is repeated (clause 3.1.21, unlike RFC 6376's bottom-up rule), then
// the integrity field itself with the b value removed and no final CRLF.
func headerHashInput(fields []rawField, integ *rawField) ([]byte, []string) {
	var buf []byte
	var notes []string
	for _, n := range SignedHeaders {
		f, dup := firstField(fields, n)
		notes = append(notes, dup...)
		if f != nil {
			buf = append(buf, f.Raw...)
		}
	}
	return append(buf, withoutB(integ.Raw)...), notes
}

// withoutB returns the raw integrity field without its final line ending
// and with the value of the b tag, surrounding whitespace included, removed.
func withoutB(raw []byte) []byte {
	raw = bytes.TrimSuffix(raw, []byte("\r\n"))
	colon := bytes.IndexByte(raw, ':')
	out := append([]byte(nil), raw[:colon+1]...)
	for i, seg := range bytes.Split(raw[colon+1:], []byte(";")) {
		if i > 0 {
			out = append(out, ';')
		}
		name, _, ok := bytes.Cut(seg, []byte("="))
		if ok && string(bytes.Trim(name, " \t\r\n")) == "b" {
			seg = seg[:bytes.IndexByte(seg, '=')+1]
		}
		out = append(out, seg...)
	}
	return out
}

func (res *Integrity) verifySignature(fields []rawField, tr *Trust, at time.Time, alg sigalg.Algorithm, digest, sig []byte) {
	der, err := decodeBase64(first(fields, FieldSignatureCertificate))
	if err != nil || len(der) == 0 {
		res.Verdict, res.Detail = NotTR, "signed message without a readable "+FieldSignatureCertificate
		return
	}
	c, err := cert.Parse(der)
	if err != nil {
		res.Verdict, res.Detail = NotTR, "provider certificate: "+err.Error()
		return
	}
	res.Certificate = c
	if c.PublicKey == nil {
		res.Verdict, res.Detail = NotTR, fmt.Sprintf("provider certificate key: %v", c.PublicKeyError)
		return
	}
	if err := alg.VerifyDigest(c.PublicKey, digest, sig); err != nil {
		res.Verdict, res.Detail = Broken, "signature does not verify: the message or a protected header was changed ("+err.Error()+")"
		return
	}
	name := strings.ToLower(strings.TrimSuffix(first(fields, FieldOriginatorProvider), "."))
	pt := tr.provider(name)
	if pt == nil {
		res.Verdict, res.Detail = Untrusted, fmt.Sprintf("signature valid, but provider %q is not configured", clip([]byte(name), 60))
		return
	}
	if !pt.pinned(c) {
		res.Verdict, res.Detail = Untrusted, "signature valid, but the certificate is not one pinned for provider "+name
		return
	}
	res.Chain = pt.store.Validate(trust.Input{Leaf: c, Intermediates: pt.p.Intermediates, CRLs: pt.p.CRLs,
		Time: at, RevocationOptional: true, RequireKeyUsage: sealKeyUsage})
	switch {
	case res.Chain.Indication == trust.Passed:
		res.Verdict, res.Detail = ProviderSigned, "signed by provider "+name+" ("+c.Subject.String()+")"
		res.qualify(tr, pt, c, at)
	case res.Chain.SubIndication == trust.SubRevoked || res.Chain.SubIndication == trust.SubRevokedNoPOE:
		res.Verdict, res.Detail = Revoked, "signature valid, but the provider certificate is revoked: "+revocationDetail(res.Chain)
	case res.Chain.Chain != nil && !c.ValidAt(at):
		res.Verdict, res.Detail = Expired, fmt.Sprintf("signature valid, but the provider certificate is valid only %s to %s",
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	default:
		res.Verdict, res.Detail = Untrusted, fmt.Sprintf("signature valid, but the certificate is not provider %s's: %s %s",
			name, res.Chain.Indication, res.Chain.SubIndication)
	}
}

// sealKeyUsage: a provider's signature certificate signs (seals) messages.
const sealKeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment

// qualify decides the qualification of the provider's valid signature with
// the configured trusted lists.
func (res *Integrity) qualify(tr *Trust, pt *providerTrust, c *cert.Certificate, at time.Time) {
	res.Qualification, res.QualificationDetail = tr.qualification(pt, c, nil, at)
}

// qualification validates a provider's certificate c a second time, now
// against the trusted lists' services and with revocation required, and
// returns the signature qualification in DSS's names and what it rests on.
// A qualified seal whose revocation status is unknown is "Indeterminate
// QESeal"; without trusted lists it is NotChecked.
func (t *Trust) qualification(pt *providerTrust, c *cert.Certificate, extra []*cert.Certificate, at time.Time) (name, detail string) {
	if t.qualified == nil {
		return NotChecked, "no trusted list configured (demail.qualification)"
	}
	r := t.qualified.Validate(trust.Input{Leaf: c, Intermediates: append(slices.Clone(pt.p.Intermediates), extra...),
		CRLs: pt.p.CRLs, Time: at, RequireKeyUsage: sealKeyUsage})
	detail = r.Indication
	if r.SubIndication != "" {
		detail += "/" + r.SubIndication
	}
	if q := r.Qualification; q != nil {
		detail += "; certificate: " + q.Final.Name
		if len(q.Final.Services) > 0 {
			detail += " (" + strings.Join(q.Final.Services, ", ") + ")"
		}
	}
	if st := revocationDetail(r); st != "" {
		detail += "; revocation: " + st
	}
	return r.SignatureQualification(r.Indication), detail
}

// revocationDetail summarises the leaf's revocation status.
func revocationDetail(r *trust.Result) string {
	if r == nil || len(r.Revocation) == 0 {
		return ""
	}
	st := r.Revocation[0]
	out := st.Status
	if st.Source != "" {
		out += " (" + st.Source + ")"
	}
	if !st.RevocationTime.IsZero() {
		out += " since " + st.RevocationTime.UTC().Format(time.RFC3339)
	}
	return out
}

// pss gives RSASSA-PSS its parameters for the named hash: MGF1 with the
// same hash and a salt as long as the hash (RFC 4056 section 3).
func pss(s sigalg.Scheme, h crypto.Hash) *sigalg.PSSParams {
	if s != sigalg.SchemeRSAPSS {
		return nil
	}
	return &sigalg.PSSParams{Hash: h, MGF1Hash: h, SaltLength: h.Size(), Trailer: 1}
}

// firstField returns the topmost field of that name and a note when there
// are more.
func firstField(fields []rawField, name string) (*rawField, []string) {
	var f *rawField
	for i := range fields {
		if strings.EqualFold(fields[i].Name, name) {
			if f != nil {
				return f, []string{name + " appears more than once; the first is used"}
			}
			f = &fields[i]
		}
	}
	return f, nil
}

func first(fields []rawField, name string) string {
	f, _ := firstField(fields, name)
	if f == nil {
		return ""
	}
	return f.Value
}

// decodeBase64 reads a base64 tag or field value with folding whitespace.
func decodeBase64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(stripWhitespace(s))
}
