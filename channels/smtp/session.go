package smtp

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/mail/mailmsg"
)

// session is one SMTP connection's state.
type session struct {
	s    *Server
	conn *gosmtp.Conn

	from    string
	opts    gosmtp.MailOptions
	rcpts   []string
	started time.Time
}

var (
	errTemporary = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message: "local problem recording the message, please try again later"}
	errTooLarge = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4},
		Message: "message exceeds the maximum size"}
	errTLSRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
		Message: "must issue STARTTLS first"}
	// RFC 3207 section 4.1: a TLS session not secure enough to go on is
	// answered 554 to every command.
	errClientCert = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
		Message: "command refused due to lack of security: a verified TLS client certificate is required"}
	errRecipient = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1},
		Message: "no such recipient here"}
	errBadAddress = &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 1, 3},
		Message: "malformed recipient address"}
)

func (ss *session) Reset() {
	ss.from, ss.opts, ss.rcpts = "", gosmtp.MailOptions{}, nil
}

func (ss *session) Logout() error {
	ss.s.sessions.Add(-1)
	return nil
}

func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	if ss.s.cfg.RequireTLS {
		st, ok := ss.conn.TLSConnectionState()
		if !ok {
			return errTLSRequired
		}
		// The handshake already refused a certificate that does not chain
		// to ClientCAs; this refuses a session that never showed one.
		if ss.s.cfg.ClientCAs != nil && len(st.VerifiedChains) == 0 {
			return errClientCert
		}
	}
	ss.Reset()
	ss.from = from
	if opts != nil {
		ss.opts = *opts
	}
	ss.started = ss.s.deps.Now()
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	addr, ok := normalizeAddress(to)
	if !ok {
		return errBadAddress
	}
	if !ss.s.accept.accepts(addr) {
		ss.s.deps.Logger.Info("smtp: recipient refused", "rcpt", addr, "remote", ss.remote())
		return errRecipient
	}
	if !slices.Contains(ss.rcpts, addr) {
		ss.rcpts = append(ss.rcpts, addr)
	}
	return nil
}

// Data stores the message and walks its MIME structure as it streams in,
// then records it, and answers 250 only when the record is durable. The
// raw bytes and the parts are written concurrently (ParallelStore), so that
// their fsyncs overlap on the way to the 250.
func (ss *session) Data(r io.Reader) error {
	d := ss.s.deps
	ctx := context.Background()
	t0 := d.Now()
	parts := mailmsg.NewParallelStore(d.Blobs, 8, 256<<10, ss.s.budget)
	pr, pw := io.Pipe()
	type walked struct {
		msg *mailmsg.Message
		err error
	}
	walkc := make(chan walked, 1)
	go func() {
		msg, err := mailmsg.WalkReader(ctx, parts, pr, ss.s.cfg.MaxMessageBytes, ss.s.cfg.Limits)
		// The walk may stop early at a limit; the raw bytes must still flow.
		io.Copy(io.Discard, pr)
		walkc <- walked{msg, err}
	}()
	ref, err := d.Blobs.Put(ctx, io.TeeReader(r, pw), ss.s.cfg.MaxMessageBytes)
	if err != nil {
		pw.CloseWithError(err)
	} else {
		pw.Close()
	}
	w := <-walkc
	werr := parts.Wait()
	if err != nil {
		return ss.storeFailed(err)
	}
	receivedAt := d.Now().UTC()
	stored := receivedAt.Sub(t0)
	if err := errors.Join(w.err, werr); err != nil {
		d.Logger.Error("smtp: message not walked", "sha256", ref.SHA256, "err", err)
		return errTemporary
	}
	msg := w.msg
	key := ss.messageKey(ref)
	rec := ss.receipt(ref, msg, receivedAt)
	if ss.s.cfg.Adapt != nil {
		if err := ss.s.cfg.Adapt(ctx, ref, rec); err != nil {
			d.Logger.Error("smtp: receipt not completed", "channel", ss.s.cfg.Channel, "sha256", ref.SHA256, "err", err)
			return errTemporary
		}
	}
	receipt, err := d.Intake.Record(ctx, d.Tenant, key, rec)
	if err != nil {
		d.Logger.Error("smtp: message not recorded", "sha256", ref.SHA256, "err", err)
		if errors.Is(err, eventstore.ErrInvalidEvent) {
			return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0},
				Message: "message cannot be recorded: " + err.Error()}
		}
		return errTemporary
	}
	if d.AfterRecord != nil {
		d.AfterRecord(receipt)
	}
	d.Logger.Info("smtp: message received", "event", receipt.EventID, "duplicate", receipt.Duplicate,
		"from", ss.from, "rcpts", len(ss.rcpts), "size", ref.Size, "remote", ss.remote(),
		"problems", len(msg.Problems), "data_stored", stored.Round(time.Microsecond),
		"recorded", d.Now().Sub(receivedAt).Round(time.Microsecond), "since_mail", d.Now().Sub(ss.started).Round(time.Millisecond))
	// go-smtp sends the code and text of a returned SMTPError as the reply,
	// which lets the 250 name the receipt.
	text := "OK: recorded as " + receipt.EventID
	if receipt.Duplicate {
		text = "OK: already recorded as " + receipt.EventID
	}
	return &gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 0, 0}, Message: text}
}

// storeFailed maps a failure to store DATA to a reply: too large is
// permanent; the client vanishing needs no reply; anything else is ours and
// temporary.
func (ss *session) storeFailed(err error) error {
	var se *gosmtp.SMTPError
	switch {
	case errors.As(err, &se):
		if se.Code == gosmtp.ErrDataTooLarge.Code {
			ss.s.deps.Logger.Info("smtp: message refused, too large", "remote", ss.remote(), "limit", ss.s.cfg.MaxMessageBytes)
			return errTooLarge
		}
		return se
	case errors.Is(err, blob.ErrTooLarge):
		return errTooLarge
	case errors.Is(err, gosmtp.ErrTooLongLine):
		ss.s.deps.Logger.Info("smtp: message refused, line too long", "remote", ss.remote(), "limit", ss.s.cfg.MaxLineBytes)
		return &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("message has a line longer than %d bytes", ss.s.cfg.MaxLineBytes)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return err
	}
	ss.s.deps.Logger.Error("smtp: message not stored", "remote", ss.remote(), "err", err)
	return errTemporary
}

// messageKey identifies one delivery: the same bytes with the same envelope
// are the same message, so a resend after a lost 250 is recognised.
func (ss *session) messageKey(ref blob.Ref) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s;", len(ss.from), ss.from)
	rcpts := slices.Clone(ss.rcpts)
	slices.Sort(rcpts)
	for _, r := range rcpts {
		fmt.Fprintf(h, "%d:%s;", len(r), r)
	}
	return gateway.MessageKey(ss.s.cfg.Channel, ref.SHA256+"/"+hex.EncodeToString(h.Sum(nil)[:16]))
}

func (ss *session) receipt(ref blob.Ref, msg *mailmsg.Message, at time.Time) *gateway.MessageReceived {
	env := map[string]string{
		"mailFrom":   ss.from,
		"rcptTo":     strings.Join(ss.rcpts, ", "),
		"helo":       ss.conn.Hostname(),
		"receivedBy": ss.s.cfg.Hostname,
		"size":       strconv.FormatInt(ref.Size, 10),
	}
	if ss.opts.Body != "" {
		env["body"] = string(ss.opts.Body)
	}
	if ss.opts.UTF8 {
		env["smtputf8"] = "true"
	}
	if ss.opts.EnvelopeID != "" {
		env["envid"] = ss.opts.EnvelopeID
	}
	if fp := clientCertificate(ss.conn); fp != "" {
		env["tlsClientCertSHA256"] = fp
	}
	var problems []string
	if cleanEnvelope(env) {
		problems = append(problems, "envelope: control characters replaced with U+FFFD")
	}
	return msg.Receipt(mailmsg.Arrival{
		Channel:      ss.s.cfg.Channel,
		Raw:          ref,
		At:           at,
		EnvelopeFrom: ss.from,
		Problems:     problems,
		Transport: gateway.TransportEvidence{
			RemoteAddr: ss.remote(),
			Envelope:   env,
			TLS:        tlsDescription(ss.conn),
		},
	})
}

// cleanEnvelope replaces control characters in what the client sent in
// the dialogue (HELO name, addresses, ENVID) and reports whether any were
// found.
func cleanEnvelope(env map[string]string) bool {
	found := false
	for k, v := range env {
		if c, changed := mailmsg.ReplaceControls(v); changed {
			env[k], found = c, true
		}
	}
	return found
}

func (ss *session) remote() string {
	if nc := ss.conn.Conn(); nc != nil {
		return nc.RemoteAddr().String()
	}
	return ""
}

func tlsDescription(c *gosmtp.Conn) string {
	st, ok := c.TLSConnectionState()
	if !ok {
		return ""
	}
	return tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
}

// clientCertificate is the hex SHA-256 of the verified TLS client
// certificate, or "" when the client showed none that was verified.
func clientCertificate(c *gosmtp.Conn) string {
	st, ok := c.TLSConnectionState()
	if !ok || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return ""
	}
	fp := sha256.Sum256(st.VerifiedChains[0][0].Raw)
	return hex.EncodeToString(fp[:])
}
