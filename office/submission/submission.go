package submission

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/internal/dialconf"
	"github.com/poststelle/poststelle/mail/mailcompose"
	"github.com/poststelle/poststelle/mail/mailmsg"
)

// Config configures the offices' SMTP submission endpoint.
type Config struct {
	// Listen is the TCP address (default 127.0.0.1:1587).
	Listen string `yaml:"listen"`
	// Hostname is announced in the greeting (default "poststelle").
	Hostname string `yaml:"hostname"`
	// TLSCertFile and TLSKeyFile (PEM) enable STARTTLS. Without TLS the
	// endpoint takes passwords only on a loopback address.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// MaxMessageBytes caps one submitted reply (default 25 MiB).
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// TLSConfig, when set, is used instead of the certificate files.
	TLSConfig *tls.Config `yaml:"-"`
}

// Authenticator checks an office member's password; *offices.Directory is one.
type Authenticator interface {
	Authenticate(ctx context.Context, user, password string) (offices.Principal, error)
}

// BlobWriter stores submitted bytes and reads them back for the MIME walk;
// *blob.Store is one.
type BlobWriter interface {
	Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error)
	PutBytes(ctx context.Context, b []byte) (blob.Ref, error)
	Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error)
	ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error)
}

// Deps are the endpoint's collaborators.
type Deps struct {
	Directory Authenticator
	Log       eventstore.Log
	// State is the state database with the office inbox read model, to
	// find the message a reply answers.
	State  *sql.DB
	Blobs  BlobWriter
	Logger *slog.Logger
	// Plan is the reply-channel policy (the channel registry's
	// replies.Policy); required.
	Plan replies.PlanFunc
}

// Server is the offices' SMTP submission endpoint: a member's mail
// client answers a message by sending mail here. The mail must be an answer
// (In-Reply-To naming the office's copy of a received message, or the
// original's Message-ID); it becomes a ReplyRequested for that message and
// goes out on the sender's channel by the reply-channel policy, whatever
// the mail's own To says. Anything else is refused with a 5xx.
type Server struct {
	cfg  Config
	deps Deps
	srv  *gosmtp.Server
	ln   net.Listener
}

// Server limits.
const (
	maxSubmissionParts = 50
	maxMIMEDepth       = 4
)

// New checks the configuration and listens.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Directory == nil || deps.Log == nil || deps.State == nil || deps.Blobs == nil || deps.Plan == nil {
		return nil, errors.New("submission: Deps.Directory, Log, State, Blobs and Plan are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:1587"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "poststelle"
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 25 << 20
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("smtpout: submission listen %q: %w", cfg.Listen, err)
	}
	if cfg.TLSConfig == nil && cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("smtpout: submission certificate: %w", err)
		}
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.TLSConfig == nil && !dialconf.IsLoopback(host) {
		return nil, fmt.Errorf("smtpout: submission on %s needs TLS (tls_cert_file/tls_key_file): passwords travel plain otherwise", host)
	}
	s := &Server{cfg: cfg, deps: deps}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Hostname
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = 10
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Minute, 5*time.Minute
	srv.TLSConfig = cfg.TLSConfig
	srv.AllowInsecureAuth = dialconf.IsLoopback(host)
	srv.ErrorLog = slogPrinter{deps.Logger}
	s.srv = srv
	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("smtpout: submission: %w", err)
	}
	return s, nil
}

// Addr is the address the endpoint listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.deps.Logger.Info("office SMTP submission listening", "addr", s.ln.Addr().String(), "starttls", s.cfg.TLSConfig != nil)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.srv.Shutdown(sctx)
		// go-smtp closes only listeners Serve has registered: when ctx ends
		// before the goroutine above got there, Serve would accept forever.
		s.ln.Close()
		<-errc
		return ctx.Err()
	case err := <-errc:
		return fmt.Errorf("smtpout: submission: %w", err)
	}
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Warn("smtp submission: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (p slogPrinter) Println(v ...any) {
	p.l.Warn("smtp submission: " + strings.TrimSpace(fmt.Sprintln(v...)))
}

func (s *Server) newSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return &submitSession{s: s, conn: c}, nil
}

type submitSession struct {
	s    *Server
	conn *gosmtp.Conn
	p    *offices.Principal
}

var (
	errAuthRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errAuthFailed   = &gosmtp.SMTPError{Code: 535, EnhancedCode: gosmtp.EnhancedCode{5, 7, 8}, Message: "Authentication failed"}
	errNotAnswer    = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1},
		Message: "Poststelle accepts only answers: In-Reply-To must name a message of your office"}
	errTempFailure = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Cannot record the reply now; try again later"}
)

func (ss *submitSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *submitSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, gosmtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if identity != "" && identity != user {
			return errAuthFailed
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := ss.s.deps.Directory.Authenticate(ctx, user, pass)
		if err != nil {
			ss.s.deps.Logger.Warn("office SMTP submission login failed", "user", user, "remote", ss.remote())
			return errAuthFailed
		}
		ss.p = &p
		return nil
	}), nil
}

func (ss *submitSession) remote() string {
	if nc := ss.conn.Conn(); nc != nil {
		return nc.RemoteAddr().String()
	}
	return ""
}

func (ss *submitSession) Reset()        {}
func (ss *submitSession) Logout() error { return nil }

func (ss *submitSession) Mail(string, *gosmtp.MailOptions) error {
	if ss.p == nil {
		return errAuthRequired
	}
	return nil
}

// Rcpt accepts any recipient: the policy, not the mail, decides where the
// answer goes.
func (ss *submitSession) Rcpt(string, *gosmtp.RcptOptions) error {
	if ss.p == nil {
		return errAuthRequired
	}
	return nil
}

func (ss *submitSession) Data(r io.Reader) error {
	if ss.p == nil {
		return errAuthRequired
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw, err := io.ReadAll(io.LimitReader(r, ss.s.cfg.MaxMessageBytes+1))
	if err != nil {
		return err
	}
	if int64(len(raw)) > ss.s.cfg.MaxMessageBytes {
		return &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4}, Message: "Message too large"}
	}
	err = ss.s.submit(ctx, ss.p, raw)
	var se *gosmtp.SMTPError
	if err != nil && !errors.As(err, &se) {
		ss.s.deps.Logger.Error("office SMTP submission failed", "user", ss.p.User, "err", err)
		return errTempFailure
	}
	return err
}

// submit turns a submitted mail into an answer recorded by
// replies.Requester.
func (s *Server) submit(ctx context.Context, p *offices.Principal, raw []byte) error {
	h, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "Cannot parse the message header"}
	}
	orig, err := s.answered(ctx, p, h.Header)
	if err != nil {
		return err
	}
	rawRef, err := s.deps.Blobs.PutBytes(ctx, raw)
	if err != nil {
		return err
	}
	a, err := s.content(ctx, raw)
	if err != nil {
		return err
	}
	// A client resending after a lost answer submits the same bytes: the
	// same key gives the same ReplyID and event id, which record nothing new.
	a.Key = "smtp-submission/" + p.User + "/" + rawRef.SHA256
	a.Via, a.Metadata = "smtp-submission", map[string]string{"submission": rawRef.SHA256}
	rq := replies.Requester{Log: s.deps.Log, Blobs: s.deps.Blobs, Tenant: orig.Tenant, Plan: s.deps.Plan}
	res, err := rq.RequestReply(ctx, *p, orig.Office, orig.Stream, a)
	switch {
	case errors.Is(err, replies.ErrNotFound), errors.Is(err, replies.ErrForbidden):
		return errNotAnswer
	case errors.Is(err, replies.ErrCannotAnswer):
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 3}, Message: "The message cannot be answered: " + err.Error()}
	case errors.Is(err, replies.ErrInvalid):
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "Cannot take the answer: " + err.Error()}
	case errors.Is(err, replies.ErrConflict):
		// The key holds the user and the bytes' hash, so the answer
		// recorded under it came from these very bytes: nothing to add.
		return nil
	case err != nil:
		return fmt.Errorf("record reply to %s: %w", orig.Stream, err)
	}
	s.deps.Logger.Info("office reply submitted", "user", p.User, "office", orig.Office, "stream", orig.Stream,
		"reply", res.ReplyID, "channel", res.Channel, "existing", res.Existing)
	return nil
}

// answered finds the office message the mail answers: its In-Reply-To names
// the office copy (what the office IMAP server shows) or the original.
func (s *Server) answered(ctx context.Context, p *offices.Principal, h mail.Header) (offices.Message, error) {
	ids := replies.MessageIDs(h.Get("In-Reply-To"))
	if len(ids) == 0 {
		return offices.Message{}, errNotAnswer
	}
	for _, id := range ids {
		if office, stream, ok := replies.ParseOfficeCopyID(id); ok {
			if !p.CanAct(office) {
				return offices.Message{}, errNotAnswer
			}
			m, err := offices.GetMessage(ctx, s.deps.State, office, stream)
			if errors.Is(err, offices.ErrNotFound) {
				return offices.Message{}, errNotAnswer
			}
			return m, err
		}
	}
	for _, office := range p.Offices {
		if !p.CanAct(office) {
			continue
		}
		msgs, err := offices.ListInbox(ctx, s.deps.State, office, 0)
		if err != nil {
			return offices.Message{}, err
		}
		for i := len(msgs) - 1; i >= 0; i-- {
			if orig := replies.OriginalMessageID(receivedOf(msgs[i])); orig != "" && orig == ids[0] {
				return msgs[i], nil
			}
		}
	}
	return offices.Message{}, errNotAnswer
}

// receivedOf is the part of a queued message's receipt that names its
// sender's message id.
func receivedOf(m offices.Message) *gateway.MessageReceived {
	return &gateway.MessageReceived{Channel: m.Channel, SenderMessageID: m.SenderMessageID, Metadata: m.Metadata}
}

// content reads the answer with the MIME walker the intakes use: the text is
// the first text/plain body part, converted to UTF-8; every other part is an
// attachment, except the HTML rendering of the text, the entry of a
// multipart/signed, and the parts inside an attached message or S/MIME
// object (which travel as that one attachment).
func (s *Server) content(ctx context.Context, raw []byte) (replies.Answer, error) {
	msg, err := mailmsg.WalkReader(ctx, s.deps.Blobs, bytes.NewReader(raw), int64(len(raw)),
		mailmsg.Limits{MaxDepth: maxMIMEDepth, MaxParts: maxSubmissionParts + 1})
	if err != nil {
		return replies.Answer{}, err
	}
	refuse := func(why string) (replies.Answer, error) {
		return replies.Answer{}, &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "Cannot read the message: " + why}
	}
	if len(msg.Parts) > maxSubmissionParts {
		return refuse(fmt.Sprintf("more than %d parts", maxSubmissionParts))
	}
	var a replies.Answer
	text := -1
	for i, part := range msg.Parts {
		mt, _, _ := mime.ParseMediaType(part.MediaType)
		if part.Kind == mailmsg.KindBody && mt == "text/plain" {
			text = i
			break
		}
	}
	var inside []string // paths whose descendants travel inside their parent
	for i, part := range msg.Parts {
		if part.Blob.SHA256 == "" {
			return refuse("part " + part.Path + " could not be stored")
		}
		mt, params, _ := mime.ParseMediaType(part.MediaType)
		switch {
		case i == text:
			if a.Text, err = s.utf8Text(ctx, part.Blob, params["charset"]); err != nil {
				return refuse(err.Error())
			}
			continue
		case part.Kind == mailmsg.KindSignedContent, part.Kind == mailmsg.KindContainer,
			part.Kind == mailmsg.KindBody && mt == "text/html" && text >= 0,
			below(part.Path, inside):
			continue
		}
		inside = append(inside, part.Path)
		a.Attachments = append(a.Attachments, gateway.Part{Path: part.Path, MediaType: part.MediaType,
			Filename: attachmentName(part.Filename), Blob: part.Blob, Kind: mailmsg.KindAttachment})
	}
	// A subject the answer may not carry leaves the default ("Re: " and the
	// original's), as mail clients write it anyway.
	if replies.CheckSubject(msg.Subject) == nil {
		a.Subject = msg.Subject
	}
	return a, nil
}

func below(p string, parents []string) bool {
	for _, q := range parents {
		if strings.HasPrefix(p, q+".") {
			return true
		}
	}
	return false
}

// attachmentName keeps a file name the reply renderer accepts, else none.
func attachmentName(name string) string {
	if mailcompose.CheckText("filename", name) != nil || strings.ContainsAny(name, `/\`) || len(name) > mailcompose.MaxFilenameBytes {
		return ""
	}
	return name
}

// utf8Text reads a stored text part and converts it to UTF-8.
func (s *Server) utf8Text(ctx context.Context, ref blob.Ref, charset string) ([]byte, error) {
	b, err := s.deps.Blobs.ReadAll(ctx, ref, s.cfg.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(charset) {
	case "", "utf-8", "us-ascii":
		if !utf8.Valid(b) {
			return nil, errors.New("text is not UTF-8")
		}
		return b, nil
	}
	r, err := mailmsg.CharsetReader(charset, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, 4*s.cfg.MaxMessageBytes))
}
