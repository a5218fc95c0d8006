package standin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The states of a submission (docs.fitko.de, "Status abfragen": incomplete,
// submitted, forwarded, rejected, accepted; forwarded is an intermediary's
// and never happens here).
const (
	stateIncomplete = "incomplete"
	stateSubmitted  = "submitted"
	stateAccepted   = "accepted"
	stateRejected   = "rejected"
)

// ServiceType is the service (Leistung) a submission is for: its name and
// its identifier, a LeiKa URN like urn:de:fim:leika:leistung:99123456760610.
type ServiceType struct {
	Name       string `json:"name"`
	Identifier string `json:"identifier"`
}

type submission struct {
	ID, CaseID, DestinationID, Sender string
	ServiceType                       ServiceType
	Announced                         []string
	Attachments                       map[string]string // attachment id → compact JWE
	EncMetadata, EncData              string
	Callback                          *Callback
	State                             string
	Created, Submitted                time.Time
	// vanishAfterList: the next listing that shows the submission is its last;
	// afterwards it is gone (Vanish).
	vanishAfterList bool
	gone            bool
}

type caseLog struct {
	ID          string
	Sender      string
	Destination string
	Events      []string // compact SETs, in the order written
}

// maxAttachments caps the attachments a submission may announce.
const maxAttachments = 1000

// maxJSON caps a JSON request body that carries no JWE.
const maxJSON = 1 << 20

// destinationView is the public destination object (Submission API
// "destination"): what a sender needs to address and encrypt.
type destinationView struct {
	DestinationID    string         `json:"destinationId"`
	Status           string         `json:"status"`
	Services         []Service      `json:"services"`
	EncryptionKid    string         `json:"encryptionKid"`
	MetadataVersions []string       `json:"metadataVersions"`
	ReplyChannels    map[string]any `json:"replyChannels,omitempty"`
	// Callback is in the owner's view only, without the secret.
	Callback *Callback `json:"callback,omitempty"`
}

func viewOf(d *Destination, owner bool) destinationView {
	v := destinationView{DestinationID: d.ID, Status: d.Status, Services: d.Services, EncryptionKid: d.EncryptionKid,
		MetadataVersions: d.MetadataVersions, ReplyChannels: d.ReplyChannels}
	if v.Services == nil {
		v.Services = []Service{}
	}
	if v.MetadataVersions == nil {
		v.MetadataVersions = []string{"1.0.0"}
	}
	if owner && d.Callback != nil {
		v.Callback = &Callback{URL: d.Callback.URL}
	}
	return v
}

func (s *Server) getDestination(w http.ResponseWriter, r *http.Request, c *Client) {
	id := r.PathValue("destinationId")
	s.mu.Lock()
	d := s.destinations[id]
	var v destinationView
	if d != nil {
		v = viewOf(d, d.Owner == c.ID)
	}
	s.mu.Unlock()
	if d == nil {
		writeProblem(w, http.StatusNotFound, "destination-not-found", "Destination not found", "no destination "+id, "")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// patchDestination lets the destination's owner change its status and its
// callback (url and secret), as the SDK's activate_destination does with
// {"status": "active"}.
func (s *Server) patchDestination(w http.ResponseWriter, r *http.Request, c *Client) {
	id := r.PathValue("destinationId")
	var body struct {
		Status   *string   `json:"status"`
		Callback *Callback `json:"callback"`
	}
	if !decodeJSON(w, r, maxJSON, &body) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.destinations[id]
	if d == nil {
		writeProblem(w, http.StatusNotFound, "destination-not-found", "Destination not found", "no destination "+id, "")
		return
	}
	if d.Owner != c.ID {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "the client does not manage destination "+id, "")
		return
	}
	if body.Status != nil {
		switch *body.Status {
		case "active", "inactive":
			d.Status = *body.Status
		default:
			writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "status must be active or inactive", "status")
			return
		}
	}
	if body.Callback != nil {
		if body.Callback.URL == "" || body.Callback.Secret == "" {
			// The self-service portal refuses a callback without a secret.
			writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "a callback needs url and secret", "callback")
			return
		}
		cb := *body.Callback
		d.Callback = &cb
	}
	writeJSON(w, http.StatusOK, viewOf(d, true))
}

func (s *Server) getDestinationKey(w http.ResponseWriter, r *http.Request, _ *Client) {
	id, kid := r.PathValue("destinationId"), r.PathValue("keyId")
	s.mu.Lock()
	d := s.destinations[id]
	var key JWK
	var ok bool
	if d != nil {
		key, ok = d.Keys[kid]
	}
	s.mu.Unlock()
	switch {
	case d == nil:
		writeProblem(w, http.StatusNotFound, "destination-not-found", "Destination not found", "no destination "+id, "")
	case !ok:
		writeProblem(w, http.StatusNotFound, "key-not-found", "Key not found", "destination "+id+" has no key "+kid, "")
	default:
		writeJSON(w, http.StatusOK, key)
	}
}

// createSubmission announces a submission (POST /v1/submissions): the
// destination, the attachment ids to come, the service; answers 201 with the
// submission id and the case id (a new case, or the one given).
func (s *Server) createSubmission(w http.ResponseWriter, r *http.Request, c *Client) {
	if c.Role != Sender {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "only a sender may create submissions", "")
		return
	}
	var body struct {
		DestinationID        string      `json:"destinationId"`
		AnnouncedAttachments []string    `json:"announcedAttachments"`
		ServiceType          ServiceType `json:"serviceType"`
		Callback             *Callback   `json:"callback"`
		CaseID               string      `json:"caseId"`
	}
	if !decodeJSON(w, r, maxJSON, &body) {
		return
	}
	if !isUUID(body.DestinationID) {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "destinationId must be a UUID", "destinationId")
		return
	}
	if body.ServiceType.Identifier == "" {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "serviceType.identifier is required", "serviceType")
		return
	}
	if len(body.AnnouncedAttachments) > maxAttachments {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "too many announced attachments", "announcedAttachments")
		return
	}
	seen := map[string]bool{}
	for _, a := range body.AnnouncedAttachments {
		if !isUUID(a) {
			writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "announced attachment ids must be UUIDs", "announcedAttachments")
			return
		}
		// The SDK 0.4.2 announces the same id n times for n attachments
		// ([uuid4()] * n); the stand-in refuses that instead of letting the
		// second upload overwrite the first.
		if seen[a] {
			writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "announced attachment ids must be unique: "+a, "announcedAttachments")
			return
		}
		seen[a] = true
	}
	if body.Callback != nil && (body.Callback.URL == "" || body.Callback.Secret == "") {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "a callback needs url and secret", "callback")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.destinations[body.DestinationID]
	if d == nil {
		writeProblem(w, http.StatusNotFound, "destination-not-found", "Destination not found", "no destination "+body.DestinationID, "")
		return
	}
	if d.Status != "active" {
		writeProblem(w, http.StatusUnprocessableEntity, "destination-state-invalid", "Destination state invalid", "destination "+d.ID+" is "+d.Status, "")
		return
	}
	if len(d.Services) > 0 && !slices.ContainsFunc(d.Services, func(sv Service) bool { return sv.Identifier == body.ServiceType.Identifier }) {
		writeProblem(w, http.StatusUnprocessableEntity, "service-type-not-supported", "Service type not supported",
			"destination "+d.ID+" does not accept "+body.ServiceType.Identifier, "serviceType")
		return
	}
	caseID := body.CaseID
	if caseID != "" {
		cl := s.cases[caseID]
		if cl == nil || cl.Sender != c.ID || cl.Destination != d.ID {
			writeProblem(w, http.StatusNotFound, "case-not-found", "Case not found", "no case "+caseID+" of this sender to this destination", "caseId")
			return
		}
	} else {
		caseID = NewUUID()
		s.cases[caseID] = &caseLog{ID: caseID, Sender: c.ID, Destination: d.ID}
	}
	sub := &submission{ID: NewUUID(), CaseID: caseID, DestinationID: d.ID, Sender: c.ID, ServiceType: body.ServiceType,
		Announced: slices.Clone(body.AnnouncedAttachments), Attachments: map[string]string{}, Callback: body.Callback,
		State: stateIncomplete, Created: s.opt.Now()}
	if sub.Announced == nil {
		sub.Announced = []string{}
	}
	s.submissions[sub.ID] = sub
	s.order = append(s.order, sub.ID)
	s.platformEventLocked(caseID, "submission:"+sub.ID, EventCreateSubmission, map[string]any{})
	writeJSON(w, http.StatusCreated, map[string]string{"destinationId": d.ID, "submissionId": sub.ID, "caseId": caseID})
}

// senderSubmission finds the caller's own submission in state incomplete,
// answering the problem itself when there is none. s.mu is held.
func (s *Server) senderSubmissionLocked(w http.ResponseWriter, c *Client, id string) *submission {
	if c.Role != Sender {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "only the sender may upload to a submission", "")
		return nil
	}
	sub := s.submissions[id]
	if sub == nil || sub.Sender != c.ID || sub.gone {
		writeProblem(w, http.StatusNotFound, "submission-not-found", "Submission not found", "no submission "+id, "")
		return nil
	}
	if sub.State != stateIncomplete {
		writeProblem(w, http.StatusUnprocessableEntity, "submission-state-invalid", "Submission state invalid", "submission "+id+" is "+sub.State, "")
		return nil
	}
	return sub
}

// putAttachment stores one announced attachment (PUT
// /v1/submissions/{id}/attachments/{aid}, Content-Type application/jose, a
// compact JWE), 204.
func (s *Server) putAttachment(w http.ResponseWriter, r *http.Request, c *Client) {
	jwe, ok := readJOSE(w, r)
	if !ok {
		return
	}
	id, aid := r.PathValue("submissionId"), r.PathValue("attachmentId")
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.senderSubmissionLocked(w, c, id)
	if sub == nil {
		return
	}
	if !slices.Contains(sub.Announced, aid) {
		writeProblem(w, http.StatusNotFound, "attachment-not-found", "Attachment not found", "attachment "+aid+" was not announced", "")
		return
	}
	sub.Attachments[aid] = jwe
	w.WriteHeader(http.StatusNoContent)
}

// submitSubmission sends the submission (PUT /v1/submissions/{id} with
// encryptedMetadata and encryptedData): every announced attachment must be
// there. The platform then writes submit-submission with the JWEs'
// authentication tags and notifies the destination's callback.
func (s *Server) submitSubmission(w http.ResponseWriter, r *http.Request, c *Client) {
	body, ok := s.readEncrypted(w, r)
	if !ok {
		return
	}
	id := r.PathValue("submissionId")
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.senderSubmissionLocked(w, c, id)
	if sub == nil {
		return
	}
	if !allUploaded(w, sub.Announced, sub.Attachments) {
		return
	}
	sub.EncMetadata, sub.EncData = body.EncryptedMetadata, body.EncryptedData
	sub.State, sub.Submitted = stateSubmitted, s.opt.Now()
	tags := map[string]any{"metadata": authTag(sub.EncMetadata)}
	if sub.EncData != "" {
		tags["data"] = authTag(sub.EncData)
	}
	att := map[string]string{}
	for _, a := range sub.Announced {
		att[a] = authTag(sub.Attachments[a])
	}
	tags["attachments"] = att
	s.platformEventLocked(sub.CaseID, "submission:"+sub.ID, EventSubmitSubmission, map[string]any{"authenticationTags": tags})
	if d := s.destinations[sub.DestinationID]; d != nil && d.Callback != nil {
		s.notifyLocked(*d.Callback, CallbackNewSubmissions, "submissions", []map[string]string{
			{"destinationId": sub.DestinationID, "submissionId": sub.ID, "caseId": sub.CaseID}})
	}
	writeJSON(w, http.StatusOK, map[string]string{"destinationId": sub.DestinationID, "submissionId": sub.ID, "caseId": sub.CaseID})
}

// page reads offset and limit (default 0 and 100, limit at most 500).
func page(w http.ResponseWriter, r *http.Request) (offset, limit int, ok bool) {
	offset, limit = 0, 100
	q := r.URL.Query()
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "offset must be a number ≥ 0", "offset")
			return 0, 0, false
		}
		offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "limit must be a number from 1 to 500", "limit")
			return 0, 0, false
		}
		limit = n
	}
	return offset, limit, true
}

// listSubmissions lists the submissions waiting for the caller's
// destinations (GET /v1/submissions?destinationId=&offset=&limit=): those
// submitted and neither accepted nor rejected, oldest first.
func (s *Server) listSubmissions(w http.ResponseWriter, r *http.Request, c *Client) {
	if c.Role != Subscriber {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "only a subscriber may list submissions", "")
		return
	}
	offset, limit, ok := page(w, r)
	if !ok {
		return
	}
	dest := r.URL.Query().Get("destinationId")
	if dest != "" && !slices.Contains(c.Destinations, dest) {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "the client does not subscribe to destination "+dest, "destinationId")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*submission
	for _, id := range s.order {
		sub := s.submissions[id]
		if sub.State != stateSubmitted || sub.gone || !slices.Contains(c.Destinations, sub.DestinationID) {
			continue
		}
		if dest != "" && sub.DestinationID != dest {
			continue
		}
		all = append(all, sub)
	}
	items := []map[string]string{}
	for i := offset; i < len(all) && i < offset+limit; i++ {
		sub := all[i]
		items = append(items, map[string]string{"destinationId": sub.DestinationID, "submissionId": sub.ID, "caseId": sub.CaseID})
		if sub.vanishAfterList {
			sub.gone = true
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(items), "offset": offset, "totalCount": len(all), "submissions": items})
}

// subscriberSubmissionLocked finds a submitted submission of one of the
// caller's destinations, answering the problem itself when there is none.
func (s *Server) subscriberSubmissionLocked(w http.ResponseWriter, c *Client, id string) *submission {
	if c.Role != Subscriber {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "only the destination's subscriber may fetch submissions", "")
		return nil
	}
	sub := s.submissions[id]
	if sub == nil || sub.gone || sub.State == stateIncomplete {
		writeProblem(w, http.StatusNotFound, "submission-not-found", "Submission not found", "no submission "+id, "")
		return nil
	}
	if !slices.Contains(c.Destinations, sub.DestinationID) {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "submission "+id+" is not for a destination of this client", "")
		return nil
	}
	return sub
}

// getSubmission answers the submission with its encrypted metadata and data
// and its attachments' ids (GET /v1/submissions/{id}).
func (s *Server) getSubmission(w http.ResponseWriter, r *http.Request, c *Client) {
	id := r.PathValue("submissionId")
	s.mu.Lock()
	sub := s.subscriberSubmissionLocked(w, c, id)
	if sub == nil {
		s.mu.Unlock()
		return
	}
	v := map[string]any{"destinationId": sub.DestinationID, "submissionId": sub.ID, "caseId": sub.CaseID,
		"serviceType": sub.ServiceType, "attachments": slices.Clone(sub.Announced), "encryptedMetadata": sub.EncMetadata}
	if sub.EncData != "" {
		v["encryptedData"] = sub.EncData
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

// getAttachment answers one attachment as application/jose.
func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request, c *Client) {
	id, aid := r.PathValue("submissionId"), r.PathValue("attachmentId")
	s.mu.Lock()
	sub := s.subscriberSubmissionLocked(w, c, id)
	if sub == nil {
		s.mu.Unlock()
		return
	}
	jwe, ok := sub.Attachments[aid]
	s.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, "attachment-not-found", "Attachment not found", "submission "+id+" has no attachment "+aid, "")
		return
	}
	w.Header().Set("Content-Type", "application/jose")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, jwe)
}

// decodeJSON reads a JSON request body of at most limit bytes into v,
// strictly (no unknown fields, no trailing data), answering 415 or 400
// itself.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported Media Type", "the body must be application/json", "")
		return false
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, http.StatusRequestEntityTooLarge, "payload-too-large", "Payload Too Large", "the body is too large", "")
			return false
		}
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "unreadable body", "")
		return false
	}
	if int64(len(data)) > limit {
		writeProblem(w, http.StatusRequestEntityTooLarge, "payload-too-large", "Payload Too Large", fmt.Sprintf("the body exceeds %d bytes", limit), "")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "invalid JSON: "+err.Error(), "")
		return false
	}
	if dec.More() {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "trailing data after the JSON", "")
		return false
	}
	return true
}

// readJOSE reads an application/jose body holding one compact JWE.
func readJOSE(w http.ResponseWriter, r *http.Request) (string, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/jose" {
		writeProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported Media Type", "the body must be application/jose", "")
		return "", false
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, http.StatusRequestEntityTooLarge, "payload-too-large", "Payload Too Large", "the body is too large", "")
			return "", false
		}
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "unreadable body", "")
		return "", false
	}
	jwe := string(bytes.TrimSpace(data))
	if _, err := ParseCompactJWE(jwe); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "not a compact JWE: "+err.Error(), "")
		return "", false
	}
	return jwe, true
}

// encryptedBody is the body of PUT /v1/submissions/{id} and PUT
// /v1/replies/{id}: the metadata's JWE and, optionally, the data's.
type encryptedBody struct {
	EncryptedMetadata string `json:"encryptedMetadata"`
	EncryptedData     string `json:"encryptedData"`
}

// readEncrypted decodes an encryptedBody and checks that both JWEs are
// compact JWEs, answering a problem when not.
func (s *Server) readEncrypted(w http.ResponseWriter, r *http.Request) (encryptedBody, bool) {
	var body encryptedBody
	if !decodeJSON(w, r, s.opt.MaxBody, &body) {
		return body, false
	}
	if _, err := ParseCompactJWE(body.EncryptedMetadata); err != nil {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "encryptedMetadata: "+err.Error(), "encryptedMetadata")
		return body, false
	}
	if body.EncryptedData != "" {
		if _, err := ParseCompactJWE(body.EncryptedData); err != nil {
			writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "encryptedData: "+err.Error(), "encryptedData")
			return body, false
		}
	}
	return body, true
}

// allUploaded reports whether every announced attachment was uploaded,
// answering missing-attachments when not.
func allUploaded(w http.ResponseWriter, announced []string, uploaded map[string]string) bool {
	for _, a := range announced {
		if _, ok := uploaded[a]; !ok {
			writeProblem(w, http.StatusUnprocessableEntity, "missing-attachments", "Missing attachments", "announced attachment "+a+" was not uploaded", "")
			return false
		}
	}
	return true
}
