package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Callbacks (docs.fitko.de, "Callbacks"): the platform POSTs
// {"type": ".../callbacks/new-submissions", "submissionIds": [...]} to the
// destination's callback URL with the headers callback-timestamp (Unix
// seconds) and callback-authentication (hex HMAC-SHA512 with the callback
// secret over timestamp + "." + body). A callback is only a hint to fetch:
// the submissions themselves come from the API, and polling goes on, so a
// lost or refused callback delays nothing for longer than poll_interval.
const (
	callbackMaxAge  = 5 * time.Minute
	maxCallbackBody = 64 << 10
	maxCallbackIDs  = 1000
	// callbackTypePrefix starts a callback's type (the docs show
	// .../fit-connect/callbacks/... and .../fit-connect/submission-api/callbacks/...).
	callbackTypePrefix = "https://schema.fitko.de/fit-connect/"
	// maxReplayEntries bounds the replay cache; callbacks beyond it within
	// five minutes are refused rather than remembered without bound.
	maxReplayEntries = 100_000
)

var (
	errCallbackAuth  = errors.New("callback-authentication does not verify")
	errCallbackStale = errors.New("callback-timestamp is missing or more than five minutes off")
	errCallbackReply = errors.New("callback replayed")
)

// verifyCallback checks a callback's headers against secret at now, and
// refuses a (timestamp, body) seen before.
func verifyCallback(secret []byte, tsHeader, authHeader string, body []byte, now time.Time, seen *replayCache) error {
	ts, err := strconv.ParseInt(strings.TrimSpace(tsHeader), 10, 64)
	if err != nil {
		return errCallbackStale
	}
	at := time.Unix(ts, 0)
	if d := now.Sub(at); d > callbackMaxAge || d < -callbackMaxAge {
		return errCallbackStale
	}
	got, err := hex.DecodeString(strings.TrimSpace(authHeader))
	if err != nil || len(got) != sha512.Size {
		return errCallbackAuth
	}
	mac := hmac.New(sha512.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errCallbackAuth
	}
	if !seen.add(tsHeader, body, at, now) {
		return errCallbackReply
	}
	return nil
}

// replayCache remembers the verified callbacks of the last five minutes.
type replayCache struct {
	mu   sync.Mutex
	seen map[[32]byte]time.Time
}

func newReplayCache() *replayCache { return &replayCache{seen: map[[32]byte]time.Time{}} }

// add records (ts, body) and reports whether it was new.
func (c *replayCache) add(ts string, body []byte, at, now time.Time) bool {
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write([]byte{0})
	h.Write(body)
	var k [32]byte
	h.Sum(k[:0])
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, t := range c.seen {
		if now.Sub(t) > callbackMaxAge {
			delete(c.seen, key)
		}
	}
	if _, dup := c.seen[k]; dup || len(c.seen) >= maxReplayEntries {
		return false
	}
	c.seen[k] = at
	return true
}

// callbackBody is a callback's JSON.
type callbackBody struct {
	Type          string   `json:"type"`
	SubmissionIDs []string `json:"submissionIds"`
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
	if err := verifyCallback(in.callbackSecret, r.Header.Get("callback-timestamp"), r.Header.Get("callback-authentication"),
		body, in.deps.Now(), in.callbacks); err != nil {
		in.log.Warn("callback refused", "remote", r.RemoteAddr, "reason", err, "timestamp", r.Header.Get("callback-timestamp"))
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var cb callbackBody
	if err := json.Unmarshal(body, &cb); err != nil || !strings.HasPrefix(cb.Type, callbackTypePrefix) {
		// Authentic but not understood: poll all the same.
		in.log.Warn("verified callback not understood; polling", "remote", r.RemoteAddr, "err", err, "type", cb.Type)
	}
	if len(cb.SubmissionIDs) > maxCallbackIDs {
		cb.SubmissionIDs = cb.SubmissionIDs[:maxCallbackIDs]
	}
	in.log.Info("callback received", "type", cb.Type, "submissions", len(cb.SubmissionIDs))
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
