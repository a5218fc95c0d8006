package portal

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
)

// The Security Event Tokens (RFC 8417) of a submission's event log, as
// FIT-Connect names them (docs.fitko.de, "Event-Log").
const (
	eventPrefix        = "https://schema.fitko.de/fit-connect/events/"
	eventAccept        = eventPrefix + "accept-submission"
	eventReject        = eventPrefix + "reject-submission"
	eventSubmit        = eventPrefix + "submit-submission"
	maxEventLogEntries = 1000
)

// setPayload is the payload of a SET in a case's event log.
type setPayload struct {
	Schema string                     `json:"$schema,omitempty"`
	JTI    string                     `json:"jti"`
	Iss    string                     `json:"iss"`
	Iat    int64                      `json:"iat"`
	Sub    string                     `json:"sub"`
	Txn    string                     `json:"txn"`
	Events map[string]json.RawMessage `json:"events"`
}

// authTags are the authenticationTags member of accept-submission and of
// the platform's submit-submission.
type authTags struct {
	Metadata    string            `json:"metadata,omitempty"`
	Data        string            `json:"data,omitempty"`
	Attachments map[string]string `json:"attachments,omitempty"`
}

// decisionJTI is the SET id of the decision on a submission: derived from it,
// so that a re-post after a crash names the same event.
func decisionJTI(submissionID, decision string) string {
	h := sha256.Sum256([]byte("poststelle-portal-decision\x00" + submissionID + "\x00" + decision))
	x := hex.EncodeToString(h[:16])
	// A UUID of version 8 (RFC 9562 § 5.8: custom, here a hash).
	return x[:8] + "-" + x[8:12] + "-8" + x[13:16] + "-" + fmt.Sprintf("%x", 0x8|(h[8]&0x3)) + x[17:20] + "-" + x[20:32]
}

// decisionPayload builds the accept-submission or reject-submission payload
// of a decided submission (package fitconnect's builders: $schema, jti, iss
// the destination, iat, sub, txn, one event).
func decisionPayload(destinationID, submissionID, caseID string, f *gateway.PortalFields, now time.Time) ([]byte, error) {
	c := fitconnect.SETClaims{Issuer: destinationID, Subject: fitconnect.SubjectSubmission(submissionID), CaseID: caseID,
		IssuedAt: now, JTI: decisionJTI(submissionID, f.Decision)}
	var p *fitconnect.SETPayload
	var err error
	switch f.Decision {
	case gateway.PortalAccepted:
		var tags fitconnect.AuthenticationTags
		if t := f.AuthenticationTags; t != nil {
			tags = fitconnect.AuthenticationTags{Metadata: t.Metadata, Data: t.Data, Attachments: t.Attachments}
		}
		p, err = fitconnect.NewAcceptSubmission(c, tags)
	default:
		problems := make([]fitconnect.Problem, 0, len(f.Problems))
		for _, pr := range f.Problems {
			problems = append(problems, fitconnect.Problem{Type: pr.Type, Title: pr.Title, Detail: pr.Detail, Instance: pr.Instance})
		}
		p, err = fitconnect.NewRejectSubmission(c, problems)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// parseSET reads a compact JWS's payload without checking its signature
// (the caller says so where it matters).
func parseSET(compact string) (*setPayload, error) {
	parts := strings.Split(strings.TrimSpace(compact), ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("a SET of %d segments, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("SET payload: %w", err)
	}
	var p setPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("SET payload: %w", err)
	}
	return &p, nil
}
