package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/poststelle/poststelle/fitconnect"
)

// Callbacks (docs.fitko.de, "Verwendung von Callbacks"): the platform POSTs
// {"type": ".../callbacks/new-submissions", ...} to the destination's callback
// URL with callback-timestamp and callback-authentication, which package
// fitconnect's CallbackVerifier checks (HMAC-SHA512, five minutes, and with
// its replay cache a callback seen before). A callback is only a hint to
// fetch: the submissions themselves come from the API, and polling goes on,
// so a lost or refused callback delays nothing for longer than poll_interval.
const (
	maxCallbackBody = 64 << 10
	// callbackTypePrefix starts a callback's type (the docs show
	// .../fit-connect/callbacks/... and .../fit-connect/submission-api/callbacks/...).
	callbackTypePrefix = "https://schema.fitko.de/fit-connect/"
)

// newCallbackVerifier checks callbacks with secret at the collector's clock,
// refusing replays within the five minutes.
func newCallbackVerifier(secret []byte, now func() time.Time) *fitconnect.CallbackVerifier {
	return &fitconnect.CallbackVerifier{Secret: secret, Now: now, MaxBody: maxCallbackBody,
		Replays: fitconnect.NewCallbackReplays(0)}
}

// ServeHTTP receives callbacks at CallbackPath: 200 once verified, and the
// named submissions are fetched in the background; 401 for a callback that
// does not verify (logged without the secret or the header's value).
func (in *Inbound) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != CallbackPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallbackBody+1))
	if err != nil || len(body) > maxCallbackBody {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	cb, err := in.callbacks.Verify(r.Header.Get(fitconnect.CallbackTimestampHeader), r.Header.Get(fitconnect.CallbackAuthenticationHeader), body)
	switch {
	case err == nil && strings.HasPrefix(cb.Type, callbackTypePrefix):
		in.log.Info("callback received", "type", cb.Type, "submissions", len(cb.IDs()))
	case cb != nil:
		// Authentic but not understood: poll all the same.
		in.log.Warn("verified callback not understood; polling", "remote", r.RemoteAddr, "err", err, "type", clipText(cb.Type, 200))
	default:
		in.log.Warn("callback refused", "remote", r.RemoteAddr, "reason", err, "timestamp", clipText(r.Header.Get(fitconnect.CallbackTimestampHeader), 40))
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusOK)
	// The named submissions are in the next listing; a poll now takes them,
	// one at a time, and never twice at once (Inbound.take).
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// serveCallbacks listens on callback_listen until ctx ends; stop waits for
// the server to finish.
func (in *Inbound) serveCallbacks(ctx context.Context) (stop func(), err error) {
	ln, err := net.Listen("tcp", in.cfg.CallbackListen)
	if err != nil {
		return nil, fmt.Errorf("portal: callback_listen: %w", err)
	}
	srv := &http.Server{Handler: in, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			in.log.Error("callback receiver stopped", "err", err)
		}
	}()
	in.log.Info("callback receiver listening", "addr", ln.Addr().String(), "path", CallbackPath)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return func() { <-done }, nil
}
