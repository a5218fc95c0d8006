// Package sigalg names signature and digest algorithms by their ASN.1 object
// identifiers, parses SubjectPublicKeyInfo and verifies signatures.
//
// It exists because German qualified signatures use algorithms that
// crypto/x509 refuses: RSASSA-PSS with SHA-3, ECDSA on brainpool curves and
// BSI TR-03111 plain-ECDSA (r||s). Every decision about an algorithm is made
// here, so that callers can report precisely which algorithm was unsupported.
package sigalg

import (
	"crypto"
	"encoding/asn1"
)

// Object identifiers of digest algorithms.
var (
	OIDDigestSHA1       = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	OIDDigestSHA224     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}
	OIDDigestSHA256     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	OIDDigestSHA384     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	OIDDigestSHA512     = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	OIDDigestSHA512_224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 5}
	OIDDigestSHA512_256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 6}
	OIDDigestSHA3_224   = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 7}
	OIDDigestSHA3_256   = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 8}
	OIDDigestSHA3_384   = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 9}
	OIDDigestSHA3_512   = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 10}
	OIDDigestMD5        = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}
	OIDDigestRIPEMD160  = asn1.ObjectIdentifier{1, 3, 36, 3, 2, 1}
)

// Object identifiers of public-key and signature algorithms.
var (
	OIDRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	OIDRSASSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	OIDMGF1            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	OIDECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	OIDEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
	OIDEd448           = asn1.ObjectIdentifier{1, 3, 101, 113}
	OIDDSA             = asn1.ObjectIdentifier{1, 2, 840, 10040, 4, 1}
	OIDMD5WithRSA      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}
	OIDSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	OIDSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	OIDSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	OIDSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	OIDSHA224WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}
	OIDSHA3_224WithRSA = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 13}
	OIDSHA3_256WithRSA = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 14}
	OIDSHA3_384WithRSA = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 15}
	OIDSHA3_512WithRSA = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 16}

	OIDECDSAWithSHA1     = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	OIDECDSAWithSHA224   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 1}
	OIDECDSAWithSHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	OIDECDSAWithSHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	OIDECDSAWithSHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	OIDECDSAWithSHA3_224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 9}
	OIDECDSAWithSHA3_256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 10}
	OIDECDSAWithSHA3_384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 11}
	OIDECDSAWithSHA3_512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 12}

	// BSI TR-03111 ecdsa-plain-signatures: r||s instead of a DER SEQUENCE.
	OIDPlainECDSAWithSHA1      = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 1}
	OIDPlainECDSAWithSHA224    = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 2}
	OIDPlainECDSAWithSHA256    = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 3}
	OIDPlainECDSAWithSHA384    = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 4}
	OIDPlainECDSAWithSHA512    = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 5}
	OIDPlainECDSAWithRIPEMD160 = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 6}
	OIDPlainECDSAWithSHA3_224  = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 8}
	OIDPlainECDSAWithSHA3_256  = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 9}
	OIDPlainECDSAWithSHA3_384  = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 10}
	OIDPlainECDSAWithSHA3_512  = asn1.ObjectIdentifier{0, 4, 0, 127, 0, 7, 1, 1, 4, 1, 11}
)

// Object identifiers of named elliptic curves.
var (
	OIDCurveP224            = asn1.ObjectIdentifier{1, 3, 132, 0, 33}
	OIDCurveP256            = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	OIDCurveP384            = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	OIDCurveP521            = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	OIDCurveBrainpoolP256r1 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 7}
	OIDCurveBrainpoolP384r1 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 11}
	OIDCurveBrainpoolP512r1 = asn1.ObjectIdentifier{1, 3, 36, 3, 3, 2, 8, 1, 1, 13}
)

type digestEntry struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
	name string
}

// digests lists every digest algorithm we recognise. Unavailable hashes
// (MD5, RIPEMD-160) are listed with hash 0 so that the error can name them.
var digests = []digestEntry{
	{OIDDigestSHA1, crypto.SHA1, "SHA-1"},
	{OIDDigestSHA224, crypto.SHA224, "SHA-224"},
	{OIDDigestSHA256, crypto.SHA256, "SHA-256"},
	{OIDDigestSHA384, crypto.SHA384, "SHA-384"},
	{OIDDigestSHA512, crypto.SHA512, "SHA-512"},
	{OIDDigestSHA512_224, crypto.SHA512_224, "SHA-512/224"},
	{OIDDigestSHA512_256, crypto.SHA512_256, "SHA-512/256"},
	{OIDDigestSHA3_224, crypto.SHA3_224, "SHA3-224"},
	{OIDDigestSHA3_256, crypto.SHA3_256, "SHA3-256"},
	{OIDDigestSHA3_384, crypto.SHA3_384, "SHA3-384"},
	{OIDDigestSHA3_512, crypto.SHA3_512, "SHA3-512"},
	{OIDDigestMD5, 0, "MD5"},
	{OIDDigestRIPEMD160, 0, "RIPEMD-160"},
}

// Scheme is the signature scheme, independent of the digest.
type Scheme int

// Signature schemes.
const (
	SchemeUnknown     Scheme = iota
	SchemeRSAPKCS1v15        // RSASSA-PKCS1-v1_5
	SchemeRSAPSS             // RSASSA-PSS (RFC 4055)
	SchemeECDSA              // ECDSA, signature as DER SEQUENCE {r, s}
	SchemePlainECDSA         // ECDSA, signature as r||s (BSI TR-03111)
	SchemeEd25519            // PureEdDSA over Ed25519
)

// String returns the scheme's name as used in reports.
func (s Scheme) String() string {
	switch s {
	case SchemeRSAPKCS1v15:
		return "RSA"
	case SchemeRSAPSS:
		return "RSASSA-PSS"
	case SchemeECDSA:
		return "ECDSA"
	case SchemePlainECDSA:
		return "PLAIN-ECDSA"
	case SchemeEd25519:
		return "Ed25519"
	}
	return "unknown"
}

type sigEntry struct {
	oid    asn1.ObjectIdentifier
	scheme Scheme
	hash   crypto.Hash // 0: taken from the digest algorithm (bare key OIDs) or parameters (PSS)
}

var signatures = []sigEntry{
	{OIDRSAEncryption, SchemeRSAPKCS1v15, 0},
	{OIDSHA1WithRSA, SchemeRSAPKCS1v15, crypto.SHA1},
	{OIDSHA224WithRSA, SchemeRSAPKCS1v15, crypto.SHA224},
	{OIDSHA256WithRSA, SchemeRSAPKCS1v15, crypto.SHA256},
	{OIDSHA384WithRSA, SchemeRSAPKCS1v15, crypto.SHA384},
	{OIDSHA512WithRSA, SchemeRSAPKCS1v15, crypto.SHA512},
	{OIDSHA3_224WithRSA, SchemeRSAPKCS1v15, crypto.SHA3_224},
	{OIDSHA3_256WithRSA, SchemeRSAPKCS1v15, crypto.SHA3_256},
	{OIDSHA3_384WithRSA, SchemeRSAPKCS1v15, crypto.SHA3_384},
	{OIDSHA3_512WithRSA, SchemeRSAPKCS1v15, crypto.SHA3_512},
	{OIDRSASSAPSS, SchemeRSAPSS, 0},
	{OIDECPublicKey, SchemeECDSA, 0},
	{OIDECDSAWithSHA1, SchemeECDSA, crypto.SHA1},
	{OIDECDSAWithSHA224, SchemeECDSA, crypto.SHA224},
	{OIDECDSAWithSHA256, SchemeECDSA, crypto.SHA256},
	{OIDECDSAWithSHA384, SchemeECDSA, crypto.SHA384},
	{OIDECDSAWithSHA512, SchemeECDSA, crypto.SHA512},
	{OIDECDSAWithSHA3_224, SchemeECDSA, crypto.SHA3_224},
	{OIDECDSAWithSHA3_256, SchemeECDSA, crypto.SHA3_256},
	{OIDECDSAWithSHA3_384, SchemeECDSA, crypto.SHA3_384},
	{OIDECDSAWithSHA3_512, SchemeECDSA, crypto.SHA3_512},
	{OIDPlainECDSAWithSHA1, SchemePlainECDSA, crypto.SHA1},
	{OIDPlainECDSAWithSHA224, SchemePlainECDSA, crypto.SHA224},
	{OIDPlainECDSAWithSHA256, SchemePlainECDSA, crypto.SHA256},
	{OIDPlainECDSAWithSHA384, SchemePlainECDSA, crypto.SHA384},
	{OIDPlainECDSAWithSHA512, SchemePlainECDSA, crypto.SHA512},
	{OIDPlainECDSAWithSHA3_224, SchemePlainECDSA, crypto.SHA3_224},
	{OIDPlainECDSAWithSHA3_256, SchemePlainECDSA, crypto.SHA3_256},
	{OIDPlainECDSAWithSHA3_384, SchemePlainECDSA, crypto.SHA3_384},
	{OIDPlainECDSAWithSHA3_512, SchemePlainECDSA, crypto.SHA3_512},
	{OIDEd25519, SchemeEd25519, 0},
}

// unsupportedSignatures are recognised by name only, so the report can say what they were.
var unsupportedSignatures = map[string]string{
	OIDMD5WithRSA.String():              "MD5withRSA",
	OIDDSA.String():                     "DSA",
	OIDEd448.String():                   "Ed448",
	OIDPlainECDSAWithRIPEMD160.String(): "RIPEMD160withPLAIN-ECDSA",
	"1.2.840.10040.4.3":                 "SHA1withDSA",
	"2.16.840.1.101.3.4.3.2":            "SHA256withDSA",
	"1.3.36.3.3.1.2":                    "RIPEMD160withRSA",
}
