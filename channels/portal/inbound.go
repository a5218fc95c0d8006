package portal

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"os"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/routing"
)

// Limits on what a submission may hold, beyond max_submission_size.
const (
	maxAttachments = 1000
	pageSize       = 100
	maxPages       = 1000
	// maxRemembered bounds the ids this process gave up on.
	maxRemembered = 100_000
	// envelopeOverhead is what the raw envelope adds to the fetched bytes.
	envelopeOverhead = 64 << 10
	// maxBackoff caps the wait after failing polls.
	maxBackoff = 10 * time.Minute
)

// envelopeFormat names the raw envelope's layout (see writeEnvelope).
const envelopeFormat = "poststelle/fitconnect-submission/1"

// Inbound collects a destination's submissions. It implements
// gateway.Inbound.
type Inbound struct {
	cfg     Config
	deps    gateway.IntakeDeps
	api     platform
	keys    keys
	schemas *fitconnect.MetadataValidator
	log     *slog.Logger
	remote  string
	// callbackSecret is the HMAC key of the callbacks; nil without them.
	callbackSecret []byte
	callbacks      *replayCache

	// wake is signalled by a verified callback: poll now.
	wake chan struct{}

	mu sync.Mutex
	// busy are the submissions being taken right now: a callback and a poll,
	// or two callbacks, never fetch one submission twice at once.
	busy map[string]bool
	// left are the submissions this process gave up on (too large, refused
	// by the log): they stay at the platform, unconfirmed, for the operator.
	left map[string]bool
	// failures counts the polls that failed in a row, for the backoff.
	failures int
	// closeKey releases a PKCS#11 token when Run ends.
	closeKey func() error
	// keysCache are the platform's signature keys.
	keysCache *fitconnect.KeySet
	// watch reads the event logs of sent answers; nil without a log and a
	// state database.
	watch *replyWatch
}

// outcome is what became of one submission.
type outcome string

const (
	outcomeConfirmed outcome = "confirmed"   // recorded, decision at the platform
	outcomeRecorded  outcome = "recorded"    // recorded, decision not yet posted
	outcomeBusy      outcome = "busy"        // another goroutine is taking it
	outcomeVanished  outcome = "vanished"    // 404 mid-fetch: nothing recorded
	outcomeLeft      outcome = "left"        // too large or refused: for the operator
	outcomeFailed    outcome = "not fetched" // platform or store failed; next poll
)

// inboundOptions are the collaborators newInbound takes; New builds the
// production ones from the configuration.
type inboundOptions struct {
	api  platform
	keys keys
	// callbackSecret enables the callback handler.
	callbackSecret []byte
	remote         string
}

func newInbound(cfg Config, deps gateway.IntakeDeps, o inboundOptions) (*Inbound, error) {
	deps, err := deps.WithDefaults()
	if err != nil {
		return nil, err
	}
	if o.api == nil || o.keys == nil {
		return nil, errors.New("portal: a platform client and keys are required")
	}
	schemas, err := fitconnect.NewMetadataValidator(fitconnect.MetadataOptions{MaxSize: maxMetadataBytes})
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	senders, err := loadSenderKeys(&cfg)
	if err != nil {
		return nil, err
	}
	in := &Inbound{cfg: cfg, deps: deps, api: o.api, keys: o.keys, schemas: schemas, remote: o.remote,
		log:            deps.Logger.With("destination", cfg.DestinationID),
		callbackSecret: o.callbackSecret, callbacks: newReplayCache(), wake: make(chan struct{}, 1),
		busy: map[string]bool{}, left: map[string]bool{}}
	in.watch = newReplyWatch(in, replyEvidence{evidence: deps.Evidence, blobs: deps.Blobs, tenant: deps.Tenant,
		log: in.log.With("role", "reply-watch"), senders: senders})
	return in, nil
}

// Run polls every poll_interval and whenever a verified callback arrives,
// until ctx ends; with callback_listen it also serves the callbacks, and with
// the log and the state database the reply watch runs alongside.
func (in *Inbound) Run(ctx context.Context) error {
	if in.closeKey != nil {
		defer in.closeKey()
	}
	if in.cfg.CallbackListen != "" {
		stop, err := in.serveCallbacks(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	if in.watch != nil {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := in.watch.run(ctx); err != nil {
				in.log.Error("the reply watch stopped", "err", err)
			}
		}()
		defer func() { cancel(); <-done }()
	}
	for {
		wait := in.cfg.pollInterval()
		if err := in.Poll(ctx); err != nil && ctx.Err() == nil {
			wait = in.backoff()
			in.log.Warn("polling the Submission API", "err", err, "retryIn", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-in.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// backoff is the wait after a failed poll: the poll interval, doubled with
// each failure in a row, at most maxBackoff.
func (in *Inbound) backoff() time.Duration {
	in.mu.Lock()
	defer in.mu.Unlock()
	d := in.cfg.pollInterval()
	for i := 1; i < in.failures && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// Poll lists the destination's submissions and takes each once. A submission
// that fails stays at the platform and is taken again at the next poll.
func (in *Inbound) Poll(ctx context.Context) error {
	err := in.poll(ctx)
	in.mu.Lock()
	if err != nil {
		in.failures++
	} else {
		in.failures = 0
	}
	in.mu.Unlock()
	return err
}

func (in *Inbound) poll(ctx context.Context) error {
	var refs []submissionRef
	seen := map[string]bool{}
	for page, offset := 0, 0; page < maxPages; page++ {
		var p submissionPage
		err := in.call(ctx, func() error {
			var err error
			p, err = in.api.ListSubmissions(ctx, in.cfg.DestinationID, offset, pageSize)
			return err
		})
		if err != nil {
			return fmt.Errorf("portal: listing the submissions: %w", err)
		}
		for _, r := range p.Submissions {
			if !seen[r.SubmissionID] {
				seen[r.SubmissionID] = true
				refs = append(refs, r)
			}
		}
		offset += len(p.Submissions)
		if len(p.Submissions) == 0 || offset >= p.TotalCount {
			break
		}
	}
	var errs []error
	for _, r := range refs {
		if ctx.Err() != nil {
			break
		}
		if r.DestinationID != "" && !strings.EqualFold(r.DestinationID, in.cfg.DestinationID) {
			in.log.Warn("the platform listed a submission of another destination; skipped", "submissionId", r.SubmissionID,
				"listedDestination", r.DestinationID)
			continue
		}
		if o, err := in.take(ctx, r.SubmissionID); err != nil {
			in.log.Warn("submission not taken; it stays at the platform", "submissionId", r.SubmissionID, "outcome", o, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// call runs f, and once more after refreshing the access token when the
// platform refused it.
func (in *Inbound) call(ctx context.Context, f func() error) error {
	err := f()
	if !errors.Is(err, errUnauthorized) {
		return err
	}
	in.log.Info("access token refused; fetching a new one")
	if rerr := in.api.RefreshToken(ctx); rerr != nil {
		return fmt.Errorf("refreshing the access token: %w", rerr)
	}
	return f()
}

func (in *Inbound) isLeft(id string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.left[id]
}

func (in *Inbound) leave(id, why string, err error) {
	in.mu.Lock()
	if len(in.left) < maxRemembered {
		in.left[id] = true
	}
	in.mu.Unlock()
	in.log.Error("submission left unconfirmed at the platform for the operator", "submissionId", id, "reason", why, "err", err)
}

// acquire marks id busy; false when it already is.
func (in *Inbound) acquire(id string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.busy[id] || in.left[id] {
		return false
	}
	in.busy[id] = true
	return true
}

func (in *Inbound) release(id string) {
	in.mu.Lock()
	delete(in.busy, id)
	in.mu.Unlock()
}

// fetched is a submission as fetched: its JSON and its attachments' JWEs in
// temporary files, removed by close.
type fetched struct {
	subJSON     []byte
	sub         submission
	attachments []fetchedAttachment
	dir         string
}

type fetchedAttachment struct {
	id   string
	file string
	size int64
}

func (f *fetched) close() {
	if f.dir != "" {
		os.RemoveAll(f.dir)
	}
}

// take fetches, stores, records and confirms one submission, in that order.
func (in *Inbound) take(ctx context.Context, id string) (outcome, error) {
	if !acceptableID(id) {
		in.leave(id, "not a submission id", nil)
		return outcomeLeft, nil
	}
	if !in.acquire(id) {
		if in.isLeft(id) {
			return outcomeLeft, nil
		}
		return outcomeBusy, nil
	}
	defer in.release(id)
	f, err := in.fetch(ctx, id)
	if f != nil {
		defer f.close()
	}
	switch {
	case errors.Is(err, errNotFound):
		in.log.Warn("the submission vanished while it was fetched; nothing recorded, nothing confirmed", "submissionId", id, "err", err)
		return outcomeVanished, nil
	case errors.Is(err, blob.ErrTooLarge):
		in.leave(id, "larger than max_submission_size", err)
		return outcomeLeft, nil
	case err != nil:
		return outcomeFailed, fmt.Errorf("portal: fetching submission %s: %w", id, err)
	}
	raw, err := in.storeEnvelope(ctx, f)
	if errors.Is(err, blob.ErrTooLarge) {
		in.leave(id, "larger than max_submission_size", err)
		return outcomeLeft, nil
	}
	if err != nil {
		return outcomeFailed, fmt.Errorf("portal: storing submission %s: %w", id, err)
	}
	events, logErr := in.eventLog(ctx, f.sub.CaseID)
	msg := in.receipt(ctx, raw, f, events, logErr)
	key := gateway.MessageKey(gateway.ChannelPortal, in.cfg.DestinationID+":"+id)
	rc, err := in.deps.Intake.Record(ctx, in.deps.Tenant, key, msg)
	if errors.Is(err, eventstore.ErrInvalidEvent) {
		in.leave(id, "refused by the log", err)
		return outcomeLeft, nil
	}
	if err != nil {
		return outcomeFailed, fmt.Errorf("portal: recording submission %s: %w", id, err)
	}
	if in.deps.AfterRecord != nil {
		in.deps.AfterRecord(rc)
	}
	if !acceptableID(f.sub.CaseID) {
		// Recorded with its problems; there is no case to post a decision to.
		in.leave(id, "recorded, but the platform's answer names no case to confirm in", nil)
		return outcomeLeft, nil
	}
	if rc.Duplicate && hasDecision(events, in.cfg.DestinationID, id) {
		in.log.Info("submission recorded and decided before", "submissionId", id, "stream", rc.Stream)
		return outcomeConfirmed, nil
	}
	if err := in.confirm(ctx, f.sub, msg, rc); err != nil {
		return outcomeRecorded, fmt.Errorf("portal: confirming submission %s (recorded as %s; it will be fetched again and recognised): %w",
			id, rc.Stream, err)
	}
	in.log.Info("submission received", "submissionId", id, "caseId", f.sub.CaseID, "stream", rc.Stream, "duplicate", rc.Duplicate,
		"decision", msg.Portal.Decision, "problems", len(msg.Problems))
	return outcomeConfirmed, nil
}

// acceptableID refuses ids that cannot name a submission in a URL path.
func acceptableID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
			return false
		}
	}
	return true
}

// fetch downloads the submission and its attachments into temporary files,
// within max_submission_size together.
func (in *Inbound) fetch(ctx context.Context, id string) (*fetched, error) {
	dir, err := os.MkdirTemp("", "portal-submission-*")
	if err != nil {
		return nil, err
	}
	f := &fetched{dir: dir}
	budget := in.cfg.maxSize()
	var sb bytes.Buffer
	lw := &limitWriter{w: &sb, left: budget}
	err = in.call(ctx, func() error {
		sb.Reset()
		lw.left, lw.exceeded = budget, false
		return in.api.GetSubmission(ctx, id, lw)
	})
	if lw.exceeded {
		return f, fmt.Errorf("the submission's JSON: %w", blob.ErrTooLarge)
	}
	if err != nil {
		return f, err
	}
	f.subJSON = sb.Bytes()
	budget -= int64(len(f.subJSON))
	if err := json.Unmarshal(f.subJSON, &f.sub); err != nil {
		// Recorded with the problem all the same: the bytes are evidence.
		f.sub = submission{SubmissionID: id}
		return f, nil
	}
	if len(f.sub.Attachments) > maxAttachments {
		return f, fmt.Errorf("%d attachments, at most %d: %w", len(f.sub.Attachments), maxAttachments, blob.ErrTooLarge)
	}
	for i, aid := range f.sub.Attachments {
		if !acceptableID(aid) {
			continue // a problem of the receipt (attachments-mismatch)
		}
		name := fmt.Sprintf("%s/a%d.jwe", dir, i)
		file, err := os.Create(name)
		if err != nil {
			return f, err
		}
		alw := &limitWriter{w: file, left: budget}
		err = in.call(ctx, func() error {
			if _, err := file.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if err := file.Truncate(0); err != nil {
				return err
			}
			alw.left, alw.exceeded = budget, false
			return in.api.GetAttachment(ctx, id, aid, alw)
		})
		cerr := file.Close()
		if alw.exceeded {
			return f, fmt.Errorf("attachment %s: %w", aid, blob.ErrTooLarge)
		}
		if err == nil {
			err = cerr
		}
		if err != nil {
			return f, fmt.Errorf("attachment %s: %w", aid, err)
		}
		size := budget - alw.left
		budget = alw.left
		f.attachments = append(f.attachments, fetchedAttachment{id: aid, file: name, size: size})
	}
	return f, nil
}

// limitWriter writes at most left bytes and then refuses, remembering that it
// did.
type limitWriter struct {
	w        io.Writer
	left     int64
	exceeded bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		l.exceeded = true
		return 0, fmt.Errorf("portal: %w", blob.ErrTooLarge)
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// storeEnvelope stores the raw envelope of f (writeEnvelope) and returns its
// reference.
func (in *Inbound) storeEnvelope(ctx context.Context, f *fetched) (blob.Ref, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeEnvelope(pw, f.subJSON, f.attachments)) }()
	ref, err := in.deps.Blobs.Put(ctx, pr, in.cfg.maxSize()+envelopeOverhead)
	pr.CloseWithError(errors.New("portal: envelope no longer read"))
	return ref, err
}

// writeEnvelope writes the raw form of a fetched submission: a JSON object
// with the format, the submission exactly as the platform answered (as JSON
// when it is JSON, else as a base64 string "submissionBase64"), and every
// attachment's JWE in the order the submission lists them (a JWE is ASCII
// without quotes or backslashes; anything else is kept as base64 in
// "encryptedAttachmentBase64"). The same fetch gives the same bytes, and an
// auditor holding the destination's key can decrypt everything again from it.
func writeEnvelope(w io.Writer, subJSON []byte, atts []fetchedAttachment) error {
	write := func(s string) error { _, err := io.WriteString(w, s); return err }
	if err := write(`{"format":"` + envelopeFormat + `",`); err != nil {
		return err
	}
	if json.Valid(subJSON) {
		if err := write(`"submission":`); err != nil {
			return err
		}
		if _, err := w.Write(subJSON); err != nil {
			return err
		}
	} else if err := write(`"submissionBase64":"` + base64.StdEncoding.EncodeToString(subJSON) + `"`); err != nil {
		return err
	}
	if err := write(`,"attachments":[`); err != nil {
		return err
	}
	for i, a := range atts {
		if i > 0 {
			if err := write(","); err != nil {
				return err
			}
		}
		plain, err := isJWEText(a.file)
		if err != nil {
			return err
		}
		field := "encryptedAttachment"
		if !plain {
			field = "encryptedAttachmentBase64"
		}
		if err := write(`{"attachmentId":"` + a.id + `","` + field + `":"`); err != nil {
			return err
		}
		if err := copyFile(w, a.file, !plain); err != nil {
			return err
		}
		if err := write(`"}`); err != nil {
			return err
		}
	}
	return write("]}")
}

// isJWEText reports whether the file holds only the characters of a compact
// serialization.
func isJWEText(name string) (bool, error) {
	file, err := os.Open(name)
	if err != nil {
		return false, err
	}
	defer file.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := file.Read(buf)
		for _, c := range buf[:n] {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return false, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func copyFile(w io.Writer, name string, b64 bool) error {
	file, err := os.Open(name)
	if err != nil {
		return err
	}
	defer file.Close()
	if !b64 {
		_, err = io.Copy(w, file)
		return err
	}
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if _, err := io.Copy(enc, file); err != nil {
		return err
	}
	return enc.Close()
}

// eventLog reads the case's event log; a failure is noted in the receipt's
// checks, not fatal.
func (in *Inbound) eventLog(ctx context.Context, caseID string) ([]string, error) {
	if caseID == "" || !acceptableID(caseID) {
		return nil, errors.New("the submission names no case")
	}
	var log []string
	err := in.call(ctx, func() error {
		var err error
		log, err = in.api.EventLog(ctx, caseID)
		return err
	})
	if len(log) > maxEventLogEntries {
		log = log[:maxEventLogEntries]
	}
	return log, err
}

// hasDecision reports whether the event log holds our accept-submission or
// reject-submission of the submission.
func hasDecision(events []string, destinationID, submissionID string) bool {
	for _, e := range events {
		p, err := parseSET(e)
		if err != nil || !strings.EqualFold(p.Iss, destinationID) || p.Sub != "submission:"+submissionID {
			continue
		}
		if _, ok := p.Events[eventAccept]; ok {
			return true
		}
		if _, ok := p.Events[eventReject]; ok {
			return true
		}
	}
	return false
}

// submitEvent is the platform's submit-submission of a submission as the
// event log holds it.
type submitEvent struct {
	raw  string
	p    *setPayload
	tags *authTags
	// verified is set when the SET's signature verified with the platform's
	// keys; verifyErr says why not.
	verified  bool
	kid       string
	verifyErr error
}

// submitEvents finds the platform's submit-submission SETs of a submission
// and verifies each with the platform's keys (fetched once per process, and
// again when a kid is unknown).
func (in *Inbound) submitEvents(ctx context.Context, events []string, submissionID string) []submitEvent {
	var out []submitEvent
	for _, e := range events {
		p, err := parseSET(e)
		if err != nil || p.Sub != "submission:"+submissionID {
			continue
		}
		raw, ok := p.Events[eventSubmit]
		if !ok {
			continue
		}
		var ev struct {
			AuthenticationTags *authTags `json:"authenticationTags"`
		}
		_ = json.Unmarshal(raw, &ev)
		se := submitEvent{raw: e, p: p, tags: ev.AuthenticationTags}
		keys, err := in.platformKeys(ctx, false)
		if err == nil {
			var s *fitconnect.SET
			s, err = fitconnect.ParseSET(e, keys, fitconnect.VerifyOptions{})
			if errors.Is(err, fitconnect.ErrSETSignature) {
				if keys, err = in.platformKeys(ctx, true); err == nil {
					s, err = fitconnect.ParseSET(e, keys, fitconnect.VerifyOptions{})
				}
			}
			if err == nil {
				se.verified, se.kid = true, s.KeyID
			}
		}
		se.verifyErr = err
		out = append(out, se)
	}
	return out
}

// platformKeys returns the platform's keys, fetched when there are none yet or
// renew is set.
func (in *Inbound) platformKeys(ctx context.Context, renew bool) (*fitconnect.KeySet, error) {
	in.mu.Lock()
	k := in.keysCache
	in.mu.Unlock()
	if k != nil && !renew {
		return k, nil
	}
	k, err := in.api.PlatformKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching the platform's keys: %w", err)
	}
	in.mu.Lock()
	in.keysCache = k
	in.mu.Unlock()
	return k, nil
}

// receipt decrypts and checks a fetched submission and builds its
// MessageReceived: every failed check is a problem of the receipt and of the
// rejection, and the message is recorded all the same.
func (in *Inbound) receipt(ctx context.Context, raw blob.Ref, f *fetched, events []string, logErr error) *gateway.MessageReceived {
	s := &f.sub
	pf := &gateway.PortalFields{DestinationID: in.cfg.DestinationID, SubmissionID: s.SubmissionID, CaseID: s.CaseID,
		AuthenticationTags: &gateway.PortalAuthenticationTags{}}
	msg := &gateway.MessageReceived{Channel: gateway.ChannelPortal, SenderMessageID: s.SubmissionID, Raw: raw,
		ReceivedAt: in.deps.Now().UTC(), From: gateway.Address{Address: AddressPrefix + s.SubmissionID},
		To:        []gateway.Address{{Address: AddressPrefix + "destination:" + in.cfg.DestinationID}},
		Transport: gateway.TransportEvidence{RemoteAddr: in.remote, Coordinates: s.CaseID},
		Metadata:  map[string]string{routing.MetaFITConnectDestination: in.cfg.DestinationID}, Portal: pf}
	problem := func(typ, instance, detail string) {
		pf.Problems = append(pf.Problems, newProblem(typ, instance, detail))
	}
	if s.EncryptedMetadata == "" && s.DestinationID == "" {
		problem(problemSyntaxViolation, "submission", "the platform's answer is not a submission object")
	}
	if s.DestinationID != "" && !strings.EqualFold(s.DestinationID, in.cfg.DestinationID) {
		problem(problemSyntaxViolation, "submission", fmt.Sprintf("the submission is addressed to destination %s", s.DestinationID))
	}
	st := s.ServiceType
	if st == nil {
		st = s.PublicService
	}
	if st != nil {
		pf.ServiceIdentifier, pf.ServiceName = st.Identifier, st.Name
	}
	md := in.readMetadata(ctx, s, pf, msg, problem)
	if md != nil {
		if pst := md.PublicServiceType; pst != nil && pst.Identifier != "" {
			pf.ServiceIdentifier = pst.Identifier
			if pst.Name != "" {
				pf.ServiceName = pst.Name
			}
		}
		pf.MetadataSchema = md.Schema
		pf.ReplyChannel = md.replyKind()
	}
	pf.LeikaKey, _ = strings.CutPrefix(pf.ServiceIdentifier, leikaPrefix)
	if pf.LeikaKey == pf.ServiceIdentifier {
		pf.LeikaKey = ""
	}
	if pf.ServiceIdentifier != "" {
		msg.Metadata[routing.MetaFITConnectService] = pf.ServiceIdentifier
	}
	msg.Subject = "FIT-Connect: " + firstNonEmpty(pf.ServiceName, pf.ServiceIdentifier, "Einreichung "+s.SubmissionID)
	in.readData(ctx, s, md, pf, msg, problem)
	in.readAttachments(ctx, f, md, pf, msg, problem)
	in.compareTags(ctx, events, logErr, s.SubmissionID, pf, problem)
	pf.Decision = gateway.PortalAccepted
	if len(pf.Problems) > 0 {
		pf.Decision = gateway.PortalRejected
	}
	for _, p := range pf.Problems {
		msg.Problems = append(msg.Problems, fmt.Sprintf("portal: %s: %s (%s)", strings.TrimPrefix(p.Type, problemPrefix), p.Detail, p.Instance))
	}
	return msg
}

// AddressPrefix starts the portal channel's addresses: "portal:" and the
// submission id (the sender) or "destination:" and the destination id.
const AddressPrefix = "portal:"

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// readMetadata decrypts, parses and validates the metadata; nil when it
// cannot be read at all.
func (in *Inbound) readMetadata(ctx context.Context, s *submission, pf *gateway.PortalFields, msg *gateway.MessageReceived,
	problem func(typ, instance, detail string)) *metadata {
	if s.EncryptedMetadata == "" {
		problem(problemEncryptionIssue, "metadata", "the submission has no encrypted metadata")
		return nil
	}
	r, info, err := decryptJWE(strings.NewReader(s.EncryptedMetadata), int64(len(s.EncryptedMetadata)), in.keys.Decrypter(), maxMetadataBytes)
	pf.AuthenticationTags.Metadata = info.Tag
	if err != nil {
		problem(problemEncryptionIssue, "metadata", err.Error())
		return nil
	}
	doc, err := io.ReadAll(r)
	if err != nil {
		problem(problemEncryptionIssue, "metadata", err.Error())
		return nil
	}
	pf.Checks = append(pf.Checks, "metadata decrypted ("+jweAlg+", "+jweEnc+")")
	in.storeMetadata(ctx, doc, msg)
	var md metadata
	if err := json.Unmarshal(doc, &md); err != nil {
		problem(problemSyntaxViolation, "metadata", "the metadata is not a JSON object: "+err.Error())
		return nil
	}
	uri := md.Schema
	switch {
	case uri == "":
		// The Python SDK assumes 1.0.0 when $schema is absent; so do we, and
		// say so.
		uri = metadataSchemaPrefix + "1.0.0/metadata.schema.json"
		pf.Checks = append(pf.Checks, "metadata names no $schema; validated as 1.0.0")
	case !metadataSchemaURI.MatchString(uri):
		problem(problemMissingSchema, "metadata", fmt.Sprintf("$schema %.200q is not a FIT-Connect metadata schema", uri))
		return &md
	}
	if _, err := in.schemas.Parse(doc); err != nil {
		var pe *fitconnect.ProblemError
		if errors.As(err, &pe) {
			detail := pe.Detail
			if pe.Err != nil {
				detail += ": " + pe.Err.Error()
			}
			problem(pe.Type, "metadata", clipText(detail, 1000))
		} else {
			problem(problemSchemaViolation, "metadata", clipText(err.Error(), 1000))
		}
	} else {
		pf.Checks = append(pf.Checks, "metadata valid against "+uri)
	}
	for _, p := range md.checkStructure() {
		problem(p.Type, p.Instance, p.Detail)
	}
	return &md
}

// MetadataPath is the path of the part holding the decrypted metadata; the
// outbound reads the reply channel from it.
const MetadataPath = "metadata"

// storeMetadata keeps the decrypted metadata as the message's first part.
func (in *Inbound) storeMetadata(ctx context.Context, doc []byte, msg *gateway.MessageReceived) {
	p := gateway.Part{Path: MetadataPath, MediaType: "application/json", Filename: "metadata.json", Kind: "attachment"}
	ref, err := in.deps.Blobs.Put(ctx, bytes.NewReader(doc), maxMetadataBytes)
	if err != nil {
		p.Problems = append(p.Problems, "portal: storing the decrypted metadata: "+err.Error())
	}
	p.Blob = ref
	msg.Parts = append(msg.Parts, p)
}

// clipText shortens s to at most n bytes, on a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// maxMetadataBytes caps decrypted metadata.
const maxMetadataBytes = 1 << 20

// readData decrypts the data, stores it as the body part and checks its hash.
func (in *Inbound) readData(ctx context.Context, s *submission, md *metadata, pf *gateway.PortalFields, msg *gateway.MessageReceived,
	problem func(typ, instance, detail string)) {
	var want *hashSpec
	mediaType := "application/octet-stream"
	if md != nil && md.ContentStructure.Data != nil {
		want = md.ContentStructure.Data.Hash
		if ss := md.ContentStructure.Data.SubmissionSchema; ss != nil && mediaTypeR.MatchString(ss.MimeType) {
			mediaType = ss.MimeType
		}
	}
	if s.EncryptedData == "" {
		if md != nil && md.ContentStructure.Data != nil {
			problem(problemMissingData, "data", "the metadata describes data the submission does not have")
		}
		return
	}
	if md != nil && md.ContentStructure.Data == nil {
		problem(problemSchemaViolation, "metadata", "the submission has data the metadata does not describe")
	}
	p := gateway.Part{Path: "data", Kind: "body", MediaType: mediaType, Filename: "data" + extension(mediaType)}
	tag, ok := in.storePlain(ctx, strings.NewReader(s.EncryptedData), int64(len(s.EncryptedData)), "data", want, &p, pf, problem)
	pf.AuthenticationTags.Data = tag
	if ok && want != nil {
		pf.Checks = append(pf.Checks, "data hash sha512")
	}
	msg.Parts = append(msg.Parts, p)
}

// readAttachments decrypts every attachment, stores it as a part named as the
// metadata names it, and checks its hash.
func (in *Inbound) readAttachments(ctx context.Context, f *fetched, md *metadata, pf *gateway.PortalFields, msg *gateway.MessageReceived,
	problem func(typ, instance, detail string)) {
	announced := map[string]bool{}
	for _, id := range f.sub.Attachments {
		announced[strings.ToLower(id)] = true
		if !acceptableID(id) {
			problem(problemAttachmentsMismatch, "submission", fmt.Sprintf("attachment id %.80q is not an id", id))
		}
	}
	if md != nil {
		for _, a := range md.ContentStructure.Attachments {
			if !announced[strings.ToLower(a.AttachmentID)] {
				problem(problemAttachmentsMismatch, "attachment:"+a.AttachmentID, "the metadata lists an attachment the submission does not have")
			}
		}
	}
	for i, a := range f.attachments {
		instance := "attachment:" + a.id
		var am *attachmentMeta
		if md != nil {
			if am = md.attachment(a.id); am == nil {
				problem(problemAttachmentsMismatch, instance, "the submission has an attachment the metadata does not list")
			}
		}
		p := gateway.Part{Path: fmt.Sprintf("attachment.%d", i+1), Kind: "attachment", MediaType: "application/octet-stream",
			Filename: a.id}
		var want *hashSpec
		if am != nil {
			want = am.Hash
			if mediaTypeR.MatchString(am.MimeType) {
				p.MediaType = am.MimeType
			}
			if name := safeFilename(am.Filename); name != "" {
				p.Filename = name
			}
		}
		file, err := os.Open(a.file)
		if err != nil {
			p.Problems = append(p.Problems, "portal: reading the fetched attachment: "+err.Error())
			msg.Parts = append(msg.Parts, p)
			continue
		}
		tag, ok := in.storePlain(ctx, file, a.size, instance, want, &p, pf, problem)
		file.Close()
		if pf.AuthenticationTags.Attachments == nil {
			pf.AuthenticationTags.Attachments = map[string]string{}
		}
		if tag != "" {
			pf.AuthenticationTags.Attachments[a.id] = tag
		}
		if ok && want != nil {
			pf.Checks = append(pf.Checks, "attachment "+a.id+" hash sha512")
		}
		msg.Parts = append(msg.Parts, p)
	}
}

// storePlain decrypts a JWE into the blob store as p's blob, hashing it on
// the way, and compares the hash with want. It reports the JWE's tag and
// whether the part decrypted and matched.
func (in *Inbound) storePlain(ctx context.Context, r io.Reader, size int64, instance string, want *hashSpec, p *gateway.Part,
	pf *gateway.PortalFields, problem func(typ, instance, detail string)) (string, bool) {
	pt, info, err := decryptJWE(r, size, in.keys.Decrypter(), in.cfg.maxSize())
	if err != nil {
		problem(problemEncryptionIssue, instance, err.Error())
		p.Problems = append(p.Problems, "portal: "+err.Error())
		return info.Tag, false
	}
	h := sha512.New()
	ref, err := in.deps.Blobs.Put(ctx, io.TeeReader(pt, h), in.cfg.maxSize())
	if err != nil {
		if errors.Is(err, errPlainTooLarge) || errors.Is(err, blob.ErrTooLarge) {
			problem(problemEncryptionIssue, instance, "the decrypted content is larger than max_submission_size")
		} else {
			problem(problemEncryptionIssue, instance, "the content could not be decrypted and stored: "+err.Error())
		}
		p.Problems = append(p.Problems, "portal: "+err.Error())
		return info.Tag, false
	}
	p.Blob = ref
	if want == nil {
		return info.Tag, true
	}
	if got := hex.EncodeToString(h.Sum(nil)); want.Type != "sha512" || got != want.Content {
		problem(problemHashMismatch, instance, "the SHA-512 of the decrypted content differs from the metadata's hash")
		p.Problems = append(p.Problems, "portal: hash mismatch")
		return info.Tag, false
	}
	return info.Tag, true
}

// compareTags compares the JWE tags with those the platform recorded in
// submit-submission, when the event log has it. A submit-submission whose
// signature does not verify with the platform's keys is the problem
// invalid-event-log; when the keys cannot be fetched the tags are compared
// all the same, and the checks say the event was not verified.
func (in *Inbound) compareTags(ctx context.Context, events []string, logErr error, submissionID string, pf *gateway.PortalFields,
	problem func(typ, instance, detail string)) []submitEvent {
	if logErr != nil {
		pf.Checks = append(pf.Checks, "event log not read; authentication tags not compared with submit-submission")
		return nil
	}
	subs := in.submitEvents(ctx, events, submissionID)
	var want *authTags
	for _, se := range subs {
		switch {
		case se.verified:
			pf.Checks = append(pf.Checks, "submit-submission signed by the platform (kid "+clipText(se.kid, 64)+")")
		case errors.Is(se.verifyErr, fitconnect.ErrSETSignature) || errors.Is(se.verifyErr, fitconnect.ErrInvalidSET):
			problem(problemPrefix+"invalid-event-log", "submission", "submit-submission does not verify: "+clipText(se.verifyErr.Error(), 300))
			continue
		default:
			pf.Checks = append(pf.Checks, "submit-submission not verified: "+clipText(fmt.Sprint(se.verifyErr), 300))
		}
		if se.tags != nil && want == nil {
			want = se.tags
		}
	}
	if want == nil {
		pf.Checks = append(pf.Checks, "no submit-submission with authentication tags in the event log; tags not compared")
		return subs
	}
	got := pf.AuthenticationTags
	if want.Metadata != got.Metadata {
		problem(problemIncorrectTag, "metadata", "the metadata's tag differs from submit-submission's")
	}
	if want.Data != got.Data {
		problem(problemIncorrectTag, "data", "the data's tag differs from submit-submission's")
	}
	for id, tag := range got.Attachments {
		if want.Attachments[id] != tag {
			problem(problemIncorrectTag, "attachment:"+id, "the attachment's tag differs from submit-submission's")
		}
	}
	pf.Checks = append(pf.Checks, "authentication tags compared with submit-submission")
	return subs
}

// safeFilename is the base name of a sender's file name, without control
// characters and path separators; "" when nothing is left.
func safeFilename(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, path.Base(strings.ReplaceAll(name, "\\", "/")))
	if name == "." || name == ".." || name == "/" {
		return ""
	}
	if len(name) > 255 {
		name = name[:255]
	}
	return strings.TrimSpace(name)
}

func extension(mediaType string) string {
	switch mediaType {
	case "application/json":
		return ".json"
	case "application/xml":
		return ".xml"
	}
	if ext, _ := mime.ExtensionsByType(mediaType); len(ext) > 0 {
		return ext[0]
	}
	return ".bin"
}

// confirm posts the decision's SET, and records it and the platform's events
// as delivery evidence.
func (in *Inbound) confirm(ctx context.Context, s submission, msg *gateway.MessageReceived, rc gateway.Receipt) error {
	payload, err := decisionPayload(in.cfg.DestinationID, s.SubmissionID, s.CaseID, msg.Portal, in.deps.Now())
	if err != nil {
		return err
	}
	set, err := in.keys.SignSET(payload)
	if err != nil {
		return err
	}
	if err := in.call(ctx, func() error { return in.api.PostEvent(ctx, s.CaseID, set) }); err != nil {
		return fmt.Errorf("posting the %s SET: %w", msg.Portal.Decision, err)
	}
	in.recordEvidence(ctx, s, msg, set)
	return nil
}
