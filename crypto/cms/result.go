package cms

import (
	"crypto"
	"encoding/asn1"
	"math/big"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Outcome is the result of one check.
type Outcome int

// Outcomes of a check.
const (
	// NotChecked: the check could not be performed (missing content,
	// unsupported algorithm, missing certificate); maps to INDETERMINATE.
	NotChecked Outcome = iota
	Passed
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Passed:
		return "passed"
	case Failed:
		return "failed"
	}
	return "not-checked"
}

// MarshalText renders the outcome as its name in JSON.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// CheckID names a check. The comment of each gives the ETSI EN 319 102-1
// sub-indication a failure maps to.
type CheckID string

// Checks performed on a signer.
const (
	// CheckFormat: the SignerInfo and its attributes are well-formed
	// (FORMAT_FAILURE).
	CheckFormat CheckID = "format"
	// CheckAlgorithms: digest and signature algorithms are supported
	// (not-checked maps to CRYPTO_CONSTRAINTS_FAILURE_NO_POE or
	// FORMAT_FAILURE at the report's discretion).
	CheckAlgorithms CheckID = "algorithms"
	// CheckSigningCertificate: a certificate matching the signer identifier
	// was found (NO_SIGNING_CERTIFICATE_FOUND).
	CheckSigningCertificate CheckID = "signing-certificate-found"
	// CheckSignedAttributes: mandatory signed attributes are present once
	// and no attribute that must be unique is repeated (FORMAT_FAILURE).
	CheckSignedAttributes CheckID = "signed-attributes"
	// CheckContentType: the content-type attribute equals eContentType
	// (FORMAT_FAILURE).
	CheckContentType CheckID = "content-type"
	// CheckMessageDigest: the message-digest attribute equals the digest of
	// the content (HASH_FAILURE; not-checked without content:
	// SIGNED_DATA_NOT_FOUND).
	CheckMessageDigest CheckID = "message-digest"
	// CheckDigestAlgorithmConsistency: the digest of the signature
	// algorithm is the SignerInfo's digestAlgorithm (SIG_CRYPTO_FAILURE,
	// see DIFFERENCES.md).
	CheckDigestAlgorithmConsistency CheckID = "digest-algorithm-consistency"
	// CheckSignatureValue: the signature value verifies with the signing
	// certificate's key (SIG_CRYPTO_FAILURE).
	CheckSignatureValue CheckID = "signature-value"
	// CheckSigningCertificateRef: a signing-certificate(-v2) attribute
	// references the signing certificate by digest and, if present, by
	// issuer and serial (FORMAT_FAILURE / SIG_CONSTRAINTS_FAILURE).
	CheckSigningCertificateRef CheckID = "signing-certificate-reference"
	// CheckTimestampImprint: a timestamp's message imprint equals the
	// digest of the data it covers (HASH_FAILURE for the timestamp).
	CheckTimestampImprint CheckID = "timestamp-imprint"
	// CheckTimestampContent: the token's content is a well-formed TSTInfo.
	CheckTimestampContent CheckID = "timestamp-content"
	// CheckATSHashIndex: every entry of an archive-time-stamp-v3's
	// ats-hash-index matches an element present; not-checked (a warning,
	// as in DSS) when one does not: something covered was removed or
	// altered since, which the imprint, covering the index, cannot show.
	CheckATSHashIndex CheckID = "ats-hash-index"
)

// Check is the outcome of one check with a human-readable detail.
type Check struct {
	ID      CheckID `json:"id"`
	Outcome Outcome `json:"outcome"`
	Detail  string  `json:"detail,omitempty"`
}

// CertRef is one ESSCertID or ESSCertIDv2 of a signing-certificate attribute.
type CertRef struct {
	Version      int // 1: ESSCertID (SHA-1), 2: ESSCertIDv2
	Hash         crypto.Hash
	HashOID      asn1.ObjectIdentifier
	Digest       []byte
	HasIssuer    bool
	IssuerNames  [][]byte // directoryName entries of the GeneralNames, DER Names
	SerialNumber *big.Int
	// DigestMatch and IssuerSerialMatch compare with the signing
	// certificate; both false when none was found.
	DigestMatch       bool
	IssuerSerialMatch bool
}

// TimestampKind says which attribute carried a timestamp.
type TimestampKind string

// Kinds of timestamps.
const (
	TimestampSignature TimestampKind = "signature"
	TimestampContent   TimestampKind = "content"
	TimestampArchiveV1 TimestampKind = "archive-v1"
	TimestampArchiveV2 TimestampKind = "archive-v2"
	TimestampArchiveV3 TimestampKind = "archive-v3"
	TimestampESC       TimestampKind = "esc"
	TimestampCertCRL   TimestampKind = "cert-crl"
)

// TimestampResult is a timestamp attribute and what could be verified of it.
type TimestampResult struct {
	Kind TimestampKind
	// Raw is the attribute value as transmitted.
	Raw []byte
	// Token is the parsed token, nil when unparseable.
	Token *SignedData
	// Signer is the verification of the token's CMS signature; nil when the
	// token has no signer.
	Signer *SignerResult
	// GenTime, Imprint and ImprintHash come from the TSTInfo.
	GenTime     time.Time
	ImprintHash crypto.Hash
	Imprint     []byte
	Checks      []Check
}

// RevocationValues are the CRLs and OCSP responses of a revocationValues
// attribute (CAdES-X-L / LT), raw DER.
type RevocationValues struct {
	CRLs          [][]byte
	OCSPResponses [][]byte // BasicOCSPResponse
}

// SignerResult is the verification outcome of one SignerInfo.
type SignerResult struct {
	// Index is the 0-based position among the SignedData's signers (or
	// among the countersignatures of the parent).
	Index      int
	SignerInfo *SignerInfo

	DigestAlgorithm    crypto.Hash
	SignatureAlgorithm sigalg.Algorithm
	// Certificate is the signing certificate, nil when not found.
	Certificate *cert.Certificate

	SigningTime   time.Time // zero when absent
	ContentType   asn1.ObjectIdentifier
	MessageDigest []byte

	SigningCertificateRefs []CertRef
	// SigningCertificateRefUnique: exactly one reference was transmitted.
	SigningCertificateRefUnique bool

	Checks []Check

	// SignedAttrsEncoding says over which encoding of the signed
	// attributes the signature verified (EncodingTransmitted, ...).
	SignedAttrsEncoding string

	// Intact: the signature value verified (SIG_CRYPTO level).
	Intact bool
	// Valid: intact and no check failed (message digest, content type,
	// attribute format, digest consistency, signing certificate reference).
	// Checks that were not performed leave Valid false too.
	Valid bool

	CounterSignatures []*SignerResult
	Timestamps        []*TimestampResult
	CertificateValues []*cert.Certificate
	RevocationValues  RevocationValues
}

// Check returns the check with the given id.
func (r *SignerResult) Check(id CheckID) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

func (r *SignerResult) add(id CheckID, o Outcome, detail string) {
	r.Checks = append(r.Checks, Check{ID: id, Outcome: o, Detail: detail})
}
