package postbox

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// Answer is an answer as the API shows it.
type Answer struct {
	// AnswerID is the office's reply id (ReplyRequested.ReplyID).
	AnswerID string `json:"answerId"`
	// MessageID is the submission answered (the messageId of its 201).
	MessageID        string `json:"messageId"`
	SenderReference  string `json:"senderReference"`
	PostboxReference string `json:"postboxReference"`
	Subject          string `json:"subject"`
	// Office is the office that answered.
	Office      string       `json:"office"`
	DeliveredAt string       `json:"deliveredAt"`
	PickedUpAt  string       `json:"pickedUpAt,omitempty"`
	Body        Content      `json:"body"`
	Attachments []Attachment `json:"attachments"`
}

// Content is a downloadable piece of an answer.
type Content struct {
	Href      string `json:"href"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
}

// Attachment is one attachment of an answer.
type Attachment struct {
	Content
	Filename string `json:"filename,omitempty"`
}

// answerList is GET /v1/answers.
type answerList struct {
	Answers []Answer `json:"answers"`
	// Next is the cursor of the following page ("after").
	Next int64 `json:"next"`
}

const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// queue reports whether the gateway keeps answer queues, answering the
// request when not, and brings the queue up to date with the log, so that a
// portal reads its own acknowledgements and every answer already accepted.
func (in *Inbound) queue(w http.ResponseWriter, r *http.Request) bool {
	if in.runner == nil {
		problem(w, http.StatusServiceUnavailable, "no-answer-queue", "this gateway keeps no answer queue")
		return false
	}
	if err := in.runner.CatchUp(r.Context(), Answers{}); err != nil {
		// The running projection still follows; answer from what it has.
		in.deps.Logger.Warn("postbox: catch the answer queue up", "err", err)
	}
	return true
}

func view(q queuedAnswer) Answer {
	base := "/v1/answers/" + q.replyID
	a := Answer{AnswerID: q.replyID, MessageID: q.stream, SenderReference: q.senderRef, PostboxReference: q.postboxRef,
		Subject: q.answer.Subject, Office: q.answer.Office, DeliveredAt: q.sentAt, PickedUpAt: q.pickedUpAt,
		Body:        content(base+"/body", "text/plain; charset=utf-8", q.answer.Body),
		Attachments: []Attachment{}}
	for i, p := range q.answer.Attachments {
		a.Attachments = append(a.Attachments, Attachment{Content: content(base+"/attachments/"+strconv.Itoa(i+1), p.MediaType, p.Blob), Filename: p.Filename})
	}
	return a
}

func content(href, mt string, ref blob.Ref) Content {
	if mt == "" {
		mt = "application/octet-stream"
	}
	return Content{Href: href, MediaType: mt, Size: ref.Size, SHA256: ref.SHA256}
}

// listAnswers is GET /v1/answers: the client's pending answers.
func (in *Inbound) listAnswers(w http.ResponseWriter, r *http.Request, c *client) {
	if !in.queue(w, r) {
		return
	}
	after, limit := int64(0), defaultListLimit
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			problem(w, http.StatusBadRequest, "bad-query", "after: want a non-negative integer")
			return
		}
		after = n
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			problem(w, http.StatusBadRequest, "bad-query", fmt.Sprintf("limit: want 1 to %d", maxListLimit))
			return
		}
		limit = n
	}
	qs, err := pending(r.Context(), in.deps.State, in.deps.Tenant, c.ID, after, limit)
	if err != nil {
		in.deps.Logger.Error("postbox: list answers", "client", c.ID, "err", err)
		retryLater(w, "the answer queue cannot be read")
		return
	}
	out := answerList{Answers: []Answer{}, Next: after}
	for _, q := range qs {
		out.Answers = append(out.Answers, view(q))
		out.Next = q.seq
	}
	writeJSON(w, http.StatusOK, out)
}

// answer looks up the request's answer of the client, answering the
// request itself when there is none.
func (in *Inbound) answer(w http.ResponseWriter, r *http.Request, c *client) (queuedAnswer, bool) {
	if !in.queue(w, r) {
		return queuedAnswer{}, false
	}
	id := r.PathValue("id")
	if len(id) > maxRefBytes {
		problem(w, http.StatusNotFound, "no-such-answer", "no such answer")
		return queuedAnswer{}, false
	}
	q, err := lookup(r.Context(), in.deps.State, in.deps.Tenant, c.ID, id)
	switch {
	case errors.Is(err, errNoAnswer):
		problem(w, http.StatusNotFound, "no-such-answer", "no such answer")
		return q, false
	case err != nil:
		in.deps.Logger.Error("postbox: read an answer", "client", c.ID, "err", err)
		retryLater(w, "the answer queue cannot be read")
		return q, false
	}
	return q, true
}

// getAnswer is GET /v1/answers/{id}.
func (in *Inbound) getAnswer(w http.ResponseWriter, r *http.Request, c *client) {
	if q, ok := in.answer(w, r, c); ok {
		writeJSON(w, http.StatusOK, view(q))
	}
}

// getBody is GET /v1/answers/{id}/body.
func (in *Inbound) getBody(w http.ResponseWriter, r *http.Request, c *client) {
	if q, ok := in.answer(w, r, c); ok {
		in.stream(w, r, c, q.answer.Body, "text/plain; charset=utf-8", "")
	}
}

// getAttachment is GET /v1/answers/{id}/attachments/{n}, n from 1.
func (in *Inbound) getAttachment(w http.ResponseWriter, r *http.Request, c *client) {
	q, ok := in.answer(w, r, c)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 || n > len(q.answer.Attachments) {
		problem(w, http.StatusNotFound, "no-such-attachment", "no such attachment")
		return
	}
	p := q.answer.Attachments[n-1]
	in.stream(w, r, c, p.Blob, p.MediaType, p.Filename)
}

func (in *Inbound) stream(w http.ResponseWriter, r *http.Request, c *client, ref blob.Ref, mt, filename string) {
	rc, err := in.deps.Blobs.Open(r.Context(), ref)
	if err != nil {
		in.deps.Logger.Error("postbox: open an answer's content", "client", c.ID, "blob", ref.SHA256, "err", err)
		retryLater(w, "the answer's content cannot be read")
		return
	}
	defer rc.Close()
	if mt == "" {
		mt = "application/octet-stream"
	}
	w.Header().Set("Content-Type", mt)
	w.Header().Set("Content-Length", strconv.FormatInt(ref.Size, 10))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The digest lets the portal check what it stores: RFC 9530 section 3,
	// a Dictionary whose value is a Byte Sequence, base64 between colons
	// (RFC 8941 section 3.3.5).
	if sum, err := hex.DecodeString(ref.SHA256); err == nil {
		w.Header().Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	}
	if filename != "" {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	}
	if _, err := io.Copy(w, rc); err != nil {
		// The blob store checks the hash as it reads: a corrupt blob
		// ends the response short, never with wrong bytes unnoticed.
		in.deps.Logger.Warn("postbox: answer content cut short", "client", c.ID, "blob", ref.SHA256, "err", err)
	}
}

// acknowledge is DELETE /v1/answers/{id} (and POST .../acknowledgement): the
// client has picked the answer up. The pick-up is recorded as delivery
// evidence (kind retrieved, attested by the portal) in the answered
// message's stream before the request is answered, so an acknowledged
// answer is never offered again, even after a crash. Acknowledging twice
// is the same evidence and answers 204 again.
func (in *Inbound) acknowledge(w http.ResponseWriter, r *http.Request, c *client) {
	q, ok := in.answer(w, r, c)
	if !ok {
		return
	}
	if in.deps.Evidence == nil {
		problem(w, http.StatusServiceUnavailable, "no-evidence", "this gateway records no delivery evidence")
		return
	}
	ev := &gateway.DeliveryEvidenceRecorded{
		Channel:    gateway.ChannelPostbox,
		Kind:       gateway.EvidenceRetrieved,
		References: []gateway.EvidenceReference{{Kind: "replyId", Value: q.replyID}},
		Attester:   gateway.Attester{Role: "portal", Name: c.Name, ID: c.ID},
		AttestedAt: in.deps.Now().UTC(),
		// One pick-up per answer: a repeated acknowledgement is the same
		// evidence, recorded once.
		EvidenceID: "pickup:" + c.ID + ":" + q.replyID,
	}
	if ev.Attester.Name == "" {
		ev.Attester.Name = c.ID
	}
	if _, err := in.deps.Evidence.Record(r.Context(), in.deps.Tenant, ev); err != nil {
		in.deps.Logger.Error("postbox: record a pick-up", "client", c.ID, "answer", q.replyID, "err", err)
		retryLater(w, "the pick-up is not recorded; acknowledge again")
		return
	}
	// The queue follows the log; catch it up so that the next list no
	// longer shows the answer.
	if err := in.runner.CatchUp(r.Context(), Answers{}); err != nil {
		in.deps.Logger.Warn("postbox: catch the answer queue up", "err", err)
	}
	in.deps.Logger.Info("postbox answer picked up", "client", c.ID, "answer", q.replyID, "stream", q.stream)
	w.WriteHeader(http.StatusNoContent)
}

func tlsString(r *http.Request) string {
	return fmt.Sprintf("%s %s", tls.VersionName(r.TLS.Version), tls.CipherSuiteName(r.TLS.CipherSuite))
}
