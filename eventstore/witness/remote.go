package witness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/poststelle/poststelle/internal/dialconf"
)

// HTTP posts every head to an endpoint as multipart/form-data: the part
// "note" (text/plain) and, when timestamped, the part "timestamp"
// (application/timestamp-reply). Any 2xx answer is acceptance.
type HTTP struct {
	URL    string
	Client *http.Client
}

// NewHTTP checks the endpoint: https, or http to a loopback host only; a
// private CA is trusted from caFile; timeout bounds each request (default
// 30 s).
func NewHTTP(endpoint, caFile string, timeout time.Duration) (*HTTP, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("url %q is not an absolute URL", endpoint)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && dialconf.IsLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("url %q: https is required (plain http only to a loopback host)", endpoint)
	}
	tlsCfg, err := dialconf.ClientTLS(u.Hostname(), caFile)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &HTTP{URL: endpoint, Client: &http.Client{Timeout: timeout, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Name implements Witness.
func (h *HTTP) Name() string { return "http:" + h.URL }

// Publish implements Witness.
func (h *HTTP) Publish(ctx context.Context, p *Publication) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part := func(name, file, ctype string, data []byte) error {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": name, "filename": file}))
		hdr.Set("Content-Type", ctype)
		w, err := mw.CreatePart(hdr)
		if err == nil {
			_, err = w.Write(data)
		}
		return err
	}
	err := part("note", "head.note", "text/plain; charset=utf-8", p.Note)
	if err == nil && p.Response != nil {
		err = part("timestamp", "head.tsr", "application/timestamp-reply", p.Response)
	}
	if err = errors.Join(err, mw.Close()); err != nil {
		return fmt.Errorf("witness: %s: build request: %w", h.URL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, &body)
	if err != nil {
		return fmt.Errorf("witness: %s: %w", h.URL, err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := h.Client.Do(req)
	if err != nil {
		return fmt.Errorf("witness: post head to %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("witness: %s answered %s: %.200q", h.URL, resp.Status, msg)
	}
	return nil
}

// Relay delivers one message to one recipient (smtpout.Outbound does,
// through the configured relay).
type Relay interface {
	Deliver(ctx context.Context, rcpt string, raw []byte) (string, error)
}

// Mail sends every head to the auditors: the note as the text/plain body,
// and note and timestamp token attached byte for byte.
type Mail struct {
	Relay Relay
	From  string
	To    []string
}

// Name implements Witness.
func (m *Mail) Name() string { return "email:" + strings.Join(m.To, ",") }

// Publish implements Witness. Each recipient gets its own transaction, so
// that one refused address does not keep the head from the others; any
// refusal fails the round, and the next round sends to all again.
func (m *Mail) Publish(ctx context.Context, p *Publication) error {
	var errs []error
	for _, rcpt := range m.To {
		raw, err := m.message(p, rcpt)
		if err != nil {
			return err
		}
		if _, err := m.Relay.Deliver(ctx, rcpt, raw); err != nil {
			errs = append(errs, fmt.Errorf("witness: mail head to %s: %w", rcpt, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Mail) message(p *Publication, rcpt string) ([]byte, error) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	var id [12]byte
	rand.Read(id[:])
	domain := "poststelle.invalid"
	if i := strings.LastIndexByte(m.From, '@'); i >= 0 {
		domain = strings.Trim(m.From[i+1:], "> ")
	}
	origin, _, _ := strings.Cut(string(p.Note), "\n")
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <head-%s@%s>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=%q\r\n\r\n",
		m.From, rcpt, mime.QEncoding.Encode("utf-8", fmt.Sprintf("Poststelle log head: %s, %d events", origin, p.Size)),
		p.At.Format(time.RFC1123Z), hex.EncodeToString(id[:]), domain, mw.Boundary())
	if strings.ContainsAny(m.From+rcpt, "\r\n") {
		return nil, errors.New("witness: mail address contains a line break")
	}
	body, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Transfer-Encoding": {"quoted-printable"}})
	if err != nil {
		return nil, err
	}
	qp := quotedprintable.NewWriter(body)
	fmt.Fprintf(qp, "The signed head of the Poststelle event log at %s.\r\nKeep it: `poststelle log verify --head FILE` proves later that the log still extends it.\r\n"+
		"The attachment head.note holds these exact bytes; head.tsr is its RFC 3161 timestamp.\r\n\r\n", p.At.Format(time.RFC3339))
	qp.Write(bytes.ReplaceAll(p.Note, []byte("\n"), []byte("\r\n")))
	if err := qp.Close(); err != nil {
		return nil, err
	}
	attach := func(name, ctype string, data []byte) error {
		w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ctype}, "Content-Transfer-Encoding": {"base64"},
			"Content-Disposition": {mime.FormatMediaType("attachment", map[string]string{"filename": name})}})
		if err != nil {
			return err
		}
		return writeBase64Lines(w, data)
	}
	if err := attach("head.note", "application/octet-stream", p.Note); err != nil {
		return nil, err
	}
	if p.Response != nil {
		if err := attach("head.tsr", "application/timestamp-reply", p.Response); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeBase64Lines writes data in base64 lines of 76 characters (RFC 2045).
func writeBase64Lines(w io.Writer, data []byte) error {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		if _, err := io.WriteString(w, enc[:76]+"\r\n"); err != nil {
			return err
		}
		enc = enc[76:]
	}
	_, err := io.WriteString(w, enc+"\r\n")
	return err
}
