package cms

import "encoding/asn1"

// Content types and attribute identifiers (RFC 5652, RFC 2634, RFC 5035,
// ETSI EN 319 122-1).
var (
	OIDData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	OIDSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	OIDTSTInfo    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}

	OIDAttrContentType      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	OIDAttrMessageDigest    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	OIDAttrSigningTime      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	OIDAttrCounterSignature = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 6}

	OIDAttrContentHints           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 4}
	OIDAttrSigningCertificate     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
	OIDAttrSignatureTimeStamp     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}
	OIDAttrSigPolicyID            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 15}
	OIDAttrContentTimeStamp       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 20}
	OIDAttrCompleteCertRefs       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 21}
	OIDAttrCompleteRevocationRefs = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 22}
	OIDAttrCertValues             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 23}
	OIDAttrRevocationValues       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 24}
	OIDAttrEscTimeStamp           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 25}
	OIDAttrCertCRLTimestamp       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 26}
	OIDAttrArchiveTimestampV1     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 27}
	OIDAttrSigningCertificateV2   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	OIDAttrArchiveTimestampV2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 48}
	OIDAttrArchiveTimestampV3     = asn1.ObjectIdentifier{0, 4, 0, 1733, 2, 4}
	OIDAttrATSHashIndex           = asn1.ObjectIdentifier{0, 4, 0, 1733, 2, 5}
	OIDAttrATSHashIndexV3         = asn1.ObjectIdentifier{0, 4, 0, 19122, 1, 5}

	// OIDRevocationInfoOCSP is id-ri-ocsp-response (RFC 5940) in RevocationInfoChoices.
	OIDRevocationInfoOCSP = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 16, 2}
)
