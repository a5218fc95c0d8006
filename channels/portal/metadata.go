package portal

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
)

// The problem types of reject-submission, as package fitconnect names them.
const (
	problemEncryptionIssue     = fitconnect.ProblemEncryptionIssue
	problemSyntaxViolation     = fitconnect.ProblemSyntaxViolation
	problemMissingSchema       = fitconnect.ProblemMissingSchema
	problemSchemaViolation     = fitconnect.ProblemSchemaViolation
	problemHashMismatch        = fitconnect.ProblemHashMismatch
	problemAttachmentsMismatch = fitconnect.ProblemAttachmentsMismatch
	problemMissingData         = fitconnect.ProblemMissingData
	problemIncorrectTag        = fitconnect.ProblemIncorrectAuthenticationTag
)

// newProblem is fitconnect.NewProblem (type, our title, detail, instance) as
// the channel records it.
func newProblem(typ, instance, detail string) gateway.PortalProblem {
	p := fitconnect.NewProblem(typ, instance, detail)
	return gateway.PortalProblem{Type: p.Type, Title: p.Title, Detail: p.Detail, Instance: p.Instance}
}

// metadataSchemaPrefix starts the $schema of every FIT-Connect metadata
// schema version ("https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json").
const metadataSchemaPrefix = fitconnect.MetadataSchemaPrefix

var metadataSchemaURI = regexp.MustCompile(`^https://schema\.fitko\.de/fit-connect/metadata/(\d+)\.(\d+)\.(\d+)/metadata\.schema\.json$`)

// metadata is the decrypted metadata's members the channel reads
// (metadata schema 1.0.0 and 2.x).
type metadata struct {
	Schema            string `json:"$schema"`
	PublicServiceType *struct {
		Name       string `json:"name"`
		Identifier string `json:"identifier"`
	} `json:"publicServiceType"`
	ContentStructure struct {
		Data *struct {
			Hash             *hashSpec `json:"hash"`
			SubmissionSchema *struct {
				SchemaURI string `json:"schemaUri"`
				MimeType  string `json:"mimeType"`
			} `json:"submissionSchema"`
		} `json:"data"`
		Attachments []attachmentMeta `json:"attachments"`
	} `json:"contentStructure"`
	ReplyChannel map[string]json.RawMessage `json:"replyChannel"`
}

type hashSpec struct {
	Type    string `json:"type"`
	Content string `json:"content"`
}

type attachmentMeta struct {
	AttachmentID string    `json:"attachmentId"`
	Hash         *hashSpec `json:"hash"`
	Purpose      string    `json:"purpose"`
	Filename     string    `json:"filename"`
	MimeType     string    `json:"mimeType"`
	Description  string    `json:"description"`
}

var (
	hexSHA512  = regexp.MustCompile(`^[a-f0-9]{128}$`)
	mediaTypeR = regexp.MustCompile(`^[-\w.]+/[-\w.+]+$`)
)

// checkStructure checks what the collector relies on whatever the schema
// says: hashes it can compare, one entry per attachment id. A schema that
// validated keeps these; without a validator they are the only check.
func (m *metadata) checkStructure() []gateway.PortalProblem {
	var out []gateway.PortalProblem
	bad := func(detail string) {
		out = append(out, newProblem(problemSchemaViolation, "metadata", detail))
	}
	if d := m.ContentStructure.Data; d != nil {
		if d.Hash == nil || d.Hash.Type != "sha512" || !hexSHA512.MatchString(d.Hash.Content) {
			bad("contentStructure.data.hash: not a sha512 hash in lowercase hex")
		}
	}
	seen := map[string]bool{}
	for i, a := range m.ContentStructure.Attachments {
		switch {
		case a.AttachmentID == "":
			bad(fmt.Sprintf("contentStructure.attachments[%d]: no attachmentId", i))
		case seen[a.AttachmentID]:
			bad(fmt.Sprintf("contentStructure.attachments[%d]: attachmentId %s appears twice", i, a.AttachmentID))
		case a.Hash == nil || a.Hash.Type != "sha512" || !hexSHA512.MatchString(a.Hash.Content):
			bad(fmt.Sprintf("contentStructure.attachments[%d]: not a sha512 hash in lowercase hex", i))
		case a.MimeType != "" && !mediaTypeR.MatchString(a.MimeType):
			bad(fmt.Sprintf("contentStructure.attachments[%d]: mimeType %.60q", i, a.MimeType))
		}
		seen[a.AttachmentID] = true
	}
	return out
}

// replyKind is the kind of reply channel the metadata names ("" for none).
func (m *metadata) replyKind() string {
	for _, k := range []string{"fitConnect", "eMail", "deMail", "fink", "elster"} {
		if _, ok := m.ReplyChannel[k]; ok {
			return k
		}
	}
	return ""
}

// attachment is the metadata's entry of id, nil when it has none.
func (m *metadata) attachment(id string) *attachmentMeta {
	for i := range m.ContentStructure.Attachments {
		if strings.EqualFold(m.ContentStructure.Attachments[i].AttachmentID, id) {
			return &m.ContentStructure.Attachments[i]
		}
	}
	return nil
}
