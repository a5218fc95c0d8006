package egvpenterprise

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/egvpsoap"
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/xjustiz"
)

// Outbound hands answers to Enterprise with sendAsynchroniousMessage, which sends them
// from the configured mailbox (and signs them, sign_answers) to the sender's SAFE-ID.
// It implements replies.Outbound.
//
// The web service takes no id of the caller's, so a resend after a crash between
// Enterprise's acceptance and the recorded ReplySent would send the answer twice. It is
// therefore a replies.AtMostOnce: the sender records each attempt's intent before the
// hand-over, and an attempt found started without an outcome goes to triage ("may
// have been sent — check EGVP Enterprise") instead of being sent again.
type Outbound struct {
	cfg      Config
	client   *egvpsoap.Client
	blobs    blob.Backend
	log      *slog.Logger
	now      func() time.Time
	evidence *gateway.EvidenceRecorder
	tenant   string
}

// OutboundDeps are the sender's collaborators.
type OutboundDeps struct {
	Blobs  blob.Backend
	Logger *slog.Logger
	// Evidence, when set, records the state Enterprise reports of an answer it
	// accepted (getState) as delivery evidence in the answered message's stream.
	Evidence *gateway.EvidenceRecorder
	// Tenant is the authority the answers belong to (default gateway.DefaultTenant).
	Tenant string
}

// The message type of every answer: the WSDL's MessageTypeType for ordinary EGVP
// messages, the one the eEB sample came in.
const messageType = "Allgemeine Nachricht"

// NewOutbound builds the sender of cfg; nil when cfg does not enable it.
func NewOutbound(cfg Config, deps OutboundDeps) (*Outbound, error) {
	if !cfg.Outbound {
		return nil, nil
	}
	if deps.Blobs == nil {
		return nil, errors.New("egvp_enterprise: outbound without a blob store")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Tenant == "" {
		deps.Tenant = gateway.DefaultTenant
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Outbound{cfg: cfg, client: c, blobs: deps.Blobs, now: time.Now, evidence: deps.Evidence, tenant: deps.Tenant,
		log: deps.Logger.With("channel", "egvp", "transport", "egvp-enterprise", "role", "sender")}, nil
}

// Intent implements replies.AtMostOnce: the ids an operator finds the answer by in
// Enterprise's journal and at the court (the XJustiz message id is derived from the
// reply id), and the mailbox it is sent from.
func (o *Outbound) Intent(req *gateway.ReplyRequested) (string, []gateway.EvidenceReference) {
	return "EGVP Enterprise", []gateway.EvidenceReference{{Kind: "replyId", Value: req.ReplyID},
		{Kind: "xjustizMessageId", Value: egvp.XJustizID(req.ReplyID)}, {Kind: "enterpriseUserId", Value: o.cfg.UserID}}
}

// Send implements replies.Outbound.
func (o *Outbound) Send(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (replies.SentInfo, error) {
	to, err := receiver(req, orig)
	if err != nil {
		return replies.SentInfo{}, replies.Permanent(err)
	}
	s := &egvpsoap.SendRequest{UserID: o.cfg.UserID, MessageType: messageType, ReceiverID: to, ReceiverKey: "USER_ID",
		SignMessage: o.cfg.sign()}
	if req.EEB != nil {
		err = o.receiptAnswer(ctx, req, orig, s)
	} else {
		err = o.answer(ctx, req, orig, s)
	}
	if err != nil {
		return replies.SentInfo{}, err
	}
	// The request is written to a temporary file, the attachments streamed from the
	// blob store into it, sent from there and kept as the bytes Enterprise accepted.
	f, err := os.CreateTemp("", "egvp-enterprise-answer-*.xml")
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("egvp_enterprise: answer %s: %w", req.ReplyID, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := egvpsoap.WriteSendRequest(f, s); err != nil {
		return replies.SentInfo{}, fmt.Errorf("egvp_enterprise: answer %s: %w", req.ReplyID, err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return replies.SentInfo{}, fmt.Errorf("egvp_enterprise: answer %s: %w", req.ReplyID, err)
	}
	// A section of the file, which the HTTP client cannot close: it is kept below.
	id, err := o.client.SendPrepared(ctx, io.NewSectionReader(f, 0, size), size)
	if err != nil {
		return replies.SentInfo{}, classify(req, err)
	}
	sent, err := o.keep(ctx, f)
	if err != nil {
		// Handed over; the copy is lost, the customID is not.
		o.log.Error("keeping the sent answer", "replyId", req.ReplyID, "err", err)
	}
	state := o.recordState(ctx, req, id)
	o.log.Info("answer handed to EGVP Enterprise", "replyId", req.ReplyID, "customId", id, "eeb", req.EEB != nil, "state", state)
	return replies.SentInfo{ChannelMessageID: id, Sent: sent,
		Response: sentPrefix + id + " (EGVP Enterprise sends it asynchronously); " + state}, nil
}

// receiver is the SAFE-ID the answer goes to: the reply's address, which must be the
// sender of the message answered when that is known.
func receiver(req *gateway.ReplyRequested, orig *gateway.MessageReceived) (string, error) {
	id, ok := strings.CutPrefix(req.To.Address, AddressPrefix)
	if !ok || id == "" {
		return "", fmt.Errorf("egvp_enterprise: answer %s: address %.80q is not %sSAFE-ID", req.ReplyID, req.To.Address, AddressPrefix)
	}
	if orig != nil && orig.EGVP != nil && orig.EGVP.SenderSafeID != "" && orig.EGVP.SenderSafeID != id {
		return "", fmt.Errorf("egvp_enterprise: answer %s: address %.80q is not the sender's SAFE-ID %q", req.ReplyID, id, orig.EGVP.SenderSafeID)
	}
	return id, nil
}

// answer is an ordinary answer, built by egvp.BuildAnswer from the original as read
// again from its messageZIP: nachricht.xml (both sides' Aktenzeichen swapped) as the
// visualXML, xjustiz_nachricht.xml (a Nachrichtenkopf referencing the original, our
// XJustiz id egvp.XJustizID of the reply, the documents listed) and the documents
// themselves, the text as antwort.txt and the attachments under their names. Our
// Visitenkarte names us in the Nachrichtenkopf where the original's header named us
// by nothing; the visitenkarte.xml itself is Enterprise's, which writes the account's
// own (the web service takes none).
func (o *Outbound) answer(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived, s *egvpsoap.SendRequest) error {
	m, err := o.original(ctx, req, orig)
	if err != nil {
		return err
	}
	s.Subject = req.Subject
	if s.Subject == "" {
		s.Subject = "Antwort"
	}
	max := o.cfg.maxBytes()
	var total int64
	file := func(name string, ref blob.Ref) (egvpsoap.Attachment, error) {
		if total += ref.Size; total > max {
			return egvpsoap.Attachment{}, replies.Permanent(fmt.Errorf("egvp_enterprise: answer %s: more than %d bytes", req.ReplyID, max))
		}
		return egvpsoap.Attachment{Name: name, Open: func() (io.ReadCloser, error) { return o.blobs.Open(ctx, ref) }}, nil
	}
	body, err := file("antwort.txt", req.Body)
	if err != nil {
		return err
	}
	docs := []egvpsoap.Attachment{body}
	names := map[string]bool{"antwort.txt": true, egvp.FileXJustiz: true, egvp.FileCard: true, egvp.FileDescription: true}
	for i, a := range req.Attachments {
		name := attachmentName(a.Filename, i+1)
		for names[name] {
			name = fmt.Sprintf("anlage-%d-%s", i+1, name)
		}
		names[name] = true
		at, err := file(name, a.Blob)
		if err != nil {
			return err
		}
		docs = append(docs, at)
	}
	list := make([]string, len(docs))
	for i, d := range docs {
		list[i] = d.Name
	}
	files, err := egvp.BuildAnswer(m, egvp.Answer{Own: o.card(), Subject: s.Subject, Files: list,
		OwnMessageID: egvp.XJustizID(req.ReplyID), Created: o.now()})
	if err != nil {
		return replies.Permanent(fmt.Errorf("egvp_enterprise: answer %s: %w", req.ReplyID, err))
	}
	o.place(s, files)
	s.Attachments = append(s.Attachments, docs...)
	return nil
}

// place puts the files egvp built into the request: nachricht.xml as the visualXML,
// the other attachments as attachments; the inline Visitenkarte stays out, since
// Enterprise writes the account's own.
func (o *Outbound) place(s *egvpsoap.SendRequest, files []egvp.File) {
	for _, f := range files {
		switch {
		case f.Name == egvp.FileDescription:
			s.VisualXML = f.Data
		case f.Inline:
		default:
			s.Attachments = append(s.Attachments, egvpsoap.Attachment{Name: f.Name, Data: f.Data})
		}
	}
}

// card is our Visitenkarte: business_card's, or without it the mailbox named by its
// user id alone.
func (o *Outbound) card() egvp.BusinessCard {
	if o.cfg.BusinessCard != nil {
		return o.cfg.BusinessCard.Card()
	}
	return egvp.BusinessCard{SafeID: o.cfg.UserID}
}

// attachmentName keeps a file name that EGVP can carry: its base name without
// control characters, else anlage-N.
func attachmentName(name string, n int) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	clean := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`/:*?"<>|`, r) {
			return -1
		}
		return r
	}, name)
	if clean == "" || clean == "." || clean == ".." || len(clean) > 200 {
		return fmt.Sprintf("anlage-%d", n)
	}
	return clean
}

// receiptAnswer is an eEB: the XJustiz nachricht.eeb.zuruecklaufend egvp writes for
// the request, read again from the original's messageZIP.
func (o *Outbound) receiptAnswer(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived, s *egvpsoap.SendRequest) error {
	m, err := o.original(ctx, req, orig)
	if err != nil {
		return err
	}
	a := egvp.ReceiptAnswer{Own: o.card(), DeviatingRecipient: req.EEB.DeviatingRecipient, OwnMessageID: egvp.XJustizID(req.ReplyID), Created: o.now()}
	switch req.EEB.Decision {
	case gateway.EEBAcknowledged:
		if a.Received, err = time.Parse("2006-01-02", req.EEB.ReceivedOn); err != nil {
			return replies.Permanent(fmt.Errorf("egvp_enterprise: eEB %s: receivedOn %q: %w", req.ReplyID, req.EEB.ReceivedOn, err))
		}
	case gateway.EEBRefused:
		a.Refusal = &xjustiz.Refusal{Code: req.EEB.RefusalCode, Reason: req.EEB.Reason}
	default:
		return replies.Permanent(fmt.Errorf("egvp_enterprise: eEB %s: decision %q", req.ReplyID, req.EEB.Decision))
	}
	files, err := egvp.BuildReceiptAnswer(m, a)
	if err != nil {
		return replies.Permanent(fmt.Errorf("egvp_enterprise: eEB %s: %w", req.ReplyID, err))
	}
	s.Subject = "EB zu: " + m.SenderFileNumber
	o.place(s, files)
	return nil
}

// original is the message answered, read again from its messageZIP.
func (o *Outbound) original(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) (*egvp.Message, error) {
	if orig == nil {
		return nil, replies.Permanent(fmt.Errorf("egvp_enterprise: answer %s: the message answered is unknown", req.ReplyID))
	}
	// The messageZIP is read from a temporary copy, not from memory.
	f, err := os.CreateTemp("", "egvp-enterprise-request-*.zip")
	if err != nil {
		return nil, fmt.Errorf("egvp_enterprise: answer %s: %w", req.ReplyID, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := o.copyBlob(ctx, f, orig.Raw)
	if err != nil {
		return nil, fmt.Errorf("egvp_enterprise: answer %s: reading the message answered: %w", req.ReplyID, err)
	}
	zr, err := openZIP(f, size, o.cfg.maxBytes())
	if err != nil {
		return nil, replies.Permanent(fmt.Errorf("egvp_enterprise: answer %s: the answered messageZIP: %w", req.ReplyID, err))
	}
	m, err := egvp.ReadExport(ctx, zr, egvp.Config{}, egvp.Limits{})
	if err != nil {
		return nil, replies.Permanent(fmt.Errorf("egvp_enterprise: answer %s: reading the message answered: %w", req.ReplyID, err))
	}
	return m, nil
}

// copyBlob copies the blob ref to w, verified (the store's reader fails at the end
// unless the bytes hash to ref).
func (o *Outbound) copyBlob(ctx context.Context, w io.Writer, ref blob.Ref) (int64, error) {
	rc, err := o.blobs.Open(ctx, ref)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(w, io.LimitReader(rc, o.cfg.maxBytes()+1))
	if err == nil && n > o.cfg.maxBytes() {
		err = fmt.Errorf("more than %d bytes", o.cfg.maxBytes())
	}
	return n, err
}

// keep stores the request as Enterprise accepted it.
func (o *Outbound) keep(ctx context.Context, f *os.File) (blob.Ref, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return blob.Ref{}, err
	}
	return o.blobs.Put(ctx, f, 0)
}

// classify makes an error permanent when Enterprise refused the answer for what it
// is (an unknown receiver, a missing subject, attachments too large) rather than for
// its own state.
func classify(req *gateway.ReplyRequested, err error) error {
	err = fmt.Errorf("egvp_enterprise: answer %s: %w", req.ReplyID, err)
	var rc *egvpsoap.ReturnCodeError
	var f *egvpsoap.Fault
	var he *egvpsoap.HTTPError
	switch {
	case errors.As(err, &rc):
		switch rc.Code {
		case "GENERAL_ERROR", "GENERAL_SQL_ERROR", "WEBSERVICE_DISABLED", "PENDING":
			return err
		}
		return replies.Permanent(err)
	case errors.As(err, &f):
		if f.Server() {
			return err
		}
		return replies.Permanent(err)
	case errors.As(err, &he):
		if he.Status >= 500 || he.Status == http.StatusRequestTimeout || he.Status == http.StatusTooManyRequests {
			return err
		}
		return replies.Permanent(err)
	case notSent(err):
		return err
	}
	// The request may have reached Enterprise and its answer been lost (the
	// connection ended, the time ran out, the answer was unreadable): sending
	// again could send twice, so the mailroom checks (replies.MaybeSent).
	return replies.MaybeSent(err)
}

// notSent reports errors that happen before a request can reach the service: the
// connection was never made (dial, name resolution) or TLS refused the server.
func notSent(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var rec tls.RecordHeaderError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns) || errors.As(err, &unknownCA) ||
		errors.As(err, &invalid) || errors.As(err, &host) || errors.As(err, &rec)
}
