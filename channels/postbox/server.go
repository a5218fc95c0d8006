package postbox

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Inbound is the postbox API: the submission endpoint (the channel's
// intake) and, when the gateway gives it the log and the state database,
// the answer queues.
type Inbound struct {
	cfg     Config
	deps    gateway.IntakeDeps
	clients []client
	ln      net.Listener
	srv     *http.Server
	runner  *projection.Runner
	limiter limiter
}

type client struct {
	Client
	hash [32]byte
}

// New builds the API from its section and listens on cfg.Listen.
func New(cfg Config, deps gateway.IntakeDeps) (*Inbound, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deps, err := deps.WithDefaults()
	if err != nil {
		return nil, err
	}
	in := &Inbound{cfg: cfg, deps: deps, limiter: limiter{now: deps.Now, next: map[string]time.Time{}}}
	for _, c := range cfg.Clients {
		h, _ := parseTokenHash(c.TokenHash) // checked by Validate
		in.clients = append(in.clients, client{Client: c, hash: h})
	}
	if deps.Log != nil && deps.State != nil {
		in.runner = &projection.Runner{Log: deps.Log, DB: deps.State, Registry: gateway.NewRegistry(), Logger: deps.Logger}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	in.ln = ln
	in.srv = &http.Server{Handler: in.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn)}
	return in, nil
}

// Addr is the address the API listens on.
func (in *Inbound) Addr() net.Addr { return in.ln.Addr() }

// Run serves until ctx ends; the answer queue's projection runs alongside.
func (in *Inbound) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if in.runner != nil {
		if err := in.runner.Setup(ctx, Answers{}); err != nil {
			in.ln.Close()
			return fmt.Errorf("postbox: answer queue: %w", err)
		}
		wg.Go(func() {
			if err := in.runner.Run(ctx, Answers{}); err != nil && ctx.Err() == nil {
				in.deps.Logger.Error("postbox answer queue stopped", "err", err)
			}
		})
	}
	wg.Go(func() {
		<-ctx.Done()
		shut, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = in.srv.Shutdown(shut)
	})
	var err error
	if in.cfg.TLSCertFile != "" {
		err = in.srv.ServeTLS(in.ln, in.cfg.TLSCertFile, in.cfg.TLSKeyFile)
	} else {
		err = in.srv.Serve(in.ln)
	}
	cancel()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("postbox: serve: %w", err)
}

// Handler is the API's HTTP handler.
func (in *Inbound) Handler() http.Handler {
	mux := http.NewServeMux()
	// healthz needs no token and reveals nothing: for supervisors and tests.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /v1/messages", in.auth(in.submit))
	mux.HandleFunc("GET /v1/answers", in.auth(in.listAnswers))
	mux.HandleFunc("GET /v1/answers/{id}", in.auth(in.getAnswer))
	mux.HandleFunc("GET /v1/answers/{id}/body", in.auth(in.getBody))
	mux.HandleFunc("GET /v1/answers/{id}/attachments/{n}", in.auth(in.getAttachment))
	mux.HandleFunc("DELETE /v1/answers/{id}", in.auth(in.acknowledge))
	mux.HandleFunc("POST /v1/answers/{id}/acknowledgement", in.auth(in.acknowledge))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "not-found", "no such resource")
	})
	return mux
}

type authedHandler func(w http.ResponseWriter, r *http.Request, c *client)

// auth admits a request with a client's bearer token (RFC 6750 section
// 2.1) and within the client's rate. The token is compared by hash in
// constant time against every client, and is never logged.
func (in *Inbound) auth(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var found *client
		if ok {
			sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			for i := range in.clients {
				if subtle.ConstantTimeCompare(sum[:], in.clients[i].hash[:]) == 1 {
					found = &in.clients[i]
				}
			}
		}
		if found == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="poststelle-postbox"`)
			problem(w, http.StatusUnauthorized, "unauthenticated", "a client's bearer token is required")
			return
		}
		if wait, ok := in.limiter.allow(found); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			problem(w, http.StatusTooManyRequests, "rate-limited", "the client's request rate is exceeded")
			return
		}
		h(w, r, found)
	}
}

// limiter is a per-client token bucket (as a GCRA: one theoretical arrival
// time per client), allowing a burst of limiterBurst requests. Its state is
// only a rate, so memory is the right place for it.
type limiter struct {
	now  func() time.Time
	mu   sync.Mutex
	next map[string]time.Time
}

const limiterBurst = 20

func (l *limiter) allow(c *client) (time.Duration, bool) {
	per, unlimited := c.rate()
	if unlimited {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	tat := l.next[c.ID]
	if tat.Before(now) {
		tat = now
	}
	if wait := tat.Sub(now) - limiterBurst*per; wait > 0 {
		return wait, false
	}
	l.next[c.ID] = tat.Add(per)
	return 0, true
}

// submitted is the answer to a submission.
type submitted struct {
	MessageID string `json:"messageId"`
	ReceiptID string `json:"receiptId"`
	Duplicate bool   `json:"duplicate"`
}

// maxIdempotencyKey caps the Idempotency-Key header.
const maxIdempotencyKey = 255

// submit is POST /v1/messages, the channel contract of gateway/channel.go
// step by step: store, key, record, acknowledge.
func (in *Inbound) submit(w http.ResponseWriter, r *http.Request, c *client) {
	ctx := r.Context()
	// The Idempotency-Key (draft-ietf-httpapi-idempotency-key-header,
	// section 2) is the message key: the portal sends the same key when it
	// retries, whatever else differs (the multipart boundary does).
	key := r.Header.Get("Idempotency-Key")
	if key = strings.Trim(key, `"`); key == "" || len(key) > maxIdempotencyKey || !visibleASCII(key) {
		problem(w, http.StatusBadRequest, "idempotency-key", fmt.Sprintf("an Idempotency-Key header of 1 to %d visible ASCII characters is required", maxIdempotencyKey))
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		problem(w, http.StatusUnsupportedMediaType, "media-type", "the body must be multipart/form-data")
		return
	}
	limit := in.cfg.maxBytes()
	if r.ContentLength > limit {
		problem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the message is larger than %d bytes", limit))
		return
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	// 1. The request body, exactly as transmitted, into the blob store.
	raw, err := in.deps.Blobs.Put(ctx, body, limit)
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, blob.ErrTooLarge) || errors.As(err, &maxErr):
		problem(w, http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("the message is larger than %d bytes", limit))
		return
	case err != nil && ctx.Err() != nil:
		return // the portal went away; it retries with the same key
	case err != nil:
		in.deps.Logger.Error("postbox: store a submission", "client", c.ID, "err", err)
		retryLater(w, "the message could not be stored; retry with the same Idempotency-Key")
		return
	}
	sub, err := in.parse(ctx, raw, params["boundary"])
	var reqErr *requestError
	switch {
	case errors.As(err, &reqErr):
		problem(w, reqErr.status, reqErr.slug, reqErr.detail)
		return
	case err != nil:
		in.deps.Logger.Error("postbox: store attachments", "client", c.ID, "err", err)
		retryLater(w, "the attachments could not be stored; retry with the same Idempotency-Key")
		return
	}
	// 2. The message key, from what the portal sends again on a retry.
	msgKey := gateway.MessageKey(gateway.ChannelPostbox, c.ID+"/"+key)
	msg := in.receipt(r, c, key, raw, sub)
	// 3. Record.
	rcpt, err := in.deps.Intake.Record(ctx, in.deps.Tenant, msgKey, msg)
	switch {
	case errors.Is(err, eventstore.ErrInvalidEvent):
		in.deps.Logger.Error("postbox: the log refused a submission", "client", c.ID, "err", err)
		problem(w, http.StatusUnprocessableEntity, "refused", "the message could not be recorded as submitted")
		return
	case err != nil:
		in.deps.Logger.Error("postbox: record a submission", "client", c.ID, "err", err)
		retryLater(w, "the message is not recorded; retry with the same Idempotency-Key")
		return
	}
	if in.deps.AfterRecord != nil {
		in.deps.AfterRecord(rcpt)
	}
	// 4. Acknowledge: only now is the message the authority's.
	stream := gateway.StreamID(in.deps.Tenant, msgKey)
	if rcpt.Duplicate && !in.sameSubmission(ctx, stream, msg) {
		// draft-ietf-httpapi-idempotency-key-header section 2.7: a key
		// reused for another request is 422. The first message stands.
		problem(w, http.StatusUnprocessableEntity, "idempotency-key-reused",
			"this Idempotency-Key was used for another message; the first one is recorded")
		return
	}
	in.deps.Logger.Info("postbox message received", "client", c.ID, "stream", stream, "event", rcpt.EventID, "duplicate", rcpt.Duplicate)
	status := http.StatusCreated
	if rcpt.Duplicate {
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/messages/"+stream)
	writeJSON(w, status, submitted{MessageID: stream, ReceiptID: rcpt.EventID, Duplicate: rcpt.Duplicate})
}

// sameSubmission reports whether the message recorded in stream is msg
// again: the same envelope and the same attachments (the raw body differs
// on every retry by its multipart boundary, so it is not compared). Without
// the log (tests of the intake alone), or when the record cannot be read,
// a redelivery counts as the same: the message is recorded either way.
func (in *Inbound) sameSubmission(ctx context.Context, stream string, msg *gateway.MessageReceived) bool {
	if in.deps.Log == nil {
		return true
	}
	evs, err := in.deps.Log.ReadStream(ctx, in.deps.Tenant, stream)
	if err != nil {
		in.deps.Logger.Warn("postbox: read a recorded submission", "stream", stream, "err", err)
		return true
	}
	reg := gateway.NewRegistry()
	for i := range evs {
		if evs[i].Type != (gateway.MessageReceived{}).EventType() {
			continue
		}
		p, err := reg.Decode(&evs[i])
		first, ok := p.(*gateway.MessageReceived)
		if err != nil || !ok {
			return true
		}
		return fingerprint(first) == fingerprint(msg)
	}
	return true
}

// fingerprint is what makes two submissions the same message.
func fingerprint(m *gateway.MessageReceived) string {
	b, _ := json.Marshal(struct {
		ID       string
		From     gateway.Address
		Subject  string
		Metadata map[string]string
		Parts    []gateway.Part
	}{m.SenderMessageID, m.From, m.Subject, m.Metadata, m.Parts})
	return string(b)
}

// parse reads the stored body back and stores each attachment.
func (in *Inbound) parse(ctx context.Context, raw blob.Ref, boundary string) (*submission, error) {
	rc, err := in.deps.Blobs.Open(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("open the stored body: %w", err)
	}
	defer rc.Close()
	return parseSubmission(rc, boundary, in.cfg.maxBytes(), in.cfg.maxAttachments(), func(r io.Reader, max int64) (blob.Ref, error) {
		return in.deps.Blobs.Put(ctx, r, max)
	})
}

// receipt is the MessageReceived of a submission.
func (in *Inbound) receipt(r *http.Request, c *client, key string, raw blob.Ref, sub *submission) *gateway.MessageReceived {
	md := map[string]string{MetaClient: c.ID, MetaIdempotencyKey: key}
	if sub.env.ServiceIdentifier != "" {
		md[MetaServiceIdentifier] = sub.env.ServiceIdentifier
	}
	for k, v := range sub.env.RoutingHints {
		md[MetaHintPrefix+k] = v
	}
	msg := &gateway.MessageReceived{
		Channel:         gateway.ChannelPostbox,
		SenderMessageID: sub.env.SenderReference,
		From:            gateway.Address{Address: sub.env.PostboxReference, Name: sub.env.SenderName},
		Subject:         sub.env.Subject,
		ReceivedAt:      in.deps.Now().UTC(),
		Raw:             raw,
		Parts:           sub.parts,
		Metadata:        md,
		Transport: gateway.TransportEvidence{
			RemoteAddr: r.RemoteAddr,
			// Where the portal keeps it: the client and its key.
			Coordinates: c.ID + "/" + key,
			Envelope:    map[string]string{"client": c.ID, "content-type": truncate(r.Header.Get("Content-Type"), 256)},
		},
	}
	if r.TLS != nil {
		msg.Transport.TLS = tlsString(r)
	}
	if len(sub.parts) == 0 {
		msg.Problems = append(msg.Problems, "the submission has no attachments")
	}
	return msg
}

func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// problemDoc is an RFC 7807 problem details object (section 3.1).
type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// problem answers with application/problem+json (RFC 7807 section 3).
// The type URIs are documented in docs/portal.md.
func problem(w http.ResponseWriter, status int, slug, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problemDoc{Type: "urn:poststelle:postbox:" + slug, Title: http.StatusText(status), Status: status, Detail: detail})
}

func retryLater(w http.ResponseWriter, detail string) {
	w.Header().Set("Retry-After", "5")
	problem(w, http.StatusServiceUnavailable, "retry", detail)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
