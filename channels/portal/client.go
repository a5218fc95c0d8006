package portal

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/poststelle/poststelle/crypto/pkcs11"
	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
)

// httpPlatform is the Submission API v1 over HTTP with an OAuth2 access
// token from the client credentials grant (RFC 6749 § 4.4), the way the
// FIT-Connect SDKs call it: the token POSTed as a form with grant_type,
// client_id and client_secret, every call with "Authorization: Bearer".
type httpPlatform struct {
	base     string
	tokenURL string
	clientID string
	secret   []byte
	client   *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

const (
	// maxJSONAnswer caps a listing or an event log.
	maxJSONAnswer = 16 << 20
	// maxErrorBody caps what is read of an error answer.
	maxErrorBody = 4 << 10
	// tokenMargin renews a token this long before it expires.
	tokenMargin = 30 * time.Second
)

func newHTTPPlatform(cfg *Config, secret []byte) *httpPlatform {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return &httpPlatform{base: strings.TrimRight(cfg.SubmissionAPI, "/"), tokenURL: cfg.TokenURL, clientID: cfg.ClientID,
		secret: secret, client: &http.Client{Timeout: cfg.timeout(), Transport: tr,
			// A redirect would carry the bearer token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// RefreshToken fetches a new access token.
func (p *httpPlatform) RefreshToken(ctx context.Context) error {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {p.clientID}, "client_secret": {string(p.secret)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("portal: token endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("portal: token endpoint answered %s%s", resp.Status, problemOf(resp.Body))
	}
	var t struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody*4)).Decode(&t); err != nil || t.AccessToken == "" {
		return fmt.Errorf("portal: token endpoint: no access token in the answer (%v)", err)
	}
	if t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer") {
		return fmt.Errorf("portal: token endpoint: token type %.40q, want bearer", t.TokenType)
	}
	p.mu.Lock()
	p.token = t.AccessToken
	p.expires = time.Now().Add(time.Duration(max(t.ExpiresIn, 60)) * time.Second)
	p.mu.Unlock()
	return nil
}

func (p *httpPlatform) bearer(ctx context.Context) (string, error) {
	p.mu.Lock()
	tok, exp := p.token, p.expires
	p.mu.Unlock()
	if tok != "" && time.Until(exp) > tokenMargin {
		return tok, nil
	}
	if err := p.RefreshToken(ctx); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.token, nil
}

// do sends one call and returns the response of a 2xx answer; 401 is
// errUnauthorized (the token is dropped), 404 errNotFound.
func (p *httpPlatform) do(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	tok, err := p.bearer(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	detail := problemOf(resp.Body)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		p.mu.Lock()
		p.token = ""
		p.mu.Unlock()
		return nil, fmt.Errorf("%s %s: %s%s: %w", method, path, resp.Status, detail, errUnauthorized)
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s %s: %s%s: %w", method, path, resp.Status, detail, errNotFound)
	}
	return nil, fmt.Errorf("%s %s: %s%s", method, path, resp.Status, detail)
}

// problemOf is the type and detail of an RFC 7807 answer, for the error.
func problemOf(r io.Reader) string {
	var pd struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	}
	if json.NewDecoder(io.LimitReader(r, maxErrorBody)).Decode(&pd) != nil || pd.Type == "" {
		return ""
	}
	return fmt.Sprintf(" (%.200s: %.200s)", pd.Type, pd.Detail)
}

func (p *httpPlatform) getJSON(ctx context.Context, path string, v any) error {
	resp, err := p.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONAnswer+1))
	if err != nil {
		return err
	}
	if len(b) > maxJSONAnswer {
		return fmt.Errorf("GET %s: an answer of more than %d bytes", path, maxJSONAnswer)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

func (p *httpPlatform) ListSubmissions(ctx context.Context, destinationID string, offset, limit int) (submissionPage, error) {
	var page submissionPage
	q := url.Values{"destinationId": {destinationID}, "offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
	err := p.getJSON(ctx, "/submissions?"+q.Encode(), &page)
	return page, err
}

func (p *httpPlatform) stream(ctx context.Context, path string, w io.Writer) error {
	resp, err := p.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

func (p *httpPlatform) GetSubmission(ctx context.Context, id string, w io.Writer) error {
	return p.stream(ctx, "/submissions/"+url.PathEscape(id), w)
}

func (p *httpPlatform) GetAttachment(ctx context.Context, id, aid string, w io.Writer) error {
	return p.stream(ctx, "/submissions/"+url.PathEscape(id)+"/attachments/"+url.PathEscape(aid), w)
}

func (p *httpPlatform) PostEvent(ctx context.Context, caseID, set string) error {
	resp, err := p.do(ctx, http.MethodPost, "/cases/"+url.PathEscape(caseID)+"/events", strings.NewReader(set), "application/jose")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (p *httpPlatform) EventLog(ctx context.Context, caseID string) ([]string, error) {
	var l struct {
		EventLog []string `json:"eventLog"`
	}
	if err := p.getJSON(ctx, "/cases/"+url.PathEscape(caseID)+"/events", &l); err != nil {
		return nil, err
	}
	return l.EventLog, nil
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
	var dec cryptoDecrypter
	var closeKey func() error
	if p := cfg.DecryptionPKCS11; p != nil {
		log := deps.Logger
		if log == nil {
			log = slog.Default()
		}
		key, err := pkcs11.Open(context.Background(), pkcs11.Config{Module: p.Module, Token: p.TokenLabel, PINFile: p.PINFile,
			Label: p.KeyLabel, CertFile: p.CertFile}, log)
		if err != nil {
			return nil, fmt.Errorf("portal: decryption_pkcs11: %w", err)
		}
		dec, closeKey = key, key.Close
	}
	k, err := loadKeys(&cfg, dec)
	if err == nil {
		var secret, cbSecret []byte
		if secret, err = readSecret("client_secret_file", cfg.ClientSecretFile); err == nil && cfg.CallbackListen != "" {
			cbSecret, err = readSecret("callback_secret_file", cfg.CallbackSecretFile)
		}
		if err == nil {
			u, _ := url.Parse(cfg.SubmissionAPI)
			var in *Inbound
			in, err = newInbound(cfg, deps, inboundOptions{api: newHTTPPlatform(&cfg, secret), keys: k,
				callbackSecret: cbSecret, remote: u.Host})
			if err == nil {
				in.closeKey = closeKey
				return in, nil
			}
		}
	}
	if closeKey != nil {
		_ = closeKey()
	}
	return nil, err
}

// CreateReply is POST /replies with the submission and the announced
// attachments.
func (p *httpPlatform) CreateReply(ctx context.Context, submissionID string, attachmentIDs []string) (string, string, error) {
	if attachmentIDs == nil {
		attachmentIDs = []string{}
	}
	body, err := json.Marshal(map[string]any{"submissionId": submissionID, "announcedAttachments": attachmentIDs})
	if err != nil {
		return "", "", err
	}
	resp, err := p.do(ctx, http.MethodPost, "/replies", strings.NewReader(string(body)), "application/json")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var out struct {
		ReplyID string `json:"replyId"`
		CaseID  string `json:"caseId"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody*4)).Decode(&out); err != nil || !acceptableID(out.ReplyID) {
		return "", "", fmt.Errorf("POST /replies: no replyId in the answer (%v)", err)
	}
	return out.ReplyID, out.CaseID, nil
}

// UploadReplyAttachment is PUT /replies/{replyId}/attachments/{attachmentId}.
func (p *httpPlatform) UploadReplyAttachment(ctx context.Context, replyID, attachmentID, jwe string) error {
	resp, err := p.do(ctx, http.MethodPut, "/replies/"+url.PathEscape(replyID)+"/attachments/"+url.PathEscape(attachmentID),
		strings.NewReader(jwe), "application/jose")
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// SubmitReply is PUT /replies/{replyId} with the encrypted metadata and data.
func (p *httpPlatform) SubmitReply(ctx context.Context, replyID, encryptedMetadata, encryptedData string) error {
	body, err := json.Marshal(map[string]string{"encryptedMetadata": encryptedMetadata, "encryptedData": encryptedData})
	if err != nil {
		return err
	}
	resp, err := p.do(ctx, http.MethodPut, "/replies/"+url.PathEscape(replyID), strings.NewReader(string(body)), "application/json")
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// PlatformKeys is the platform's JWKS: the Submission API's base URL without
// its version segment, + /.well-known/jwks.json (as package fitconnect's
// client derives it). It needs no token.
func (p *httpPlatform) PlatformKeys(ctx context.Context) (*fitconnect.KeySet, error) {
	u, err := url.Parse(p.base)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/v1") + "/.well-known/jwks.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u.Path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20+1))
	if err != nil || len(b) > 1<<20 {
		return nil, fmt.Errorf("GET %s: unreadable or larger than 1 MiB (%v)", u.Path, err)
	}
	return fitconnect.ParseJWKSet(b)
}
