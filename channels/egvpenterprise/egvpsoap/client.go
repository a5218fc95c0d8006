package egvpsoap

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// ErrMultipart is wrapped when the service answers with a multipart (MTOM/XOP or
// SOAP with attachments) response, which the WSDL does not use.
var ErrMultipart = errors.New("egvpsoap: multipart response (MTOM/SwA) not supported")

// ErrTooLarge is wrapped when a response exceeds Client.MaxResponseBytes.
var ErrTooLarge = errors.New("egvpsoap: response too large")

// ReturnCodeError is a response whose returnCode is not OK.
type ReturnCodeError struct {
	Operation string
	Code      string
	// Details is the returnCodeDetails or errorDescription the service added.
	Details string
}

func (e *ReturnCodeError) Error() string {
	s := fmt.Sprintf("egvpsoap: %s: return code %s", e.Operation, e.Code)
	if e.Details != "" {
		s += ": " + e.Details
	}
	return s
}

// HTTPError is an HTTP answer that is neither a SOAP response nor a fault.
type HTTPError struct {
	Operation string
	Status    int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("egvpsoap: %s: HTTP %d", e.Operation, e.Status)
}

// Client calls one EGVP Enterprise web service endpoint.
type Client struct {
	// Endpoint is the service's URL (the WSDL's soap:address names
	// http://127.0.0.1:8080/EGVP-WS/EGVP-WebService).
	Endpoint string
	// HTTP does the requests (default: a client with a 5 minute timeout).
	HTTP *http.Client
	// Username and Password, when Username is set, go as HTTP Basic authentication.
	Username, Password string
	// MaxResponseBytes caps a response body; 0 takes 128 MiB. A received message
	// comes base64-encoded in the response, so the cap bounds the message's ZIP at
	// about three quarters of it.
	MaxResponseBytes int64
	// MaxIDs caps the ids one getUncommittedMessageIDs response may list; 0 takes
	// 10000.
	MaxIDs int
}

const (
	defaultMaxResponse = 128 << 20
	defaultMaxIDs      = 10000
	// maxIDLength caps a message or custom id: they become message keys and log
	// fields.
	maxIDLength = 256
)

// Uncommitted is one entry of getUncommittedMessageIDs: a received message the
// mailbox has not committed yet.
type Uncommitted struct {
	MessageID string
	// OSCIDate is the OSCI receipt time as the service gives it (zero if unreadable).
	OSCIDate time.Time
}

// GetUncommittedMessageIDs lists the messages of the mailbox userID that were
// received and not yet committed.
func (c *Client) GetUncommittedMessageIDs(ctx context.Context, userID string) ([]Uncommitted, error) {
	const op = "getUncommittedMessageIDs"
	req := buildEnvelope(op+"Request", func(w *writer) { w.text("userID", userID) })
	var resp struct {
		Count    *int `xml:"count"`
		Messages []struct {
			Nil       string `xml:"http://www.w3.org/2001/XMLSchema-instance nil,attr"`
			MessageID string `xml:"messageID"`
			OSCIDate  string `xml:"osciDate"`
		} `xml:"uncommittedMessages"`
		ReturnCode string `xml:"returnCode"`
	}
	if err := c.call(ctx, op, req, &resp, nil); err != nil {
		return nil, err
	}
	if err := ok(op, resp.ReturnCode, ""); err != nil {
		return nil, err
	}
	max := c.MaxIDs
	if max <= 0 {
		max = defaultMaxIDs
	}
	if len(resp.Messages) > max {
		return nil, fmt.Errorf("%w: %s: %d ids, more than %d", ErrFormat, op, len(resp.Messages), max)
	}
	out := make([]Uncommitted, 0, len(resp.Messages))
	for _, m := range resp.Messages {
		if m.Nil == "true" || m.Nil == "1" {
			continue
		}
		if err := checkID(m.MessageID); err != nil {
			return nil, fmt.Errorf("%w: %s: messageID: %v", ErrFormat, op, err)
		}
		u := Uncommitted{MessageID: m.MessageID}
		if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(m.OSCIDate)); err == nil {
			u.OSCIDate = t
		}
		out = append(out, u)
	}
	return out, nil
}

// Received is a message as receiveMessage returns it.
type Received struct {
	MessageID string
	// ZIP is the message as EGVP Enterprise exports it (MsgProps.xml,
	// oscicontentdata.osci, attachments/, additionals/, certificates/, the check
	// reports), the bytes as the service sent them.
	ZIP []byte
}

// ReceiveMessage fetches the message messageID of the mailbox userID into memory
// (ReceiveMessageTo streams it).
func (c *Client) ReceiveMessage(ctx context.Context, userID, messageID string) (*Received, error) {
	var buf bytes.Buffer
	if _, err := c.ReceiveMessageTo(ctx, userID, messageID, &buf); err != nil {
		return nil, err
	}
	return &Received{MessageID: messageID, ZIP: buf.Bytes()}, nil
}

// ReceiveMessageTo fetches the message messageID of the mailbox userID and writes
// its messageZIP, decoded, to w as the response streams in, and returns its size.
// On an error, w may hold part of it.
func (c *Client) ReceiveMessageTo(ctx context.Context, userID, messageID string, w io.Writer) (int64, error) {
	const op = "receiveMessage"
	req := buildEnvelope(op+"Request", func(w *writer) {
		w.text("userID", userID)
		w.text("messageID", messageID)
	})
	var resp struct {
		MessageID string `xml:"messageID"`
		// ZIP is set when the element was not taken out on the way (a service that
		// qualifies it): then it is decoded here.
		ZIP        *string `xml:"messageZIP"`
		ReturnCode string  `xml:"returnCode"`
		Details    string  `xml:"returnCodeDetails"`
	}
	var f *zipFilter
	wrap := func(r io.Reader) io.Reader {
		f = newZIPFilter(r, w)
		return f
	}
	if err := c.call(ctx, op, req, &resp, wrap); err != nil {
		return 0, err
	}
	if err := ok(op, resp.ReturnCode, resp.Details); err != nil {
		return 0, err
	}
	if resp.MessageID != "" && resp.MessageID != messageID {
		return 0, fmt.Errorf("%w: %s: asked for %q, got %q", ErrFormat, op, messageID, resp.MessageID)
	}
	if f.found {
		return f.written, nil
	}
	if resp.ZIP == nil {
		return 0, fmt.Errorf("%w: %s: no messageZIP", ErrFormat, op)
	}
	zip, err := decodeBase64(*resp.ZIP)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: messageZIP: %v", ErrFormat, op, err)
	}
	n, err := w.Write(zip)
	if err != nil {
		return 0, fmt.Errorf("egvpsoap: writing the messageZIP: %w", err)
	}
	return int64(n), nil
}

// Commit codes that mean the message is committed.
const (
	CommitOK               = "OK"
	CommitAlreadyCommitted = "MESSAGE_ALREADY_COMMITTED"
)

// CommitReceivedMessage tells the service that the message messageID of the mailbox
// userID is taken over, after which getUncommittedMessageIDs no longer lists it. It
// returns the return code when it is OK or MESSAGE_ALREADY_COMMITTED (a commit
// repeated after a crash), a *ReturnCodeError for any other.
func (c *Client) CommitReceivedMessage(ctx context.Context, userID, messageID string) (string, error) {
	const op = "commitReceivedMessage"
	req := buildEnvelope(op+"Request", func(w *writer) {
		w.text("userID", userID)
		w.text("messageID", messageID)
	})
	var resp struct {
		UserID     string `xml:"userID"`
		MessageID  string `xml:"messageID"`
		ReturnCode string `xml:"returnCode"`
	}
	if err := c.call(ctx, op, req, &resp, nil); err != nil {
		return "", err
	}
	if resp.ReturnCode == CommitAlreadyCommitted {
		return resp.ReturnCode, nil
	}
	if err := ok(op, resp.ReturnCode, ""); err != nil {
		return "", err
	}
	if resp.MessageID != "" && resp.MessageID != messageID {
		return "", fmt.Errorf("%w: %s: committed %q, asked for %q", ErrFormat, op, resp.MessageID, messageID)
	}
	return resp.ReturnCode, nil
}

// Attachment is one file of an outgoing message: its bytes in Data, or, for a large
// one, Open, which streams them.
type Attachment struct {
	Name string
	Data []byte
	Open func() (io.ReadCloser, error)
}

// SendRequest is a sendAsynchroniousMessage request (the WSDL's
// SendMessageRequestType).
type SendRequest struct {
	UserID string
	// MessageType is one of the WSDL's MessageTypeType ("Allgemeine Nachricht", ...).
	MessageType string
	// ReceiverID is the addressee; ReceiverKey says what it is: "USER_ID" (a
	// SAFE-ID) or "ROLE".
	ReceiverID, ReceiverKey string
	Subject                 string
	// SignMessage asks the service to sign the message with the mailbox's key.
	SignMessage bool
	// VisualXML and VisualXSL are the optional nachricht.xml and its stylesheet.
	VisualXML, VisualXSL []byte
	Attachments          []Attachment
}

// WriteSendRequest writes the SOAP request of s to w, the attachments base64-encoded
// as they stream from Open.
func WriteSendRequest(w io.Writer, s *SendRequest) error {
	const op = "sendAsynchroniousMessageRequest"
	head := buildEnvelope(op, func(w *writer) {
		w.text("userID", s.UserID)
		w.text("messageType", s.MessageType)
		w.text("receiverID", s.ReceiverID)
		w.text("receiverKey", s.ReceiverKey)
		w.text("subject", s.Subject)
		w.text("signMessage", fmt.Sprint(s.SignMessage))
		if s.VisualXML != nil {
			w.text("visualXML", base64.StdEncoding.EncodeToString(s.VisualXML))
		}
		if s.VisualXSL != nil {
			w.text("visualXSL", base64.StdEncoding.EncodeToString(s.VisualXSL))
		}
	})
	// The envelope's end goes after the attachments.
	tail := []byte(`</egvp:` + op + `></soap:Body></soap:Envelope>`)
	head = head[:len(head)-len(tail)]
	if _, err := w.Write(head); err != nil {
		return err
	}
	for _, a := range s.Attachments {
		if _, err := io.WriteString(w, "<attachments><data>"); err != nil {
			return err
		}
		if err := writeBase64(w, a); err != nil {
			return fmt.Errorf("egvpsoap: attachment %q: %w", a.Name, err)
		}
		name := &writer{}
		name.text("name", a.Name)
		if _, err := io.WriteString(w, "</data>"+name.b.String()+"</attachments>"); err != nil {
			return err
		}
	}
	_, err := w.Write(tail)
	return err
}

func writeBase64(w io.Writer, a Attachment) error {
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if a.Open == nil {
		if _, err := enc.Write(a.Data); err != nil {
			return err
		}
		return enc.Close()
	}
	rc, err := a.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(enc, rc); err != nil {
		return err
	}
	return enc.Close()
}

// SendAsynchroniousMessage hands a message to the service for sending and returns
// the customID the service gives it (under which getState reports on it). The
// request is built in memory; SendPrepared sends one written with WriteSendRequest.
func (c *Client) SendAsynchroniousMessage(ctx context.Context, s *SendRequest) (string, error) {
	var b bytes.Buffer
	if err := WriteSendRequest(&b, s); err != nil {
		return "", err
	}
	return c.SendPrepared(ctx, bytes.NewReader(b.Bytes()), int64(b.Len()))
}

// SendPrepared posts a sendAsynchroniousMessage request of size bytes that
// WriteSendRequest wrote (to a file, so that a large answer is never held in memory)
// and returns the customID.
func (c *Client) SendPrepared(ctx context.Context, body io.Reader, size int64) (string, error) {
	const op = "sendAsynchroniousMessage"
	var resp struct {
		CustomID    string `xml:"customID"`
		ReturnCode  string `xml:"returnCode"`
		Error       string `xml:"errorDetails"`
		Description string `xml:"errorDescription"`
	}
	if err := c.post(ctx, op, body, size, &resp, nil); err != nil {
		return "", err
	}
	details := strings.TrimSpace(strings.Join([]string{resp.Error, resp.Description}, " "))
	if err := ok(op, resp.ReturnCode, details); err != nil {
		return "", err
	}
	if err := checkID(resp.CustomID); err != nil {
		return "", fmt.Errorf("%w: %s: customID: %v", ErrFormat, op, err)
	}
	return resp.CustomID, nil
}

func ok(op, code, details string) error {
	code = strings.TrimSpace(code)
	if code == "" {
		return fmt.Errorf("%w: %s: no returnCode", ErrFormat, op)
	}
	if code != "OK" {
		return &ReturnCodeError{Operation: op, Code: code, Details: details}
	}
	return nil
}

// checkID refuses an id that is empty, too long or not printable.
func checkID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	if len(id) > maxIDLength {
		return fmt.Errorf("%d bytes, more than %d", len(id), maxIDLength)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%q holds a control or space character", id)
		}
	}
	return nil
}

// decodeBase64 decodes xs:base64Binary, which may be folded with white space.
func decodeBase64(s string) ([]byte, error) {
	// Most services do not fold; a copy without the white space only when needed.
	if !strings.ContainsAny(s, " \t\r\n") {
		return base64.StdEncoding.DecodeString(s)
	}
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(clean)
}

// call posts the request body of op and parses the response into v. wrap, when set,
// wraps the response body before the XML decoder reads it (receiveMessage's
// streaming of the messageZIP).
func (c *Client) call(ctx context.Context, op string, body []byte, v any, wrap func(io.Reader) io.Reader) error {
	return c.post(ctx, op, bytes.NewReader(body), int64(len(body)), v, wrap)
}

// post is call with the request body as a reader of size bytes, sent with its
// Content-Length (not chunked, which not every SOAP stack takes).
func (c *Client) post(ctx context.Context, op string, body io.Reader, size int64, v any, wrap func(io.Reader) io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, body)
	if err != nil {
		return fmt.Errorf("egvpsoap: %s: %w", op, err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", `text/xml; charset=utf-8`)
	req.Header.Set("SOAPAction", `"`+ServiceNS+":"+op+`"`)
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("egvpsoap: %s: %w", op, err)
	}
	defer resp.Body.Close()
	max := c.MaxResponseBytes
	if max <= 0 {
		max = defaultMaxResponse
	}
	if resp.ContentLength > max {
		return fmt.Errorf("%w: %s: %d bytes announced, more than %d", ErrTooLarge, op, resp.ContentLength, max)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if strings.HasPrefix(mt, "multipart/") {
		return fmt.Errorf("%w: %s: %s", ErrMultipart, op, mt)
	}
	// A fault comes with 500 (SOAP 1.1 over HTTP); other statuses carry no SOAP.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusInternalServerError {
		return &HTTPError{Operation: op, Status: resp.StatusCode}
	}
	if mt != "text/xml" && mt != "application/soap+xml" && mt != "" {
		if resp.StatusCode != http.StatusOK {
			return &HTTPError{Operation: op, Status: resp.StatusCode}
		}
		return fmt.Errorf("%w: %s: content type %q", ErrFormat, op, mt)
	}
	capped := &capReader{r: resp.Body, left: max}
	var r io.Reader = capped
	if wrap != nil {
		r = wrap(r)
	}
	err = parseEnvelope(r, op+"Response", v)
	if capped.exceeded {
		return fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, op, max)
	}
	if zf, ok := r.(*zipFilter); ok && zf.err != nil {
		return fmt.Errorf("egvpsoap: %s: %w", op, zf.err)
	}
	var f *Fault
	if resp.StatusCode == http.StatusInternalServerError && err == nil {
		return fmt.Errorf("%w: %s: HTTP 500 without a fault", ErrFormat, op)
	}
	if err != nil && !errors.As(err, &f) {
		return fmt.Errorf("egvpsoap: %s: %w", op, err)
	}
	return err
}
