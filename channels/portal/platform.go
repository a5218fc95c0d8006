package portal

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/poststelle/poststelle/fitconnect"
)

// platform is the Submission API v1 as the collector uses it (the
// destination's side: docs.fitko.de, "Submission API"). The production
// implementation is an HTTP client with OAuth2 client credentials; the tests
// use a fake. Bodies stream into a writer so that the collector caps and
// stores them as they arrive.
type platform interface {
	// ListSubmissions returns one page of the submissions waiting for the
	// destination: GET /submissions?destinationId=&offset=&limit=.
	ListSubmissions(ctx context.Context, destinationID string, offset, limit int) (submissionPage, error)
	// GetSubmission writes the submission's JSON, exactly as the platform
	// answered GET /submissions/{submissionId}, to w.
	GetSubmission(ctx context.Context, submissionID string, w io.Writer) error
	// GetAttachment writes the attachment's compact JWE, as the platform
	// answered GET /submissions/{submissionId}/attachments/{attachmentId}
	// (application/jose), to w.
	GetAttachment(ctx context.Context, submissionID, attachmentID string, w io.Writer) error
	// PostEvent posts a signed SET to the case's event log:
	// POST /cases/{caseId}/events, Content-Type application/jose.
	PostEvent(ctx context.Context, caseID, set string) error
	// EventLog returns the case's event log, the SETs in their compact form:
	// GET /cases/{caseId}/events → {"eventLog": [...]}.
	EventLog(ctx context.Context, caseID string) ([]string, error)
	// PlatformKeys fetches the platform's signature keys (its JWKS), which
	// the SETs it writes (submit-submission) are verified with.
	PlatformKeys(ctx context.Context) (*fitconnect.KeySet, error)
	// RefreshToken fetches a new access token; the collector calls it when
	// the platform refused the current one (errUnauthorized) and repeats the
	// call once.
	RefreshToken(ctx context.Context) error
}

// Errors of a platform the collector tells apart.
var (
	// errNotFound: the submission, attachment or case is not (or no longer)
	// there (404).
	errNotFound = errors.New("portal: not found at the platform")
	// errUnauthorized: the access token was refused (401, an expired token).
	errUnauthorized = errors.New("portal: access token refused by the platform")
)

// submissionPage is the answer of GET /submissions.
type submissionPage struct {
	Count       int             `json:"count"`
	Offset      int             `json:"offset"`
	TotalCount  int             `json:"totalCount"`
	Submissions []submissionRef `json:"submissions"`
}

// submissionRef is one entry of the list.
type submissionRef struct {
	DestinationID string `json:"destinationId"`
	SubmissionID  string `json:"submissionId"`
	CaseID        string `json:"caseId"`
}

// submission is the answer of GET /submissions/{submissionId}, the members
// the collector reads; the stored raw envelope keeps the whole answer.
type submission struct {
	DestinationID     string       `json:"destinationId"`
	SubmissionID      string       `json:"submissionId"`
	CaseID            string       `json:"caseId"`
	Attachments       []string     `json:"attachments"`
	EncryptedMetadata string       `json:"encryptedMetadata"`
	EncryptedData     string       `json:"encryptedData"`
	ServiceType       *serviceType `json:"serviceType"`
	// PublicService is the Submission API v2 name of serviceType.
	PublicService *serviceType    `json:"publicService"`
	Callback      json.RawMessage `json:"callback,omitempty"`
}

type serviceType struct {
	Name       string `json:"name"`
	Identifier string `json:"identifier"`
}

// keys are the destination's private keys: the decryption key (a JWK file or
// a PKCS#11 token) and the key the SETs are signed with.
type keys interface {
	// Decrypter unwraps content encryption keys (RSA-OAEP-256).
	Decrypter() cryptoDecrypter
	// SignSET signs a SET payload as a compact JWS (PS512, typ
	// secevent+jwt, kid of the signing key).
	SignSET(payload []byte) (string, error)
}
