package officeapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/retention"
	"github.com/poststelle/poststelle/office/httpserve"
)

// Retention is what the admin endpoints need of the retention service
// (*retention.Service in serve).
type Retention interface {
	Status(ctx context.Context, tenant, stream string) (retention.Status, error)
	Hold(ctx context.Context, tenant, stream, reason, actor, caseRef string) error
	Release(ctx context.Context, tenant, stream, reason, actor string) error
	EraseNow(ctx context.Context, tenant, stream, reason, actor string) (*gateway.ContentErased, error)
}

// retentionRead admits admins and auditors.
func (s *Server) retentionRead(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *request) {
		if !r.p.CanReadRetention() {
			writeError(w, http.StatusForbidden, "only admins and auditors may see a message's retention")
			return
		}
		s.withRetention(h)(w, r)
	}
}

// retentionAct admits admins only.
func (s *Server) retentionAct(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *request) {
		if !r.p.CanManageRetention() {
			writeError(w, http.StatusForbidden, "only admins may hold, release or erase a message")
			return
		}
		s.withRetention(h)(w, r)
	}
}

func (s *Server) withRetention(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *request) {
		if s.deps.Retention == nil {
			writeError(w, http.StatusServiceUnavailable, "retention is not available on this gateway")
			return
		}
		httpserve.SetWriteDeadline(w, answerTimeout)
		h(w, r)
	}
}

type holdRequest struct {
	Reason string `json:"reason"`
	// Case is the proceeding's Aktenzeichen.
	Case string `json:"case"`
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

// retentionStatus answers a message's office, retain-until, hold and
// erasure.
func (s *Server) retentionStatus(w http.ResponseWriter, r *request) {
	st, err := s.deps.Retention.Status(r.Context(), s.deps.Tenant, r.stream)
	if err != nil {
		s.retentionError(w, r, "retention status", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// hold sets a legal hold.
func (s *Server) hold(w http.ResponseWriter, r *request) {
	var req holdRequest
	if !s.decodeJSON(w, r, maxJSONBody, &req) {
		return
	}
	if err := s.deps.Retention.Hold(r.Context(), s.deps.Tenant, r.stream, req.Reason, r.p.User, req.Case); err != nil {
		s.retentionError(w, r, "legal hold", err)
		return
	}
	s.deps.Logger.Info("office API: legal hold set", "user", r.p.User, "stream", r.stream)
	s.answerStatus(w, r, http.StatusCreated)
}

// releaseHold releases a legal hold.
func (s *Server) releaseHold(w http.ResponseWriter, r *request) {
	var req reasonRequest
	if !s.decodeJSON(w, r, maxJSONBody, &req) {
		return
	}
	if err := s.deps.Retention.Release(r.Context(), s.deps.Tenant, r.stream, req.Reason, r.p.User); err != nil {
		s.retentionError(w, r, "release legal hold", err)
		return
	}
	s.deps.Logger.Info("office API: legal hold released", "user", r.p.User, "stream", r.stream)
	s.answerStatus(w, r, http.StatusOK)
}

// eraseNow erases a message's contents at once.
func (s *Server) eraseNow(w http.ResponseWriter, r *request) {
	var req reasonRequest
	if !s.decodeJSON(w, r, maxJSONBody, &req) {
		return
	}
	if _, err := s.deps.Retention.EraseNow(r.Context(), s.deps.Tenant, r.stream, req.Reason, r.p.User); err != nil {
		s.retentionError(w, r, "erase", err)
		return
	}
	s.deps.Logger.Info("office API: message contents erased by hand", "user", r.p.User, "stream", r.stream)
	s.answerStatus(w, r, http.StatusOK)
}

// answerStatus answers with the message's retention after a change.
func (s *Server) answerStatus(w http.ResponseWriter, r *request, status int) {
	st, err := s.deps.Retention.Status(r.Context(), s.deps.Tenant, r.stream)
	if err != nil {
		s.retentionError(w, r, "retention status", err)
		return
	}
	writeJSON(w, status, st)
}

func (s *Server) retentionError(w http.ResponseWriter, r *request, what string, err error) {
	switch {
	case errors.Is(err, retention.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such message")
	case errors.Is(err, retention.ErrInvalidRequest):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, retention.ErrOnHold), errors.Is(err, retention.ErrAlreadyHeld), errors.Is(err, retention.ErrNotHeld),
		errors.Is(err, retention.ErrAlreadyErased), errors.Is(err, retention.ErrConcurrent):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, retention.ErrCannotErase):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.internal(w, r, what, err)
	}
}
