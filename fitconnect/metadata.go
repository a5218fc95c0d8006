package fitconnect

import (
	"bytes"
	"crypto/sha512"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The metadata ("Metadatensatz") of a submission is JSON, encrypted like the
// data, describing the content (data hash and schema, each attachment's hash,
// purpose and media type) and, optionally, the service, the sender's
// authentication, payment and the reply channel the applicant wants. It is
// validated against the official JSON schema its $schema names; the schemas
// are embedded (schema/) and the validator never fetches a URL.
//
// Embedded versions and provenance (testdata/SOURCES.tsv):
//   - 1.0.0: from the Python SDK fitconnect 0.4.2 (codedust/fitconnect-sdk-python),
//     what that SDK writes and validates against.
//   - 2.1.0: https://schema.fitko.de/fit-connect/metadata/2.1.0/metadata.schema.json
//     as vendored by klarbau/govtech-de; the newest official version we found in
//     public material. It carries replyChannel.fitConnect (processStandards and
//     the applicant's encryptionPublicKey) for replies over FIT-Connect, and
//     drops publicServiceType and authenticationInformation, which the
//     Submission API v2 carries outside the metadata.
//
//go:embed schema/metadata.schema.v1.0.0.json schema/metadata.schema.v2.1.0.json
var schemaFiles embed.FS

// MetadataSchemaPrefix starts every metadata schema URI; the version and
// "/metadata.schema.json" follow.
const MetadataSchemaPrefix = "https://schema.fitko.de/fit-connect/metadata/"

// DefaultMaxMetadataSize caps decrypted metadata when the caller gives no cap.
// Metadata is small; identification reports (authenticationInformation) are the
// largest member and stay far below this.
const DefaultMaxMetadataSize = 4 << 20

// maxProblemDetail caps the detail text we copy from a validator message into
// a problem sent back to the sender.
const maxProblemDetail = 500

// LeikaPrefix starts a service identifier taken from the Leistungskatalog; the
// LeiKa key follows.
const LeikaPrefix = "urn:de:fim:leika:leistung:"

// ErrHashMismatch: content differs from the hash the metadata states.
var ErrHashMismatch = errors.New("fitconnect: hash mismatch")

var schemaURIPattern = regexp.MustCompile(`^https://schema\.fitko\.de/fit-connect/metadata/(\d+)\.(\d+)\.(\d+)/metadata\.schema\.json$`)

// embeddedSchema is one compiled metadata schema version.
type embeddedSchema struct {
	major, minor, patch int
	uri                 string
	schema              *jsonschema.Schema
}

// MetadataValidator parses and validates decrypted metadata against the
// embedded schemas. Build it once (compiling the schemas takes a few
// milliseconds) and share it; it is safe for concurrent use.
type MetadataValidator struct {
	schemas []embeddedSchema // sorted by version
	maxSize int64
}

// MetadataOptions tune NewMetadataValidator.
type MetadataOptions struct {
	// MaxSize caps the metadata in bytes; 0 means DefaultMaxMetadataSize.
	MaxSize int64
}

// refuseLoader is the compiler's only URL loader: the embedded schemas and the
// library's own meta-schemas are all there is, and a $ref to anything else is
// an error rather than a network request.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("fitconnect: schema %s is not embedded; fetching is disabled", url)
}

// NewMetadataValidator compiles the embedded metadata schemas.
func NewMetadataValidator(opts MetadataOptions) (*MetadataValidator, error) {
	c := jsonschema.NewCompiler()
	c.UseLoader(refuseLoader{})
	c.AssertFormat()
	entries, err := schemaFiles.ReadDir("schema")
	if err != nil {
		return nil, fmt.Errorf("fitconnect: reading embedded schemas: %w", err)
	}
	var out []embeddedSchema
	for _, e := range entries {
		b, err := schemaFiles.ReadFile("schema/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("fitconnect: reading embedded schema %s: %w", e.Name(), err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("fitconnect: embedded schema %s: %w", e.Name(), err)
		}
		obj, _ := doc.(map[string]any)
		id, _ := obj["$id"].(string)
		m := schemaURIPattern.FindStringSubmatch(id)
		if m == nil {
			return nil, fmt.Errorf("fitconnect: embedded schema %s has $id %q", e.Name(), id)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("fitconnect: adding schema %s: %w", id, err)
		}
		s := embeddedSchema{uri: id}
		s.major, _ = strconv.Atoi(m[1])
		s.minor, _ = strconv.Atoi(m[2])
		s.patch, _ = strconv.Atoi(m[3])
		out = append(out, s)
	}
	for i := range out {
		sch, err := c.Compile(out[i].uri)
		if err != nil {
			return nil, fmt.Errorf("fitconnect: compiling schema %s: %w", out[i].uri, err)
		}
		out[i].schema = sch
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.major != b.major {
			return a.major < b.major
		}
		if a.minor != b.minor {
			return a.minor < b.minor
		}
		return a.patch < b.patch
	})
	max := opts.MaxSize
	if max <= 0 {
		max = DefaultMaxMetadataSize
	}
	return &MetadataValidator{schemas: out, maxSize: max}, nil
}

// SupportedSchemas lists the $schema URIs of the embedded versions, oldest first.
func (v *MetadataValidator) SupportedSchemas() []string {
	out := make([]string, len(v.schemas))
	for i, s := range v.schemas {
		out[i] = s.uri
	}
	return out
}

// pick chooses the schema for a $schema URI: the embedded version with the same
// major version and at least the requested minor (semver: a newer minor only
// adds), the lowest such. A metadata document without $schema is taken as
// 1.0.0, as the Python SDK does (1.0.0 does not require $schema; 2.x does).
func (v *MetadataValidator) pick(uri string) (*embeddedSchema, error) {
	major, minor := 1, 0
	if uri != "" {
		m := schemaURIPattern.FindStringSubmatch(uri)
		if m == nil {
			if !strings.HasPrefix(uri, MetadataSchemaPrefix) {
				return nil, &ProblemError{Type: ProblemUnsupportedSchema, Detail: "$schema is not a FIT-Connect metadata schema"}
			}
			return nil, &ProblemError{Type: ProblemUnsupportedSchema, Detail: "$schema has no version this destination knows"}
		}
		major, _ = strconv.Atoi(m[1])
		minor, _ = strconv.Atoi(m[2])
	}
	for i := range v.schemas {
		s := &v.schemas[i]
		if s.major == major && s.minor >= minor {
			return s, nil
		}
	}
	return nil, &ProblemError{Type: ProblemUnsupportedSchema,
		Detail: fmt.Sprintf("metadata schema %d.%d is not supported (supported: %s)", major, minor, strings.Join(v.SupportedSchemas(), ", "))}
}

// Metadata is the typed view of a validated metadata document.
type Metadata struct {
	// Raw is the decrypted document as received.
	Raw json.RawMessage
	// SchemaURI is the $schema the document names ("" when absent).
	SchemaURI string
	// ValidatedWith is the $id of the embedded schema it was validated against.
	ValidatedWith string
	// ServiceType is the 1.x publicServiceType (nil in 2.x and when absent).
	ServiceType *ServiceType
	// Data describes the data (Fachdaten); nil when the submission has none.
	Data *DataDescription
	// Attachments in the order the metadata lists them.
	Attachments []AttachmentDescription
	// ReplyChannel the applicant wants; nil means by post.
	ReplyChannel *ReplyChannel
	// AuthenticationInformation are the 1.x identification reports.
	AuthenticationInformation []AuthenticationInformation
	// AdditionalReferenceInfo, when present.
	AdditionalReferenceInfo *AdditionalReferenceInfo
	// PaymentInformation is kept as JSON; nothing here interprets it.
	PaymentInformation json.RawMessage
}

// ServiceType is a Verwaltungsleistung: its name and identifier (a URN, for a
// LeiKa service urn:de:fim:leika:leistung:<key>).
type ServiceType struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Identifier  string `json:"identifier"`
}

// LeikaKey is the LeiKa key of the identifier, or "" when it is not a LeiKa URN.
func (s ServiceType) LeikaKey() string { return LeikaKey(s.Identifier) }

// LeikaKey returns the key part of a LeiKa service identifier
// (urn:de:fim:leika:leistung:99018115001001 → 99018115001001), or "" when the
// identifier is not one.
func LeikaKey(identifier string) string {
	key, ok := strings.CutPrefix(identifier, LeikaPrefix)
	if !ok || key == "" {
		return ""
	}
	return key
}

// Hash is a content hash as the metadata states it.
type Hash struct {
	Type    string `json:"type"`    // "sha512", the only one allowed
	Content string `json:"content"` // lower-case hex
}

// SubmissionSchema references the schema of the data.
type SubmissionSchema struct {
	SchemaURI string `json:"schemaUri"`
	MimeType  string `json:"mimeType"`
}

// DataDescription is contentStructure.data.
type DataDescription struct {
	Hash             Hash             `json:"hash"`
	SubmissionSchema SubmissionSchema `json:"submissionSchema"`
}

// AttachmentDescription is one entry of contentStructure.attachments.
type AttachmentDescription struct {
	AttachmentID string `json:"attachmentId"`
	Hash         Hash   `json:"hash"`
	Purpose      string `json:"purpose"` // form, attachment, report (2.x also data)
	MimeType     string `json:"mimeType"`
	Filename     string `json:"filename,omitempty"`
	Description  string `json:"description,omitempty"`
}

// Reply channel kinds (the member names of replyChannel).
const (
	ReplyChannelEMail      = "eMail"
	ReplyChannelDeMail     = "deMail"
	ReplyChannelFink       = "fink"
	ReplyChannelElster     = "elster"
	ReplyChannelFitConnect = "fitConnect"
	ReplyChannelIDBundDe   = "idBundDeMailbox"
)

// ReplyChannel is the applicant's chosen way back (the schema allows exactly one).
type ReplyChannel struct {
	// Kind is the member present: eMail, deMail, fink, elster, fitConnect or
	// idBundDeMailbox.
	Kind       string
	EMail      *EMailReplyChannel
	DeMail     *EMailReplyChannel
	Fink       *FinkReplyChannel
	Elster     *ElsterReplyChannel
	FitConnect *FitConnectReplyChannel
	// IDBundDeMailbox is the DeutschlandID mailbox handle (2.x).
	IDBundDeMailbox string
}

// EMailReplyChannel is an e-mail or De-Mail address (with an optional PGP key for e-mail).
type EMailReplyChannel struct {
	Address      string `json:"address"`
	PGPPublicKey string `json:"pgpPublicKey,omitempty"`
}

// FinkReplyChannel is a FINK postbox (deprecated in 2.x).
type FinkReplyChannel struct {
	PostfachRef string `json:"finkPostfachRef"`
	Host        string `json:"host,omitempty"`
}

// ElsterReplyChannel is an ELSTER account.
type ElsterReplyChannel struct {
	AccountID         string `json:"accountId"`
	LieferTicket      string `json:"lieferTicket,omitempty"`
	Geschaeftszeichen string `json:"geschaeftszeichen,omitempty"`
}

// FitConnectReplyChannel asks for the answer over FIT-Connect (2.x): the process
// standards the sender understands and the public key to encrypt the reply to.
type FitConnectReplyChannel struct {
	ProcessStandards    []string        `json:"processStandards"`
	EncryptionPublicKey json.RawMessage `json:"encryptionPublicKey"`
}

// EncryptionKey parses the reply key (checked like any FIT-Connect encryption
// key: RSA, RSA-OAEP-256, wrapKey).
func (f *FitConnectReplyChannel) EncryptionKey() (*PublicKey, error) {
	return ParseEncryptionKey(f.EncryptionPublicKey)
}

// AuthenticationInformation is one identification report (1.x).
type AuthenticationInformation struct {
	Type    string `json:"type"`
	Version string `json:"version"`
	Content string `json:"content"`
}

// AdditionalReferenceInfo is additionalReferenceInfo.
type AdditionalReferenceInfo struct {
	SenderReference string `json:"senderReference,omitempty"`
	ApplicationDate string `json:"applicationDate,omitempty"`
}

// wireMetadata is the decoding shape; the schema has been checked before.
type wireMetadata struct {
	Schema           string       `json:"$schema"`
	PublicService    *ServiceType `json:"publicServiceType"`
	ContentStructure struct {
		Data        *DataDescription        `json:"data"`
		Attachments []AttachmentDescription `json:"attachments"`
	} `json:"contentStructure"`
	ReplyChannel map[string]json.RawMessage  `json:"replyChannel"`
	AuthInfo     []AuthenticationInformation `json:"authenticationInformation"`
	AdditionalRI *AdditionalReferenceInfo    `json:"additionalReferenceInfo"`
	Payment      json.RawMessage             `json:"paymentInformation"`
}

// Parse checks decrypted metadata: size, well-formed JSON (else
// syntax-violation), a supported $schema (else unsupported-schema), validity
// against that schema (else schema-violation), and returns the typed fields.
// Errors are *ProblemError, ready for ProblemFor with InstanceMetadata.
func (v *MetadataValidator) Parse(raw []byte) (*Metadata, error) {
	if int64(len(raw)) > v.maxSize {
		return nil, &ProblemError{Type: ProblemSyntaxViolation, Detail: fmt.Sprintf("metadata larger than %d bytes", v.maxSize)}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, &ProblemError{Type: ProblemSyntaxViolation, Detail: "metadata is not well-formed JSON", Err: err}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, &ProblemError{Type: ProblemSyntaxViolation, Detail: "metadata is not a JSON object"}
	}
	uri := ""
	if s, present := obj["$schema"]; present {
		if uri, ok = s.(string); !ok {
			return nil, &ProblemError{Type: ProblemMissingSchema, Detail: "$schema is not a string"}
		}
	}
	sch, err := v.pick(uri)
	if err != nil {
		return nil, err
	}
	if err := sch.schema.Validate(doc); err != nil {
		return nil, &ProblemError{Type: ProblemSchemaViolation, Detail: validationDetail(err)}
	}
	var w wireMetadata
	if err := json.Unmarshal(raw, &w); err != nil {
		// The schema accepted it, so this is a shape the types above do not
		// foresee: a bug of ours, reported as a schema problem all the same.
		return nil, &ProblemError{Type: ProblemSchemaViolation, Detail: "metadata does not fit the expected structure", Err: err}
	}
	md := &Metadata{
		Raw:                       append(json.RawMessage(nil), raw...),
		SchemaURI:                 uri,
		ValidatedWith:             sch.uri,
		ServiceType:               w.PublicService,
		Data:                      w.ContentStructure.Data,
		Attachments:               w.ContentStructure.Attachments,
		AuthenticationInformation: w.AuthInfo,
		AdditionalReferenceInfo:   w.AdditionalRI,
		PaymentInformation:        w.Payment,
	}
	if len(w.ReplyChannel) > 0 {
		rc, err := decodeReplyChannel(w.ReplyChannel)
		if err != nil {
			return nil, err
		}
		md.ReplyChannel = rc
	}
	return md, nil
}

func decodeReplyChannel(m map[string]json.RawMessage) (*ReplyChannel, error) {
	if len(m) != 1 {
		return nil, &ProblemError{Type: ProblemSchemaViolation, Detail: "replyChannel must name exactly one channel"}
	}
	rc := &ReplyChannel{}
	var err error
	for kind, raw := range m {
		rc.Kind = kind
		switch kind {
		case ReplyChannelEMail:
			rc.EMail = &EMailReplyChannel{}
			err = json.Unmarshal(raw, rc.EMail)
		case ReplyChannelDeMail:
			rc.DeMail = &EMailReplyChannel{}
			err = json.Unmarshal(raw, rc.DeMail)
		case ReplyChannelFink:
			rc.Fink = &FinkReplyChannel{}
			err = json.Unmarshal(raw, rc.Fink)
		case ReplyChannelElster:
			rc.Elster = &ElsterReplyChannel{}
			err = json.Unmarshal(raw, rc.Elster)
		case ReplyChannelFitConnect:
			rc.FitConnect = &FitConnectReplyChannel{}
			err = json.Unmarshal(raw, rc.FitConnect)
		case ReplyChannelIDBundDe:
			var box struct {
				MailboxUUID string `json:"mailboxUuid"`
			}
			err = json.Unmarshal(raw, &box)
			rc.IDBundDeMailbox = box.MailboxUUID
		default:
			return nil, &ProblemError{Type: ProblemUnsupportedReplyChannel, Detail: "unknown reply channel " + strconv.Quote(truncate(kind, 64))}
		}
	}
	if err != nil {
		return nil, &ProblemError{Type: ProblemSchemaViolation, Detail: "replyChannel does not fit the expected structure", Err: err}
	}
	return rc, nil
}

// validationDetail shortens a validator message to what the sender needs:
// where and what, bounded.
func validationDetail(err error) string {
	var ve *jsonschema.ValidationError
	msg := err.Error()
	if errors.As(err, &ve) {
		// The basic output names the first failing location and keyword.
		out := ve.BasicOutput()
		for _, u := range out.Errors {
			if u.Error == nil {
				continue
			}
			msg = u.InstanceLocation + ": " + u.Error.String()
			break
		}
	}
	return truncate(msg, maxProblemDetail)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Attachment finds an attachment's description by id.
func (m *Metadata) Attachment(id string) (*AttachmentDescription, bool) {
	for i := range m.Attachments {
		if m.Attachments[i].AttachmentID == id {
			return &m.Attachments[i], true
		}
	}
	return nil, false
}

// CheckAttachments compares the metadata's attachment ids with those the
// submission announced (GET /submissions/{id} attachments): the same set, each
// once. Otherwise a *ProblemError attachments-mismatch.
func (m *Metadata) CheckAttachments(announced []string) error {
	seen := make(map[string]int, len(m.Attachments))
	for _, a := range m.Attachments {
		seen[a.AttachmentID]++
	}
	for id, n := range seen {
		if n > 1 {
			return &ProblemError{Type: ProblemAttachmentsMismatch, Detail: fmt.Sprintf("attachment %s is listed %d times in the metadata", truncate(id, 64), n)}
		}
	}
	ann := make(map[string]bool, len(announced))
	for _, id := range announced {
		if ann[id] {
			return &ProblemError{Type: ProblemAttachmentsMismatch, Detail: fmt.Sprintf("attachment %s is announced twice", truncate(id, 64))}
		}
		ann[id] = true
		if seen[id] == 0 {
			return &ProblemError{Type: ProblemAttachmentsMismatch, Detail: fmt.Sprintf("attachment %s is not described in the metadata", truncate(id, 64))}
		}
	}
	for id := range seen {
		if !ann[id] {
			return &ProblemError{Type: ProblemAttachmentsMismatch, Detail: fmt.Sprintf("the metadata describes attachment %s the submission does not have", truncate(id, 64))}
		}
	}
	return nil
}

// SHA512Hex is the lower-case hex SHA-512 of b, the form metadata states hashes in.
func SHA512Hex(b []byte) string {
	sum := sha512.Sum512(b)
	return hex.EncodeToString(sum[:])
}

// VerifyHash checks content against a metadata hash: type sha512 and the
// digest equal (compared in constant time, on the decoded bytes so that the
// case of the hex digits does not matter). A mismatch wraps ErrHashMismatch.
func VerifyHash(h Hash, content []byte) error {
	if h.Type != "sha512" {
		return fmt.Errorf("%w: hash type %q, only sha512 is allowed", ErrHashMismatch, truncate(h.Type, 32))
	}
	want, err := hex.DecodeString(h.Content)
	if err != nil || len(want) != sha512.Size {
		return fmt.Errorf("%w: stated hash is not 128 hex digits", ErrHashMismatch)
	}
	got := sha512.Sum512(content)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return fmt.Errorf("%w: SHA-512 of the content differs from the metadata", ErrHashMismatch)
	}
	return nil
}
