package webui

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/office/httpserve"
)

// answerEEB records an office's decision on the court's eEB request through
// replies.Requester, as the office API's POST …/eeb does; the form's
// one-time key makes a form sent twice one answer.
func (s *Server) answerEEB(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	stream := r.PathValue("stream")
	h, ok, err := s.visible(r, stream)
	if err != nil {
		s.internal(w, r, "eEB answer", err)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "error.bad")
		return
	}
	office, can := actingOffice(r.p(), h, r.PostFormValue("office"))
	if !ok || !can {
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	key := r.PostFormValue("key")
	if len(key) > 100 {
		s.fail(w, r, http.StatusBadRequest, "error.bad")
		return
	}
	a := &gateway.EEBAnswer{Decision: r.PostFormValue("decision"), DeviatingRecipient: r.PostFormValue("deviating") == "on"}
	// The form sends every field; only the decision's own count.
	switch a.Decision {
	case gateway.EEBAcknowledged:
		a.ReceivedOn = strings.TrimSpace(r.PostFormValue("receivedOn"))
	case gateway.EEBRefused:
		a.RefusalCode, a.Reason = r.PostFormValue("refusalCode"), strings.TrimSpace(r.PostFormValue("reason"))
	}
	rq := replies.Requester{Log: s.deps.Log, Blobs: s.deps.Blobs, Tenant: h.Tenant, Plan: s.deps.Plan, Now: s.deps.Now}
	_, err = rq.RequestReply(r.Context(), *r.p(), office, stream, replies.Answer{Key: "webui/eeb/" + key, EEB: a, Via: "webui"})
	switch {
	case errors.Is(err, replies.ErrInvalid), errors.Is(err, replies.ErrCannotAnswer), errors.Is(err, replies.ErrConflict):
		s.deps.Logger.Info("web UI: eEB answer refused", "user", r.p().User, "stream", stream, "err", err)
		status := http.StatusUnprocessableEntity
		if errors.Is(err, replies.ErrConflict) {
			status = http.StatusConflict
		}
		s.render(w, r, status, "error", map[string]any{"Message": "eeb.notrecorded", "Status": status, "Detail": eebDetail(err)})
	case errors.Is(err, replies.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "error.notfound")
	case errors.Is(err, replies.ErrForbidden):
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
	case err != nil:
		s.internal(w, r, "eEB answer", err)
	default:
		s.deps.Logger.Info("web UI: eEB answered", "user", r.p().User, "stream", stream, "decision", a.Decision)
		done(w, r, "/messages/"+stream, "eeb.recorded")
	}
}

// eebDetail is what the requester said, without its package's prefix: our
// own words about the form's fields, fit to show.
func eebDetail(err error) string {
	msg := err.Error()
	for _, p := range []error{replies.ErrInvalid, replies.ErrCannotAnswer, replies.ErrConflict} {
		msg = strings.TrimPrefix(msg, p.Error()+": ")
	}
	return msg
}

// officeToday is the date the eEB form offers: today in German civil time,
// the calendar the acknowledged date is given in.
func officeToday(now time.Time) string {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return now.UTC().Format(time.DateOnly)
	}
	return now.In(loc).Format(time.DateOnly)
}
