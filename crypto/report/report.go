// Package report holds the verdict model for signature verification: the
// per-signature result of ETSI EN 319 102-1 (indication, sub-indication),
// the eIDAS qualification with the names DSS uses, signer, times, timestamps,
// chain and every check made, and the document-level Report that the
// Prüfprotokoll and `poststelle verify --format json` render.
//
// The package only models and renders; crypto/cms, crypto/tsp and crypto/trust
// decide. Field names of the JSON form are a contract (see WriteJSON).
package report

import (
	"encoding/json"
	"fmt"
	"time"
)

// Indication is the main status of a validation (EN 319 102-1, clause 5.1.3).
// Signatures end in TotalPassed, TotalFailed or Indeterminate; building blocks
// and timestamps use Passed, Failed or Indeterminate.
type Indication string

// Indications of EN 319 102-1.
const (
	TotalPassed   Indication = "TOTAL_PASSED"
	TotalFailed   Indication = "TOTAL_FAILED"
	Indeterminate Indication = "INDETERMINATE"
	Passed        Indication = "PASSED"
	Failed        Indication = "FAILED"
)

// Valid reports whether i is one of the defined indications.
func (i Indication) Valid() bool {
	switch i {
	case TotalPassed, TotalFailed, Indeterminate, Passed, Failed:
		return true
	}
	return false
}

// German returns the German word the Prüfprotokoll shows for i.
func (i Indication) German() string {
	switch i {
	case TotalPassed, Passed:
		return "gültig"
	case TotalFailed, Failed:
		return "ungültig"
	case Indeterminate:
		return "unbestimmt"
	}
	return "unbekannt"
}

// SubIndication explains a non-passed indication (EN 319 102-1, Table 5).
// The zero value means "none" and is rendered as JSON null.
type SubIndication string

// Sub-indications of EN 319 102-1 (names as in the standard and in DSS).
const (
	NoSubIndication SubIndication = ""

	FormatFailure                  SubIndication = "FORMAT_FAILURE"
	HashFailure                    SubIndication = "HASH_FAILURE"
	SigCryptoFailure               SubIndication = "SIG_CRYPTO_FAILURE"
	Revoked                        SubIndication = "REVOKED"
	SigConstraintsFailure          SubIndication = "SIG_CONSTRAINTS_FAILURE"
	ChainConstraintsFailure        SubIndication = "CHAIN_CONSTRAINTS_FAILURE"
	CertificateChainGeneralFailure SubIndication = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
	CryptoConstraintsFailure       SubIndication = "CRYPTO_CONSTRAINTS_FAILURE"
	Expired                        SubIndication = "EXPIRED"
	NotYetValid                    SubIndication = "NOT_YET_VALID"
	PolicyProcessingError          SubIndication = "POLICY_PROCESSING_ERROR"
	SignaturePolicyNotAvailable    SubIndication = "SIGNATURE_POLICY_NOT_AVAILABLE"
	TimestampOrderFailure          SubIndication = "TIMESTAMP_ORDER_FAILURE"
	NoSigningCertificateFound      SubIndication = "NO_SIGNING_CERTIFICATE_FOUND"
	NoCertificateChainFound        SubIndication = "NO_CERTIFICATE_CHAIN_FOUND"
	NoCertificateChainFoundNoPOE   SubIndication = "NO_CERTIFICATE_CHAIN_FOUND_NO_POE"
	RevokedNoPOE                   SubIndication = "REVOKED_NO_POE"
	RevokedCANoPOE                 SubIndication = "REVOKED_CA_NO_POE"
	OutOfBoundsNoPOE               SubIndication = "OUT_OF_BOUNDS_NO_POE"
	OutOfBoundsNotRevoked          SubIndication = "OUT_OF_BOUNDS_NOT_REVOKED"
	RevocationOutOfBoundsNoPOE     SubIndication = "REVOCATION_OUT_OF_BOUNDS_NO_POE"
	CryptoConstraintsFailureNoPOE  SubIndication = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
	NoPOE                          SubIndication = "NO_POE"
	TryLater                       SubIndication = "TRY_LATER"
	SignedDataNotFound             SubIndication = "SIGNED_DATA_NOT_FOUND"
)

// failedSubs and indeterminateSubs are Table 5 of EN 319 102-1 V1.3.1 plus the
// two later DSS additions (…_NO_POE variants). EXPIRED and NOT_YET_VALID
// appear under both, as the editions of the standard differ there.
var (
	failedSubs = []SubIndication{FormatFailure, HashFailure, SigCryptoFailure, Revoked, Expired, NotYetValid}

	indeterminateSubs = []SubIndication{
		SigConstraintsFailure, ChainConstraintsFailure, CertificateChainGeneralFailure,
		CryptoConstraintsFailure, Expired, NotYetValid, PolicyProcessingError,
		SignaturePolicyNotAvailable, TimestampOrderFailure, NoSigningCertificateFound,
		NoCertificateChainFound, NoCertificateChainFoundNoPOE, RevokedNoPOE, RevokedCANoPOE,
		OutOfBoundsNoPOE, OutOfBoundsNotRevoked, RevocationOutOfBoundsNoPOE,
		CryptoConstraintsFailureNoPOE, NoPOE, TryLater, SignedDataNotFound,
	}
)

// Valid reports whether s is "none" or one of the defined sub-indications.
func (s SubIndication) Valid() bool {
	if s == NoSubIndication {
		return true
	}
	return contains(failedSubs, s) || contains(indeterminateSubs, s)
}

// Consistent reports whether sub may accompany ind: none for the passed
// indications, one of Table 5's lists for the others. A missing
// sub-indication with a failed or indeterminate result is allowed, since
// building blocks may leave it open.
func Consistent(ind Indication, sub SubIndication) bool {
	switch ind {
	case TotalPassed, Passed:
		return sub == NoSubIndication
	case TotalFailed, Failed:
		return sub == NoSubIndication || contains(failedSubs, sub)
	case Indeterminate:
		return sub == NoSubIndication || contains(indeterminateSubs, sub)
	}
	return false
}

func contains(list []SubIndication, s SubIndication) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MarshalJSON renders "none" as null, so the key is always present.
func (s SubIndication) MarshalJSON() ([]byte, error) {
	if s == NoSubIndication {
		return []byte("null"), nil
	}
	return json.Marshal(string(s))
}

// UnmarshalJSON accepts null as "none".
func (s *SubIndication) UnmarshalJSON(b []byte) error {
	var v *string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("subIndication: %w", err)
	}
	if v == nil {
		*s = NoSubIndication
		return nil
	}
	*s = SubIndication(*v)
	return nil
}

// Qualification is the eIDAS qualification of a signature as determined by
// ETSI TS 119 615 / TS 119 172-4, named exactly as DSS names it in its simple
// report (SignatureQualification.getReadable), so results compare verbatim.
type Qualification string

// Qualifications, with DSS's names.
const (
	QESig                      Qualification = "QESig"
	QESeal                     Qualification = "QESeal"
	UnknownQCQSCD              Qualification = "Unknown-QC-QSCD"
	AdESigQC                   Qualification = "AdESig-QC"
	AdESealQC                  Qualification = "AdESeal-QC"
	UnknownQC                  Qualification = "Unknown-QC"
	AdESig                     Qualification = "AdESig"
	AdESeal                    Qualification = "AdESeal"
	UnknownQualification       Qualification = "Unknown"
	IndeterminateQESig         Qualification = "Indeterminate QESig"
	IndeterminateQESeal        Qualification = "Indeterminate QESeal"
	IndeterminateUnknownQCQSCD Qualification = "Indeterminate Unknown-QC-QSCD"
	IndeterminateAdESigQC      Qualification = "Indeterminate AdESig-QC"
	IndeterminateAdESealQC     Qualification = "Indeterminate AdESeal-QC"
	IndeterminateUnknownQC     Qualification = "Indeterminate Unknown-QC"
	IndeterminateAdESig        Qualification = "Indeterminate AdESig"
	IndeterminateAdESeal       Qualification = "Indeterminate AdESeal"
	IndeterminateUnknown       Qualification = "Indeterminate Unknown"
	NotAdESQCQSCD              Qualification = "Not AdES but QC with QSCD"
	NotAdESQC                  Qualification = "Not AdES but QC"
	NotAdES                    Qualification = "Not AdES"
	QualificationNotApplicable Qualification = "N/A"
)

var qualifications = map[Qualification]string{
	QESig:                      "Qualifizierte elektronische Signatur",
	QESeal:                     "Qualifiziertes elektronisches Siegel",
	UnknownQCQSCD:              "Qualifiziertes Zertifikat unbekannter Art mit QSCD",
	AdESigQC:                   "Fortgeschrittene Signatur mit qualifiziertem Zertifikat",
	AdESealQC:                  "Fortgeschrittenes Siegel mit qualifiziertem Zertifikat",
	UnknownQC:                  "Qualifiziertes Zertifikat unbekannter Art",
	AdESig:                     "Fortgeschrittene elektronische Signatur",
	AdESeal:                    "Fortgeschrittenes elektronisches Siegel",
	UnknownQualification:       "Zertifikat unbekannter Art",
	IndeterminateQESig:         "Unbestimmt: qualifizierte elektronische Signatur",
	IndeterminateQESeal:        "Unbestimmt: qualifiziertes elektronisches Siegel",
	IndeterminateUnknownQCQSCD: "Unbestimmt: qualifiziertes Zertifikat unbekannter Art mit QSCD",
	IndeterminateAdESigQC:      "Unbestimmt: fortgeschrittene Signatur mit qualifiziertem Zertifikat",
	IndeterminateAdESealQC:     "Unbestimmt: fortgeschrittenes Siegel mit qualifiziertem Zertifikat",
	IndeterminateUnknownQC:     "Unbestimmt: qualifiziertes Zertifikat unbekannter Art",
	IndeterminateAdESig:        "Unbestimmt: fortgeschrittene elektronische Signatur",
	IndeterminateAdESeal:       "Unbestimmt: fortgeschrittenes elektronisches Siegel",
	IndeterminateUnknown:       "Unbestimmt: Zertifikat unbekannter Art",
	NotAdESQCQSCD:              "Keine fortgeschrittene Signatur, aber qualifiziertes Zertifikat mit QSCD",
	NotAdESQC:                  "Keine fortgeschrittene Signatur, aber qualifiziertes Zertifikat",
	NotAdES:                    "Keine fortgeschrittene Signatur",
	QualificationNotApplicable: "Nicht bestimmbar",
}

// Valid reports whether q is one of DSS's qualification names.
func (q Qualification) Valid() bool {
	_, ok := qualifications[q]
	return ok
}

// German returns the German description the Prüfprotokoll shows for q.
func (q Qualification) German() string {
	if d, ok := qualifications[q]; ok {
		return d
	}
	return "unbekannt"
}

// TimestampQualification is a timestamp's qualification, with DSS's names.
type TimestampQualification string

// Timestamp qualifications.
const (
	QTSA                                TimestampQualification = "QTSA"
	TSA                                 TimestampQualification = "TSA"
	TimestampQualificationNotApplicable TimestampQualification = "N/A"
)

// Valid reports whether q is one of the defined names.
func (q TimestampQualification) Valid() bool {
	return q == QTSA || q == TSA || q == TimestampQualificationNotApplicable
}

// TimestampType says what a timestamp covers, with DSS's names.
type TimestampType string

// Timestamp types.
const (
	SignatureTimestamp TimestampType = "SIGNATURE_TIMESTAMP"
	ContentTimestamp   TimestampType = "CONTENT_TIMESTAMP"
	ArchiveTimestamp   TimestampType = "ARCHIVE_TIMESTAMP"
	DocumentTimestamp  TimestampType = "DOCUMENT_TIMESTAMP"
	// ValidationDataTimestamp covers validation data only (CAdES-X, XAdES SigAndRefs).
	ValidationDataTimestamp TimestampType = "VALIDATION_DATA_TIMESTAMP"
	// DetachedTimestamp is a token validated on its own (RFC 3161 .tsr/.tst).
	DetachedTimestamp TimestampType = "DETACHED_TIMESTAMP"
)

// CheckResult is the outcome of one check.
type CheckResult string

// Check results. Info records a fact that is neither good nor bad.
const (
	CheckOK      CheckResult = "OK"
	CheckFailed  CheckResult = "FAILED"
	CheckWarning CheckResult = "WARNING"
	CheckInfo    CheckResult = "INFO"
)

// Valid reports whether r is one of the defined results.
func (r CheckResult) Valid() bool {
	switch r {
	case CheckOK, CheckFailed, CheckWarning, CheckInfo:
		return true
	}
	return false
}

// Check is one step of the validation, in the order it was made.
type Check struct {
	// ID is stable and machine-readable, e.g. "cms.message-digest".
	ID string `json:"id"`
	// Description says what was checked, in English.
	Description string      `json:"description"`
	Result      CheckResult `json:"result"`
	// Detail says why, for anything but OK.
	Detail string `json:"detail,omitempty"`
}

// Certificate identifies a certificate in a report.
type Certificate struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// Serial is the serial number in decimal.
	Serial string `json:"serial"`
	// SHA256 is the lower-case hex SHA-256 of the DER encoding.
	SHA256    string    `json:"sha256"`
	NotBefore time.Time `json:"notBefore,omitzero"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
	// Trusted marks the trust anchor in a chain.
	Trusted bool `json:"trusted,omitempty"`
}

// Timestamp is the verdict on one RFC 3161 timestamp.
type Timestamp struct {
	Type    TimestampType `json:"type"`
	GenTime time.Time     `json:"genTime"`
	// SHA256 is the lower-case hex SHA-256 of the token (the ContentInfo as
	// carried), which identifies it: two tokens may share a genTime.
	SHA256        string                 `json:"sha256,omitempty"`
	TSA           *Certificate           `json:"tsa"`
	Indication    Indication             `json:"indication"`
	SubIndication SubIndication          `json:"subIndication"`
	Qualification TimestampQualification `json:"qualification,omitempty"`
	Checks        []Check                `json:"checks,omitempty"`
}

// Signature is the verdict on one signature (or countersignature).
type Signature struct {
	// ID is unique within the report, e.g. "S-1".
	ID string `json:"id"`
	// Format is the AdES level found, e.g. "CAdES-BASELINE-T", in DSS's spelling.
	Format string `json:"format,omitempty"`
	// CounterSignatureOf names the countersigned signature's ID.
	CounterSignatureOf string        `json:"counterSignatureOf,omitempty"`
	Indication         Indication    `json:"indication"`
	SubIndication      SubIndication `json:"subIndication"`
	Qualification      Qualification `json:"qualification"`
	Signer             *Certificate  `json:"signer"`
	// SigningTime is the time the signer claims (signing-time attribute); nil when absent.
	SigningTime *time.Time `json:"signingTime"`
	// BestSignatureTime is the earliest time the signature is proven to have existed.
	BestSignatureTime *time.Time    `json:"bestSignatureTime"`
	Timestamps        []Timestamp   `json:"timestamps"`
	Chain             []Certificate `json:"chain"`
	Checks            []Check       `json:"checks"`
}

// Document identifies the verified document.
type Document struct {
	Name string `json:"name"`
	// SHA256 is the lower-case hex SHA-256 of the document's bytes.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Policy names the validation policy a report was made under and the
// settings it decided, so that a reader can tell why, say, old revocation
// data was accepted.
type Policy struct {
	Name        string             `json:"name"`
	Constraints []PolicyConstraint `json:"constraints"`
}

// PolicyConstraint is one setting of a validation policy.
type PolicyConstraint struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Container describes a signature container (ASiC-S, ASiC-E).
type Container struct {
	// Type is "ASiC-S" or "ASiC-E".
	Type        string            `json:"type"`
	DataObjects []ContainerObject `json:"dataObjects"`
	// Uncovered names the data objects that no signature or timestamp
	// covers: they travel in the container but nobody signed them.
	Uncovered []string `json:"uncovered"`
}

// ContainerObject is one data object of a container.
type ContainerObject struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// CoveredBy lists the IDs of the signatures (or "timestamp N") whose
	// verified references include the object.
	CoveredBy []string `json:"coveredBy"`
}

// Report is the document-level verification report.
type Report struct {
	// Tool names the producing program and its version, e.g. "poststelle 0.3.0".
	Tool           string    `json:"tool"`
	ValidationTime time.Time `json:"validationTime"`
	// Policy is the validation policy applied; nil only in reports from
	// before policies were named.
	Policy     *Policy     `json:"policy,omitempty"`
	Document   Document    `json:"document"`
	Signatures []Signature `json:"signatures"`
	// Timestamps holds standalone timestamp tokens (an RFC 3161 token
	// verified on its own); timestamps inside signatures live there.
	Timestamps []Timestamp `json:"timestamps,omitempty"`
	// Container describes an ASiC container: its data objects and which of
	// them no signature or timestamp covers. Nil for other documents.
	Container *Container `json:"container,omitempty"`
	// Transmission is how the message came, where the route has legal
	// weight (EGVP's proof of origin); nil for a file verified on its own.
	Transmission *Transmission `json:"transmission,omitempty"`
	// WrittenFormSatisfied says whether the document replaces the written
	// form (schriftformersetzend); see EvaluateWrittenForm.
	WrittenFormSatisfied bool   `json:"writtenFormSatisfied"`
	WrittenFormReason    string `json:"writtenFormReason"`
}

// Validate checks that every enumerated value in r is known and consistent,
// so that a report read from outside (or built by a buggy producer) is not
// rendered with made-up statuses.
func (r *Report) Validate() error {
	for i, s := range r.Signatures {
		if err := s.validate(); err != nil {
			return fmt.Errorf("report: signature %d (%s): %w", i+1, s.ID, err)
		}
	}
	for i, t := range r.Timestamps {
		if err := t.validate(); err != nil {
			return fmt.Errorf("report: timestamp %d: %w", i+1, err)
		}
	}
	return nil
}

func (s *Signature) validate() error {
	switch s.Indication {
	case TotalPassed, TotalFailed, Indeterminate:
	default:
		return fmt.Errorf("indication %q is not a signature indication", s.Indication)
	}
	if !s.SubIndication.Valid() || !Consistent(s.Indication, s.SubIndication) {
		return fmt.Errorf("sub-indication %q does not go with %s", s.SubIndication, s.Indication)
	}
	if !s.Qualification.Valid() {
		return fmt.Errorf("unknown qualification %q", s.Qualification)
	}
	for i, t := range s.Timestamps {
		if err := t.validate(); err != nil {
			return fmt.Errorf("timestamp %d: %w", i+1, err)
		}
	}
	return validateChecks(s.Checks)
}

func (t *Timestamp) validate() error {
	if !t.Indication.Valid() {
		return fmt.Errorf("unknown indication %q", t.Indication)
	}
	if !t.SubIndication.Valid() || !Consistent(t.Indication, t.SubIndication) {
		return fmt.Errorf("sub-indication %q does not go with %s", t.SubIndication, t.Indication)
	}
	if t.Qualification != "" && !t.Qualification.Valid() {
		return fmt.Errorf("unknown timestamp qualification %q", t.Qualification)
	}
	return validateChecks(t.Checks)
}

func validateChecks(cs []Check) error {
	for i, c := range cs {
		if !c.Result.Valid() {
			return fmt.Errorf("check %d (%s): unknown result %q", i+1, c.ID, c.Result)
		}
	}
	return nil
}
