package fitconnect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The destination side of the Submission API v1 (paths relative to the base URL,
// which ends in /v1 as in the Python SDK's SUBMISSION_API_URL):
//
//	GET  /submissions?destinationId=&offset=&limit=   {count, offset, totalCount, submissions:[{destinationId, submissionId, caseId}]}
//	GET  /submissions/{submissionId}                  {destinationId, submissionId, caseId, attachments:[id], encryptedMetadata, encryptedData, serviceType:{name, identifier}, callback}
//	GET  /submissions/{submissionId}/attachments/{id}  application/jose: the attachment's JWE
//	POST /cases/{caseId}/events                        application/jose: a SET (accept-/reject-submission)
//	GET  /cases/{caseId}/events                        {eventLog:[SET, ...]}
//
// and the reply side (Rückkanal), in the closest documented form: the public
// material we found describes replies, their events and callbacks, and the
// metadata's replyChannel.fitConnect, but we saw no published path list for
// v1, so these follow the submission endpoints' pattern:
//
//	POST /replies                                      {submissionId, announcedAttachments:[id]} → 201 {replyId, caseId}
//	PUT  /replies/{replyId}/attachments/{id}           application/jose → 204
//	PUT  /replies/{replyId}                            {encryptedMetadata, encryptedData} → 2xx
//	GET  /replies/{replyId}                            {replyId, caseId, submissionId, ...}
//
// Authentication is OAuth 2.0 client credentials (RFC 6749 §4.4) against the
// token URL, client id and secret sent in the form body as the SDK does; the
// access token is reused until shortly before it expires and fetched anew
// after a 401. Errors are RFC 7807 problem details (application/problem+json).

// Limits of the client's reads.
const (
	// DefaultMaxSubmissionSize caps GET /submissions/{id} (which carries the
	// encrypted metadata and data) and an attachment's JWE.
	DefaultMaxSubmissionSize = 128 << 20
	// maxListResponse caps list, event log, token and problem responses.
	maxListResponse = 8 << 20
	// DefaultPageSize is the limit ListAllSubmissions asks for per page.
	DefaultPageSize = 100
	// maxListed bounds ListAllSubmissions however many the platform claims.
	maxListed = 100_000
)

// Errors of the client.
var (
	// ErrGone: the submission (or its attachment) no longer exists (404/410):
	// it was deleted, or another subscriber of the destination took it.
	ErrGone = errors.New("fitconnect: submission gone")
	// ErrUnauthorized: the platform refused the client's token even after a
	// fresh one was fetched (401/403).
	ErrUnauthorized = errors.New("fitconnect: not authorized")
	// ErrResponseTooLarge: a response exceeded its cap.
	ErrResponseTooLarge = errors.New("fitconnect: response too large")
)

// ProblemDetail is an RFC 7807 problem detail as the Submission API sends it.
type ProblemDetail struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// APIError is a non-2xx answer of the Submission API.
type APIError struct {
	Op      string // what the client was doing
	Status  int
	Problem *ProblemDetail // nil when the body was not a problem detail
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("fitconnect: %s: HTTP %d", e.Op, e.Status)
	if e.Problem != nil {
		s += " " + truncate(e.Problem.Type, 200)
		if e.Problem.Detail != "" {
			s += ": " + truncate(e.Problem.Detail, 300)
		} else if e.Problem.Title != "" {
			s += ": " + truncate(e.Problem.Title, 300)
		}
	}
	return s
}

// Temporary reports whether retrying later may help (429 and 5xx).
func (e *APIError) Temporary() bool { return e.Status == http.StatusTooManyRequests || e.Status >= 500 }

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL of the Submission API including the version, e.g.
	// https://submission-api-testing.fit-connect.fitko.dev/v1.
	BaseURL string
	// TokenURL of the OAuth server.
	TokenURL     string
	ClientID     string
	ClientSecret string // never logged
	// Scopes to request (none by default: the platform assigns them).
	Scopes []string
	// JWKSURL of the platform's signature keys; "" means the base URL without
	// its version segment + /.well-known/jwks.json.
	JWKSURL string
	// HTTPClient for API and token requests (http.DefaultClient when nil; give
	// one with a timeout).
	HTTPClient *http.Client
	// MaxSubmissionSize caps a submission and each attachment JWE
	// (DefaultMaxSubmissionSize when 0).
	MaxSubmissionSize int64
	// Logger (slog.Default when nil). Secrets and tokens are never logged.
	Logger *slog.Logger
}

// Client talks to the Submission API as a destination (subscriber) client.
// It is safe for concurrent use.
type Client struct {
	base    *url.URL
	jwksURL string
	http    *http.Client
	oauth   clientcredentials.Config
	maxSize int64
	log     *slog.Logger

	mu    sync.Mutex
	token *oauth2.Token
}

// NewClient checks the configuration and builds a client; it does not contact
// the platform.
func NewClient(cfg ClientConfig) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("fitconnect: submission API URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.TokenURL == "" || cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("fitconnect: token URL, client id and client secret are required")
	}
	c := &Client{
		base:    base,
		jwksURL: cfg.JWKSURL,
		http:    cfg.HTTPClient,
		oauth: clientcredentials.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			TokenURL:     cfg.TokenURL,
			Scopes:       cfg.Scopes,
			AuthStyle:    oauth2.AuthStyleInParams,
		},
		maxSize: cfg.MaxSubmissionSize,
		log:     cfg.Logger,
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.maxSize <= 0 {
		c.maxSize = DefaultMaxSubmissionSize
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.jwksURL == "" {
		u := *base
		if i := strings.LastIndexByte(u.Path, '/'); i >= 0 && strings.HasPrefix(u.Path[i+1:], "v") {
			u.Path = u.Path[:i]
		}
		u.Path += "/.well-known/jwks.json"
		c.jwksURL = u.String()
	}
	return c, nil
}

// accessToken returns a valid token, fetching one when there is none or it
// is about to expire (oauth2.Token.Valid allows for a small expiry delta).
func (c *Client) accessToken(ctx context.Context, renew bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !renew && c.token.Valid() {
		return c.token.AccessToken, nil
	}
	tok, err := c.oauth.Token(context.WithValue(ctx, oauth2.HTTPClient, c.http))
	if err != nil {
		// The oauth2 error may quote the response body; it never contains the
		// secret we sent, but stays out of logs all the same.
		return "", fmt.Errorf("fitconnect: fetching access token from %s: %w", c.oauth.TokenURL, err)
	}
	c.token = tok
	c.log.DebugContext(ctx, "fitconnect access token fetched", "token_url", c.oauth.TokenURL, "expiry", tok.Expiry)
	return tok.AccessToken, nil
}

// request is one API call.
type request struct {
	op          string
	method      string
	path        string // relative to the base URL, segments already escaped
	query       url.Values
	body        []byte
	contentType string
	accept      string
	gone404     bool // 404/410 means ErrGone
}

// do sends r with a bearer token, once more with a fresh token after a 401,
// and returns the response for a 2xx status (the caller closes the body).
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	u := *c.base
	u.Path += r.path
	u.RawPath = ""
	if r.query != nil {
		u.RawQuery = r.query.Encode()
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.accessToken(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		var body io.Reader
		if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
		if err != nil {
			return nil, fmt.Errorf("fitconnect: %s: %w", r.op, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if r.contentType != "" {
			req.Header.Set("Content-Type", r.contentType)
		}
		if r.accept != "" {
			req.Header.Set("Accept", r.accept)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fitconnect: %s: %w", r.op, err)
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		apiErr := c.apiError(r.op, resp)
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			c.log.InfoContext(ctx, "fitconnect token refused, fetching a new one", "op", r.op)
			continue
		}
		switch {
		case r.gone404 && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone):
			return nil, fmt.Errorf("%w: %w", ErrGone, apiErr)
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			return nil, fmt.Errorf("%w: %w", ErrUnauthorized, apiErr)
		}
		return nil, apiErr
	}
}

// apiError reads (bounded) and closes an error response.
func (c *Client) apiError(op string, resp *http.Response) *APIError {
	defer resp.Body.Close()
	e := &APIError{Op: op, Status: resp.StatusCode}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || len(b) == 0 {
		return e
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/problem+json" && mt != "application/json" {
		return e
	}
	var p ProblemDetail
	if json.Unmarshal(b, &p) == nil && (p.Type != "" || p.Title != "") {
		e.Problem = &p
	}
	return e
}

// getJSON fetches and decodes a JSON response of at most limit bytes.
func (c *Client) getJSON(ctx context.Context, r request, limit int64, into any) error {
	r.method = http.MethodGet
	r.accept = "application/json"
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, limit)
	if err != nil {
		return fmt.Errorf("fitconnect: %s: %w", r.op, err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("fitconnect: %s: decoding response: %w", r.op, err)
	}
	return nil
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrResponseTooLarge, limit)
	}
	return b, nil
}

func seg(s string) string { return "/" + url.PathEscape(s) }

// SubmissionList is one page of GET /submissions.
type SubmissionList struct {
	Count       int             `json:"count"`
	Offset      int             `json:"offset"`
	TotalCount  int             `json:"totalCount"`
	Submissions []SubmissionRef `json:"submissions"`
}

// ListSubmissions fetches one page of the submissions waiting for the
// destination (destinationID "" lists those of all the client's destinations).
func (c *Client) ListSubmissions(ctx context.Context, destinationID string, offset, limit int) (*SubmissionList, error) {
	q := url.Values{}
	if destinationID != "" {
		q.Set("destinationId", destinationID)
	}
	q.Set("offset", strconv.Itoa(offset))
	q.Set("limit", strconv.Itoa(limit))
	var l SubmissionList
	if err := c.getJSON(ctx, request{op: "listing submissions", path: "/submissions", query: q}, maxListResponse, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ListAllSubmissions pages through ListSubmissions until the list is complete
// (bounded at 100 000 entries and by an empty page).
func (c *Client) ListAllSubmissions(ctx context.Context, destinationID string) ([]SubmissionRef, error) {
	var out []SubmissionRef
	for offset := 0; offset < maxListed; {
		page, err := c.ListSubmissions(ctx, destinationID, offset, DefaultPageSize)
		if err != nil {
			return out, err
		}
		out = append(out, page.Submissions...)
		offset += len(page.Submissions)
		if len(page.Submissions) == 0 || offset >= page.TotalCount {
			break
		}
	}
	return out, nil
}

// Submission is GET /submissions/{id}.
type Submission struct {
	DestinationID     string       `json:"destinationId"`
	SubmissionID      string       `json:"submissionId"`
	CaseID            string       `json:"caseId"`
	Attachments       []string     `json:"attachments"`
	EncryptedMetadata string       `json:"encryptedMetadata"`
	EncryptedData     string       `json:"encryptedData,omitempty"`
	ServiceType       *ServiceType `json:"serviceType,omitempty"`
	// PublicService is the v2 name of serviceType.
	PublicService *ServiceType `json:"publicService,omitempty"`
	Callback      *struct {
		URL string `json:"url"`
	} `json:"callback,omitempty"`
}

// Service is serviceType (v1) or publicService (v2), whichever is present.
func (s *Submission) Service() *ServiceType {
	if s.ServiceType != nil {
		return s.ServiceType
	}
	return s.PublicService
}

// GetSubmission fetches a submission with its encrypted metadata and data.
// A submission that no longer exists is ErrGone.
func (c *Client) GetSubmission(ctx context.Context, submissionID string) (*Submission, error) {
	var s Submission
	r := request{op: "fetching submission " + submissionID, path: "/submissions" + seg(submissionID), gone404: true}
	if err := c.getJSON(ctx, r, c.maxSize, &s); err != nil {
		return nil, err
	}
	if s.SubmissionID != submissionID {
		return nil, fmt.Errorf("fitconnect: fetching submission %s: the platform answered with submission %q", submissionID, truncate(s.SubmissionID, 64))
	}
	return &s, nil
}

// FetchedSubmission is GET /submissions/{id} as the platform answered it.
type FetchedSubmission struct {
	// Raw is the response body byte for byte: the evidence a destination
	// stores before anything else, from which an auditor holding the key can
	// decrypt everything again.
	Raw []byte
	// Submission is Raw parsed; nil when Raw is not a submission of the
	// requested id (ParseError says why).
	Submission *Submission
	// ParseError is why Raw did not parse, or names another submission; nil
	// when Submission is set. It is the sender's or the platform's fault, not
	// a failure of the fetch: the caller may record Raw with the problem.
	ParseError error
}

// FetchSubmission fetches a submission and keeps its bytes as fetched beside
// the parsed struct (GetSubmission when only the struct matters). The body is
// capped at MaxSubmissionSize (ErrResponseTooLarge past it); a submission that
// no longer exists is ErrGone. A body that is no submission is not an error of
// the fetch but FetchedSubmission.ParseError.
func (c *Client) FetchSubmission(ctx context.Context, submissionID string) (*FetchedSubmission, error) {
	op := "fetching submission " + submissionID
	resp, err := c.do(ctx, request{op: op, method: http.MethodGet, path: "/submissions" + seg(submissionID),
		accept: "application/json", gone404: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > c.maxSize {
		return nil, fmt.Errorf("fitconnect: %s: %w: %d bytes announced, limit %d", op, ErrResponseTooLarge, resp.ContentLength, c.maxSize)
	}
	b, err := readLimited(resp.Body, c.maxSize)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: %s: %w", op, err)
	}
	f := &FetchedSubmission{Raw: b}
	var s Submission
	switch err := json.Unmarshal(b, &s); {
	case err != nil:
		f.ParseError = fmt.Errorf("fitconnect: %s: decoding response: %w", op, err)
	case s.SubmissionID != submissionID:
		f.ParseError = fmt.Errorf("fitconnect: %s: the platform answered with submission %q", op, truncate(s.SubmissionID, 64))
	default:
		f.Submission = &s
	}
	return f, nil
}

// CopyAttachment streams an attachment's JWE into w, at most limit bytes
// (MaxSubmissionSize when limit <= 0, and never more than it), and returns the
// number of bytes written. Past the cap it fails with ErrResponseTooLarge
// after writing no more than limit bytes; a vanished attachment is ErrGone.
// A caller that retries must discard what an earlier attempt wrote.
func (c *Client) CopyAttachment(ctx context.Context, submissionID, attachmentID string, w io.Writer, limit int64) (int64, error) {
	if limit <= 0 || limit > c.maxSize {
		limit = c.maxSize
	}
	rc, err := c.openAttachment(ctx, submissionID, attachmentID, limit)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("fitconnect: reading attachment %s: %w", attachmentID, err)
	}
	return n, nil
}

// OpenAttachment streams an attachment's JWE; reading past the cap fails with
// ErrResponseTooLarge. The caller closes the reader.
func (c *Client) OpenAttachment(ctx context.Context, submissionID, attachmentID string) (io.ReadCloser, error) {
	return c.openAttachment(ctx, submissionID, attachmentID, c.maxSize)
}

func (c *Client) openAttachment(ctx context.Context, submissionID, attachmentID string, limit int64) (io.ReadCloser, error) {
	resp, err := c.do(ctx, request{
		op:      "fetching attachment " + attachmentID + " of submission " + submissionID,
		method:  http.MethodGet,
		path:    "/submissions" + seg(submissionID) + "/attachments" + seg(attachmentID),
		accept:  "application/jose",
		gone404: true,
	})
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: attachment %s announces %d bytes, limit %d", ErrResponseTooLarge, attachmentID, resp.ContentLength, limit)
	}
	return &cappedBody{r: resp.Body, left: limit}, nil
}

// GetAttachment reads an attachment's JWE whole (bounded by MaxSubmissionSize).
func (c *Client) GetAttachment(ctx context.Context, submissionID, attachmentID string) ([]byte, error) {
	rc, err := c.OpenAttachment(ctx, submissionID, attachmentID)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: reading attachment %s: %w", attachmentID, err)
	}
	return b, nil
}

// cappedBody fails instead of truncating silently.
type cappedBody struct {
	r    io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, ErrResponseTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		// The one byte read past the cap only tells that there is more; it
		// is not handed out.
		return n + int(b.left), ErrResponseTooLarge
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.r.Close() }

// PostEvent posts a SET (accept-submission, reject-submission, ...) to the
// case's event log. After a crash between posting and recording that it was
// posted, GetSubmission answering ErrGone tells that the platform took the
// confirmation (a confirmed submission is deleted); posting again would add a
// second event.
func (c *Client) PostEvent(ctx context.Context, caseID, set string) error {
	resp, err := c.do(ctx, request{
		op:          "posting an event to case " + caseID,
		method:      http.MethodPost,
		path:        "/cases" + seg(caseID) + "/events",
		body:        []byte(set),
		contentType: "application/jose",
	})
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Body.Close()
}

// GetEventLog fetches the case's event log: the SETs as compact JWS, oldest
// first. They are not verified here (ParseSET does that).
func (c *Client) GetEventLog(ctx context.Context, caseID string) ([]string, error) {
	var l struct {
		EventLog []string `json:"eventLog"`
	}
	if err := c.getJSON(ctx, request{op: "fetching the event log of case " + caseID, path: "/cases" + seg(caseID) + "/events", gone404: true}, maxListResponse, &l); err != nil {
		return nil, err
	}
	return l.EventLog, nil
}

// PlatformKeys fetches the platform's JWKS, the keys of the SETs it issues
// (submit-submission and the others the platform writes). It needs no token.
func (c *Client) PlatformKeys(ctx context.Context) (*KeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.jwksURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: fetching platform keys: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: fetching platform keys: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.apiError("fetching platform keys", resp)
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: fetching platform keys: %w", err)
	}
	return ParseJWKSet(b)
}

// DestinationKey fetches a destination's public key by kid
// (GET /destinations/{id}/keys/{kid}): its encryption key, or the signature key
// its SETs name.
func (c *Client) DestinationKey(ctx context.Context, destinationID, kid string) (json.RawMessage, error) {
	var k json.RawMessage
	r := request{op: "fetching key " + kid + " of destination " + destinationID, path: "/destinations" + seg(destinationID) + "/keys" + seg(kid)}
	if err := c.getJSON(ctx, r, maxJWKSize, &k); err != nil {
		return nil, err
	}
	return k, nil
}

// NewReply is the request of CreateReply.
type NewReply struct {
	SubmissionID         string   `json:"submissionId"`
	AnnouncedAttachments []string `json:"announcedAttachments"`
}

// ReplyCreated is the answer to CreateReply.
type ReplyCreated struct {
	ReplyID string `json:"replyId"`
	CaseID  string `json:"caseId,omitempty"`
}

// CreateReply announces a reply to a submission with its attachment ids (the
// reply API in the closest documented form; see the comment at the top).
func (c *Client) CreateReply(ctx context.Context, r NewReply) (*ReplyCreated, error) {
	if r.AnnouncedAttachments == nil {
		r.AnnouncedAttachments = []string{}
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: encoding reply: %w", err)
	}
	resp, err := c.do(ctx, request{
		op: "creating a reply to submission " + r.SubmissionID, method: http.MethodPost, path: "/replies",
		body: body, contentType: "application/json", accept: "application/json", gone404: true,
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, maxListResponse)
	if err != nil {
		return nil, fmt.Errorf("fitconnect: creating a reply: %w", err)
	}
	var out ReplyCreated
	if err := json.Unmarshal(b, &out); err != nil || out.ReplyID == "" {
		return nil, fmt.Errorf("fitconnect: creating a reply: the platform's answer has no replyId")
	}
	return &out, nil
}

// UploadReplyAttachment uploads one announced attachment of a reply as JWE.
func (c *Client) UploadReplyAttachment(ctx context.Context, replyID, attachmentID, jwe string) error {
	resp, err := c.do(ctx, request{
		op: "uploading attachment " + attachmentID + " of reply " + replyID, method: http.MethodPut,
		path: "/replies" + seg(replyID) + "/attachments" + seg(attachmentID),
		body: []byte(jwe), contentType: "application/jose", gone404: true,
	})
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Body.Close()
}

// SubmitReply sends the reply's encrypted metadata and data; the platform then
// writes submit-reply into the case's event log.
func (c *Client) SubmitReply(ctx context.Context, replyID, encryptedMetadata, encryptedData string) error {
	body, err := json.Marshal(struct {
		EncryptedMetadata string `json:"encryptedMetadata"`
		EncryptedData     string `json:"encryptedData,omitempty"`
	}{encryptedMetadata, encryptedData})
	if err != nil {
		return fmt.Errorf("fitconnect: encoding reply: %w", err)
	}
	resp, err := c.do(ctx, request{
		op: "submitting reply " + replyID, method: http.MethodPut, path: "/replies" + seg(replyID),
		body: body, contentType: "application/json", gone404: true,
	})
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Body.Close()
}

// Reply is GET /replies/{id} as far as we use it.
type Reply struct {
	ReplyID      string `json:"replyId"`
	SubmissionID string `json:"submissionId,omitempty"`
	CaseID       string `json:"caseId,omitempty"`
}

// GetReply fetches a reply's record (to learn its case when CreateReply did not
// say). A vanished reply is ErrGone.
func (c *Client) GetReply(ctx context.Context, replyID string) (*Reply, error) {
	var r Reply
	if err := c.getJSON(ctx, request{op: "fetching reply " + replyID, path: "/replies" + seg(replyID), gone404: true}, maxListResponse, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ReplyEvents reads the case's event log and returns the verified events about
// one reply (submit-reply, accept-reply, reject-reply, ...), oldest first: the
// delivery evidence of an answer. SETs that fail verification are skipped and
// counted in skipped (the caller decides whether that is an alarm).
func (c *Client) ReplyEvents(ctx context.Context, caseID, replyID string, keys *KeySet) (events []*SET, skipped int, err error) {
	log, err := c.GetEventLog(ctx, caseID)
	if err != nil {
		return nil, 0, err
	}
	for _, raw := range log {
		s, err := ParseSET(raw, keys, VerifyOptions{})
		if err != nil {
			skipped++
			c.log.WarnContext(ctx, "fitconnect event log entry failed verification", "case_id", caseID, "error", err)
			continue
		}
		if s.ReplyID() == replyID {
			events = append(events, s)
		}
	}
	return events, skipped, nil
}
