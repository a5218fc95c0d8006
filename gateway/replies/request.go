package replies

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
)

// MaxSubjectBytes caps an answer's subject.
const MaxSubjectBytes = 500

// Errors of RequestReply besides those of the log and the blob store.
var (
	// ErrCannotAnswer: the reply-channel policy finds no way back to the
	// sender; the error wraps Plan's (ErrNoOutbound, ErrNoSender, …).
	ErrCannotAnswer = errors.New("replies: cannot answer on the sender's channel")
	// ErrNotFound: the stream holds no received message routed to the office.
	ErrNotFound = errors.New("replies: no such message in this office")
	// ErrForbidden: the author may not act for the office.
	ErrForbidden = errors.New("replies: not allowed to answer for this office")
	// ErrInvalid: the answer itself is unacceptable (subject, body); the
	// wrapping error says what.
	ErrInvalid = errors.New("replies: invalid answer")
	// ErrConflict: the request key was used before for a different answer,
	// or an eEB answer is asked for a message that has one already (a court
	// gets at most one per request, another only after the first failed for
	// good).
	ErrConflict = errors.New("replies: the request key was used for another answer")
)

// Answer is an office's answer to one received message, as a person or a
// case system hands it in (office API, SMTP submission).
type Answer struct {
	// Key makes the request idempotent: the same office, message and key
	// give the same ReplyID, so a repeated request records nothing new. The
	// office API passes its Idempotency-Key, SMTP submission the submitted
	// bytes' hash; empty means a fresh random key.
	Key string
	// Subject defaults to "Re: " and the original's subject.
	Subject string
	// Text is the answer's UTF-8 text.
	Text []byte
	// Attachments are stored already (their Blob set).
	Attachments []gateway.Part
	// Via names the way the answer came in ("api", "smtp-submission"); it
	// is recorded in the event's metadata with Metadata.
	Via      string
	Metadata map[string]string
	// EEB, when set, makes the answer the office's decision on the court's
	// eEB request (see gateway.ReplyRequested.EEB); Text may then be empty
	// and Subject defaults to EEBSubject.
	EEB *gateway.EEBAnswer
}

// Requested is what RequestReply recorded.
type Requested struct {
	ReplyID string
	EventID string
	Channel gateway.Channel
	To      gateway.Address
	// Existing is true when the same answer was requested before.
	Existing bool
}

// BodyStore stores an answer's text; *blob.Store is one.
type BodyStore interface {
	PutBytes(ctx context.Context, b []byte) (blob.Ref, error)
}

// PlanFunc chooses the channel and address of an answer; Policy.Plan is
// the one the gateway uses.
type PlanFunc func(received *gateway.MessageReceived) (gateway.Channel, gateway.Address, error)

// Requester records offices' answers. It is the one way an answer enters
// the log, whichever office-facing server it came through.
type Requester struct {
	Log    eventstore.Log
	Blobs  BodyStore
	Tenant string
	// Plan is the reply-channel policy (Policy.Plan of the channel
	// registry's policy); required.
	Plan PlanFunc
	// Now is the clock an eEB's date is checked against (default
	// time.Now).
	Now func() time.Time
}

// ReplyID is the id of an office's answer: it follows from the office, the
// message's stream and the request key, so a repeated request names the same
// answer. The scheme ("rpl-" and 32 hex digits of SHA-256 over
// office NUL stream NUL key) is pinned in docs/wire-format.md.
func ReplyID(office, stream, key string) string {
	sum := sha256.Sum256([]byte(office + "\x00" + stream + "\x00" + key))
	return "rpl-" + hex.EncodeToString(sum[:16])
}

// ReplySubject is the default subject of an answer: "Re: " once before the
// original's subject, control characters replaced, clipped to MaxSubjectBytes.
func ReplySubject(orig string) string {
	orig = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(orig, "\uFFFD")))
	if len(orig) < 3 || !strings.EqualFold(orig[:3], "re:") {
		orig = "Re: " + orig
	}
	for len(orig) > MaxSubjectBytes {
		_, size := utf8.DecodeLastRuneInString(orig)
		orig = orig[:len(orig)-size]
	}
	return orig
}

// CheckSubject refuses a subject that could break out of a header line: CR,
// LF, NUL and other control characters, invalid UTF-8, excessive length.
func CheckSubject(s string) error {
	switch {
	case len(s) > MaxSubjectBytes:
		return fmt.Errorf("%w: subject: longer than %d bytes", ErrInvalid, MaxSubjectBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: subject: not UTF-8", ErrInvalid)
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("%w: subject: line breaks and control characters are not allowed", ErrInvalid)
	}
	return nil
}

// RequestReply records an office's answer to the message of stream: it
// checks that by may act for office and that the office has the message,
// chooses channel and recipient by the reply-channel policy (never by the
// author), stores the text and appends ReplyRequested. The event follows the
// MessageRouted that placed the message in the office, with an id derived
// from the ReplyID, so repeating a request appends nothing and reports
// Existing; the same key with another answer is ErrConflict.
func (rq *Requester) RequestReply(ctx context.Context, by offices.Principal, office, stream string, a Answer) (Requested, error) {
	if !by.CanAct(office) {
		return Requested{}, ErrForbidden
	}
	if err := checkAnswer(a); err != nil {
		return Requested{}, err
	}
	h, err := rq.history(ctx, office, stream)
	if err != nil {
		return Requested{}, err
	}
	received := h.received
	if a.EEB != nil {
		if err := CheckEEBFor(a.EEB, received, rq.now()); err != nil {
			return Requested{}, err
		}
	}
	if rq.Plan == nil {
		return Requested{}, errors.New("replies: Requester.Plan is required")
	}
	ch, to, err := rq.Plan(received)
	if err != nil {
		return Requested{}, fmt.Errorf("%w: %w", ErrCannotAnswer, err)
	}
	subject := a.Subject
	if subject == "" {
		subject = ReplySubject(received.Subject)
		if a.EEB != nil {
			subject = EEBSubject(received)
		}
	}
	if err := CheckSubject(subject); err != nil {
		return Requested{}, err
	}
	key := a.Key
	if key == "" {
		var b [16]byte
		rand.Read(b[:])
		key = hex.EncodeToString(b[:])
	}
	replyID := ReplyID(office, stream, key)
	messageKey := ""
	if a.EEB != nil {
		if messageKey, err = h.eebKey(stream, replyID); err != nil {
			return Requested{}, err
		}
	}
	var body blob.Ref
	if len(a.Text) > 0 || a.EEB == nil {
		if body, err = rq.Blobs.PutBytes(ctx, a.Text); err != nil {
			return Requested{}, fmt.Errorf("replies: store text of %s: %w", replyID, err)
		}
	}
	p := &gateway.ReplyRequested{ReplyID: replyID, Office: office, Author: by.User, Channel: ch, To: to,
		Subject: subject, Body: body, Attachments: a.Attachments, InReplyTo: OriginalMessageID(received), EEB: a.EEB}
	ev, err := gateway.Follow("reply/"+replyID, h.routed, 0, p)
	if err != nil {
		return Requested{}, err
	}
	ev.Metadata = metadata(a)
	ev.MessageKey = messageKey
	if prev := h.eeb(replyID); prev != nil && prev.eventID != ev.ID {
		// The message was routed to the office again since: the same
		// answer is the one recorded then, not a second eEB.
		if !reflect.DeepEqual(prev.payload, p) {
			return Requested{}, ErrConflict
		}
		return Requested{ReplyID: replyID, EventID: prev.eventID, Channel: prev.payload.Channel, To: prev.payload.To, Existing: true}, nil
	}
	res, err := rq.Log.Append(ctx, ev)
	if errors.Is(err, eventstore.ErrConflict) {
		return Requested{}, ErrConflict
	}
	if errors.Is(err, eventstore.ErrDuplicateMessage) {
		return Requested{}, fmt.Errorf("%w: an eEB answer to this message was recorded at the same moment", ErrConflict)
	}
	if err != nil {
		return Requested{}, fmt.Errorf("replies: append request %s: %w", replyID, err)
	}
	return Requested{ReplyID: replyID, EventID: ev.ID, Channel: ch, To: to, Existing: res[0].Existing}, nil
}

func (rq *Requester) now() time.Time {
	if rq.Now != nil {
		return rq.Now()
	}
	return time.Now()
}

// checkAnswer checks what an answer holds by itself: its text (required
// unless something is attached or it is an eEB) and its eEB decision.
func checkAnswer(a Answer) error {
	if a.EEB == nil {
		return checkText(a)
	}
	if !utf8.Valid(a.Text) || slices.Contains(a.Text, 0) {
		return fmt.Errorf("%w: text: UTF-8 without NUL", ErrInvalid)
	}
	return CheckEEB(a.EEB)
}

func checkText(a Answer) error {
	switch {
	case !utf8.Valid(a.Text) || slices.Contains(a.Text, 0):
		return fmt.Errorf("%w: text: UTF-8 without NUL", ErrInvalid)
	case len(strings.TrimSpace(string(a.Text))) == 0 && len(a.Attachments) == 0:
		return fmt.Errorf("%w: text: required when nothing is attached", ErrInvalid)
	}
	return nil
}

func metadata(a Answer) map[string]string {
	if a.Via == "" && len(a.Metadata) == 0 {
		return nil
	}
	m := make(map[string]string, len(a.Metadata)+1)
	for k, v := range a.Metadata {
		m[k] = v
	}
	if a.Via != "" {
		m["via"] = a.Via
	}
	return m
}

// streamHistory is what RequestReply needs of a message's stream: its
// receipt, the MessageRouted that placed it in the office, and the eEB
// answers recorded so far.
type streamHistory struct {
	received *gateway.MessageReceived
	routed   *eventstore.Event
	// eebs are the eEB answers in the order recorded.
	eebs []eebRecord
}

// eebRecord is one recorded eEB answer and what became of it.
type eebRecord struct {
	replyID, messageKey, eventID string
	payload                      *gateway.ReplyRequested
	failed                       bool // for good (ReplyFailed permanent)
}

// eeb returns the recorded eEB answer replyID, nil when there is none.
func (h *streamHistory) eeb(replyID string) *eebRecord {
	for i := range h.eebs {
		if h.eebs[i].replyID == replyID {
			return &h.eebs[i]
		}
	}
	return nil
}

// eebKey decides whether an eEB answer replyID may be recorded and returns
// its message key: the same answer again keeps the key it was recorded with
// (the log then reports it as existing, or ErrConflict if the decision
// differs); another is refused with ErrConflict while an earlier one is
// pending or sent, and after earlier ones failed for good it takes the
// next key.
func (h *streamHistory) eebKey(stream, replyID string) (string, error) {
	if r := h.eeb(replyID); r != nil {
		return r.messageKey, nil
	}
	for _, r := range h.eebs {
		if !r.failed {
			return "", fmt.Errorf("%w: this message's eEB was answered already (reply %s); another can be sent only if that one fails for good", ErrConflict, r.replyID)
		}
	}
	return eebMessageKey(stream, len(h.eebs)), nil
}

// history reads the stream's receipt, the latest MessageRouted that placed
// the message in office and the eEB answers.
func (rq *Requester) history(ctx context.Context, office, stream string) (*streamHistory, error) {
	tenant := rq.Tenant
	if tenant == "" {
		tenant = gateway.DefaultTenant
	}
	evs, err := rq.Log.ReadStream(ctx, tenant, stream)
	if err != nil {
		return nil, fmt.Errorf("replies: read stream %s: %w", stream, err)
	}
	reg := gateway.NewRegistry()
	h := &streamHistory{}
	for i := range evs {
		e := &evs[i]
		switch e.Type {
		case "MessageReceived", "MessageRouted", "ReplyRequested", "ReplyFailed":
		default:
			continue
		}
		p, err := reg.Decode(e)
		if err != nil {
			return nil, fmt.Errorf("replies: %w", err)
		}
		switch p := p.(type) {
		case *gateway.MessageReceived:
			h.received = p
		case *gateway.MessageRouted:
			if slices.Contains(p.Offices, office) {
				h.routed = e
			}
		case *gateway.ReplyRequested:
			if p.EEB != nil {
				h.eebs = append(h.eebs, eebRecord{replyID: p.ReplyID, messageKey: e.MessageKey, eventID: e.ID, payload: p})
			}
		case *gateway.ReplyFailed:
			for j := range h.eebs {
				if h.eebs[j].replyID == p.ReplyID && p.Permanent && !p.Uncertain {
					h.eebs[j].failed = true
				}
			}
		}
	}
	if h.received == nil || h.routed == nil {
		return nil, ErrNotFound
	}
	return h, nil
}
