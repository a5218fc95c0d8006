package webui

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/office/httpserve"
)

const (
	maxReasonBytes = 2000
	maxNoteBytes   = 4000
	maxFormBytes   = 64 << 10
	maxAttachments = 20
)

// done redirects after an action (post/redirect/get), with a confirmation.
func done(w http.ResponseWriter, r *request, path, key string) {
	http.Redirect(w, r.Request, path+"?done="+key, http.StatusSeeOther)
}

// checkText refuses text that is not UTF-8, too long, or holds control
// characters other than line breaks and tabs.
func checkText(v string, max int, lines bool) bool {
	if len(v) > max || !utf8.ValidString(v) {
		return false
	}
	return !strings.ContainsFunc(v, func(r rune) bool {
		return unicode.IsControl(r) && !(lines && (r == '\n' || r == '\r' || r == '\t'))
	})
}

// routeMessage routes a triage item by hand: MessageRouted naming the
// person and their reason (offices.Assign), as the office API's assign.
func (s *Server) routeMessage(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "error.bad")
		return
	}
	stream := r.PathValue("stream")
	targets := r.PostForm["office"]
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(targets) == 0 || len(targets) > 50 || reason == "" || !checkText(reason, maxReasonBytes, false) {
		s.fail(w, r, http.StatusBadRequest, "triage.needreason")
		return
	}
	for _, o := range targets {
		if _, ok := s.deps.Directory.Office(o); !ok {
			s.fail(w, r, http.StatusBadRequest, "error.bad")
			return
		}
	}
	it, err := offices.GetTriage(r.Context(), s.deps.DB, stream)
	if errors.Is(err, offices.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	if err != nil {
		s.internal(w, r, "get triage item", err)
		return
	}
	if it.State != "open" {
		s.fail(w, r, http.StatusConflict, "triage.already")
		return
	}
	_, err = offices.Assign(r.Context(), s.deps.Log, it.Tenant, stream, r.p().User, targets, reason)
	switch {
	case errors.Is(err, offices.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "error.notfound")
	case errors.Is(err, offices.ErrAssigned):
		s.fail(w, r, http.StatusConflict, "triage.already")
	case err != nil:
		s.internal(w, r, "assign", err)
	default:
		s.deps.Logger.Info("web UI: routed by hand", "user", r.p().User, "stream", stream, "offices", targets)
		done(w, r, "/triage", "triage.routed")
	}
}

// addNote appends a NoteAdded to the message's stream. Its id follows from
// the form's one-time key, so that a form sent twice records one note.
func (s *Server) addNote(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	stream := r.PathValue("stream")
	h, ok, err := s.visible(r, stream)
	if err != nil {
		s.internal(w, r, "note", err)
		return
	}
	if !ok {
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	text := strings.TrimSpace(r.PostFormValue("text"))
	key := r.PostFormValue("key")
	if text == "" || !checkText(text, maxNoteBytes, true) || len(key) > 100 {
		s.fail(w, r, http.StatusBadRequest, "error.bad")
		return
	}
	office, _ := actingOffice(r.p(), h, "")
	e, err := gateway.Encode(gateway.Meta{ID: gateway.DerivedEventID("webui/note", h.Stream+"/"+r.p().User+"/"+key, 0),
		Tenant: h.Tenant, Stream: h.Stream, CorrelationID: h.Stream, Metadata: map[string]string{"via": "webui"}},
		&gateway.NoteAdded{By: r.p().User, Role: string(r.p().Role), Office: office, Text: text})
	if err != nil {
		s.internal(w, r, "note", err)
		return
	}
	if _, err := s.deps.Log.Append(r.Context(), e); err != nil {
		s.internal(w, r, "note", err)
		return
	}
	back := "/messages/" + stream
	if r.PostFormValue("back") == "triage" {
		back = "/triage"
	}
	done(w, r, back, "note.added")
}

func (s *Server) acknowledge(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	stream := r.PathValue("stream")
	h, ok, err := s.visible(r, stream)
	if err != nil {
		s.internal(w, r, "acknowledge", err)
		return
	}
	office, can := actingOffice(r.p(), h, r.PostFormValue("office"))
	if !ok || !can {
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	if _, err := offices.Acknowledge(r.Context(), s.deps.Log, h.Tenant, stream, office, r.p().User, "webui"); err != nil {
		if errors.Is(err, offices.ErrNotFound) {
			s.fail(w, r, http.StatusNotFound, "error.notfound")
			return
		}
		s.internal(w, r, "acknowledge", err)
		return
	}
	done(w, r, "/messages/"+stream, "message.acked")
}

// answer records an office's answer with its attachments through
// replies.Requester, the one way answers enter the log; the reply policy,
// not the form, picks channel and recipient.
func (s *Server) answer(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxAnswerBytes)
	stream := r.PathValue("stream")
	h, ok, err := s.visible(r, stream)
	if err != nil {
		s.internal(w, r, "answer", err)
		return
	}
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		s.fail(w, r, http.StatusBadRequest, "error.bad")
		return
	}
	defer r.MultipartForm.RemoveAll()
	office, can := actingOffice(r.p(), h, r.PostFormValue("office"))
	if !ok || !can {
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	text := r.PostFormValue("text")
	if strings.TrimSpace(text) == "" || !utf8.ValidString(text) {
		s.fail(w, r, http.StatusBadRequest, "message.notext")
		return
	}
	atts, err := s.storeAttachments(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "error.bad")
		return
	}
	rq := replies.Requester{Log: s.deps.Log, Blobs: s.deps.Blobs, Tenant: h.Tenant, Plan: s.deps.Plan}
	_, err = rq.RequestReply(r.Context(), *r.p(), office, stream, replies.Answer{Key: "webui/" + r.PostFormValue("key"),
		Subject: r.PostFormValue("subject"), Text: []byte(text), Attachments: atts, Via: "webui"})
	switch {
	case errors.Is(err, replies.ErrInvalid), errors.Is(err, replies.ErrCannotAnswer), errors.Is(err, replies.ErrConflict):
		s.deps.Logger.Info("web UI: answer refused", "user", r.p().User, "stream", stream, "err", err)
		s.fail(w, r, http.StatusUnprocessableEntity, "error.bad")
	case errors.Is(err, replies.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "error.notfound")
	case errors.Is(err, replies.ErrForbidden):
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
	case err != nil:
		s.internal(w, r, "answer", err)
	default:
		done(w, r, "/messages/"+stream, "message.sent")
	}
}

// storeAttachments puts the uploaded files into the blob store.
func (s *Server) storeAttachments(r *request) ([]gateway.Part, error) {
	files := r.MultipartForm.File["attachments"]
	if len(files) > maxAttachments {
		return nil, fmt.Errorf("more than %d attachments", maxAttachments)
	}
	var parts []gateway.Part
	for i, fh := range files {
		if fh.Size == 0 && fh.Filename == "" {
			continue // the empty file input of a form sent without files
		}
		f, err := fh.Open()
		if err != nil {
			return nil, err
		}
		ref, err := s.deps.Blobs.Put(r.Context(), io.LimitReader(f, s.cfg.MaxAnswerBytes), s.cfg.MaxAnswerBytes)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("store attachment: %w", err)
		}
		mt := fh.Header.Get("Content-Type")
		if t, _, err := mime.ParseMediaType(mt); err != nil || !strings.Contains(t, "/") {
			mt = "application/octet-stream"
		} else {
			mt = t
		}
		parts = append(parts, gateway.Part{Path: fmt.Sprint(i + 1), MediaType: mt, Filename: httpserve.SafeFilename(fh.Filename, fmt.Sprintf("anlage-%d", i+1)),
			Blob: ref, Kind: "attachment"})
	}
	return parts, nil
}
