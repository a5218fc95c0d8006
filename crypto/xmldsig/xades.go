package xmldsig

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

// NamespaceXAdES141 is the namespace of the XAdES 1.4.1 additions
// (ArchiveTimeStamp, TimeStampValidationData).
const NamespaceXAdES141 = "http://uri.etsi.org/01903/v1.4.1#"

const (
	maxTimestamps     = 16
	maxEncapsulated   = 64
	maxTimestampBytes = 64 << 10
	maxEncapsulatedSz = 1 << 20
)

// XAdES holds what the qualifying properties of one signature say (ETSI EN
// 319 132-1). Nothing here is trusted: the signed properties count only
// when SignedPropertiesReferenced is set and the signature is intact.
type XAdES struct {
	QualifyingProperties *Element
	SignedProperties     *Element
	// SignedPropertiesReferenced is set when a reference resolves to
	// SignedProperties; whether its digest matched is that reference's
	// status.
	SignedPropertiesReferenced bool
	SigningTime                time.Time
	// SigningCertificates are the Cert entries of SigningCertificateV2 or,
	// failing that, SigningCertificate; V2 tells which.
	SigningCertificates []CertRef
	V2                  bool
	// Timestamps of the data objects (signed) and of the signature
	// (unsigned), in document order.
	AllDataObjectsTimestamps []Timestamp
	SignatureTimestamps      []Timestamp
	ArchiveTimestamps        []Timestamp
	// CertificateValues, CRLValues and OCSPValues are the DER values of
	// xades:CertificateValues and xades:RevocationValues (and of
	// xades141:TimeStampValidationData).
	CertificateValues [][]byte
	CRLValues         [][]byte
	OCSPValues        [][]byte
	// DataObjectFormats are the ObjectReference values of the signed
	// xades:DataObjectFormat properties ("#" and a Reference Id).
	DataObjectFormats []string
	// Unsigned is xades:UnsignedSignatureProperties, nil when absent.
	Unsigned *Element
}

// CertRef is one xades:Cert of a signing-certificate property.
type CertRef struct {
	Digest crypto.Hash
	Value  []byte
	// IssuerName and Serial come from IssuerSerial (V1, an RFC 2253 name);
	// IssuerSerialV2 is the DER IssuerSerial of V2.
	IssuerName     string
	Serial         *big.Int
	IssuerSerialV2 []byte
	// Err is set when the entry cannot be read (unknown digest algorithm).
	Err error
}

// Timestamp is one XAdES timestamp property.
type Timestamp struct {
	Element *Element
	// Token is the DER RFC 3161 token of EncapsulatedTimeStamp.
	Token []byte
	// C14N canonicalizes the timestamped elements (Canonical XML 1.0 when
	// the property names none).
	C14N C14N
}

// readXAdES finds the QualifyingProperties of the signature with Id sigID
// among its ds:Object children. A signature without them is plain
// XML-DSig (nil, nil); malformed properties are a format error.
func readXAdES(sigEl *Element, objects []*Element, sigID string) (*XAdES, error) {
	var qps []*Element
	for _, o := range objects {
		for _, qp := range o.ChildrenNamed(NamespaceXAdES132, "QualifyingProperties") {
			if t, _ := qp.Attr("Target"); sigID != "" && t == "#"+sigID {
				qps = append(qps, qp)
			}
		}
	}
	switch len(qps) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("%w: %d QualifyingProperties for signature %s", ErrFormat, len(qps), sigID)
	}
	x := &XAdES{QualifyingProperties: qps[0]}
	sps := qps[0].ChildrenNamed(NamespaceXAdES132, "SignedProperties")
	if len(sps) > 1 {
		return nil, fmt.Errorf("%w: %d SignedProperties", ErrFormat, len(sps))
	}
	if len(sps) == 1 {
		x.SignedProperties = sps[0]
		if err := x.readSigned(sps[0]); err != nil {
			return nil, err
		}
	}
	if err := x.readUnsigned(qps[0]); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *XAdES) readSigned(sp *Element) error {
	ssp := sp.Child(NamespaceXAdES132, "SignedSignatureProperties")
	if st := ssp.Child(NamespaceXAdES132, "SigningTime"); st != nil {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(st.Text()))
		if err != nil {
			return fmt.Errorf("%w: SigningTime: %v", ErrFormat, err)
		}
		x.SigningTime = t
	}
	if v2 := ssp.Child(NamespaceXAdES132, "SigningCertificateV2"); v2 != nil {
		x.V2 = true
		x.SigningCertificates = readCertRefs(v2, true)
	} else if v1 := ssp.Child(NamespaceXAdES132, "SigningCertificate"); v1 != nil {
		x.SigningCertificates = readCertRefs(v1, false)
	}
	sdop := sp.Child(NamespaceXAdES132, "SignedDataObjectProperties")
	for _, f := range sdop.ChildrenNamed(NamespaceXAdES132, "DataObjectFormat") {
		if ref, ok := f.Attr("ObjectReference"); ok && len(x.DataObjectFormats) < maxReferences {
			x.DataObjectFormats = append(x.DataObjectFormats, ref)
		}
	}
	var err error
	x.AllDataObjectsTimestamps, err = readTimestamps(sdop, NamespaceXAdES132, "AllDataObjectsTimeStamp")
	return err
}

func (x *XAdES) readUnsigned(qp *Element) error {
	usp := qp.Path(NamespaceXAdES132, "UnsignedProperties", "UnsignedSignatureProperties")
	if usp == nil {
		return nil
	}
	x.Unsigned = usp
	var err error
	if x.SignatureTimestamps, err = readTimestamps(usp, NamespaceXAdES132, "SignatureTimeStamp"); err != nil {
		return err
	}
	if x.ArchiveTimestamps, err = readTimestamps(usp, NamespaceXAdES141, "ArchiveTimeStamp"); err != nil {
		return err
	}
	for _, holder := range append(usp.ChildrenNamed(NamespaceXAdES132, "CertificateValues"), timestampValidationData(usp, "CertificateValues")...) {
		if err := x.encapsulated(&x.CertificateValues, holder, "EncapsulatedX509Certificate"); err != nil {
			return err
		}
	}
	for _, rv := range append(usp.ChildrenNamed(NamespaceXAdES132, "RevocationValues"), timestampValidationData(usp, "RevocationValues")...) {
		if err := x.encapsulated(&x.CRLValues, rv.Child(NamespaceXAdES132, "CRLValues"), "EncapsulatedCRLValue"); err != nil {
			return err
		}
		if err := x.encapsulated(&x.OCSPValues, rv.Child(NamespaceXAdES132, "OCSPValues"), "EncapsulatedOCSPValue"); err != nil {
			return err
		}
	}
	return nil
}

// timestampValidationData returns the xades:local children of every
// xades141:TimeStampValidationData.
func timestampValidationData(usp *Element, local string) []*Element {
	var out []*Element
	for _, tvd := range usp.ChildrenNamed(NamespaceXAdES141, "TimeStampValidationData") {
		out = append(out, tvd.ChildrenNamed(NamespaceXAdES132, local)...)
	}
	return out
}

func (x *XAdES) encapsulated(dst *[][]byte, holder *Element, local string) error {
	if holder == nil {
		return nil
	}
	for _, e := range holder.ChildrenNamed(NamespaceXAdES132, local) {
		if len(*dst) >= maxEncapsulated {
			return fmt.Errorf("%w: more than %d %s", ErrFormat, maxEncapsulated, local)
		}
		der, err := decodeBase64(e.Text(), maxEncapsulatedSz)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrFormat, local, err)
		}
		*dst = append(*dst, der)
	}
	return nil
}

func readCertRefs(sc *Element, v2 bool) []CertRef {
	var out []CertRef
	for _, c := range sc.ChildrenNamed(NamespaceXAdES132, "Cert") {
		if len(out) == maxKeyInfoCerts {
			break
		}
		var ref CertRef
		cd := c.Child(NamespaceXAdES132, "CertDigest")
		alg, _ := cd.Child(NamespaceDSig, "DigestMethod").Attr("Algorithm")
		if cd == nil {
			ref.Err = fmt.Errorf("%w: Cert without CertDigest", ErrFormat)
		} else if ref.Digest, ref.Err = certDigestAlgorithm(alg); ref.Err == nil {
			ref.Value, ref.Err = decodeBase64(cd.Child(NamespaceDSig, "DigestValue").Text(), 128)
		}
		if v2 {
			if is := c.Child(NamespaceXAdES132, "IssuerSerialV2"); is != nil {
				ref.IssuerSerialV2, _ = decodeBase64(is.Text(), 4096)
			}
		} else if is := c.Child(NamespaceXAdES132, "IssuerSerial"); is != nil {
			ref.IssuerName = strings.TrimSpace(is.Child(NamespaceDSig, "X509IssuerName").Text())
			ref.Serial, _ = new(big.Int).SetString(strings.TrimSpace(is.Child(NamespaceDSig, "X509SerialNumber").Text()), 10)
		}
		out = append(out, ref)
	}
	return out
}

// certDigestAlgorithm is DigestAlgorithm plus SHA-1, which XAdES signing
// certificate references still use widely: a certificate digest is a
// second-preimage question, where SHA-1 still holds.
func certDigestAlgorithm(uri string) (crypto.Hash, error) {
	if uri == "http://www.w3.org/2000/09/xmldsig#sha1" {
		return crypto.SHA1, nil
	}
	return DigestAlgorithm(uri)
}

func readTimestamps(parent *Element, space, local string) ([]Timestamp, error) {
	if parent == nil {
		return nil, nil
	}
	var out []Timestamp
	for _, e := range parent.ChildrenNamed(space, local) {
		if len(out) == maxTimestamps {
			return nil, fmt.Errorf("%w: more than %d %s", ErrFormat, maxTimestamps, local)
		}
		ts := Timestamp{Element: e}
		if cm := e.Child(NamespaceDSig, "CanonicalizationMethod"); cm != nil {
			c, err := c14nFromElement(cm)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", local, err)
			}
			ts.C14N = c
		}
		enc := e.Child(NamespaceXAdES132, "EncapsulatedTimeStamp")
		if enc == nil {
			return nil, fmt.Errorf("%w: %s without EncapsulatedTimeStamp (XML timestamps are not supported)", ErrFormat, local)
		}
		der, err := decodeBase64(enc.Text(), maxTimestampBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, local, err)
		}
		ts.Token = der
		out = append(out, ts)
	}
	return out, nil
}

// Level names the XAdES baseline level the properties reach (EN 319 132-1
// clause 6), each level requiring the one below: "T" with a signature
// timestamp, "LT" adding certificate and revocation values, "LTA" adding
// an archive timestamp; else "B".
func (x *XAdES) Level() string {
	if len(x.SignatureTimestamps) == 0 {
		return "B"
	}
	if len(x.CertificateValues) == 0 || len(x.CRLValues)+len(x.OCSPValues) == 0 {
		return "T"
	}
	if len(x.ArchiveTimestamps) == 0 {
		return "LT"
	}
	return "LTA"
}

// MatchSigningCertificate reports whether c is the certificate the signed
// signing-certificate property names first (EN 319 132-1 5.2.2: the
// signing certificate's digest, and its issuer and serial where given).
func (x *XAdES) MatchSigningCertificate(c *cert.Certificate) error {
	if len(x.SigningCertificates) == 0 {
		return fmt.Errorf("%w: no signing certificate property", ErrNoKey)
	}
	var lastErr error
	for _, ref := range x.SigningCertificates {
		if ref.Err != nil {
			lastErr = ref.Err
			continue
		}
		if !ref.Digest.Available() {
			lastErr = fmt.Errorf("digest %v not available", ref.Digest)
			continue
		}
		h := ref.Digest.New()
		h.Write(c.Raw)
		if subtle.ConstantTimeCompare(h.Sum(nil), ref.Value) != 1 {
			lastErr = fmt.Errorf("%w: certificate digest does not match %s", ErrNoKey, c.Subject)
			continue
		}
		if ref.Serial != nil && (c.SerialNumber == nil || ref.Serial.Cmp(c.SerialNumber) != 0) {
			return fmt.Errorf("%w: IssuerSerial names serial %s, the certificate has %s", ErrNoKey, ref.Serial, c.SerialNumber)
		}
		if ref.IssuerSerialV2 != nil && !issuerSerialMatches(ref.IssuerSerialV2, c) {
			return fmt.Errorf("%w: IssuerSerialV2 does not name the certificate", ErrNoKey)
		}
		return nil
	}
	return lastErr
}

// issuerSerialMatches compares an RFC 5035 IssuerSerial (GeneralNames with
// the issuer's directoryName, serial) with c.
func issuerSerialMatches(der []byte, c *cert.Certificate) bool {
	var is struct {
		Issuer []asn1.RawValue
		Serial *big.Int
	}
	if rest, err := asn1.Unmarshal(der, &is); err != nil || len(rest) > 0 || is.Serial == nil {
		return false
	}
	if c.SerialNumber == nil || is.Serial.Cmp(c.SerialNumber) != 0 {
		return false
	}
	for _, gn := range is.Issuer {
		// directoryName [4] EXPLICIT Name
		if gn.Class == asn1.ClassContextSpecific && gn.Tag == 4 && bytes.Equal(gn.Bytes, c.RawIssuer) {
			return true
		}
	}
	return false
}

// SignatureTimestampData is what a xades:SignatureTimeStamp covers: the
// canonical ds:SignatureValue element (EN 319 132-1 5.3).
func (res *Result) SignatureTimestampData(ts Timestamp) []byte {
	return ts.C14N.Canonicalize(res.SignatureValueElement, nil)
}

// AllDataObjectsTimestampData is what a xades:AllDataObjectsTimeStamp
// covers: the processed data of every reference but the SignedProperties
// one, concatenated in order (EN 319 132-1 5.2.8.1). ok is false when a
// reference's data was not found.
func (res *Result) AllDataObjectsTimestampData() ([]byte, bool) {
	var b bytes.Buffer
	for _, r := range res.DataReferences() {
		if r.Octets == nil {
			return nil, false
		}
		b.Write(r.Octets)
	}
	return b.Bytes(), true
}

// ArchiveTimestampData is what the k-th xades141:ArchiveTimeStamp covers
// (EN 319 132-1 5.5.2.2, explicit canonicalization): every reference's
// processed data, the canonical SignedInfo, SignatureValue and KeyInfo,
// the unsigned signature properties that precede the timestamp, and the
// ds:Object elements other than the one holding the QualifyingProperties.
// ok is false when a reference's data was not found.
func (res *Result) ArchiveTimestampData(k int) ([]byte, bool) {
	x := res.XAdES
	if x == nil || k >= len(x.ArchiveTimestamps) {
		return nil, false
	}
	ts := x.ArchiveTimestamps[k]
	c := ts.C14N
	var b bytes.Buffer
	for _, r := range res.References {
		if r.Octets == nil {
			return nil, false
		}
		b.Write(r.Octets)
	}
	si := res.Element.Child(NamespaceDSig, "SignedInfo")
	b.Write(c.Canonicalize(si, nil))
	b.Write(c.Canonicalize(res.SignatureValueElement, nil))
	if res.KeyInfo != nil {
		b.Write(c.Canonicalize(res.KeyInfo, nil))
	}
	for _, p := range x.Unsigned.Elements() {
		if p == ts.Element {
			break
		}
		b.Write(c.Canonicalize(p, nil))
	}
	for _, o := range res.Objects {
		if o == x.QualifyingProperties.Parent {
			continue
		}
		b.Write(c.Canonicalize(o, nil))
	}
	return b.Bytes(), true
}
