package cms

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// SignatureTimestampImprint returns the digest with h of the first
// signer's signature value: the message imprint to request for a
// signature-time-stamp (RFC 5652 section 11.4 countersignature input, as
// RFC 3161 appendix A and CAdES-B-T use it).
func SignatureTimestampImprint(p7s []byte, h crypto.Hash) ([]byte, error) {
	if !h.Available() {
		return nil, fmt.Errorf("cms: signature timestamp imprint: hash %v unavailable", h)
	}
	sd, err := Parse(p7s)
	if err != nil {
		return nil, fmt.Errorf("cms: signature timestamp imprint: %w", err)
	}
	if len(sd.Signers) == 0 {
		return nil, errors.New("cms: signature timestamp imprint: no signer")
	}
	return hashOf(h, sd.Signers[0].Signature), nil
}

// AddSignatureTimestamp adds tst, a TimeStampToken over the first signer's
// signature value (see SignatureTimestampImprint), as an
// id-aa-signatureTimeStampToken unsigned attribute: CAdES-B-T from
// CAdES-B. Whether the token's imprint matches is checked by Verify, not
// here; the token must be one DER element.
func AddSignatureTimestamp(p7s, tst []byte) ([]byte, error) {
	return AddUnsignedAttribute(p7s, 0, Attribute{Type: OIDAttrSignatureTimeStamp, Values: [][]byte{tst}})
}

// Stamper obtains a TimeStampToken (DER ContentInfo) over a SHA-256
// digest; tsp.Client.Timestamp's Raw result fits.
type Stamper func(ctx context.Context, sha256Digest []byte) ([]byte, error)

// AddSignatureTimestampFrom requests a signature-time-stamp over the first
// signer's signature value from stamp and adds it (CAdES-B-T).
func AddSignatureTimestampFrom(ctx context.Context, p7s []byte, stamp Stamper) ([]byte, error) {
	imprint, err := SignatureTimestampImprint(p7s, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	tst, err := stamp(ctx, imprint)
	if err != nil {
		return nil, fmt.Errorf("cms: timestamp signature: %w", err)
	}
	return AddSignatureTimestamp(p7s, tst)
}

// AddUnsignedAttribute returns p7s with attr added to the unsigned
// attributes of the signer at index signer (an attribute of the same type
// already there gets a second attribute, not a second value). p7s must be
// DER, as Sign makes it: re-encoding BER could alter signed bytes. The
// rest of the SignedData is copied byte for byte.
func AddUnsignedAttribute(p7s []byte, signer int, attr Attribute) ([]byte, error) {
	sd, err := Parse(p7s)
	if err != nil {
		return nil, fmt.Errorf("cms: add unsigned attribute: %w", err)
	}
	if sd.BER {
		return nil, errors.New("cms: add unsigned attribute: the SignedData is BER, not DER")
	}
	if signer < 0 || signer >= len(sd.Signers) {
		return nil, fmt.Errorf("cms: add unsigned attribute: no signer %d of %d", signer, len(sd.Signers))
	}
	newAttr, err := encodeAttribute(attr)
	if err != nil {
		return nil, fmt.Errorf("cms: add unsigned attribute: %w", err)
	}

	// ContentInfo { oid, [0] { SignedData { ..., signerInfos } } }
	s := cryptobyte.String(p7s)
	var ci, content, body cryptobyte.String
	var oidEl cryptobyte.String
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&oidEl, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!content.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil, formatErr("not a ContentInfo with SignedData")
	}
	var fields [][]byte
	for !body.Empty() {
		var el cryptobyte.String
		if !body.ReadAnyASN1Element(&el, nil) {
			return nil, formatErr("malformed SignedData")
		}
		fields = append(fields, el)
	}
	if len(fields) < 4 {
		return nil, formatErr("SignedData has %d fields", len(fields))
	}
	signerSet := cryptobyte.String(fields[len(fields)-1])
	var infos cryptobyte.String
	if !signerSet.ReadASN1(&infos, cbasn1.SET) {
		return nil, formatErr("malformed signerInfos")
	}
	var rebuilt [][]byte
	for i := 0; !infos.Empty(); i++ {
		var si cryptobyte.String
		if !infos.ReadASN1Element(&si, cbasn1.SEQUENCE) {
			return nil, formatErr("malformed SignerInfo")
		}
		if i == signer {
			el, err := withUnsignedAttr(si, newAttr)
			if err != nil {
				return nil, err
			}
			si = el
		}
		rebuilt = append(rebuilt, si)
	}

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(oidEl)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, f := range fields[:len(fields)-1] {
					b.AddBytes(f)
				}
				// SignerInfos keep their order: re-sorting the SET
				// would renumber the signers callers refer to.
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					for _, si := range rebuilt {
						b.AddBytes(si)
					}
				})
			})
		})
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("cms: add unsigned attribute: encode: %w", err)
	}
	return out, nil
}

// withUnsignedAttr returns the SignerInfo element si with attr (a complete
// Attribute element) appended to its unsigned attributes, which are
// re-sorted as DER wants; everything before them is copied.
func withUnsignedAttr(si, attr []byte) ([]byte, error) {
	s := cryptobyte.String(si)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil, formatErr("malformed SignerInfo")
	}
	var head [][]byte
	var existing [][]byte
	for !body.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !body.ReadAnyASN1Element(&el, &tag) {
			return nil, formatErr("malformed SignerInfo")
		}
		if tag == cbasn1.Tag(1).Constructed().ContextSpecific() {
			if !body.Empty() {
				return nil, formatErr("fields after unsignedAttrs")
			}
			inner := cryptobyte.String(el)
			var set cryptobyte.String
			if !inner.ReadASN1(&set, tag) {
				return nil, formatErr("malformed unsignedAttrs")
			}
			for !set.Empty() {
				var a cryptobyte.String
				if !set.ReadASN1Element(&a, cbasn1.SEQUENCE) {
					return nil, formatErr("malformed unsigned attribute")
				}
				existing = append(existing, a)
			}
			continue
		}
		head = append(head, el)
	}
	if len(existing) >= maxAttributes {
		return nil, fmt.Errorf("cms: add unsigned attribute: already %d unsigned attributes", len(existing))
	}
	sorted := append(existing, attr)
	slices.SortFunc(sorted, bytes.Compare)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, h := range head {
			b.AddBytes(h)
		}
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			for _, a := range sorted {
				b.AddBytes(a)
			}
		})
	})
	return b.Bytes()
}
