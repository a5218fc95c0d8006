package fitconnect

import (
	"context"
	"errors"
	"fmt"
)

// Receiver fetches one submission and performs every check the FIT-Connect
// verification page asks of a destination before it may confirm: decrypt the
// metadata and validate it against its schema, decrypt the data and every
// attachment and compare their SHA-512 with the metadata, compare the
// attachments announced with those described, compare the service type, and
// compare each JWE's authentication tag with the one the platform recorded in
// its submit-submission event. It decides nothing durable: the caller records
// what it got and only then posts the accept-submission or reject-submission
// event Received.Event builds.
type Receiver struct {
	Client    *Client
	Decrypter *Decrypter
	Metadata  *MetadataValidator
	// PlatformKeys verify the platform's submit-submission event. Nil skips
	// the comparison of authentication tags (Checks then lacks
	// CheckAuthenticationTags); a destination in production sets them
	// (Client.PlatformKeys).
	PlatformKeys *KeySet
	// Decrypt tunes decryption (size cap, compression).
	Decrypt DecryptOptions
}

// Names of the checks Received.Checks lists.
const (
	CheckMetadataDecrypted  = "metadata-decrypted"
	CheckMetadataSchema     = "metadata-schema"
	CheckDataDecrypted      = "data-decrypted"
	CheckDataHash           = "data-hash"
	CheckAttachmentsListed  = "attachments-listed"
	CheckAttachmentHash     = "attachment-hash" // one per attachment, ":<id>" appended
	CheckServiceType        = "service-type"
	CheckAuthenticationTags = "authentication-tags"
)

// ReceivedAttachment is one decrypted attachment.
type ReceivedAttachment struct {
	ID          string
	Content     []byte
	Description AttachmentDescription
}

// Received is the outcome of Receive. Problems empty means every check
// passed and the submission may be accepted (after it is recorded).
type Received struct {
	Submission  *Submission
	Metadata    *Metadata // nil when the metadata could not be read
	Data        []byte    // nil when there is none or it could not be read
	Attachments []ReceivedAttachment
	// Tags are the authentication tags of the JWEs as fetched: what
	// accept-submission lists.
	Tags AuthenticationTags
	// Checks names what was verified and passed, in order.
	Checks []string
	// Problems found; a reject-submission carries them.
	Problems []Problem
}

// Service is the service type: the submission's own (v1 serviceType), else
// the metadata's (1.x publicServiceType).
func (r *Received) Service() *ServiceType {
	if s := r.Submission.Service(); s != nil {
		return s
	}
	if r.Metadata != nil {
		return r.Metadata.ServiceType
	}
	return nil
}

// Event builds the SET that answers the submission: accept-submission with
// the tags, or reject-submission with the problems. issuer is the
// destination id.
func (r *Received) Event(issuer string, c SETClaims) (*SETPayload, error) {
	c.Issuer = issuer
	c.Subject = SubjectSubmission(r.Submission.SubmissionID)
	c.CaseID = r.Submission.CaseID
	if len(r.Problems) > 0 {
		return NewRejectSubmission(c, r.Problems)
	}
	return NewAcceptSubmission(c, r.Tags)
}

// Receive fetches and checks one submission. An error means the check could
// not be done (the platform, the network): decide nothing and try again later;
// ErrGone means there is nothing left to decide. A submission larger than the
// client's MaxSubmissionSize is ErrResponseTooLarge: retrying will not help, and
// the caller rejects it with the case id from the listing (SubmissionRef).
// Faults of the sender come back as Received.Problems.
func (rc *Receiver) Receive(ctx context.Context, submissionID string) (*Received, error) {
	if rc.Client == nil || rc.Decrypter == nil || rc.Metadata == nil {
		return nil, errors.New("fitconnect: receiver needs a client, a decrypter and a metadata validator")
	}
	sub, err := rc.Client.GetSubmission(ctx, submissionID)
	if err != nil {
		return nil, err
	}
	r := &Received{Submission: sub}
	problem := func(typ, instance, detail string) { r.Problems = append(r.Problems, NewProblem(typ, instance, detail)) }

	// Metadata first: without it nothing else can be judged.
	md, err := Decrypt([]byte(sub.EncryptedMetadata), rc.Decrypter, rc.Decrypt)
	if err != nil {
		r.Problems = append(r.Problems, ProblemFor(err, InstanceMetadata))
		return r, nil
	}
	r.Tags.Metadata = md.AuthenticationTag
	r.Checks = append(r.Checks, CheckMetadataDecrypted)
	meta, err := rc.Metadata.Parse(md.Plaintext)
	if err != nil {
		r.Problems = append(r.Problems, ProblemFor(err, InstanceMetadata))
		return r, nil
	}
	r.Metadata = meta
	r.Checks = append(r.Checks, CheckMetadataSchema)

	// Data.
	switch {
	case sub.EncryptedData == "" && meta.Data != nil:
		problem(ProblemMissingData, InstanceData, "the metadata describes data, the submission has none")
	case sub.EncryptedData != "":
		d, err := Decrypt([]byte(sub.EncryptedData), rc.Decrypter, rc.Decrypt)
		if err != nil {
			r.Problems = append(r.Problems, ProblemFor(err, InstanceData))
			break
		}
		r.Tags.Data = d.AuthenticationTag
		r.Checks = append(r.Checks, CheckDataDecrypted)
		if meta.Data == nil {
			problem(ProblemSchemaViolation, InstanceMetadata, "the submission has data the metadata does not describe")
			break
		}
		if err := VerifyHash(meta.Data.Hash, d.Plaintext); err != nil {
			r.Problems = append(r.Problems, ProblemFor(err, InstanceData))
			break
		}
		r.Data = d.Plaintext
		r.Checks = append(r.Checks, CheckDataHash)
	}

	// Service type: the submission's and the metadata's must agree.
	if s, m := sub.Service(), meta.ServiceType; s != nil && m != nil {
		if s.Identifier != m.Identifier {
			problem(ProblemServiceMismatch, InstanceMetadata, "the service type of the submission differs from the metadata's")
		} else {
			r.Checks = append(r.Checks, CheckServiceType)
		}
	}

	// Attachments.
	if err := meta.CheckAttachments(sub.Attachments); err != nil {
		r.Problems = append(r.Problems, ProblemFor(err, InstanceSubmission))
	} else {
		r.Checks = append(r.Checks, CheckAttachmentsListed)
	}
	r.Tags.Attachments = map[string]string{}
	for _, id := range sub.Attachments {
		raw, err := rc.Client.GetAttachment(ctx, submissionID, id)
		if err != nil {
			if errors.Is(err, ErrResponseTooLarge) {
				problem(ProblemTechnicalError, InstanceAttachment(id), "attachment larger than this destination accepts")
				continue
			}
			return nil, err
		}
		a, err := Decrypt(raw, rc.Decrypter, rc.Decrypt)
		if err != nil {
			r.Problems = append(r.Problems, ProblemFor(err, InstanceAttachment(id)))
			continue
		}
		r.Tags.Attachments[id] = a.AuthenticationTag
		desc, ok := meta.Attachment(id)
		if !ok {
			continue // reported as attachments-mismatch above
		}
		if err := VerifyHash(desc.Hash, a.Plaintext); err != nil {
			r.Problems = append(r.Problems, ProblemFor(err, InstanceAttachment(id)))
			continue
		}
		r.Attachments = append(r.Attachments, ReceivedAttachment{ID: id, Content: a.Plaintext, Description: *desc})
		r.Checks = append(r.Checks, CheckAttachmentHash+":"+id)
	}
	if len(r.Tags.Attachments) == 0 {
		r.Tags.Attachments = nil
	}

	if rc.PlatformKeys != nil {
		if err := rc.compareTags(ctx, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// compareTags finds the platform's submit-submission for the submission in the
// case's event log and compares its tags with those of the JWEs we read.
func (rc *Receiver) compareTags(ctx context.Context, r *Received) error {
	sub := r.Submission
	log, err := rc.Client.GetEventLog(ctx, sub.CaseID)
	if err != nil {
		return err
	}
	var recorded *AuthenticationTags
	for _, raw := range log {
		s, err := ParseSET(raw, rc.PlatformKeys, VerifyOptions{})
		if err != nil {
			// Our own and the sender's SETs are signed with keys we do not
			// hold here; only the platform's submit-submission matters.
			continue
		}
		if s.Event != EventSubmitSubmission || s.SubmissionID() != sub.SubmissionID {
			continue
		}
		tags, ok, err := s.AuthenticationTags()
		if err != nil || !ok {
			continue
		}
		recorded = &tags
	}
	if recorded == nil {
		r.Problems = append(r.Problems, NewProblem(ProblemMissingAuthenticationTags, InstanceSubmission,
			"no verifiable submit-submission event with authentication tags in the event log"))
		return nil
	}
	bad := func(instance string) {
		r.Problems = append(r.Problems, NewProblem(ProblemIncorrectAuthenticationTag, instance,
			fmt.Sprintf("the authentication tag of %s differs from the one recorded at submission", instance)))
	}
	before := len(r.Problems)
	if recorded.Metadata != r.Tags.Metadata {
		bad(InstanceMetadata)
	}
	if r.Tags.Data != "" && recorded.Data != r.Tags.Data {
		bad(InstanceData)
	}
	for id, tag := range r.Tags.Attachments {
		if recorded.Attachments[id] != tag {
			bad(InstanceAttachment(id))
		}
	}
	if len(r.Problems) == before {
		r.Checks = append(r.Checks, CheckAuthenticationTags)
	}
	return nil
}
