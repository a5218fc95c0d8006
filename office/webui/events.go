package webui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// liveMessage is what the live updates send about a new message: the
// fields of a row of the message tables, already in the page's language.
type liveMessage struct {
	ID           int64  `json:"id"`
	URL          string `json:"url"`
	ReceivedAt   string `json:"receivedAt"`
	Channel      string `json:"channel"`
	Sender       string `json:"sender"`
	Subject      string `json:"subject"`
	Offices      string `json:"offices"`
	Status       string `json:"status"`
	StatusKey    string `json:"statusKey"`
	Verification string `json:"verification"`
	VerifyKey    string `json:"verificationKey"`
}

const maxLive = time.Hour

// events is a Server-Sent Events stream of the messages the session may
// see, from the id the page was rendered with: the same wake-up as the
// office API's stream (the inbox notifier), with the session's scope. A
// logged-out session ends it.
func (s *Server) events(w http.ResponseWriter, r *request) {
	since, err := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		since, err = strconv.ParseInt(last, 10, 64)
	}
	if err != nil || since < 0 {
		http.Error(w, "since: a non-negative integer", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	scope := ScopeOf(*r.p())
	end := time.Now().Add(maxLive)
	for time.Now().Before(end) {
		rc.SetWriteDeadline(time.Now().Add(answerTimeout))
		if err := rc.Flush(); err != nil {
			return
		}
		if _, ok := s.sessions.get(r.ss.id); !ok {
			return
		}
		var changed <-chan struct{}
		if s.deps.Notifier != nil {
			changed = s.deps.Notifier.Changed()
		}
		hits, err := HitsAfter(ctx, s.deps.DB, scope, since, 100)
		if err != nil {
			if ctx.Err() == nil {
				s.deps.Logger.Warn("web UI: live updates", "err", err)
			}
			return
		}
		for _, hit := range hits {
			j, _ := json.Marshal(liveMessage{ID: hit.ID, URL: "/messages/" + hit.Stream, ReceivedAt: formatTime(r.lang, hit.ReceivedAt),
				Channel: hit.Channel, Sender: hit.Sender, Subject: hit.Subject, Offices: joinComma(hit.Offices),
				Status: translate(r.lang, "status."+hit.Status), StatusKey: hit.Status,
				Verification: translate(r.lang, "verify."+hit.Verification), VerifyKey: hit.Verification})
			fmt.Fprintf(w, "id: %d\nevent: message\ndata: %s\n\n", hit.ID, j)
			since = hit.ID
		}
		if len(hits) > 0 {
			continue
		}
		t := time.NewTimer(15 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed:
			// The projection tells inside its transaction; a moment later
			// the row is committed.
			time.Sleep(50 * time.Millisecond)
		case <-t.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		}
		t.Stop()
	}
}

func joinComma(l []string) string {
	out := ""
	for i, s := range l {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
