package webui

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/office/httpserve"
)

// receipt returns the visible message's MessageReceived and verification
// from its stream, answering the request itself when it cannot.
func (s *Server) receipt(w http.ResponseWriter, r *request) (*messageView, bool) {
	stream := r.PathValue("stream")
	h, ok, err := s.visible(r, stream)
	if err != nil {
		s.internal(w, r, "download", err)
		return nil, false
	}
	if !ok {
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
		return nil, false
	}
	v, err := s.loadMessage(r, h)
	if err != nil {
		s.internal(w, r, "download", err)
		return nil, false
	}
	if v.Received == nil {
		s.fail(w, r, http.StatusNotFound, "error.notfound")
		return nil, false
	}
	return v, true
}

func (s *Server) downloadRaw(w http.ResponseWriter, r *request) {
	if v, ok := s.receipt(w, r); ok {
		s.sendBlob(w, r, v.Received.Raw, "message/rfc822", v.Hit.Stream+".eml", true)
	}
}

func (s *Server) downloadPart(w http.ResponseWriter, r *request) {
	v, ok := s.receipt(w, r)
	if !ok {
		return
	}
	want := r.PathValue("part")
	i := slices.IndexFunc(v.Received.Parts, func(p gateway.Part) bool { return p.Path == want })
	if i < 0 || v.Received.Parts[i].Blob.SHA256 == "" {
		s.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	p := v.Received.Parts[i]
	s.sendBlob(w, r, p.Blob, p.MediaType, httpserve.SafeFilename(p.Filename, "part-"+strings.ReplaceAll(p.Path, ".", "-")), true)
}

// downloadReport shows the Prüfprotokoll inline (HTML, sandboxed: it runs
// nothing and can reach nothing) or, with ?format=json, the full report.
func (s *Server) downloadReport(w http.ResponseWriter, r *request) {
	v, ok := s.receipt(w, r)
	if !ok {
		return
	}
	if v.Verified == nil {
		s.fail(w, r, http.StatusNotFound, "message.noreport")
		return
	}
	if r.URL.Query().Get("format") == "json" {
		s.sendBlob(w, r, v.Verified.Report, "application/json", "report-"+v.Hit.Stream+".json", true)
		return
	}
	if v.Verified.ReportHTML.SHA256 == "" {
		s.fail(w, r, http.StatusNotFound, "message.noreport")
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'none'")
	s.sendBlob(w, r, v.Verified.ReportHTML, "text/html; charset=utf-8", "pruefprotokoll-"+v.Hit.Stream+".html", false)
}

func (s *Server) downloadEvidence(w http.ResponseWriter, r *request) {
	v, ok := s.receipt(w, r)
	if !ok {
		return
	}
	want := r.PathValue("event")
	i := slices.IndexFunc(v.Evidence, func(e offices.Evidence) bool { return e.EventID == want })
	if i < 0 || v.Evidence[i].Evidence.SHA256 == "" {
		s.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	ev := v.Evidence[i]
	mt := ev.MediaType
	if mt == "" {
		mt = "application/octet-stream"
	}
	s.sendBlob(w, r, ev.Evidence, mt, "evidence-"+string(ev.Kind)+"-"+ev.EventID, true)
}

// downloadProof exports the message's inclusion proof against the signed
// log, as `poststelle log prove` writes it; `log check-proof` checks it.
func (s *Server) downloadProof(w http.ResponseWriter, r *request) {
	v, ok := s.receipt(w, r)
	if !ok {
		return
	}
	if s.deps.Audited == nil {
		s.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	httpserve.SetWriteDeadline(w, downloadDeadline)
	proof, err := integrity.ProveStream(r.Context(), s.deps.Audited, v.Hit.Tenant, v.Hit.Stream)
	if err != nil {
		s.internal(w, r, "prove", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "proof-" + v.Hit.Stream + ".json"}))
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(proof)
}

// downloadBundle sends the message's evidence bundle, made into a
// temporary file first so that a failure is an error page and not a
// truncated container.
func (s *Server) downloadBundle(w http.ResponseWriter, r *request) {
	v, ok := s.receipt(w, r)
	if !ok {
		return
	}
	if s.deps.Bundle == nil {
		s.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	httpserve.SetWriteDeadline(w, downloadDeadline)
	tmp, err := os.CreateTemp("", "poststelle-bundle-*")
	if err != nil {
		s.internal(w, r, "bundle", err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := s.deps.Bundle(r.Context(), v.Hit.Tenant, v.Hit.Stream, tmp); err != nil {
		s.internal(w, r, "bundle", err)
		return
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		s.internal(w, r, "bundle", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.etsi.asic-e+zip")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "evidence-" + v.Hit.Stream + ".asice"}))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, tmp); err != nil {
		s.deps.Logger.Warn("web UI: bundle download ended early", "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// sendBlob streams a stored blob; the store checks its hash as it streams,
// and a corrupt blob cuts the connection rather than pass for the whole.
func (s *Server) sendBlob(w http.ResponseWriter, r *request, ref blob.Ref, mediaType, filename string, attachment bool) {
	httpserve.SetWriteDeadline(w, downloadDeadline)
	rc, err := s.deps.Blobs.Open(r.Context(), ref)
	if errors.Is(err, blob.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	if errors.Is(err, blob.ErrErased) {
		s.fail(w, r, http.StatusGone, "error.erased")
		return
	}
	if err != nil {
		s.internal(w, r, "open blob", err)
		return
	}
	defer rc.Close()
	h := w.Header()
	httpserve.DownloadHeaders(h, ref, mediaType, filename, attachment)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		s.deps.Logger.Warn("web UI: download ended early", "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
}
