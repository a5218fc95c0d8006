package portal

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/poststelle/poststelle/crypto/pkcs11"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
)

// fcPlatform is the Submission API as package fitconnect's Client speaks it
// (OAuth2 client credentials, the token reused until shortly before it
// expires and renewed once after a 401, RFC 7807 problems as typed errors),
// behind the channel's platform and replyAPI seams, which the tests fill with
// a fake. Its errors are mapped onto the ones the collector tells apart.
type fcPlatform struct {
	c *fitconnect.Client
}

func newFCPlatform(cfg *Config, secret []byte, log *slog.Logger) (*fcPlatform, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	c, err := fitconnect.NewClient(fitconnect.ClientConfig{BaseURL: cfg.SubmissionAPI, TokenURL: cfg.TokenURL,
		ClientID: cfg.ClientID, ClientSecret: string(secret), MaxSubmissionSize: cfg.maxSize(), Logger: log,
		HTTPClient: &http.Client{Timeout: cfg.timeout(), Transport: tr,
			// A redirect would carry the bearer token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}})
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	return &fcPlatform{c: c}, nil
}

// mapErr turns package fitconnect's errors into the collector's: a vanished
// submission, attachment, case or reply is errNotFound, a token refused even
// after renewal errUnauthorized, an answer over max_submission_size
// blob.ErrTooLarge (left unconfirmed and logged, as one over the budget).
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fitconnect.ErrGone):
		return fmt.Errorf("%w: %w", errNotFound, err)
	case errors.Is(err, fitconnect.ErrUnauthorized):
		return fmt.Errorf("%w: %w", errUnauthorized, err)
	case errors.Is(err, fitconnect.ErrResponseTooLarge):
		return fmt.Errorf("%w: %w", blob.ErrTooLarge, err)
	}
	return err
}

func (p *fcPlatform) ListSubmissions(ctx context.Context, destinationID string, offset, limit int) (fitconnect.SubmissionList, error) {
	l, err := p.c.ListSubmissions(ctx, destinationID, offset, limit)
	if err != nil {
		return fitconnect.SubmissionList{}, mapErr(err)
	}
	return *l, nil
}

// GetSubmission writes the answer byte for byte, also when it is no
// submission: the collector records such bytes with the problem.
func (p *fcPlatform) GetSubmission(ctx context.Context, id string, w io.Writer) error {
	f, err := p.c.FetchSubmission(ctx, id)
	if err != nil {
		return mapErr(err)
	}
	_, err = w.Write(f.Raw)
	return err
}

func (p *fcPlatform) GetAttachment(ctx context.Context, id, aid string, w io.Writer) error {
	_, err := p.c.CopyAttachment(ctx, id, aid, w, 0)
	return mapErr(err)
}

func (p *fcPlatform) PostEvent(ctx context.Context, caseID, set string) error {
	return mapErr(p.c.PostEvent(ctx, caseID, set))
}

func (p *fcPlatform) EventLog(ctx context.Context, caseID string) ([]string, error) {
	l, err := p.c.GetEventLog(ctx, caseID)
	return l, mapErr(err)
}

// PlatformKeys is the platform's JWKS (the Submission API's base URL without
// its version segment, + /.well-known/jwks.json). It needs no token.
func (p *fcPlatform) PlatformKeys(ctx context.Context) (*fitconnect.KeySet, error) {
	k, err := p.c.PlatformKeys(ctx)
	return k, mapErr(err)
}

// RefreshToken does nothing: the client has already fetched a fresh token
// and repeated the call once before it answers errUnauthorized, so the
// collector's own repeat is one more attempt with the token it has.
func (p *fcPlatform) RefreshToken(context.Context) error { return nil }

// CreateReply is POST /replies with the submission and the announced
// attachments.
func (p *fcPlatform) CreateReply(ctx context.Context, submissionID string, attachmentIDs []string) (string, string, error) {
	if attachmentIDs == nil {
		attachmentIDs = []string{}
	}
	r, err := p.c.CreateReply(ctx, fitconnect.NewReply{SubmissionID: submissionID, AnnouncedAttachments: attachmentIDs})
	if err != nil {
		return "", "", mapErr(err)
	}
	if !acceptableID(r.ReplyID) {
		return "", "", fmt.Errorf("POST /replies: no usable replyId in the answer (%.80q)", r.ReplyID)
	}
	return r.ReplyID, r.CaseID, nil
}

func (p *fcPlatform) UploadReplyAttachment(ctx context.Context, replyID, attachmentID, jwe string) error {
	return mapErr(p.c.UploadReplyAttachment(ctx, replyID, attachmentID, jwe))
}

func (p *fcPlatform) SubmitReply(ctx context.Context, replyID, encryptedMetadata, encryptedData string) error {
	return mapErr(p.c.SubmitReply(ctx, replyID, encryptedMetadata, encryptedData))
}

// New builds the portal channel's collector of cfg: keys and secrets read
// from their files (never logged), a PKCS#11 decryption key opened on its
// token (decryption_pkcs11), the Submission API client. Nil when cfg does
// not enable the channel.
func New(cfg Config, deps gateway.IntakeDeps) (*Inbound, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	var dec *fitconnect.Decrypter
	var closeKey func() error
	if p := cfg.DecryptionPKCS11; p != nil {
		key, err := pkcs11.Open(context.Background(), pkcs11.Config{Module: p.Module, Token: p.TokenLabel, PINFile: p.PINFile,
			Label: p.KeyLabel, CertFile: p.CertFile}, log)
		if err != nil {
			return nil, fmt.Errorf("portal: decryption_pkcs11: %w", err)
		}
		closeKey = key.Close
		if dec, err = fitconnect.NewCryptoDecrypter("", key); err != nil {
			_ = closeKey()
			return nil, fmt.Errorf("portal: decryption_pkcs11: %w", err)
		}
	}
	in, err := newCollector(cfg, deps, dec, log)
	if err != nil {
		if closeKey != nil {
			_ = closeKey()
		}
		return nil, err
	}
	in.closeKey = closeKey
	return in, nil
}

func newCollector(cfg Config, deps gateway.IntakeDeps, dec *fitconnect.Decrypter, log *slog.Logger) (*Inbound, error) {
	k, err := loadKeys(&cfg, dec)
	if err != nil {
		return nil, err
	}
	secret, err := readSecret("client_secret_file", cfg.ClientSecretFile)
	if err != nil {
		return nil, err
	}
	var cbSecret []byte
	if cfg.CallbackListen != "" {
		if cbSecret, err = readSecret("callback_secret_file", cfg.CallbackSecretFile); err != nil {
			return nil, err
		}
	}
	api, err := newFCPlatform(&cfg, secret, log)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.SubmissionAPI)
	return newInbound(cfg, deps, inboundOptions{api: api, keys: k, callbackSecret: cbSecret, remote: u.Host})
}
