package portal

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
)

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
func decisionPayload(destinationID, submissionID, caseID string, f *gateway.PortalFields, now time.Time) (*fitconnect.SETPayload, error) {
	c := fitconnect.SETClaims{Issuer: destinationID, Subject: fitconnect.SubjectSubmission(submissionID), CaseID: caseID,
		IssuedAt: now, JTI: decisionJTI(submissionID, f.Decision)}
	if f.Decision == gateway.PortalAccepted {
		var tags fitconnect.AuthenticationTags
		if t := f.AuthenticationTags; t != nil {
			tags = fitconnect.AuthenticationTags{Metadata: t.Metadata, Data: t.Data, Attachments: t.Attachments}
		}
		return fitconnect.NewAcceptSubmission(c, tags)
	}
	problems := make([]fitconnect.Problem, 0, len(f.Problems))
	for _, pr := range f.Problems {
		problems = append(problems, fitconnect.Problem{Type: pr.Type, Title: pr.Title, Detail: pr.Detail, Instance: pr.Instance})
	}
	return fitconnect.NewRejectSubmission(c, problems)
}
