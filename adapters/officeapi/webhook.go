package officeapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
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
	"github.com/poststelle/poststelle/gateway/pipeline"
)

// WebhookConfig tunes webhook delivery.
type WebhookConfig struct {
	// Timeout bounds one POST (default 10 s).
	Timeout time.Duration `yaml:"timeout"`
	// Attempts per pipeline run, with doubling backoff from Backoff
	// (default 4 attempts from 500 ms). When they are spent the pipeline
	// retries the whole event, and after its retries the message shows in
	// triage as a processing failure of this handler — while it stays
	// readable in the office's queue.
	Attempts int           `yaml:"attempts"`
	Backoff  time.Duration `yaml:"backoff"`
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 4
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	return c
}

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

// WebhookHandlerName names the webhook handler; it never changes.
const WebhookHandlerName = "officeapi/webhook"

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

// WebhookDeps are the webhook handler's collaborators.
type WebhookDeps struct {
	Log       eventstore.Log
	Directory *offices.Directory
	Client    *http.Client
	Logger    *slog.Logger
	Now       func() time.Time
}

// WebhookHandler is the pipeline handler that pushes each routed message to
// its offices' webhooks and records MessageDelivered{Via: "webhook",
// Target: url} for each accepted (2xx) delivery. Deliveries are at least
// once: receivers deduplicate by the Poststelle-Delivery id.
func WebhookHandler(cfg WebhookConfig, deps WebhookDeps) pipeline.Handler {
	cfg = cfg.withDefaults()
	if deps.Client == nil {
		deps.Client = &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is a failure, never a new target
		}}
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return pipeline.Handler{Name: WebhookHandlerName, Topic: "MessageRouted",
		Handle: func(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
			m, ok := p.(*gateway.MessageRouted)
			if !ok {
				return nil, fmt.Errorf("officeapi: webhook got %T", p)
			}
			return deliverWebhooks(ctx, cfg, deps, cause, m)
		}}
}

func deliverWebhooks(ctx context.Context, cfg WebhookConfig, deps WebhookDeps, cause *eventstore.Event, m *gateway.MessageRouted) ([]gateway.Payload, error) {
	var received *gateway.MessageReceived
	var out []gateway.Payload
	var errs []error
	for _, office := range m.Offices {
		o, ok := deps.Directory.Office(office)
		if !ok || len(o.Webhooks) == 0 {
			continue
		}
		if received == nil {
			r, err := receivedOf(ctx, deps.Log, cause)
			if err != nil {
				return nil, err
			}
			received = r
		}
		for _, hook := range o.Webhooks {
			id := deliveryID(cause.ID, office, hook.URL)
			body, err := json.Marshal(webhookPayload(id, office, cause, m, received))
			if err != nil {
				return nil, err
			}
			if err := postWithRetry(ctx, cfg, deps, hook, id, body); err != nil {
				errs = append(errs, fmt.Errorf("webhook %s of %s: %w", hook.URL, office, err))
				continue
			}
			out = append(out, &gateway.MessageDelivered{Office: office, Via: "webhook", Target: hook.URL})
		}
	}
	if len(errs) > 0 {
		// Deliveries that worked are sent again with the retry; their
		// receivers recognise the delivery id.
		return nil, errors.Join(errs...)
	}
	return out, nil
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

func receivedOf(ctx context.Context, log eventstore.Log, cause *eventstore.Event) (*gateway.MessageReceived, error) {
	evs, err := log.ReadStream(ctx, cause.Tenant, cause.Stream)
	if err != nil {
		return nil, fmt.Errorf("officeapi: read stream %s: %w", cause.Stream, err)
	}
	for i := range evs {
		if evs[i].Type == "MessageReceived" {
			p, err := gateway.NewRegistry().Decode(&evs[i])
			if err != nil {
				return nil, err
			}
			return p.(*gateway.MessageReceived), nil
		}
	}
	return &gateway.MessageReceived{}, nil
}

func postWithRetry(ctx context.Context, cfg WebhookConfig, deps WebhookDeps, hook offices.Webhook, id string, body []byte) error {
	secret, err := hook.LoadSecret()
	if err != nil {
		return err
	}
	backoff := cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := post(ctx, deps, hook.URL, secret, id, body)
		if err == nil {
			return nil
		}
		deps.Logger.Warn("webhook delivery failed", "url", hook.URL, "delivery", id, "attempt", attempt, "err", err)
		if attempt >= cfg.Attempts {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func post(ctx context.Context, deps WebhookDeps, url string, secret []byte, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Poststelle-Webhook/1")
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(EventHeader, "message.routed")
	req.Header.Set(SignatureHeader, Sign(secret, deps.Now(), body))
	resp, err := deps.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
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
