package fitconnect

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The platform tells a destination about new submissions (and a sender about
// new events) with an HTTP POST to the callback URL configured for it
// ("Verwendung von Callbacks"). Two headers authenticate it:
//
//	callback-timestamp:      the Unix time in seconds when it was sent
//	callback-authentication: hex(HMAC-SHA512(secret, timestamp + "." + body))
//
// where the HMAC input is the timestamp header's text, a full stop and the raw
// body bytes, UTF-8 (RFC 2104 HMAC with SHA-512). The docs require the receiver
// to use SHA-512, to compare in constant time, to refuse a timestamp older than
// five minutes, to keep the secret configurable (never in code) and to ignore
// callbacks that fail; we also refuse one more than five minutes in the future.
// The body names the callback type and the submissions; submissionIds is
// deprecated in favour of submissions (destination, submission and case id).
const (
	CallbackAuthenticationHeader = "callback-authentication"
	CallbackTimestampHeader      = "callback-timestamp"
	// CallbackMaxSkew is how far callback-timestamp may be from our clock.
	CallbackMaxSkew = 5 * time.Minute
	// DefaultMaxCallbackSize caps a callback body when the verifier has no cap.
	DefaultMaxCallbackSize = 1 << 20
	// CallbackNewSubmissions is the type of a callback about new submissions
	// (the docs' example).
	CallbackNewSubmissions = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"
	// CallbackNewEvents and CallbackNewReplies follow the callback-type names
	// of the docs' table (NEW_EVENTS, NEW_REPLIES) in the form of the one
	// documented URI; we have not seen them spelled out.
	CallbackNewEvents  = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events"
	CallbackNewReplies = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-replies"
)

// Errors of callback verification; all mean "ignore this callback".
var (
	ErrCallbackAuthentication = errors.New("fitconnect: callback authentication failed")
	ErrCallbackTimestamp      = errors.New("fitconnect: callback timestamp out of range")
	ErrCallbackBody           = errors.New("fitconnect: callback body invalid")
	// ErrCallbackReplayed: the same timestamp and body verified before (only
	// with CallbackVerifier.Replays).
	ErrCallbackReplayed = errors.New("fitconnect: callback replayed")
)

// CallbackVerifier checks callbacks with the callback secret.
type CallbackVerifier struct {
	// Secret is the callback secret as configured at the platform.
	Secret []byte
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// MaxBody caps the body (DefaultMaxCallbackSize when 0).
	MaxBody int64
	// Replays, when set, refuses a callback whose timestamp and body verified
	// before (ErrCallbackReplayed). The docs' five minutes bound how long a
	// captured callback stays valid; within them it could be sent again.
	Replays *CallbackReplays
}

// DefaultMaxCallbackReplays bounds CallbackReplays when no bound is given.
const DefaultMaxCallbackReplays = 100_000

// CallbackReplays remembers the callbacks verified within CallbackMaxSkew of
// their timestamp, at most a bound of them: past it further callbacks are
// refused rather than remembered without bound (the platform sends again, and
// polling fetches the submissions anyway). Safe for concurrent use.
type CallbackReplays struct {
	mu   sync.Mutex
	max  int
	seen map[[sha256.Size]byte]time.Time
}

// NewCallbackReplays makes a replay cache of at most max entries
// (DefaultMaxCallbackReplays when max <= 0).
func NewCallbackReplays(max int) *CallbackReplays {
	if max <= 0 {
		max = DefaultMaxCallbackReplays
	}
	return &CallbackReplays{max: max, seen: map[[sha256.Size]byte]time.Time{}}
}

// add records (timestamp, body), sent at sent, and reports whether it was new.
// Entries are dropped once their timestamp is out of range, when they could
// not verify again anyway.
func (c *CallbackReplays) add(timestamp string, body []byte, sent, now time.Time) bool {
	h := sha256.New()
	h.Write([]byte(timestamp))
	h.Write([]byte{0})
	h.Write(body)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, t := range c.seen {
		if now.Sub(t) > CallbackMaxSkew {
			delete(c.seen, key)
		}
	}
	if _, dup := c.seen[k]; dup || len(c.seen) >= c.max {
		return false
	}
	c.seen[k] = sent
	return true
}

// SubmissionRef names one submission: as listed by GET /submissions and in a
// callback's submissions member.
type SubmissionRef struct {
	DestinationID string `json:"destinationId"`
	SubmissionID  string `json:"submissionId"`
	CaseID        string `json:"caseId"`
}

// Callback is a verified callback body.
type Callback struct {
	Type string `json:"type"`
	// SubmissionIDs is the deprecated list of ids.
	SubmissionIDs []string `json:"submissionIds,omitempty"`
	// Submissions is the current form.
	Submissions []SubmissionRef `json:"submissions,omitempty"`
	// Timestamp is callback-timestamp.
	Timestamp time.Time `json:"-"`
}

// IDs are the submission ids the callback names, from both forms, each once,
// in order of appearance.
func (c *Callback) IDs() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range c.Submissions {
		if s.SubmissionID != "" && !seen[s.SubmissionID] {
			seen[s.SubmissionID] = true
			out = append(out, s.SubmissionID)
		}
	}
	for _, id := range c.SubmissionIDs {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// VerifyRequest reads the request body (bounded) and verifies the callback.
// The body is consumed; on success the parsed callback is returned.
func (v *CallbackVerifier) VerifyRequest(r *http.Request) (*Callback, error) {
	max := v.MaxBody
	if max <= 0 {
		max = DefaultMaxCallbackSize
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", ErrCallbackBody, err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCallbackBody, max)
	}
	return v.Verify(r.Header.Get(CallbackTimestampHeader), r.Header.Get(CallbackAuthenticationHeader), body)
}

// Verify checks timestamp and HMAC of a callback (and, with Replays, that it is
// new) and parses its body. The HMAC is checked before the body is parsed, so
// nothing unauthenticated is decoded. A callback that is authentic but whose
// body is not understood comes back as ErrCallbackBody together with a
// Callback holding only its Timestamp: the caller may still take it as a hint
// to poll.
func (v *CallbackVerifier) Verify(timestamp, authentication string, body []byte) (*Callback, error) {
	if len(v.Secret) == 0 {
		return nil, fmt.Errorf("%w: no callback secret configured", ErrCallbackAuthentication)
	}
	max := v.MaxBody
	if max <= 0 {
		max = DefaultMaxCallbackSize
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCallbackBody, max)
	}
	ts := strings.TrimSpace(timestamp)
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(ts) > 12 {
		return nil, fmt.Errorf("%w: %q is not a Unix time in seconds", ErrCallbackTimestamp, truncate(ts, 32))
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	sent := time.Unix(secs, 0)
	if d := now().Sub(sent); d > CallbackMaxSkew || d < -CallbackMaxSkew {
		return nil, fmt.Errorf("%w: sent %s, %s from now", ErrCallbackTimestamp, sent.UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	got, err := hex.DecodeString(strings.TrimSpace(authentication))
	if err != nil || len(got) != sha512.Size {
		return nil, fmt.Errorf("%w: %s is not a hex HMAC-SHA512", ErrCallbackAuthentication, CallbackAuthenticationHeader)
	}
	if !hmac.Equal(got, callbackMAC(v.Secret, ts, body)) {
		return nil, fmt.Errorf("%w: HMAC does not match", ErrCallbackAuthentication)
	}
	if v.Replays != nil && !v.Replays.add(ts, body, sent, now()) {
		return nil, fmt.Errorf("%w: sent %s", ErrCallbackReplayed, sent.UTC().Format(time.RFC3339))
	}
	var c Callback
	if err := json.Unmarshal(body, &c); err != nil {
		return &Callback{Timestamp: sent}, fmt.Errorf("%w: %v", ErrCallbackBody, err)
	}
	if c.Type == "" {
		return &Callback{Timestamp: sent}, fmt.Errorf("%w: no type", ErrCallbackBody)
	}
	c.Timestamp = sent
	return &c, nil
}

func callbackMAC(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha512.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// SignCallback computes the two headers for a callback body sent at t: what
// the platform does (for tests and the stand-in platform).
func SignCallback(secret, body []byte, t time.Time) (timestamp, authentication string) {
	timestamp = strconv.FormatInt(t.Unix(), 10)
	return timestamp, hex.EncodeToString(callbackMAC(secret, timestamp, body))
}
