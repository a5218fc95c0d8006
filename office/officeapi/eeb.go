package officeapi

import (
	"errors"
	"net/http"
	"strings"
	"unicode"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/office/httpserve"
)

// eebRequest is an office's decision on a court's eEB request.
type eebRequest struct {
	// Decision is "acknowledged" or "refused".
	Decision string `json:"decision"`
	// ReceivedOn is the acknowledged date of receipt, YYYY-MM-DD.
	ReceivedOn string `json:"receivedOn"`
	// RefusalCode (Codeliste eeb.stoerungs-id 2.1) and Reason refuse.
	RefusalCode string `json:"refusalCode"`
	Reason      string `json:"reason"`
	// DeviatingRecipient marks an answer by a representative.
	DeviatingRecipient bool `json:"deviatingRecipient"`
}

// answerEEB records the office's eEB answer: a ReplyRequested with eeb set,
// which the EGVP channel sends to the court. It answers as the replies
// endpoint does; 409 also when the message's eEB was answered already.
func (s *Server) answerEEB(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	var req eebRequest
	if !s.decodeJSON(w, r, maxJSONBody, &req) {
		return
	}
	key, ok := idempotencyKey(w, r)
	if !ok {
		return
	}
	rq := replies.Requester{Log: s.deps.Log, Blobs: s.deps.Blobs, Tenant: s.deps.Tenant, Plan: s.deps.Plan, Now: s.deps.Now}
	res, err := rq.RequestReply(r.Context(), r.p, r.office, r.stream, replies.Answer{Key: key, Via: "api",
		EEB: &gateway.EEBAnswer{Decision: req.Decision, ReceivedOn: req.ReceivedOn, RefusalCode: req.RefusalCode,
			Reason: req.Reason, DeviatingRecipient: req.DeviatingRecipient}})
	s.writeRequested(w, r, res, err)
}

// idempotencyKey reads the Idempotency-Key header of an answer.
func idempotencyKey(w http.ResponseWriter, r *request) (string, bool) {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 200 || strings.ContainsFunc(key, unicode.IsControl) {
		writeError(w, http.StatusBadRequest, "Idempotency-Key: at most 200 characters, no control characters")
		return "", false
	}
	return key, true
}

// writeRequested answers a RequestReply: 202 with what was recorded (200
// when it was recorded before), or the error's status.
func (s *Server) writeRequested(w http.ResponseWriter, r *request, res replies.Requested, err error) {
	switch {
	case errors.Is(err, replies.ErrInvalid):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), replies.ErrInvalid.Error()+": "))
	case errors.Is(err, replies.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such message in this office")
	case errors.Is(err, replies.ErrForbidden):
		writeError(w, http.StatusForbidden, "not allowed to answer for this office")
	case errors.Is(err, replies.ErrConflict):
		msg := "this Idempotency-Key was used for another reply"
		if detail := strings.TrimPrefix(err.Error(), replies.ErrConflict.Error()+": "); detail != err.Error() {
			msg = detail
		}
		writeError(w, http.StatusConflict, msg)
	case errors.Is(err, replies.ErrCannotAnswer):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case err != nil:
		s.internal(w, r, "request reply", err)
	default:
		writeJSON(w, createdOr(http.StatusAccepted, res.Existing), replyResult{ReplyID: res.ReplyID, EventID: res.EventID,
			Channel: res.Channel, To: res.To, Existing: res.Existing})
	}
}
