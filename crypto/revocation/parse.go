package revocation

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/trust"
)

// maxResponseExtensions bounds the extensions read from a ResponseData.
const maxResponseExtensions = 32

// ResponseStatus reads the responseStatus of an OCSPResponse, so that an
// unsuccessful answer (tryLater, unauthorized ...) is reported by name.
func ResponseStatus(der []byte) (int, error) {
	if len(der) > trust.MaxOCSPSize {
		return 0, fmt.Errorf("revocation: OCSP response of %d bytes exceeds %d", len(der), trust.MaxOCSPSize)
	}
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	var status int
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() || !seq.ReadASN1Enum(&status) {
		return 0, errors.New("revocation: malformed OCSPResponse")
	}
	return status, nil
}

// ResponseNonce finds the nonce extension (RFC 8954) in the responseExtensions
// of a ResponseData (tbsResponseData DER). The value is the OCTET STRING
// inside extnValue; a responder that put the bare nonce there (seen from
// old responders) is read as sent.
func ResponseNonce(tbs []byte) (nonce []byte, present bool, err error) {
	in := cryptobyte.String(tbs)
	var rd cryptobyte.String
	if !in.ReadASN1(&rd, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, false, errors.New("revocation: malformed ResponseData")
	}
	rd.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific())
	var responderID cryptobyte.String
	var tag cbasn1.Tag
	if !rd.ReadAnyASN1(&responderID, &tag) || !rd.SkipASN1(cbasn1.GeneralizedTime) || !rd.SkipASN1(cbasn1.SEQUENCE) {
		return nil, false, errors.New("revocation: malformed ResponseData")
	}
	var exts cryptobyte.String
	var hasExts bool
	if !rd.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(1).Constructed().ContextSpecific()) || !rd.Empty() {
		return nil, false, errors.New("revocation: malformed responseExtensions")
	}
	if !hasExts {
		return nil, false, nil
	}
	if !exts.ReadASN1(&exts, cbasn1.SEQUENCE) {
		return nil, false, errors.New("revocation: malformed responseExtensions")
	}
	for n := 0; !exts.Empty(); n++ {
		if n >= maxResponseExtensions {
			return nil, false, errors.New("revocation: too many responseExtensions")
		}
		var ext, id cryptobyte.String
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1(&id, cbasn1.OBJECT_IDENTIFIER) {
			return nil, false, errors.New("revocation: malformed extension")
		}
		var critical bool
		if ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) {
			return nil, false, errors.New("revocation: malformed extension")
		}
		var v cryptobyte.String
		if !ext.ReadASN1(&v, cbasn1.OCTET_STRING) || !ext.Empty() {
			return nil, false, errors.New("revocation: malformed extension")
		}
		if string(id) != string(nonceOIDBytes) {
			continue
		}
		if present {
			return nil, false, errors.New("revocation: two nonce extensions")
		}
		present = true
		inner := v
		var octets cryptobyte.String
		if inner.ReadASN1(&octets, cbasn1.OCTET_STRING) && inner.Empty() {
			nonce = append([]byte(nil), octets...)
		} else {
			nonce = append([]byte(nil), v...)
		}
	}
	return nonce, present, nil
}

// nonceOIDBytes is the content octets of id-pkix-ocsp-nonce.
var nonceOIDBytes = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02}
