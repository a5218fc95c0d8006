package officeapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/office/httpserve"
)

const (
	defaultLimit  = 100
	maxLimit      = 1000
	maxJSONBody   = 64 << 10
	answerTimeout = time.Minute
	// downloads may be large; the deadline covers a slow reader of a big part
	downloadTimeout = 30 * time.Minute
)

type whoami struct {
	User    string   `json:"user"`
	Role    string   `json:"role"`
	Offices []string `json:"offices,omitempty"`
}

func (s *Server) whoami(w http.ResponseWriter, r *request) {
	writeJSON(w, http.StatusOK, whoami{User: r.p.User, Role: string(r.p.Role), Offices: r.p.Offices})
}

type officeInfo struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

func (s *Server) listOffices(w http.ResponseWriter, r *request) {
	out := []officeInfo{}
	for _, o := range s.deps.Directory.Config().Offices {
		if r.p.CanRead(o.ID) {
			out = append(out, officeInfo{ID: o.ID, Name: o.Name})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

type messageList struct {
	Messages []offices.Message `json:"messages"`
	// Next is the cursor for the next page or poll (the last seq seen).
	Next int64 `json:"next"`
}

// listMessages lists an office's queue from a cursor; with wait it is a
// long poll that answers as soon as something arrives.
func (s *Server) listMessages(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	since, err1 := intParam(q.Get("since"), 0)
	limit, err2 := intParam(q.Get("limit"), defaultLimit)
	waitSec, err3 := intParam(q.Get("wait"), 0)
	state, eeb := q.Get("state"), q.Get("eeb")
	if err := errors.Join(err1, err2, err3); err != nil || since < 0 || limit < 1 || waitSec < 0 ||
		!slices.Contains([]string{"", offices.StateNew, offices.StateDelivered, offices.StateAcknowledged}, state) ||
		!offices.ValidEEBFilter(eeb) {
		writeError(w, http.StatusBadRequest, "since, limit and wait are non-negative integers; state is new, delivered or acknowledged; "+
			"eeb is open, requested, answering, sent or failed")
		return
	}
	limit = min(limit, maxLimit)
	wait := min(time.Duration(waitSec)*time.Second, s.cfg.MaxWait)
	httpserve.SetWriteDeadline(w, wait+answerTimeout)
	ctx := r.Context()
	stop := time.Now().Add(wait)
	for {
		changed := s.changed()
		msgs, err := offices.ListInboxPage(ctx, s.deps.DB, offices.Query{Office: r.office, Since: since, Limit: int(limit), State: state, EEB: eeb})
		if err != nil {
			s.internal(w, r, "list messages", err)
			return
		}
		if len(msgs) > 0 || wait == 0 || !time.Now().Before(stop) {
			// With eeb the page is ordered by due date: the cursor is the
			// highest seq on it.
			next := since
			for _, m := range msgs {
				next = max(next, m.Seq)
			}
			if msgs == nil {
				msgs = []offices.Message{}
			}
			writeJSON(w, http.StatusOK, messageList{Messages: msgs, Next: next})
			return
		}
		if !s.waitChange(ctx, changed, time.Until(stop)) {
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// changed returns the channel that closes at the next inbox change; nil
// without a notifier (then waitChange polls).
func (s *Server) changed() <-chan struct{} {
	if s.deps.Notifier == nil {
		return nil
	}
	return s.deps.Notifier.Changed()
}

// waitChange waits for a change, at most max; false when ctx ended or
// max passed. The projection tells of a change after its batch committed;
// the short re-check interval is for a gateway without a notifier, and a
// backstop.
func (s *Server) waitChange(ctx context.Context, changed <-chan struct{}, max time.Duration) bool {
	poll := 250 * time.Millisecond
	if changed == nil {
		poll = 100 * time.Millisecond
	}
	t := time.NewTimer(min(max, poll))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-changed:
		return true
	case <-t.C:
		return max > poll
	}
}

func intParam(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

type messageDetail struct {
	offices.Message
	Replies []offices.Reply `json:"replies"`
}

func (s *Server) message(w http.ResponseWriter, r *request) (offices.Message, bool) {
	m, err := offices.GetMessage(r.Context(), s.deps.DB, r.office, r.stream)
	if errors.Is(err, offices.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such message in this office")
		return m, false
	}
	if err != nil {
		s.internal(w, r, "get message", err)
		return m, false
	}
	return m, true
}

func (s *Server) getMessage(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	m, ok := s.message(w, r)
	if !ok {
		return
	}
	reps, err := offices.ListReplies(r.Context(), s.deps.DB, r.office, r.stream)
	if err != nil {
		s.internal(w, r, "list replies", err)
		return
	}
	if reps == nil {
		reps = []offices.Reply{}
	}
	writeJSON(w, http.StatusOK, messageDetail{Message: m, Replies: reps})
}

func (s *Server) downloadRaw(w http.ResponseWriter, r *request) {
	m, ok := s.message(w, r)
	if !ok {
		return
	}
	s.sendBlob(w, r, m.Raw, "message/rfc822", r.stream+".eml", true)
}

func (s *Server) downloadPart(w http.ResponseWriter, r *request) {
	m, ok := s.message(w, r)
	if !ok {
		return
	}
	want := r.PathValue("part")
	i := slices.IndexFunc(m.Parts, func(p gateway.Part) bool { return p.Path == want })
	if i < 0 || m.Parts[i].Blob.SHA256 == "" {
		writeError(w, http.StatusNotFound, "no such part")
		return
	}
	p := m.Parts[i]
	s.sendBlob(w, r, p.Blob, p.MediaType, httpserve.SafeFilename(p.Filename, "part-"+strings.ReplaceAll(p.Path, ".", "-")), true)
}

func (s *Server) downloadReport(w http.ResponseWriter, r *request) {
	m, ok := s.message(w, r)
	if !ok {
		return
	}
	if m.Report == nil {
		writeError(w, http.StatusNotFound, "the message's signatures have not been verified yet")
		return
	}
	if r.URL.Query().Get("format") == "html" {
		if m.Report.ReportHTML.SHA256 == "" {
			writeError(w, http.StatusNotFound, "no human-readable report")
			return
		}
		// Shown inline; the sandbox CSP keeps it from running anything.
		s.sendBlob(w, r, m.Report.ReportHTML, "text/html; charset=utf-8", "pruefprotokoll-"+r.stream+".html", false)
		return
	}
	s.sendBlob(w, r, m.Report.Report, "application/json", "report-"+r.stream+".json", true)
}

// downloadEvidence sends the bytes of one piece of delivery evidence (the
// signed confirmation, the receipt) as received, always as an attachment:
// they come from outside.
func (s *Server) downloadEvidence(w http.ResponseWriter, r *request) {
	m, ok := s.message(w, r)
	if !ok {
		return
	}
	want := r.PathValue("event")
	i := slices.IndexFunc(m.Evidence, func(e offices.Evidence) bool { return e.EventID == want })
	if i < 0 || m.Evidence[i].Evidence.SHA256 == "" {
		writeError(w, http.StatusNotFound, "no such evidence, or it has no stored bytes")
		return
	}
	ev := m.Evidence[i]
	mediaType := ev.MediaType
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	s.sendBlob(w, r, ev.Evidence, mediaType, httpserve.SafeFilename("", "evidence-"+string(ev.Kind)+"-"+ev.EventID), true)
}

// sendBlob streams a stored blob. The blob store checks its hash as it
// streams: a corrupt blob ends the answer early instead of passing for the
// evidence.
func (s *Server) sendBlob(w http.ResponseWriter, r *request, ref blob.Ref, mediaType, filename string, attachment bool) {
	httpserve.SetWriteDeadline(w, downloadTimeout)
	rc, err := s.deps.Blobs.Open(r.Context(), ref)
	if errors.Is(err, blob.ErrNotFound) {
		writeError(w, http.StatusNotFound, "content not stored")
		return
	}
	if errors.Is(err, blob.ErrErased) {
		// Gone for good, not missing: the retention period ended and the
		// key was destroyed; the message's events and evidence remain.
		writeError(w, http.StatusGone, "content erased at the end of its retention period; the evidence bundle still proves what happened")
		return
	}
	if err != nil {
		s.internal(w, r, "open blob", err)
		return
	}
	defer rc.Close()
	h := w.Header()
	httpserve.DownloadHeaders(h, ref, mediaType, filename, attachment)
	h.Set("Digest", "sha-256="+hexToBase64(ref.SHA256))
	h.Set("ETag", `"`+ref.SHA256+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, rc); err != nil {
		s.deps.Logger.Warn("office API: download ended early", "user", r.p.User, "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler) // cut the connection: the client must not take a short body for the whole
	}
}

func hexToBase64(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil {
		return ""
	}
	return base64Std(b)
}

type ackResult struct {
	EventID  string `json:"eventId"`
	Existing bool   `json:"existing"`
}

func (s *Server) acknowledge(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	if _, ok := s.message(w, r); !ok {
		return
	}
	a, err := offices.Acknowledge(r.Context(), s.deps.Log, s.deps.Tenant, r.stream, r.office, r.p.User, "api")
	if errors.Is(err, offices.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such message in this office")
		return
	}
	if err != nil {
		s.internal(w, r, "acknowledge", err)
		return
	}
	status := http.StatusCreated
	if a.Existing {
		status = http.StatusOK
	}
	writeJSON(w, status, ackResult{EventID: a.EventID, Existing: a.Existing})
}

// replyRequest is an office's answer.
type replyRequest struct {
	// Subject defaults to "Re: " and the message's subject.
	Subject string `json:"subject"`
	// Body is the answer's text.
	Body string `json:"body"`
}

type replyResult struct {
	ReplyID  string          `json:"replyId"`
	EventID  string          `json:"eventId"`
	Channel  gateway.Channel `json:"channel"`
	To       gateway.Address `json:"to"`
	Existing bool            `json:"existing"`
}

func (s *Server) reply(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	var req replyRequest
	if !s.decodeJSON(w, r, s.cfg.MaxReplyBytes, &req) {
		return
	}
	key, ok := idempotencyKey(w, r)
	if !ok {
		return
	}
	rq := replies.Requester{Log: s.deps.Log, Blobs: s.deps.Blobs, Tenant: s.deps.Tenant, Plan: s.deps.Plan, Now: s.deps.Now}
	res, err := rq.RequestReply(r.Context(), r.p, r.office, r.stream,
		replies.Answer{Key: key, Subject: req.Subject, Text: []byte(req.Body), Via: "api"})
	s.writeRequested(w, r, res, err)
}

// checkHeaderText refuses what could break out of a header line: CR, LF,
// NUL and other control characters, invalid UTF-8, excessive length.
func checkHeaderText(field, v string, max int) string {
	switch {
	case len(v) > max:
		return fmt.Sprintf("%s: longer than %d bytes", field, max)
	case !utf8.ValidString(v):
		return field + ": not UTF-8"
	case strings.ContainsFunc(v, unicode.IsControl):
		return field + ": line breaks and control characters are not allowed"
	}
	return ""
}

// events is a Server-Sent Events stream of the office's queue: one
// "message" event per queued message, id = its seq, so that a client
// reconnecting with Last-Event-ID continues where it stopped.
func (s *Server) events(w http.ResponseWriter, r *request) {
	since, err := intParam(r.URL.Query().Get("since"), -1)
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		since, err = intParam(last, 0)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "since and Last-Event-ID are integers")
		return
	}
	ctx := r.Context()
	if since < 0 {
		// Without a cursor the stream starts now.
		if since, err = offices.LatestSeq(ctx, s.deps.DB, r.office); err != nil {
			s.internal(w, r, "latest seq", err)
			return
		}
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	end := time.Now().Add(s.cfg.MaxStream)
	fmt.Fprintf(w, "retry: 2000\n: poststelle office %s from seq %d\n\n", r.office, since)
	for time.Now().Before(end) {
		rc.SetWriteDeadline(time.Now().Add(answerTimeout))
		if err := rc.Flush(); err != nil {
			return
		}
		changed := s.changed()
		msgs, err := offices.ListInboxPage(ctx, s.deps.DB, offices.Query{Office: r.office, Since: since, Limit: defaultLimit})
		if err != nil {
			if ctx.Err() == nil {
				s.deps.Logger.Error("office API: event stream", "user", r.p.User, "office", r.office, "err", err)
			}
			return
		}
		for _, m := range msgs {
			j, err := json.Marshal(m)
			if err != nil {
				return
			}
			fmt.Fprintf(w, "id: %d\nevent: message\ndata: %s\n\n", m.Seq, j)
			since = m.Seq
		}
		if len(msgs) == defaultLimit {
			continue
		}
		if len(msgs) > 0 {
			continue // flush, then look again before sleeping
		}
		if !s.waitChange(ctx, changed, 15*time.Second) {
			if ctx.Err() != nil {
				return
			}
			fmt.Fprint(w, ": keep-alive\n\n")
		}
	}
}

type triageList struct {
	Items []offices.TriageItem `json:"items"`
	Next  int64                `json:"next"`
}

func (s *Server) listTriage(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	q := r.URL.Query()
	since, err1 := intParam(q.Get("since"), 0)
	limit, err2 := intParam(q.Get("limit"), defaultLimit)
	if err := errors.Join(err1, err2); err != nil || since < 0 || limit < 1 {
		writeError(w, http.StatusBadRequest, "since and limit are non-negative integers")
		return
	}
	items, err := offices.ListTriage(r.Context(), s.deps.DB, since, q.Get("all") == "true", int(min(limit, maxLimit)))
	if err != nil {
		s.internal(w, r, "list triage", err)
		return
	}
	next := since
	if len(items) > 0 {
		next = items[len(items)-1].Seq
	}
	if items == nil {
		items = []offices.TriageItem{}
	}
	writeJSON(w, http.StatusOK, triageList{Items: items, Next: next})
}

func (s *Server) getTriage(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	it, err := offices.GetTriage(r.Context(), s.deps.DB, r.stream)
	if errors.Is(err, offices.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such triage item")
		return
	}
	if err != nil {
		s.internal(w, r, "get triage item", err)
		return
	}
	writeJSON(w, http.StatusOK, it)
}

type assignRequest struct {
	Offices []string `json:"offices"`
	Reason  string   `json:"reason"`
}

type assignResult struct {
	EventID  string   `json:"eventId"`
	Offices  []string `json:"offices"`
	Existing bool     `json:"existing"`
}

// assign routes a triage item by hand: MessageRouted with the person who
// decided.
func (s *Server) assign(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	var req assignRequest
	if !s.decodeJSON(w, r, maxJSONBody, &req) {
		return
	}
	if len(req.Offices) == 0 || len(req.Offices) > 50 {
		writeError(w, http.StatusBadRequest, "offices: one to 50 office ids")
		return
	}
	for _, o := range req.Offices {
		if _, ok := s.deps.Directory.Office(o); !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("offices: %q is not a configured office", o))
			return
		}
	}
	if msg := checkHeaderText("reason", req.Reason, 2000); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	it, err := offices.GetTriage(r.Context(), s.deps.DB, r.stream)
	if errors.Is(err, offices.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such triage item")
		return
	}
	if err != nil {
		s.internal(w, r, "get triage item", err)
		return
	}
	if it.State != "open" {
		writeError(w, http.StatusConflict, "the message was assigned already")
		return
	}
	res, err := offices.Assign(r.Context(), s.deps.Log, s.deps.Tenant, r.stream, r.p.User, req.Offices, req.Reason)
	switch {
	case errors.Is(err, offices.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such triage item")
	case errors.Is(err, offices.ErrAssigned):
		writeError(w, http.StatusConflict, "the message was assigned already")
	case err != nil:
		s.internal(w, r, "assign", err)
	default:
		writeJSON(w, createdOr(http.StatusCreated, res.Existing), assignResult{EventID: res.EventID, Offices: res.Offices, Existing: res.Existing})
	}
}

// createdOr is the status of a request that created something, or 200 when
// it repeated an earlier one.
func createdOr(created int, existing bool) int {
	if existing {
		return http.StatusOK
	}
	return created
}

type resolveRequest struct {
	// Action is "sent" (found in the peer's journal) or "resend".
	Action string `json:"action"`
	Note   string `json:"note"`
}

type resolveResult struct {
	Action   string `json:"action"`
	Existing bool   `json:"existing"`
}

// resolveReply records the mailroom's decision on an answer that may have
// been sent (triage kind reply-uncertain): after checking the peer, it was
// sent, or it is sent again.
func (s *Server) resolveReply(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	var req resolveRequest
	if !s.decodeJSON(w, r, maxJSONBody, &req) {
		return
	}
	if req.Action != replies.ResolveSent && req.Action != replies.ResolveResend {
		writeError(w, http.StatusBadRequest, `action: "sent" or "resend"`)
		return
	}
	if msg := checkHeaderText("note", req.Note, 2000); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	reply := r.PathValue("reply")
	if reply == "" || len(reply) > 200 {
		writeError(w, http.StatusBadRequest, "reply: the answer's id")
		return
	}
	res, err := replies.ResolveUncertain(r.Context(), s.deps.Log, replies.Resolution{Tenant: s.deps.Tenant, Stream: r.stream, ReplyID: reply,
		Action: req.Action, By: r.p.User, Note: req.Note})
	switch {
	case errors.Is(err, replies.ErrNotUncertain):
		writeError(w, http.StatusConflict, "the answer has no attempt that may have been sent (or it was decided already)")
	case err != nil:
		s.internal(w, r, "resolve an uncertain answer", err)
	default:
		writeJSON(w, createdOr(http.StatusCreated, res.Existing), resolveResult{Action: req.Action, Existing: res.Existing})
	}
}
