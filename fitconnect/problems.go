package fitconnect

import (
	"errors"
	"strings"
)

// ProblemTypePrefix starts every problem type URI a destination writes into a
// reject-submission event (FIT-Connect docs, "Einreichung überprüfen"). The
// documented example is .../events/problems/an-example; the names below are the
// ones the validation list of that page uses, as far as we could read it. The
// docs require that type and instance are taken over exactly and that title
// should be; detail is free text.
const ProblemTypePrefix = "https://schema.fitko.de/fit-connect/events/problems/"

// SubmissionAPIProblemPrefix starts the type of an RFC 7807 problem detail the
// Submission API itself answers with (the Python SDK compares against
// PROBLEM_PREFIX + "submission-not-found", "destination-not-found", ...).
const SubmissionAPIProblemPrefix = "https://schema.fitko.de/fit-connect/submission-api/problems/"

// The problem types a destination reports when it rejects a submission. The
// names follow the checks of the FIT-Connect verification page; where our
// reading of the name is uncertain the comment says so (docs/portal.md lists
// them with their provenance).
const (
	// ProblemEncryptionIssue: a JWE could not be decrypted, or used an
	// algorithm, encoding or compression FIT-Connect does not allow.
	ProblemEncryptionIssue = ProblemTypePrefix + "encryption-issue"
	// ProblemMissingAuthenticationTags: the submit-submission event of the
	// platform lacks the authentication tags to compare against.
	ProblemMissingAuthenticationTags = ProblemTypePrefix + "missing-authentication-tags"
	// ProblemIncorrectAuthenticationTag: a JWE's tag differs from the one the
	// platform recorded in submit-submission (the ciphertext was exchanged).
	ProblemIncorrectAuthenticationTag = ProblemTypePrefix + "incorrect-authentication-tag"
	// ProblemSyntaxViolation: decrypted metadata (or JSON/XML data) is not
	// well-formed.
	ProblemSyntaxViolation = ProblemTypePrefix + "syntax-violation"
	// ProblemMissingSchema: the metadata names no schema we can pick.
	ProblemMissingSchema = ProblemTypePrefix + "missing-schema"
	// ProblemUnsupportedSchema: the metadata's $schema is a version this
	// destination does not support.
	ProblemUnsupportedSchema = ProblemTypePrefix + "unsupported-schema"
	// ProblemSchemaViolation: the metadata does not validate against its schema.
	ProblemSchemaViolation = ProblemTypePrefix + "schema-violation"
	// ProblemHashMismatch: the SHA-512 of decrypted data or an attachment
	// differs from the metadata's hash.
	ProblemHashMismatch = ProblemTypePrefix + "hash-mismatch"
	// ProblemAttachmentsMismatch: the attachments the metadata lists differ from
	// those the submission announced.
	ProblemAttachmentsMismatch = ProblemTypePrefix + "attachments-mismatch"
	// ProblemMissingData: the metadata describes data but the submission has none.
	ProblemMissingData = ProblemTypePrefix + "missing-data"
	// ProblemServiceMismatch: the service type of the submission differs from
	// the one in the metadata (1.x publicServiceType).
	ProblemServiceMismatch = ProblemTypePrefix + "service-mismatch"
	// ProblemUnsupportedReplyChannel: the requested reply channel is not offered.
	ProblemUnsupportedReplyChannel = ProblemTypePrefix + "unsupported-reply-channel"
	// ProblemInvalidEventLog: the case's event log fails verification (a SET
	// with a bad signature, or no submit-submission).
	ProblemInvalidEventLog = ProblemTypePrefix + "invalid-event-log"
	// ProblemTechnicalError: the destination could not check the submission
	// for a reason of its own.
	ProblemTechnicalError = ProblemTypePrefix + "technical-error"
)

// Instances of a problem: which part of the submission it concerns.
const (
	InstanceMetadata   = "metadata"
	InstanceData       = "data"
	InstanceSubmission = "submission"
)

// InstanceAttachment names one attachment as a problem instance
// ("attachment:<attachmentId>").
func InstanceAttachment(attachmentID string) string { return "attachment:" + attachmentID }

// Problem is one entry of a reject-submission event: RFC 7807 fields as
// FIT-Connect uses them.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// problemTitles are the (German) titles we send; the docs say titles SHOULD
// follow the documented ones, these are our wording of them.
var problemTitles = map[string]string{
	ProblemEncryptionIssue:            "Entschlüsselungsfehler",
	ProblemMissingAuthenticationTags:  "Authentication-Tags fehlen",
	ProblemIncorrectAuthenticationTag: "Authentication-Tag ungültig",
	ProblemSyntaxViolation:            "Syntax-Fehler",
	ProblemMissingSchema:              "Schemareferenz fehlt",
	ProblemUnsupportedSchema:          "Schema nicht unterstützt",
	ProblemSchemaViolation:            "Schema-Fehler",
	ProblemHashMismatch:               "Prüfsumme stimmt nicht",
	ProblemAttachmentsMismatch:        "Anlagen stimmen nicht überein",
	ProblemMissingData:                "Fachdaten fehlen",
	ProblemServiceMismatch:            "Verwaltungsleistung stimmt nicht überein",
	ProblemUnsupportedReplyChannel:    "Rückkanal nicht unterstützt",
	ProblemInvalidEventLog:            "Event-Log ungültig",
	ProblemTechnicalError:             "Technischer Fehler",
}

// NewProblem builds a problem of one of the types above with our title.
func NewProblem(typ, instance, detail string) Problem {
	title := problemTitles[typ]
	if title == "" {
		title = strings.TrimPrefix(typ, ProblemTypePrefix)
	}
	return Problem{Type: typ, Title: title, Detail: detail, Instance: instance}
}

// ProblemFor maps an error of this package to the problem a destination reports
// for the given instance: JWE errors to encryption-issue, metadata errors to
// syntax/schema problems, hash errors to hash-mismatch. Anything else is a
// technical error (the destination's own failure, not the sender's).
func ProblemFor(err error, instance string) Problem {
	var pe *ProblemError
	if errors.As(err, &pe) {
		return NewProblem(pe.Type, instance, pe.Detail)
	}
	switch {
	case errors.Is(err, ErrUnsupportedJWE), errors.Is(err, ErrMalformedJWE),
		errors.Is(err, ErrDecryption), errors.Is(err, ErrJWETooLarge), errors.Is(err, ErrPlaintextTooLarge):
		return NewProblem(ProblemEncryptionIssue, instance, err.Error())
	case errors.Is(err, ErrHashMismatch):
		return NewProblem(ProblemHashMismatch, instance, err.Error())
	}
	return NewProblem(ProblemTechnicalError, instance, "")
}

// ProblemError is an error that already knows its problem type (metadata
// parsing returns these). Detail is safe to send to the sender.
type ProblemError struct {
	Type   string
	Detail string
	Err    error
}

func (e *ProblemError) Error() string {
	msg := strings.TrimPrefix(e.Type, ProblemTypePrefix) + ": " + e.Detail
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ProblemError) Unwrap() error { return e.Err }
