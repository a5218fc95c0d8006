// Package tsp handles RFC 3161 timestamps: parsing and verifying
// TimeStampTokens and TimeStampResps, and obtaining tokens from TSAs.
//
// The token's CMS signature is verified by crypto/cms; this package adds
// the RFC 3161 rules (TSTInfo content, ESSCertID binding, the TSA
// certificate's critical timeStamping EKU, the message imprint). Whether the
// TSA certificate is trusted is for crypto/trust, which gets the
// certificates from the Result.
package tsp

import (
	"bytes"
	"crypto"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/asn1time"
	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// MaxTokenSize caps a token or response; tokens with embedded chains and
// revocation data stay well below.
const MaxTokenSize = 1 << 20

// TSTInfo is the content of a TimeStampToken (RFC 3161 section 2.4.2).
type TSTInfo struct {
	Raw           []byte
	Version       int
	Policy        asn1.ObjectIdentifier
	HashAlgorithm sigalg.AlgorithmIdentifier
	// Hash is 0 when the imprint's algorithm is unsupported.
	Hash          crypto.Hash
	HashedMessage []byte
	SerialNumber  *big.Int
	GenTime       time.Time
	// Accuracy is zero when absent.
	Accuracy time.Duration
	Ordering bool
	Nonce    *big.Int // nil when absent
	// TSAName is the raw GeneralName, nil when absent.
	TSAName    []byte
	Extensions []pkix.Extension
}

// Token is a parsed TimeStampToken: a CMS SignedData encapsulating a TSTInfo.
type Token struct {
	Raw        []byte
	SignedData *cms.SignedData
	Info       *TSTInfo
}

// ParseToken parses a TimeStampToken (ContentInfo, BER accepted).
func ParseToken(der []byte) (*Token, error) {
	if len(der) > MaxTokenSize {
		return nil, fmt.Errorf("tsp: token of %d bytes exceeds %d", len(der), MaxTokenSize)
	}
	sd, err := cms.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("tsp: token: %w", err)
	}
	if !sd.EContentType.Equal(cms.OIDTSTInfo) {
		return nil, fmt.Errorf("tsp: token content type %s is not id-ct-TSTInfo", sd.EContentType)
	}
	if !sd.HasContent {
		return nil, errors.New("tsp: token without TSTInfo content")
	}
	info, err := ParseTSTInfo(sd.Content)
	if err != nil {
		return nil, err
	}
	if len(sd.Signers) != 1 {
		return nil, fmt.Errorf("tsp: token has %d signers, RFC 3161 requires one", len(sd.Signers))
	}
	return &Token{Raw: der, SignedData: sd, Info: info}, nil
}

// ParseTSTInfo parses a DER TSTInfo.
func ParseTSTInfo(der []byte) (*TSTInfo, error) {
	info := &TSTInfo{Raw: der}
	s := cryptobyte.String(der)
	var seq, mi, hashed, gt cryptobyte.String
	var version int64
	info.SerialNumber = new(big.Int)
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() ||
		!seq.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) || !seq.ReadASN1ObjectIdentifier(&info.Policy) ||
		!seq.ReadASN1(&mi, cbasn1.SEQUENCE) || !sigalg.ReadAlgorithmIdentifier(&mi, &info.HashAlgorithm) ||
		!mi.ReadASN1(&hashed, cbasn1.OCTET_STRING) || !mi.Empty() ||
		!seq.ReadASN1Integer(info.SerialNumber) || !seq.ReadASN1(&gt, cbasn1.GeneralizedTime) {
		return nil, errors.New("tsp: malformed TSTInfo")
	}
	if version != 1 {
		return nil, fmt.Errorf("tsp: TSTInfo version %d", version)
	}
	info.Version = int(version)
	info.HashedMessage = hashed
	if h, err := sigalg.DigestAlgorithm(info.HashAlgorithm); err == nil {
		info.Hash = h
		if len(hashed) != h.Size() {
			return nil, fmt.Errorf("tsp: imprint of %d bytes for %s", len(hashed), sigalg.HashName(h))
		}
	}
	t, err := asn1time.ParseGeneralizedFraction(gt)
	if err != nil {
		return nil, fmt.Errorf("tsp: genTime: %w", err)
	}
	info.GenTime = t
	if seq.PeekASN1Tag(cbasn1.SEQUENCE) {
		var acc cryptobyte.String
		if !seq.ReadASN1(&acc, cbasn1.SEQUENCE) {
			return nil, errors.New("tsp: malformed accuracy")
		}
		d, err := parseAccuracy(acc)
		if err != nil {
			return nil, err
		}
		info.Accuracy = d
	}
	if seq.PeekASN1Tag(cbasn1.BOOLEAN) && !seq.ReadASN1Boolean(&info.Ordering) {
		return nil, errors.New("tsp: malformed ordering")
	}
	if seq.PeekASN1Tag(cbasn1.INTEGER) {
		info.Nonce = new(big.Int)
		if !seq.ReadASN1Integer(info.Nonce) {
			return nil, errors.New("tsp: malformed nonce")
		}
	}
	tsaTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if seq.PeekASN1Tag(tsaTag) {
		var name cryptobyte.String
		if !seq.ReadASN1(&name, tsaTag) {
			return nil, errors.New("tsp: malformed tsa name")
		}
		info.TSAName = name
	}
	extTag := cbasn1.Tag(1).Constructed().ContextSpecific()
	if seq.PeekASN1Tag(extTag) {
		var exts cryptobyte.String
		if !seq.ReadASN1(&exts, extTag) {
			return nil, errors.New("tsp: malformed extensions")
		}
		for !exts.Empty() {
			var ext, val cryptobyte.String
			var e pkix.Extension
			if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&e.Id) {
				return nil, errors.New("tsp: malformed extension")
			}
			if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&e.Critical) {
				return nil, errors.New("tsp: malformed extension")
			}
			if !ext.ReadASN1(&val, cbasn1.OCTET_STRING) || !ext.Empty() {
				return nil, errors.New("tsp: malformed extension")
			}
			e.Value = val
			info.Extensions = append(info.Extensions, e)
		}
	}
	if !seq.Empty() {
		return nil, errors.New("tsp: trailing data in TSTInfo")
	}
	return info, nil
}

func parseAccuracy(acc cryptobyte.String) (time.Duration, error) {
	var d time.Duration
	if acc.PeekASN1Tag(cbasn1.INTEGER) {
		var sec int64
		if !acc.ReadASN1Int64WithTag(&sec, cbasn1.INTEGER) || sec < 0 || sec > 1<<31 {
			return 0, errors.New("tsp: malformed accuracy seconds")
		}
		d += time.Duration(sec) * time.Second
	}
	for i, unit := range []time.Duration{time.Millisecond, time.Microsecond} {
		tag := cbasn1.Tag(i).ContextSpecific()
		if acc.PeekASN1Tag(tag) {
			var v int64
			if !acc.ReadASN1Int64WithTag(&v, tag) || v < 1 || v > 999 {
				return 0, errors.New("tsp: malformed accuracy")
			}
			d += time.Duration(v) * unit
		}
	}
	if !acc.Empty() {
		return 0, errors.New("tsp: malformed accuracy")
	}
	return d, nil
}

// VerifyOptions give the data the token is claimed to cover.
type VerifyOptions struct {
	// Data is the timestamped data; or Digest its digest under the
	// token's imprint algorithm. With neither, the imprint is not checked.
	Data   []byte
	Digest []byte
	// ExtraCertificates help find the TSA certificate when the token does
	// not embed it.
	ExtraCertificates []*cert.Certificate
}

// Checks specific to timestamps.
const (
	CheckTSAExtKeyUsage cms.CheckID = "tsa-extended-key-usage"
	CheckImprint        cms.CheckID = cms.CheckTimestampImprint
)

// Result is the verification of a token. The chain is not validated here.
type Result struct {
	Token  *Token
	Signer *cms.SignerResult
	// TSACertificate is the signing certificate, nil when not found.
	TSACertificate *cert.Certificate
	// Certificates are all certificates available for path building.
	Certificates []*cert.Certificate
	Checks       []cms.Check
	// Valid: the CMS signature is valid (including the ESSCertID binding),
	// the TSA certificate carries the critical timeStamping EKU, and the
	// imprint matched. An unchecked imprint leaves Valid false.
	Valid bool
}

// Verify verifies the token.
func (t *Token) Verify(opts VerifyOptions) *Result {
	res := &Result{Token: t}
	r := t.SignedData.Verify(cms.VerifyOptions{ExtraCertificates: opts.ExtraCertificates})
	res.Signer = r.Signers[0]
	res.TSACertificate = res.Signer.Certificate
	res.Certificates = append(append([]*cert.Certificate(nil), t.SignedData.Certificates...), opts.ExtraCertificates...)
	res.Checks = append(res.Checks, res.Signer.Checks...)
	// RFC 3161 2.4.1: the signing certificate must be identified by a
	// signing-certificate attribute.
	if c, _ := res.Signer.Check(cms.CheckSigningCertificateRef); c.Outcome == cms.NotChecked && res.Signer.Certificate != nil {
		res.replace(cms.Check{ID: cms.CheckSigningCertificateRef, Outcome: cms.Failed, Detail: "RFC 3161 requires a signing-certificate attribute"})
	}
	res.Checks = append(res.Checks, ekuCheck(res.TSACertificate))
	res.Checks = append(res.Checks, t.imprintCheck(opts))
	res.Valid = res.Signer.Intact
	for _, c := range res.Checks {
		if c.Outcome != cms.Passed {
			res.Valid = false
		}
	}
	return res
}

func (r *Result) replace(c cms.Check) {
	for i := range r.Checks {
		if r.Checks[i].ID == c.ID {
			r.Checks[i] = c
		}
	}
}

// Check returns the check with the given id.
func (r *Result) Check(id cms.CheckID) (cms.Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return cms.Check{}, false
}

func ekuCheck(c *cert.Certificate) cms.Check {
	switch {
	case c == nil:
		return cms.Check{ID: CheckTSAExtKeyUsage, Outcome: cms.NotChecked, Detail: "no TSA certificate"}
	case !c.HasExtKeyUsage(cert.OIDEKUTimeStamping):
		return cms.Check{ID: CheckTSAExtKeyUsage, Outcome: cms.Failed, Detail: "TSA certificate lacks the timeStamping extended key usage"}
	case len(c.ExtKeyUsage) != 1 || !c.ExtKeyUsageCritical:
		return cms.Check{ID: CheckTSAExtKeyUsage, Outcome: cms.Failed, Detail: "RFC 3161 2.3: the timeStamping extended key usage must be the only one and critical"}
	}
	return cms.Check{ID: CheckTSAExtKeyUsage, Outcome: cms.Passed}
}

func (t *Token) imprintCheck(opts VerifyOptions) cms.Check {
	info := t.Info
	if info.Hash == 0 {
		return cms.Check{ID: CheckImprint, Outcome: cms.NotChecked, Detail: "unsupported imprint algorithm " + info.HashAlgorithm.OID.String()}
	}
	var got []byte
	switch {
	case opts.Data != nil:
		h := info.Hash.New()
		h.Write(opts.Data)
		got = h.Sum(nil)
	case opts.Digest != nil:
		got = opts.Digest
	default:
		return cms.Check{ID: CheckImprint, Outcome: cms.NotChecked, Detail: "timestamped data not given"}
	}
	if subtle.ConstantTimeCompare(got, info.HashedMessage) != 1 {
		return cms.Check{ID: CheckImprint, Outcome: cms.Failed, Detail: fmt.Sprintf("imprint %X, data %s %X", info.HashedMessage, sigalg.HashName(info.Hash), got)}
	}
	return cms.Check{ID: CheckImprint, Outcome: cms.Passed, Detail: sigalg.HashName(info.Hash)}
}

// MatchesData reports whether the imprint covers data.
func (t *Token) MatchesData(data []byte) bool {
	if t.Info.Hash == 0 {
		return false
	}
	h := t.Info.Hash.New()
	h.Write(data)
	return bytes.Equal(h.Sum(nil), t.Info.HashedMessage)
}
