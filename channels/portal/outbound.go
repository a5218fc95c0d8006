package portal

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// Answers to a portal message go back through FIT-Connect's reply mechanism
// (Rückkanal, Submission API: POST /replies, PUT /replies/{id}/attachments/{aid},
// PUT /replies/{id}; the platform then writes submit-reply into the case's
// event log, the sender's side accept-reply or reject-reply). The reply is
// encrypted to the key the submission's metadata named in
// replyChannel.fitConnect.encryptionPublicKey (metadata schema 2.x). The reply
// API is not in the Submission API v1 the Python SDK 0.4.2 speaks; these
// paths and bodies are the closest documented form (FITKO's "Rückkanal"
// pages and the fitconnect package's client), unverified against the
// platform.
//
// The reply's data is a small JSON document of the answer (replyDataSchema):
// an office writes free text, not the Fachdaten of a process standard.

// replyDataSchema names the JSON of a reply's data.
const replyDataSchema = "urn:poststelle:fitconnect:reply-text:1"

// replyMetadataSchema is the metadata schema of a reply.
const replyMetadataSchema = metadataSchemaPrefix + "2.1.0/metadata.schema.json"

// replyAPI is the reply part of the Submission API.
type replyAPI interface {
	// CreateReply announces a reply to a submission with its attachments'
	// ids and returns the platform's reply id and, when it says, the case.
	CreateReply(ctx context.Context, submissionID string, attachmentIDs []string) (replyID, caseID string, err error)
	UploadReplyAttachment(ctx context.Context, replyID, attachmentID, jwe string) error
	SubmitReply(ctx context.Context, replyID, encryptedMetadata, encryptedData string) error
	// EventLog returns the case's event log (the reply's events are in it).
	EventLog(ctx context.Context, caseID string) ([]string, error)
	// PlatformKeys are the platform's signature keys, for submit-reply.
	PlatformKeys(ctx context.Context) (*fitconnect.KeySet, error)
	RefreshToken(ctx context.Context) error
}

// Outbound sends answers to portal messages. It implements replies.Outbound.
//
// The platform takes no id of ours for a reply: it gives the reply its own
// id when it is created (POST /replies), and only the final PUT submits it.
// So the outbound records that id (gateway.ReplyIDAssigned, in the answered
// message's stream) before it uploads or submits anything, and an attempt
// that finds one looks the reply up in the case's event log first: a reply
// already submitted is recorded as sent, never submitted twice.
type Outbound struct {
	api      replyAPI
	events   eventstore.Log
	registry *gateway.Registry
	blobs    blob.Backend
	log      *slog.Logger
	evidence *gateway.EvidenceRecorder
	rec      replyEvidence
	tenant   string
	now      func() time.Time
	maxSize  int64
}

// OutboundDeps are the sender's collaborators.
type OutboundDeps struct {
	Blobs  blob.Backend
	Logger *slog.Logger
	// Evidence, when set, records the reply's events in the event log as
	// delivery evidence of the answer, and its Log is where the outbound
	// records the platform's id of a reply before submitting it (without
	// it an attempt after a crash may send the answer twice).
	Evidence *gateway.EvidenceRecorder
	Tenant   string
}

// NewOutbound builds the sender of cfg; nil when cfg does not enable the
// channel.
func NewOutbound(cfg Config, deps OutboundDeps) (*Outbound, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	secret, err := readSecret("client_secret_file", cfg.ClientSecretFile)
	if err != nil {
		return nil, err
	}
	return newOutbound(cfg, deps, newHTTPPlatform(&cfg, secret))
}

func newOutbound(cfg Config, deps OutboundDeps, api replyAPI) (*Outbound, error) {
	if deps.Blobs == nil {
		return nil, errors.New("portal: outbound without a blob store")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Tenant == "" {
		deps.Tenant = gateway.DefaultTenant
	}
	senders, err := loadSenderKeys(&cfg)
	if err != nil {
		return nil, err
	}
	o := &Outbound{api: api, blobs: deps.Blobs, evidence: deps.Evidence, tenant: deps.Tenant, now: time.Now, registry: gateway.NewRegistry(),
		maxSize: cfg.maxSize(), log: deps.Logger.With("channel", "portal", "role", "sender")}
	o.rec = replyEvidence{evidence: deps.Evidence, blobs: deps.Blobs, tenant: deps.Tenant, log: o.log, senders: senders}
	if deps.Evidence != nil {
		o.events = deps.Evidence.Log
	}
	return o, nil
}

// ErrNoFITConnectReplyChannel: the submission named no FIT-Connect reply
// channel, so the answer cannot go back on the portal.
var ErrNoFITConnectReplyChannel = errors.New("the submission named no FIT-Connect reply channel")

// call repeats f once after renewing a refused token.
func (o *Outbound) call(ctx context.Context, f func() error) error {
	err := f()
	if !errors.Is(err, errUnauthorized) {
		return err
	}
	if rerr := o.api.RefreshToken(ctx); rerr != nil {
		return fmt.Errorf("refreshing the access token: %w", rerr)
	}
	return f()
}

// Send implements replies.Outbound.
func (o *Outbound) Send(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (replies.SentInfo, error) {
	if orig == nil || orig.Channel != gateway.ChannelPortal || orig.Portal == nil || orig.Portal.SubmissionID == "" {
		return replies.SentInfo{}, replies.Permanent(fmt.Errorf("portal: answer %s: the answered message is not a FIT-Connect submission", req.ReplyID))
	}
	if req.EEB != nil {
		return replies.SentInfo{}, replies.Permanent(fmt.Errorf("portal: answer %s: an eEB is an EGVP answer", req.ReplyID))
	}
	sub := orig.Portal.SubmissionID
	key, err := o.replyKey(ctx, orig)
	if err != nil {
		return replies.SentInfo{}, replies.Permanent(fmt.Errorf("portal: answer %s to submission %s: %w", req.ReplyID, sub, err))
	}
	body, err := o.read(ctx, req.Body)
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("portal: answer %s: reading the body: %w", req.ReplyID, err)
	}
	data, err := json.Marshal(struct {
		Schema       string `json:"$schema"`
		SubmissionID string `json:"submissionId"`
		Subject      string `json:"subject,omitempty"`
		Text         string `json:"text"`
	}{replyDataSchema, sub, req.Subject, string(body)})
	if err != nil {
		return replies.SentInfo{}, replies.Permanent(err)
	}
	type att struct {
		id, jwe string
		meta    map[string]any
	}
	var atts []att
	var ids []string
	for i, p := range req.Attachments {
		b, err := o.read(ctx, p.Blob)
		if err != nil {
			return replies.SentInfo{}, fmt.Errorf("portal: answer %s: reading attachment %d: %w", req.ReplyID, i+1, err)
		}
		jwe, err := encryptTo(b, key)
		if err != nil {
			return replies.SentInfo{}, replies.Permanent(fmt.Errorf("portal: answer %s: encrypting attachment %d: %w", req.ReplyID, i+1, err))
		}
		id := replyAttachmentID(req.ReplyID, i)
		mt := p.MediaType
		if !mediaTypeR.MatchString(mt) {
			mt = "application/octet-stream"
		}
		m := map[string]any{"attachmentId": id, "hash": map[string]string{"type": "sha512", "content": sha512Hex(b)},
			"purpose": "attachment", "mimeType": mt}
		if p.Filename != "" {
			m["filename"] = p.Filename
		}
		atts = append(atts, att{id: id, jwe: jwe, meta: m})
		ids = append(ids, id)
	}
	attMeta := make([]any, 0, len(atts))
	for _, a := range atts {
		attMeta = append(attMeta, a.meta)
	}
	md, err := json.Marshal(map[string]any{"$schema": replyMetadataSchema, "contentStructure": map[string]any{
		"data": map[string]any{"hash": map[string]string{"type": "sha512", "content": sha512Hex(data)},
			"submissionSchema": map[string]string{"schemaUri": replyDataSchema, "mimeType": "application/json"}},
		"attachments": attMeta}})
	if err != nil {
		return replies.SentInfo{}, replies.Permanent(err)
	}
	encMeta, err := encryptTo(md, key)
	if err == nil {
		var encData string
		if encData, err = encryptTo(data, key); err == nil {
			return o.send(ctx, req, orig, ids, func(replyID string) error {
				for _, a := range atts {
					if err := o.call(ctx, func() error { return o.api.UploadReplyAttachment(ctx, replyID, a.id, a.jwe) }); err != nil {
						return fmt.Errorf("uploading attachment %s: %w", a.id, err)
					}
				}
				return o.call(ctx, func() error { return o.api.SubmitReply(ctx, replyID, encMeta, encData) })
			})
		}
	}
	return replies.SentInfo{}, replies.Permanent(fmt.Errorf("portal: answer %s: encrypting: %w", req.ReplyID, err))
}

func (o *Outbound) send(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived, ids []string,
	upload func(replyID string) error) (replies.SentInfo, error) {
	sub := orig.Portal.SubmissionID
	h, err := o.history(ctx, req, orig)
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("portal: answer %s: %w", req.ReplyID, err)
	}
	if n := len(h.assigned); n > 0 {
		// An earlier attempt created the reply at the platform and may have
		// submitted it: find it there before creating another.
		a := h.assigned[n-1]
		info, done, err := o.resume(ctx, req, orig, a, upload)
		if done || err != nil {
			return info, err
		}
	}
	var replyID, caseID string
	err = o.call(ctx, func() error {
		var err error
		replyID, caseID, err = o.api.CreateReply(ctx, sub, ids)
		return err
	})
	if errors.Is(err, errNotFound) {
		return replies.SentInfo{}, replies.Permanent(fmt.Errorf("portal: answer %s: the platform knows submission %s no more: %w", req.ReplyID, sub, err))
	}
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("portal: answer %s: creating the reply: %w", req.ReplyID, err)
	}
	if caseID == "" {
		caseID = orig.Portal.CaseID
	}
	if err := o.assign(ctx, req, h, replyID, caseID); err != nil {
		// The reply stays an unsubmitted draft at the platform: nothing
		// reached the citizen, and the next attempt creates another.
		return replies.SentInfo{}, fmt.Errorf("portal: answer %s (reply %s): %w", req.ReplyID, replyID, err)
	}
	if err := upload(replyID); err != nil {
		return replies.SentInfo{}, fmt.Errorf("portal: answer %s (reply %s): %w", req.ReplyID, replyID, err)
	}
	return o.sent(ctx, req, sub, replyID, caseID, ""), nil
}

// sent records the reply's events so far and reports the reply as sent.
func (o *Outbound) sent(ctx context.Context, req *gateway.ReplyRequested, sub, replyID, caseID, how string) replies.SentInfo {
	n := o.recordEvents(ctx, req, replyID, caseID)
	o.log.Info("answer sent through FIT-Connect", "replyId", req.ReplyID, "fitconnectReplyId", replyID, "submissionId", sub,
		"caseId", caseID, "events", n, "resumed", how != "")
	resp := fmt.Sprintf("FIT-Connect reply %s submitted to case %s", replyID, caseID)
	if how != "" {
		resp += " (" + how + ")"
	}
	return replies.SentInfo{ChannelMessageID: replyID, Response: resp}
}

// replyHistory is what the log holds of an answer before an attempt: the
// ReplyRequested event (the cause of the ids recorded for it) and the
// platform ids earlier attempts were given, oldest first.
type replyHistory struct {
	cause    *eventstore.Event
	assigned []gateway.ReplyIDAssigned
}

// history reads the answered message's stream. Without a log (tests of the
// encryption alone) there is no history and sending is at least once.
func (o *Outbound) history(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (replyHistory, error) {
	var h replyHistory
	if o.events == nil {
		return h, nil
	}
	stream := gateway.StreamID(o.tenant, gateway.MessageKey(gateway.ChannelPortal, orig.Portal.DestinationID+":"+orig.Portal.SubmissionID))
	evs, err := o.events.ReadStream(ctx, o.tenant, stream)
	if err != nil {
		return h, fmt.Errorf("reading the message's stream: %w", err)
	}
	for i := range evs {
		switch evs[i].Type {
		case (gateway.ReplyRequested{}).EventType(), (gateway.ReplyIDAssigned{}).EventType():
		default:
			continue
		}
		p, err := o.registry.Decode(&evs[i])
		if err != nil {
			return h, fmt.Errorf("reading the message's stream: %w", err)
		}
		switch m := p.(type) {
		case *gateway.ReplyRequested:
			if m.ReplyID == req.ReplyID && h.cause == nil {
				h.cause = &evs[i]
			}
		case *gateway.ReplyIDAssigned:
			if m.ReplyID == req.ReplyID && m.Channel == gateway.ChannelPortal && m.PeerID != "" {
				h.assigned = append(h.assigned, *m)
			}
		}
	}
	if h.cause == nil {
		return h, fmt.Errorf("the stream %s has no ReplyRequested %s", stream, req.ReplyID)
	}
	return h, nil
}

// assignName is the handler name in the ids of the ReplyIDAssigned events
// the outbound appends; it must never change.
const assignName = "portal/reply-id"

// assign records, durable before anything is uploaded or submitted, that
// the answer is reply replyID at the platform.
func (o *Outbound) assign(ctx context.Context, req *gateway.ReplyRequested, h replyHistory, replyID, caseID string) error {
	if o.events == nil {
		return nil
	}
	p := &gateway.ReplyIDAssigned{ReplyID: req.ReplyID, Channel: gateway.ChannelPortal, PeerID: replyID,
		References: []gateway.EvidenceReference{{Kind: "caseId", Value: caseID}}}
	ev, err := gateway.Follow(assignName, h.cause, len(h.assigned)+1, p)
	if err != nil {
		return err
	}
	res, err := o.events.Append(ctx, ev)
	if err != nil {
		return fmt.Errorf("recording the reply id before submitting: %w", err)
	}
	if len(res) == 1 && res[0].Existing {
		// Another attempt, which this one did not see, recorded its own
		// reply under the same place: that one is the answer's.
		return errors.New("another attempt recorded a reply id for this answer at the same time")
	}
	return nil
}

// resume finishes an attempt that created reply a.PeerID: when the case's
// event log shows the platform's submit-reply for it, the answer was sent
// and is not sent again; otherwise its attachments are uploaded again (the
// PUTs replace) and it is submitted. A reply the platform no longer knows
// (404), never submitted, leaves done false: a new one is created.
func (o *Outbound) resume(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived, a gateway.ReplyIDAssigned,
	upload func(string) error) (replies.SentInfo, bool, error) {
	sub := orig.Portal.SubmissionID
	caseID := orig.Portal.CaseID
	for _, r := range a.References {
		if r.Kind == "caseId" && r.Value != "" {
			caseID = r.Value
		}
	}
	submitted, err := o.submitted(ctx, caseID, a.PeerID)
	if err != nil {
		return replies.SentInfo{}, false, fmt.Errorf("portal: answer %s: looking for reply %s in the case's event log: %w", req.ReplyID, a.PeerID, err)
	}
	if submitted {
		o.log.Warn("the answer was submitted before the gateway stopped; recorded as sent, not sent again", "replyId", req.ReplyID,
			"fitconnectReplyId", a.PeerID, "caseId", caseID)
		return o.sent(ctx, req, sub, a.PeerID, caseID, "found submitted in the case's event log; not sent again"), true, nil
	}
	err = upload(a.PeerID)
	switch {
	case err == nil:
		return o.sent(ctx, req, sub, a.PeerID, caseID, "an earlier attempt's reply, submitted now"), true, nil
	case errors.Is(err, errNotFound):
		o.log.Warn("the reply an earlier attempt created is gone at the platform; creating another", "replyId", req.ReplyID,
			"fitconnectReplyId", a.PeerID, "err", err)
		return replies.SentInfo{}, false, nil
	default:
		// Perhaps submitted and not yet in the event log: the next attempt
		// looks again, and never creates a second reply while this one
		// exists.
		return replies.SentInfo{}, false, fmt.Errorf("portal: answer %s (reply %s of an earlier attempt): %w", req.ReplyID, a.PeerID, err)
	}
}

// submitted reports whether the case's event log holds a submit-reply for
// the reply. The SET's signature is not checked here: whoever wrote it, the
// platform has the reply as submitted, and submitting again cannot help.
func (o *Outbound) submitted(ctx context.Context, caseID, replyID string) (bool, error) {
	if caseID == "" || !acceptableID(caseID) {
		return false, fmt.Errorf("no usable case id %q", clipText(caseID, 80))
	}
	var events []string
	if err := o.call(ctx, func() error {
		var err error
		events, err = o.api.EventLog(ctx, caseID)
		return err
	}); err != nil {
		return false, err
	}
	for _, e := range events {
		p, err := parseSET(e)
		if err != nil || p.Sub != "reply:"+replyID {
			continue
		}
		if _, ok := p.Events[eventPrefix+"submit-reply"]; ok {
			return true, nil
		}
	}
	return false, nil
}

// replyKey is the reply key the answered submission's metadata names.
func (o *Outbound) replyKey(ctx context.Context, orig *gateway.MessageReceived) (*rsa.PublicKey, error) {
	var mdPart *gateway.Part
	for i := range orig.Parts {
		if orig.Parts[i].Path == MetadataPath {
			mdPart = &orig.Parts[i]
		}
	}
	kind := orig.Portal.ReplyChannel
	if kind == "" {
		kind = "none"
	}
	if mdPart == nil || mdPart.Blob.SHA256 == "" {
		return nil, fmt.Errorf("%w (its metadata could not be read)", ErrNoFITConnectReplyChannel)
	}
	doc, err := o.read(ctx, mdPart.Blob)
	if err != nil {
		return nil, fmt.Errorf("reading the submission's metadata: %w", err)
	}
	var md struct {
		ReplyChannel struct {
			FitConnect *struct {
				EncryptionPublicKey json.RawMessage `json:"encryptionPublicKey"`
			} `json:"fitConnect"`
		} `json:"replyChannel"`
	}
	if err := json.Unmarshal(doc, &md); err != nil || md.ReplyChannel.FitConnect == nil {
		return nil, fmt.Errorf("%w (its reply channel: %s); answer it on another channel", ErrNoFITConnectReplyChannel, kind)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(md.ReplyChannel.FitConnect.EncryptionPublicKey); err != nil {
		return nil, fmt.Errorf("the reply key is not a JWK: %w", err)
	}
	pub, ok := k.Key.(*rsa.PublicKey)
	switch {
	case !ok:
		return nil, fmt.Errorf("the reply key is a %T, want a public RSA key", k.Key)
	case k.Algorithm != "" && k.Algorithm != jweAlg:
		return nil, fmt.Errorf("the reply key's alg is %q, want %s", k.Algorithm, jweAlg)
	case pub.N.BitLen() < 2048:
		return nil, fmt.Errorf("the reply key has %d bits, want at least 2048", pub.N.BitLen())
	}
	return pub, nil
}

func (o *Outbound) read(ctx context.Context, ref blob.Ref) ([]byte, error) {
	if ref.SHA256 == "" {
		return nil, nil
	}
	rc, err := o.blobs.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, o.maxSize+1))
	if err == nil && int64(len(b)) > o.maxSize {
		err = fmt.Errorf("more than max_submission_size (%d bytes)", o.maxSize)
	}
	return b, err
}

// encryptTo encrypts plain to key as FIT-Connect requires: compact JWE,
// RSA-OAEP-256, A256GCM, no compression.
func encryptTo(plain []byte, key *rsa.PublicKey) (string, error) {
	enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: key}, nil)
	if err != nil {
		return "", err
	}
	obj, err := enc.Encrypt(plain)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// replyAttachmentID is the id of an answer's i-th attachment: a UUID derived
// from the reply id, the same on every attempt.
func replyAttachmentID(replyID string, i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "poststelle-portal-reply-attachment\x00%s\x00%d", replyID, i))
	x := hex.EncodeToString(h[:16])
	return x[:8] + "-" + x[8:12] + "-8" + x[13:16] + "-" + fmt.Sprintf("%x", 0x8|(h[8]&0x3)) + x[17:20] + "-" + x[20:32]
}

func sha512Hex(b []byte) string {
	h := sha512.Sum512(b)
	return hex.EncodeToString(h[:])
}

// recordEvents records the reply's events in the case's event log as
// delivery evidence of the answer; it returns how many it recorded. Events
// that arrive later (accept-reply, reject-reply) are recorded by the
// inbound's reply watch (replyWatch).
func (o *Outbound) recordEvents(ctx context.Context, req *gateway.ReplyRequested, replyID, caseID string) int {
	if o.evidence == nil || caseID == "" || !acceptableID(caseID) {
		return 0
	}
	var events []string
	err := o.call(ctx, func() error {
		var err error
		events, err = o.api.EventLog(ctx, caseID)
		return err
	})
	if err != nil {
		o.log.Warn("reading the reply's events", "replyId", req.ReplyID, "caseId", caseID, "err", err)
		return 0
	}
	if len(events) > maxEventLogEntries {
		events = events[:maxEventLogEntries]
	}
	platformKeys, keysErr := o.api.PlatformKeys(ctx)
	n, _ := o.rec.record(ctx, req.ReplyID, replyID, events, platformKeys, keysErr)
	return n
}
