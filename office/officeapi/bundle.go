package officeapi

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"

	"github.com/poststelle/poststelle/gateway/evidencebundle"
	"github.com/poststelle/poststelle/office/httpserve"
)

// BundleFunc writes the evidence bundle of one message (tenant, stream)
// to w: evidencebundle.Builder.Build in serve.
type BundleFunc func(ctx context.Context, tenant, stream string, w io.Writer) error

// downloadBundle sends a message's evidence bundle, made afresh for the
// request. It is made into a temporary file first, so that a failure
// half-way is an error answer and not a truncated container, and so that
// the answer has a Content-Length.
func (s *Server) downloadBundle(w http.ResponseWriter, r *request) {
	if _, ok := s.message(w, r); !ok {
		return
	}
	if s.deps.Bundle == nil {
		writeError(w, http.StatusServiceUnavailable, "evidence bundles are not available on this gateway")
		return
	}
	httpserve.SetWriteDeadline(w, downloadTimeout)
	tmp, err := os.CreateTemp("", "poststelle-bundle-*")
	if err != nil {
		s.internal(w, r, "bundle temporary file", err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := s.deps.Bundle(r.Context(), s.deps.Tenant, r.stream, tmp); err != nil {
		if errors.Is(err, evidencebundle.ErrNotCovered) {
			writeError(w, http.StatusServiceUnavailable, "the message's newest events await their signed checkpoint; try again shortly")
			return
		}
		s.internal(w, r, "make evidence bundle", err)
		return
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		s.internal(w, r, "bundle temporary file", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.etsi.asic-e+zip")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "evidence-" + r.stream + ".asice"}))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, tmp); err != nil {
		s.deps.Logger.Warn("office API: bundle download ended early", "user", r.p.User, "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
}
