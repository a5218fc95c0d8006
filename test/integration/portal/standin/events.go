package standin

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
)

// postEvent takes a SET into a case's event log (POST
// /v1/cases/{caseId}/events, Content-Type application/jose, a compact JWS),
// 204. A destination posts accept-submission or reject-submission about a
// submission of the case, issued by its destination id and signed with one
// of its registered signature keys; a sender posts accept-reply or
// reject-reply about a reply, issued by its client id and signed with its
// key. Anything malformed gets a 422 problem naming what is wrong.
func (s *Server) postEvent(w http.ResponseWriter, r *http.Request, c *Client) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/jose" {
		writeProblem(w, http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported Media Type", "the body must be application/jose", "")
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxSET+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeProblem(w, http.StatusRequestEntityTooLarge, "payload-too-large", "Payload Too Large", "the body is too large", "")
			return
		}
		writeProblem(w, http.StatusBadRequest, "invalid-request", "Bad Request", "unreadable body", "")
		return
	}
	if len(data) > maxSET {
		writeProblem(w, http.StatusRequestEntityTooLarge, "payload-too-large", "Payload Too Large", "a SET is at most 256 KiB here", "")
		return
	}
	compact := string(bytes.TrimSpace(data))
	set, err := ParseSET(compact)
	if err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", err.Error(), "")
		return
	}
	caseID := r.PathValue("caseId")
	if set.CaseID != caseID {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "txn names case "+set.CaseID+", the path case "+caseID, "txn")
		return
	}
	if iat := set.Claims.Iat; iat > s.opt.Now().Add(clockSkew).Unix() {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "iat is in the future", "iat")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.cases[caseID]
	if cl == nil {
		writeProblem(w, http.StatusNotFound, "case-not-found", "Case not found", "no case "+caseID, "")
		return
	}
	if s.jtis[set.Claims.JTI] {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "jti "+set.Claims.JTI+" was used before", "jti")
		return
	}
	switch set.Event {
	case EventAcceptSubmission, EventRejectSubmission:
		if !s.destinationEventLocked(w, c, cl, set) {
			return
		}
	case EventAcceptReply, EventRejectReply:
		if !s.senderEventLocked(w, c, cl, set) {
			return
		}
	default:
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "a client may not post "+set.Event, "events")
		return
	}
	s.jtis[set.Claims.JTI] = true
	cl.Events = append(cl.Events, compact)
	w.WriteHeader(http.StatusNoContent)
}

// destinationEventLocked checks and applies accept-submission or
// reject-submission. It answers the problem itself and returns false when
// the event is refused.
func (s *Server) destinationEventLocked(w http.ResponseWriter, c *Client, cl *caseLog, set *SET) bool {
	if c.Role != Subscriber || !slices.Contains(c.Destinations, cl.Destination) {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "only the case's destination may post "+set.Event, "")
		return false
	}
	if set.SubjectKind != "submission" {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", set.Event+" needs sub submission:<id>", "sub")
		return false
	}
	sub := s.submissions[set.SubjectID]
	if sub == nil || sub.CaseID != cl.ID {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "submission "+set.SubjectID+" is not in case "+cl.ID, "sub")
		return false
	}
	if set.Claims.Iss != cl.Destination {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "iss must be the destination id "+cl.Destination, "iss")
		return false
	}
	d := s.destinations[cl.Destination]
	key, ok := d.Keys[set.Kid]
	if !ok || !slices.Contains(key.KeyOps, "verify") {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "kid "+set.Kid+" is not a signature key of destination "+d.ID, "kid")
		return false
	}
	pub, err := key.RSAPublic()
	if err == nil {
		err = set.Verify(pub)
	}
	if err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", err.Error(), "")
		return false
	}
	if sub.State != stateSubmitted {
		writeProblem(w, http.StatusUnprocessableEntity, "submission-state-invalid", "Submission state invalid", "submission "+sub.ID+" is "+sub.State, "")
		return false
	}
	if set.Event == EventAcceptSubmission {
		tags, err := checkAccept(set.Payload)
		if err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", err.Error(), "events")
			return false
		}
		// Stricter than the platform needs to be: the tags must be those of
		// the JWEs the platform holds (the sender checks this, docs.fitko.de
		// "Empfangsbestätigung oder Zurückweisung"); a test oracle refuses
		// wrong ones at once.
		if want := submissionTags(sub); !equalTags(tags, want) {
			writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event",
				"authenticationTags do not match the submission's JWEs", "events")
			return false
		}
		sub.State = stateAccepted
	} else {
		if _, err := checkReject(set.Payload); err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", err.Error(), "events")
			return false
		}
		sub.State = stateRejected
	}
	return true
}

// senderEventLocked checks and applies accept-reply or reject-reply.
func (s *Server) senderEventLocked(w http.ResponseWriter, c *Client, cl *caseLog, set *SET) bool {
	if c.Role != Sender || cl.Sender != c.ID {
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "only the case's sender may post "+set.Event, "")
		return false
	}
	if set.SubjectKind != "reply" {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", set.Event+" needs sub reply:<id>", "sub")
		return false
	}
	rp := s.replies[set.SubjectID]
	if rp == nil || rp.CaseID != cl.ID {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "reply "+set.SubjectID+" is not in case "+cl.ID, "sub")
		return false
	}
	if set.Claims.Iss != c.ID {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "iss must be the sender's client id", "iss")
		return false
	}
	if c.SigningKey == nil || c.SigningKey.Kid != set.Kid {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "kid "+set.Kid+" is not the sender's signature key", "kid")
		return false
	}
	pub, err := c.SigningKey.RSAPublic()
	if err == nil {
		err = set.Verify(pub)
	}
	if err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", err.Error(), "")
		return false
	}
	if rp.State != stateSubmitted {
		writeProblem(w, http.StatusUnprocessableEntity, "reply-state-invalid", "Reply state invalid", "reply "+rp.ID+" is "+rp.State, "")
		return false
	}
	if set.Event == EventAcceptReply {
		tags, err := checkAccept(set.Payload)
		if err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", err.Error(), "events")
			return false
		}
		if !equalTags(tags, replyTags(rp)) {
			writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", "authenticationTags do not match the reply's JWEs", "events")
			return false
		}
		rp.State = stateAccepted
	} else {
		if _, err := checkReject(set.Payload); err != nil {
			writeProblem(w, http.StatusUnprocessableEntity, "invalid-event", "Invalid event", err.Error(), "events")
			return false
		}
		rp.State = stateRejected
	}
	return true
}

func submissionTags(sub *submission) AuthenticationTags {
	t := AuthenticationTags{Metadata: authTag(sub.EncMetadata), Attachments: map[string]string{}}
	if sub.EncData != "" {
		t.Data = authTag(sub.EncData)
	}
	for _, a := range sub.Announced {
		t.Attachments[a] = authTag(sub.Attachments[a])
	}
	return t
}

func equalTags(a, b AuthenticationTags) bool {
	return a.Metadata == b.Metadata && a.Data == b.Data && maps.Equal(a.Attachments, b.Attachments)
}

// getEvents answers a case's event log (GET /v1/cases/{caseId}/events):
// {"eventLog": [SET, ...]}, to the case's sender and destination.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request, c *Client) {
	caseID := r.PathValue("caseId")
	s.mu.Lock()
	cl := s.cases[caseID]
	var log []string
	allowed := false
	if cl != nil {
		log = slices.Clone(cl.Events)
		allowed = c.ID == cl.Sender || c.Role == Subscriber && slices.Contains(c.Destinations, cl.Destination)
	}
	s.mu.Unlock()
	switch {
	case cl == nil:
		writeProblem(w, http.StatusNotFound, "case-not-found", "Case not found", "no case "+caseID, "")
	case !allowed:
		writeProblem(w, http.StatusForbidden, "forbidden", "Forbidden", "case "+caseID+" is neither this client's nor its destination's", "")
	default:
		if log == nil {
			log = []string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"eventLog": log})
	}
}
