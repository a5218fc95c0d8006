package egvpenterprise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
// Enterprise's acceptance and the recorded ReplySent sends the answer twice; the
// XJustiz id of an eEB is derived from the reply id, so a court sees the same eEB.
type Outbound struct {
	cfg    Config
	client *egvpsoap.Client
	blobs  blob.Backend
	log    *slog.Logger
	now    func() time.Time
}

// OutboundDeps are the sender's collaborators.
type OutboundDeps struct {
	Blobs  blob.Backend
	Logger *slog.Logger
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
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Outbound{cfg: cfg, client: c, blobs: deps.Blobs, now: time.Now,
		log: deps.Logger.With("channel", "egvp", "transport", "egvp-enterprise", "role", "sender")}, nil
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
	o.log.Info("answer handed to EGVP Enterprise", "replyId", req.ReplyID, "customId", id, "eeb", req.EEB != nil)
	return replies.SentInfo{ChannelMessageID: id, Sent: sent,
		Response: "sendAsynchroniousMessage OK, customID " + id + " (EGVP Enterprise sends it asynchronously)"}, nil
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

// answer is an ordinary answer: the text as antwort.txt, the attachments under their
// names, and a nachricht.xml that names both sides' Aktenzeichen of the original.
func (o *Outbound) answer(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived, s *egvpsoap.SendRequest) error {
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
	s.Attachments = append(s.Attachments, body)
	names := map[string]bool{"antwort.txt": true, egvp.FileXJustiz: true}
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
		s.Attachments = append(s.Attachments, at)
	}
	d := egvp.Description{Type: messageType, SignatureLevel: "no", Subject: s.Subject, RecipientSafeID: s.ReceiverID}
	if orig != nil && orig.EGVP != nil {
		// Our file number is the one the sender gave for us, and theirs theirs.
		d.SenderFileNumber, d.RecipientFileNumber = orig.EGVP.RecipientFileNumber, orig.EGVP.SenderFileNumber
	}
	s.VisualXML = egvp.BuildDescription(d)
	return nil
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
	if orig == nil {
		return replies.Permanent(fmt.Errorf("egvp_enterprise: eEB %s: the message answered is unknown", req.ReplyID))
	}
	// The request's messageZIP is read from a temporary copy, not from memory.
	f, err := os.CreateTemp("", "egvp-enterprise-request-*.zip")
	if err != nil {
		return fmt.Errorf("egvp_enterprise: eEB %s: %w", req.ReplyID, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := o.copyBlob(ctx, f, orig.Raw)
	if err != nil {
		return fmt.Errorf("egvp_enterprise: eEB %s: reading the request: %w", req.ReplyID, err)
	}
	zr, err := openZIP(f, size, o.cfg.maxBytes())
	if err != nil {
		return replies.Permanent(fmt.Errorf("egvp_enterprise: eEB %s: the request's messageZIP: %w", req.ReplyID, err))
	}
	m, err := egvp.ReadExport(ctx, zr, egvp.Config{}, egvp.Limits{})
	if err != nil {
		return replies.Permanent(fmt.Errorf("egvp_enterprise: eEB %s: reading the request: %w", req.ReplyID, err))
	}
	a := egvp.ReceiptAnswer{DeviatingRecipient: req.EEB.DeviatingRecipient, OwnMessageID: egvp.XJustizID(req.ReplyID), Created: o.now()}
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
	for _, f := range files {
		switch {
		case f.Name == egvp.FileDescription:
			s.VisualXML = f.Data
		case f.Inline:
			// The Visitenkarte is Enterprise's: it writes the account's own.
		default:
			s.Attachments = append(s.Attachments, egvpsoap.Attachment{Name: f.Name, Data: f.Data})
		}
	}
	return nil
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
	}
	return err
}
