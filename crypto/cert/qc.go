package cert

import (
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// QC statement identifiers of ETSI EN 319 412-5 and RFC 3739.
var (
	OIDQcCompliance      = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 1}
	OIDQcLimitValue      = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 2}
	OIDQcRetentionPeriod = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 3}
	OIDQcSSCD            = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 4}
	OIDQcPDS             = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 5}
	OIDQcType            = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6}
	OIDQcCCLegislation   = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 7}

	OIDQcTypeESign = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 1}
	OIDQcTypeESeal = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 2}
	OIDQcTypeWeb   = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 3}

	OIDQcsPkixQCSyntaxV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 11, 1}
	OIDQcsPkixQCSyntaxV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 11, 2}

	// ETSI EN 319 412-1 semantics identifiers.
	OIDSemanticsNatural      = asn1.ObjectIdentifier{0, 4, 0, 194121, 1, 1}
	OIDSemanticsLegal        = asn1.ObjectIdentifier{0, 4, 0, 194121, 1, 2}
	OIDSemanticsEIDASNatural = asn1.ObjectIdentifier{0, 4, 0, 194121, 1, 3}
	OIDSemanticsEIDASLegal   = asn1.ObjectIdentifier{0, 4, 0, 194121, 1, 4}
)

// QCStatement is one statement, its info kept raw.
type QCStatement struct {
	ID   asn1.ObjectIdentifier
	Info []byte // complete DER element of statementInfo, nil if absent
}

// PDSLocation is one entry of QcPDS.
type PDSLocation struct {
	URL      string
	Language string
}

// QCStatements is the interpreted qcStatements extension.
type QCStatements struct {
	Statements []QCStatement

	Compliance bool // QcCompliance: EU qualified certificate
	SSCD       bool // QcSSCD: key in a qualified signature/seal creation device
	// Types lists QcType values (esign, eseal, web OIDs); empty when the
	// statement is absent, which ETSI reads as esign for legacy certificates.
	Types           []asn1.ObjectIdentifier
	PDS             []PDSLocation
	CCLegislation   []string // QcCClegislation country codes
	RetentionPeriod int      // years, 0 if absent
	// SemanticsIDs are the semanticsIdentifier values of pkixQCSyntax statements.
	SemanticsIDs []asn1.ObjectIdentifier
	// Errors lists statements whose info could not be read; the statement
	// itself still appears in Statements.
	Errors []string
}

// HasType reports whether QcType lists oid.
func (q *QCStatements) HasType(oid asn1.ObjectIdentifier) bool {
	if q == nil {
		return false
	}
	for _, t := range q.Types {
		if t.Equal(oid) {
			return true
		}
	}
	return false
}

// Has reports whether a statement with the given id is present.
func (q *QCStatements) Has(oid asn1.ObjectIdentifier) bool {
	if q == nil {
		return false
	}
	for _, s := range q.Statements {
		if s.ID.Equal(oid) {
			return true
		}
	}
	return false
}

// ParseQCStatements parses the value of the qcStatements extension. A
// malformed outer structure is an error; a malformed statementInfo of a
// known statement is recorded in Errors.
func ParseQCStatements(der []byte) (*QCStatements, error) {
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errors.New("malformed qcStatements")
	}
	q := &QCStatements{}
	for !seq.Empty() {
		var st cryptobyte.String
		var qs QCStatement
		if !seq.ReadASN1(&st, cbasn1.SEQUENCE) || !st.ReadASN1ObjectIdentifier(&qs.ID) {
			return nil, errors.New("malformed QCStatement")
		}
		if !st.Empty() {
			var info cryptobyte.String
			if !st.ReadAnyASN1Element(&info, nil) || !st.Empty() {
				return nil, fmt.Errorf("malformed QCStatement %s", qs.ID)
			}
			qs.Info = info
		}
		q.Statements = append(q.Statements, qs)
		if err := q.apply(qs); err != nil {
			q.Errors = append(q.Errors, fmt.Sprintf("%s: %v", qs.ID, err))
		}
	}
	return q, nil
}

func (q *QCStatements) apply(qs QCStatement) error {
	info := cryptobyte.String(qs.Info)
	switch {
	case qs.ID.Equal(OIDQcCompliance):
		q.Compliance = true
	case qs.ID.Equal(OIDQcSSCD):
		q.SSCD = true
	case qs.ID.Equal(OIDQcType):
		var seq cryptobyte.String
		if !info.ReadASN1(&seq, cbasn1.SEQUENCE) || !info.Empty() {
			return errors.New("malformed QcType")
		}
		for !seq.Empty() {
			var oid asn1.ObjectIdentifier
			if !seq.ReadASN1ObjectIdentifier(&oid) {
				return errors.New("malformed QcType")
			}
			q.Types = append(q.Types, oid)
		}
	case qs.ID.Equal(OIDQcPDS):
		var seq cryptobyte.String
		if !info.ReadASN1(&seq, cbasn1.SEQUENCE) || !info.Empty() {
			return errors.New("malformed QcPDS")
		}
		for !seq.Empty() {
			var loc, url, lang cryptobyte.String
			if !seq.ReadASN1(&loc, cbasn1.SEQUENCE) || !loc.ReadASN1(&url, cbasn1.IA5String) ||
				!loc.ReadASN1(&lang, cbasn1.PrintableString) || !loc.Empty() {
				return errors.New("malformed PdsLocation")
			}
			q.PDS = append(q.PDS, PDSLocation{URL: string(url), Language: string(lang)})
		}
	case qs.ID.Equal(OIDQcCCLegislation):
		var seq cryptobyte.String
		if !info.ReadASN1(&seq, cbasn1.SEQUENCE) || !info.Empty() {
			return errors.New("malformed QcCClegislation")
		}
		for !seq.Empty() {
			var cc cryptobyte.String
			if !seq.ReadASN1(&cc, cbasn1.PrintableString) {
				return errors.New("malformed QcCClegislation")
			}
			q.CCLegislation = append(q.CCLegislation, string(cc))
		}
	case qs.ID.Equal(OIDQcRetentionPeriod):
		var n int64
		if !info.ReadASN1Int64WithTag(&n, cbasn1.INTEGER) || !info.Empty() || n < 0 || n > 1000 {
			return errors.New("malformed QcRetentionPeriod")
		}
		q.RetentionPeriod = int(n)
	case qs.ID.Equal(OIDQcsPkixQCSyntaxV1), qs.ID.Equal(OIDQcsPkixQCSyntaxV2):
		if len(qs.Info) == 0 {
			return nil
		}
		var seq cryptobyte.String
		if !info.ReadASN1(&seq, cbasn1.SEQUENCE) || !info.Empty() {
			return errors.New("malformed SemanticsInformation")
		}
		if seq.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
			var oid asn1.ObjectIdentifier
			if !seq.ReadASN1ObjectIdentifier(&oid) {
				return errors.New("malformed semanticsIdentifier")
			}
			q.SemanticsIDs = append(q.SemanticsIDs, oid)
		}
	}
	return nil
}
