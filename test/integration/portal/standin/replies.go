package standin

import (
	"io"
	"net/http"
	"slices"
	"time"
)

// Replies (Rückkanal): the destination answers a submission through
// FIT-Connect, encrypted to the key the submission's metadata named
// (replyChannel.fitConnect.encryptionPublicKey); the sender fetches the
// reply and confirms or refuses it in the case's event log.
//
// FITKO's public v1 material describes the Rückkanal (docs.fitko.de,
// "Rückkanäle": the destination offers FIT-Connect as a reply channel, the
// sender chooses it in the metadata) but the stand-in found no published v1
// paths for it. It uses the form of the submission endpoints in the other
// direction: POST /v1/replies {submissionId, announcedAttachments} → 201
// {replyId, submissionId, caseId}; PUT /v1/replies/{id}/attachments/{aid}
// (application/jose) → 204; PUT /v1/replies/{id} {encryptedMetadata,
// encryptedData} → 200; GET /v1/replies?offset=&limit= → {count, offset,
// totalCount, replies: [{replyId, submissionId, caseId}]}; GET
// /v1/replies/{id}; GET /v1/replies/{id}/attachments/{aid}; the platform
// writes submit-reply, the sender posts accept-reply or reject-reply.

type reply struct {
	ID, SubmissionID, CaseID, DestinationID, Sender string
	Announced                                       []string
	Attachments                                     map[string]string
	EncMetadata, EncData                            string
	State                                           string
	Created, Submitted                              time.Time
	Callback                                        *Callback
}

func (s *Server) createReply(w http.ResponseWriter, r *http.Request, c *Client) {
	if c.Role != Subscriber {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "only a destination's subscriber may reply", "")
		return
	}
	var body struct {
		SubmissionID         string   `json:"submissionId"`
		AnnouncedAttachments []string `json:"announcedAttachments"`
	}
	if !decodeJSON(w, r, maxJSON, &body) {
		return
	}
	if !isUUID(body.SubmissionID) {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "submissionId must be a UUID", "submissionId")
		return
	}
	if len(body.AnnouncedAttachments) > maxAttachments {
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "too many announced attachments", "announcedAttachments")
		return
	}
	seen := map[string]bool{}
	for _, a := range body.AnnouncedAttachments {
		if !isUUID(a) || seen[a] {
			writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "announced attachment ids must be unique UUIDs", "announcedAttachments")
			return
		}
		seen[a] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.submissions[body.SubmissionID]
	if sub == nil || sub.gone || sub.State == stateIncomplete {
		writeProblem(w, http.StatusNotFound, "submission-not-found", "Submission not found", "no submission "+body.SubmissionID, "submissionId")
		return
	}
	if !slices.Contains(c.Destinations, sub.DestinationID) {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "submission "+sub.ID+" is not for a destination of this client", "")
		return
	}
	if sub.State == stateRejected {
		writeProblem(w, http.StatusUnprocessableEntity, "submission-state-invalid", "Submission state invalid", "submission "+sub.ID+" was rejected", "")
		return
	}
	rp := &reply{ID: NewUUID(), SubmissionID: sub.ID, CaseID: sub.CaseID, DestinationID: sub.DestinationID, Sender: sub.Sender,
		Announced: slices.Clone(body.AnnouncedAttachments), Attachments: map[string]string{}, State: stateIncomplete,
		Created: s.opt.Now(), Callback: sub.Callback}
	if rp.Announced == nil {
		rp.Announced = []string{}
	}
	s.replies[rp.ID] = rp
	s.replyOrder = append(s.replyOrder, rp.ID)
	writeJSON(w, http.StatusCreated, map[string]string{"replyId": rp.ID, "submissionId": sub.ID, "caseId": sub.CaseID})
}

// destinationReplyLocked finds the caller's incomplete reply.
func (s *Server) destinationReplyLocked(w http.ResponseWriter, c *Client, id string) *reply {
	rp := s.replies[id]
	if rp == nil || c.Role != Subscriber || !slices.Contains(c.Destinations, rp.DestinationID) {
		writeProblem(w, http.StatusNotFound, "reply-not-found", "Reply not found", "no reply "+id+" of this client", "")
		return nil
	}
	if rp.State != stateIncomplete {
		writeProblem(w, http.StatusUnprocessableEntity, "reply-state-invalid", "Reply state invalid", "reply "+id+" is "+rp.State, "")
		return nil
	}
	return rp
}

func (s *Server) putReplyAttachment(w http.ResponseWriter, r *http.Request, c *Client) {
	jwe, ok := readJOSE(w, r)
	if !ok {
		return
	}
	id, aid := r.PathValue("replyId"), r.PathValue("attachmentId")
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.destinationReplyLocked(w, c, id)
	if rp == nil {
		return
	}
	if !slices.Contains(rp.Announced, aid) {
		writeProblem(w, http.StatusNotFound, "attachment-not-found", "Attachment not found", "attachment "+aid+" was not announced", "")
		return
	}
	rp.Attachments[aid] = jwe
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) submitReply(w http.ResponseWriter, r *http.Request, c *Client) {
	body, ok := s.readEncrypted(w, r)
	if !ok {
		return
	}
	id := r.PathValue("replyId")
	s.mu.Lock()
	defer s.mu.Unlock()
	rp := s.destinationReplyLocked(w, c, id)
	if rp == nil {
		return
	}
	if !allUploaded(w, rp.Announced, rp.Attachments) {
		return
	}
	rp.EncMetadata, rp.EncData = body.EncryptedMetadata, body.EncryptedData
	rp.State, rp.Submitted = stateSubmitted, s.opt.Now()
	t := replyTags(rp)
	tags := map[string]any{"metadata": t.Metadata, "attachments": t.Attachments}
	if t.Data != "" {
		tags["data"] = t.Data
	}
	s.platformEventLocked(rp.CaseID, "reply:"+rp.ID, EventSubmitReply, map[string]any{"authenticationTags": tags})
	if rp.Callback != nil {
		s.notifyLocked(*rp.Callback, CallbackNewReplies, "replies", []map[string]string{
			{"replyId": rp.ID, "submissionId": rp.SubmissionID, "caseId": rp.CaseID}})
	}
	writeJSON(w, http.StatusOK, map[string]string{"replyId": rp.ID, "submissionId": rp.SubmissionID, "caseId": rp.CaseID})
}

func replyTags(rp *reply) AuthenticationTags {
	t := AuthenticationTags{Metadata: authTag(rp.EncMetadata), Attachments: map[string]string{}}
	if rp.EncData != "" {
		t.Data = authTag(rp.EncData)
	}
	for _, a := range rp.Announced {
		t.Attachments[a] = authTag(rp.Attachments[a])
	}
	return t
}

// listReplies lists the submitted replies to the caller's submissions,
// oldest first.
func (s *Server) listReplies(w http.ResponseWriter, r *http.Request, c *Client) {
	if c.Role != Sender {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "only a sender may list replies", "")
		return
	}
	offset, limit, ok := page(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*reply
	for _, id := range s.replyOrder {
		if rp := s.replies[id]; rp.Sender == c.ID && rp.State == stateSubmitted {
			all = append(all, rp)
		}
	}
	items := []map[string]string{}
	for i := offset; i < len(all) && i < offset+limit; i++ {
		items = append(items, map[string]string{"replyId": all[i].ID, "submissionId": all[i].SubmissionID, "caseId": all[i].CaseID})
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(items), "offset": offset, "totalCount": len(all), "replies": items})
}

func (s *Server) senderReplyLocked(w http.ResponseWriter, c *Client, id string) *reply {
	rp := s.replies[id]
	if rp == nil || rp.State == stateIncomplete {
		writeProblem(w, http.StatusNotFound, "reply-not-found", "Reply not found", "no reply "+id, "")
		return nil
	}
	// The reply's sender-side owner, or the destination that wrote it (to
	// read back its record, e.g. its case).
	if !(c.Role == Sender && rp.Sender == c.ID || c.Role == Subscriber && slices.Contains(c.Destinations, rp.DestinationID)) {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "reply "+id+" is neither to a submission of this client nor from its destination", "")
		return nil
	}
	return rp
}

func (s *Server) getReply(w http.ResponseWriter, r *http.Request, c *Client) {
	id := r.PathValue("replyId")
	s.mu.Lock()
	rp := s.senderReplyLocked(w, c, id)
	if rp == nil {
		s.mu.Unlock()
		return
	}
	v := map[string]any{"replyId": rp.ID, "submissionId": rp.SubmissionID, "caseId": rp.CaseID, "destinationId": rp.DestinationID,
		"attachments": slices.Clone(rp.Announced), "encryptedMetadata": rp.EncMetadata}
	if rp.EncData != "" {
		v["encryptedData"] = rp.EncData
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getReplyAttachment(w http.ResponseWriter, r *http.Request, c *Client) {
	id, aid := r.PathValue("replyId"), r.PathValue("attachmentId")
	s.mu.Lock()
	rp := s.senderReplyLocked(w, c, id)
	if rp == nil {
		s.mu.Unlock()
		return
	}
	jwe, ok := rp.Attachments[aid]
	s.mu.Unlock()
	if !ok {
		writeProblem(w, http.StatusNotFound, "attachment-not-found", "Attachment not found", "reply "+id+" has no attachment "+aid, "")
		return
	}
	w.Header().Set("Content-Type", "application/jose")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, jwe)
}
