package standin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The callback types (docs.fitko.de, "Callbacks"). new-replies is the
// stand-in's, in the form of new-submissions (see replies.go).
const (
	CallbackNewSubmissions = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"
	CallbackNewReplies     = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-replies"
)

// CallbackRecord is one callback delivery attempt.
type CallbackRecord struct {
	URL       string
	Timestamp int64
	Body      []byte
	// Status is the HTTP status the receiver answered, 0 when the request
	// failed; Err says why.
	Status  int
	Err     string
	Attempt int
}

// CallbackMAC is the callback-authentication header's value: hex of
// HMAC-SHA512 with the callback secret over the callback-timestamp, a dot
// and the body, as UTF-8 (docs.fitko.de, "Callbacks": "Der HMAC wird gebildet
// aus dem … Zeitstempel und dem … Payload, getrennt durch das Zeichen .").
func CallbackMAC(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha512.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// notifyLocked posts a callback in the background, retrying a refused or
// failed one with a growing pause. For new-submissions the body carries the
// deprecated submissionIds next to submissions, as FITKO's example does.
func (s *Server) notifyLocked(cb Callback, typ, field string, items []map[string]string) {
	body := map[string]any{"type": typ, field: items}
	if typ == CallbackNewSubmissions {
		var ids []string
		for _, it := range items {
			ids = append(ids, it["submissionId"])
		}
		body["submissionIds"] = ids
	}
	data, err := json.Marshal(body)
	if err != nil {
		s.opt.Logger.Error("callback body", "err", err)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		pause := 100 * time.Millisecond
		for attempt := 1; attempt <= s.opt.CallbackAttempts; attempt++ {
			if s.postCallback(cb, data, attempt) {
				return
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, 2*time.Second)
		}
	}()
}

// postCallback makes one attempt and records it; true when the receiver
// answered 2xx.
func (s *Server) postCallback(cb Callback, data []byte, attempt int) bool {
	ts := s.opt.Now().Unix()
	rec := CallbackRecord{URL: cb.URL, Timestamp: ts, Body: data, Attempt: attempt}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, cb.URL, bytes.NewReader(data))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("callback-authentication", CallbackMAC(cb.Secret, ts, data))
		req.Header.Set("callback-timestamp", strconv.FormatInt(ts, 10))
		var resp *http.Response
		resp, err = s.opt.HTTPClient.Do(req)
		if err == nil {
			rec.Status = resp.StatusCode
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		rec.Err = err.Error()
	}
	s.opt.Logger.Info("callback", "url", cb.URL, "attempt", attempt, "status", rec.Status, "err", rec.Err)
	s.mu.Lock()
	s.callbacks = append(s.callbacks, rec)
	s.mu.Unlock()
	return rec.Status >= 200 && rec.Status < 300
}

// Callbacks returns the callback attempts made so far.
func (s *Server) Callbacks() []CallbackRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CallbackRecord, len(s.callbacks))
	copy(out, s.callbacks)
	return out
}
