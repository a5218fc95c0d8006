package officeapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/outbox"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/projection"
)

// WebhookConfig tunes webhook delivery on the outbox schedule (YAML under
// office_api.webhook): attempt_timeout bounds one POST (default 10 s);
// max_attempts (default 8) attempts, waiting first_backoff (default 30 s)
// after the first failure and doubling up to max_backoff (default 1 h);
// poll_interval (default 5 s) is how often due retries are looked for.
// When the attempts are spent the message shows in triage while it stays
// readable in the office's queue.
type WebhookConfig = outbox.Policy

var webhookDefaults = outbox.Policy{MaxAttempts: 8, FirstBackoff: 30 * time.Second, MaxBackoff: time.Hour,
	PollInterval: 5 * time.Second, AttemptTimeout: 10 * time.Second}

// Webhook headers.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>" over
	// "<t>.<body>" with the webhook's secret. Receivers check the MAC, that
	// t is within a few minutes of their clock, and that DeliveryHeader is
	// new to them (VerifySignature does the first two).
	SignatureHeader = "Poststelle-Signature"
	// DeliveryHeader is the delivery's id; the same delivery sent again
	// after a failure carries the same id.
	DeliveryHeader = "Poststelle-Delivery"
	EventHeader    = "Poststelle-Event"
)

// Names of the webhook handlers; they are part of the ids of the events
// they append and never change.
const (
	WebhookHandlerName = "officeapi/webhook"
	webhookRetryName   = "officeapi/webhook/retry"
)

// WebhookKind names webhook deliveries in the outbox schedule.
const WebhookKind = "webhook"

// WebhookPayload is the JSON body of a delivery.
type WebhookPayload struct {
	DeliveryID string `json:"deliveryId"`
	Event      string `json:"event"`
	Office     string `json:"office"`
	Stream     string `json:"stream"`
	// Message describes the message; fetch parts and report through the
	// API at the paths in Links.
	Message WebhookMessage    `json:"message"`
	Links   map[string]string `json:"links"`
	Routing offices.Routing   `json:"routing"`
}

// WebhookMessage is the message summary a delivery carries.
type WebhookMessage struct {
	Channel    gateway.Channel   `json:"channel"`
	From       gateway.Address   `json:"from"`
	To         []gateway.Address `json:"to,omitempty"`
	Subject    string            `json:"subject"`
	ReceivedAt time.Time         `json:"receivedAt"`
	Parts      []gateway.Part    `json:"parts,omitempty"`
}

// WebhookDeps are the webhook scheduler's collaborators.
type WebhookDeps struct {
	Log       eventstore.Log
	Directory *offices.Directory
	// State is the state database holding the outbox schedule.
	State *sql.DB
	// Registry decodes the log (default gateway.NewRegistry()).
	Registry *gateway.Registry
	// Client makes the POSTs (default: attempt_timeout, no redirects).
	Client *http.Client
	Logger *slog.Logger
	// Now is the clock for signatures and the schedule (default time.Now).
	Now func() time.Time
	// Owns limits retries to the streams this process owns (see
	// outbox.Deps.Owns); nil owns all.
	Owns outbox.OwnsFunc
}

// Webhooks pushes each routed message to its offices' webhooks: the
// pipeline handler (Handler) makes the first attempt of each delivery, Run
// retries failed ones when the log says they are due, and every attempt is
// recorded (WebhookAttempted, WebhookDelivered, WebhookFailed). Deliveries
// are at least once: receivers deduplicate by the Poststelle-Delivery id,
// the same on every attempt.
type Webhooks struct {
	sched *outbox.Scheduler
}

// NewWebhooks checks the configuration.
func NewWebhooks(cfg WebhookConfig, deps WebhookDeps) (*Webhooks, error) {
	if deps.Directory == nil {
		return nil, errors.New("officeapi: webhooks need the office directory")
	}
	cfg = cfg.WithDefaults(webhookDefaults)
	if deps.Client == nil {
		deps.Client = &http.Client{Timeout: cfg.AttemptTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is a failure, never a new target
		}}
	}
	if deps.Registry == nil {
		deps.Registry = gateway.NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	eff := webhookEffect{dir: deps.Directory, client: deps.Client, now: deps.Now}
	sched, err := outbox.New(eff, cfg, outbox.Deps{Log: deps.Log, Registry: deps.Registry, State: deps.State, Logger: deps.Logger, Now: deps.Now, Owns: deps.Owns})
	if err != nil {
		return nil, fmt.Errorf("officeapi: webhooks: %w", err)
	}
	return &Webhooks{sched: sched}, nil
}

// Handler is the pipeline handler making the first attempt of each delivery
// a MessageRouted asks for.
func (w *Webhooks) Handler() pipeline.Handler { return w.sched.Handler() }

// Run retries due deliveries until ctx ends.
func (w *Webhooks) Run(ctx context.Context) error { return w.sched.Run(ctx) }

// RetryDue catches the schedule up and retries every delivery due now.
func (w *Webhooks) RetryDue(ctx context.Context, runner *projection.Runner) error {
	return w.sched.RetryDue(ctx, runner)
}

// Schedule is the read model of every delivery's state (kind WebhookKind).
func (w *Webhooks) Schedule() outbox.Schedule { return w.sched.Schedule() }

// webhookEffect is webhook deliveries as an outbox.Effect: MessageRouted
// asks for one delivery per webhook of each office it names.
type webhookEffect struct {
	dir    *offices.Directory
	client *http.Client
	now    func() time.Time
}

// webhookTarget is where one delivery goes.
type webhookTarget struct {
	office, url string
}

func (webhookEffect) Kind() string        { return WebhookKind }
func (webhookEffect) Topic() string       { return gateway.MessageRouted{}.EventType() }
func (webhookEffect) HandlerName() string { return WebhookHandlerName }
func (webhookEffect) RetryName() string   { return webhookRetryName }

func (e webhookEffect) Requested(_ context.Context, cause *eventstore.Event, p gateway.Payload) ([]outbox.Job, error) {
	m, ok := p.(*gateway.MessageRouted)
	if !ok {
		return nil, fmt.Errorf("officeapi: webhook got %T", p)
	}
	var jobs []outbox.Job
	for _, office := range m.Offices {
		o, ok := e.dir.Office(office)
		if !ok {
			continue
		}
		for _, hook := range o.Webhooks {
			jobs = append(jobs, outbox.Job{ID: deliveryID(cause.ID, office, hook.URL), Detail: webhookTarget{office, hook.URL}})
		}
	}
	return jobs, nil
}

func (webhookEffect) Steps(e *eventstore.Event, p gateway.Payload) []outbox.Step {
	switch m := p.(type) {
	case *gateway.MessageDelivered:
		// Before webhooks were scheduled, the handler recorded an accepted
		// push only as MessageDelivered, caused by the MessageRouted; such a
		// delivery is done and must not be pushed again on a replay.
		if m.Via == "webhook" {
			return []outbox.Step{{ID: deliveryID(e.CausationID, m.Office, m.Target), State: outbox.StateDone, Attempt: 1}}
		}
	case *gateway.WebhookAttempted:
		return []outbox.Step{{ID: m.DeliveryID, State: outbox.StateRetry, Attempt: m.Attempt, RetryAt: m.Next, Error: m.Error}}
	case *gateway.WebhookDelivered:
		return []outbox.Step{{ID: m.DeliveryID, State: outbox.StateDone, Attempt: m.Attempt}}
	case *gateway.WebhookFailed:
		return []outbox.Step{{ID: m.DeliveryID, State: outbox.StateFailed, Attempt: m.Attempt, Error: m.Error}}
	}
	return nil
}

func (e webhookEffect) Attempt(ctx context.Context, j outbox.Job) ([]gateway.Payload, error) {
	t := target(j)
	if t.url == "" {
		return nil, outbox.Permanent(fmt.Errorf("delivery %s names no webhook", j.ID))
	}
	hook, ok := e.hook(t)
	if !ok {
		return nil, outbox.Permanent(fmt.Errorf("office %s has no webhook %s any more", t.office, t.url))
	}
	secret, err := hook.LoadSecret()
	if err != nil {
		return nil, fmt.Errorf("load the webhook secret: %w", err)
	}
	routed, received := deliveryStory(j, t)
	if routed == nil {
		return nil, outbox.Permanent(fmt.Errorf("the stream has no MessageRouted that asked for delivery %s", j.ID))
	}
	body, err := json.Marshal(webhookPayload(j.ID, t.office, routed.Event, routed.Payload.(*gateway.MessageRouted), received))
	if err != nil {
		return nil, outbox.Permanent(err)
	}
	status, err := post(ctx, e.client, t.url, secret, j.ID, body, e.now())
	if err != nil {
		return nil, err
	}
	return []gateway.Payload{&gateway.WebhookDelivered{DeliveryID: j.ID, Office: t.office, URL: t.url, Attempt: j.Attempt, Status: status}}, nil
}

func (webhookEffect) Failed(j outbox.Job, f outbox.Failure) gateway.Payload {
	t := target(j)
	var se statusError
	status := 0
	if errors.As(f.Err, &se) {
		status = se.code
	}
	if f.Permanent {
		return &gateway.WebhookFailed{DeliveryID: j.ID, Office: t.office, URL: t.url, Attempt: j.Attempt, Status: status, Error: f.Error}
	}
	return &gateway.WebhookAttempted{DeliveryID: j.ID, Office: t.office, URL: t.url, Attempt: j.Attempt, Status: status, Error: f.Error, Next: f.RetryAt}
}

// target is where the job goes: what Requested attached, or on a retry what
// the failed attempt recorded.
func target(j outbox.Job) webhookTarget {
	if t, ok := j.Detail.(webhookTarget); ok {
		return t
	}
	if a, ok := j.Cause.Payload.(*gateway.WebhookAttempted); ok {
		return webhookTarget{a.Office, a.URL}
	}
	return webhookTarget{}
}

func (e webhookEffect) hook(t webhookTarget) (offices.Webhook, bool) {
	o, ok := e.dir.Office(t.office)
	if !ok {
		return offices.Webhook{}, false
	}
	for _, h := range o.Webhooks {
		if h.URL == t.url {
			return h, true
		}
	}
	return offices.Webhook{}, false
}

// deliveryStory finds the MessageRouted that asked for the delivery and the
// message's receipt.
func deliveryStory(j outbox.Job, t webhookTarget) (*outbox.Decoded, *gateway.MessageReceived) {
	var routed *outbox.Decoded
	received := &gateway.MessageReceived{}
	seen := false
	for i := range j.History {
		d := &j.History[i]
		switch m := d.Payload.(type) {
		case *gateway.MessageReceived:
			if !seen {
				received, seen = m, true
			}
		case *gateway.MessageRouted:
			if routed == nil && deliveryID(d.Event.ID, t.office, t.url) == j.ID {
				routed = d
			}
		}
	}
	return routed, received
}

func deliveryID(causeID, office, url string) string {
	sum := sha256.Sum256([]byte(causeID + "\x00" + office + "\x00" + url))
	return "dlv-" + hex.EncodeToString(sum[:16])
}

func webhookPayload(id, office string, cause *eventstore.Event, m *gateway.MessageRouted, r *gateway.MessageReceived) WebhookPayload {
	base := "/offices/" + office + "/messages/" + cause.Stream
	return WebhookPayload{DeliveryID: id, Event: "message.routed", Office: office, Stream: cause.Stream,
		Message: WebhookMessage{Channel: r.Channel, From: r.From, To: r.To, Subject: r.Subject, ReceivedAt: r.ReceivedAt, Parts: r.Parts},
		Links:   map[string]string{"message": base, "raw": base + "/raw", "ack": base + "/ack", "report": base + "/report"},
		Routing: offices.Routing{Rule: m.Rule, RulesVersion: m.RulesVersion, DecidedBy: m.DecidedBy, Reason: m.Reason, EventID: cause.ID}}
}

// statusError is a receiver's answer outside 2xx.
type statusError struct {
	code   int
	status string
}

func (e statusError) Error() string { return "answered " + e.status }

// post makes one delivery and returns the receiver's status.
func post(ctx context.Context, client *http.Client, url string, secret []byte, id string, body []byte, now time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, outbox.Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Poststelle-Webhook/1")
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(EventHeader, "message.routed")
	req.Header.Set(SignatureHeader, Sign(secret, now, body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError{resp.StatusCode, resp.Status}
	}
	return resp.StatusCode, nil
}

// Sign returns the SignatureHeader value for body at time t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors from VerifySignature.
var (
	ErrBadSignature = errors.New("officeapi: webhook signature does not match")
	ErrStale        = errors.New("officeapi: webhook signature timestamp outside the tolerance")
)

// VerifySignature checks a SignatureHeader value as a receiver must: the MAC
// over "<t>.<body>" and that t is within tolerance of now (default 5
// minutes). Replay protection is complete when the receiver also refuses a
// delivery id it processed before.
func VerifySignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	var ts string
	var sigs [][]byte
	for f := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		ok = ok || hmac.Equal(s, want)
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
