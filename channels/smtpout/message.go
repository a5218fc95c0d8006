package smtpout

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/mail/mailcompose"
)

// maxHeaderRead caps what is read of the original to find its threading
// headers.
const maxHeaderRead = 256 << 10

// Blobs reads stored bodies and attachments; *blob.Store is one.
type Blobs interface {
	Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error)
	ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error)
	// PutBytes keeps the bytes of each answer as handed over.
	PutBytes(ctx context.Context, b []byte) (blob.Ref, error)
}

// build renders the RFC 5322 message of a reply.
func (o *Outbound) build(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived, th mailcompose.Thread) ([]byte, string, error) {
	to, err := recipient(req.To)
	if err != nil {
		return nil, "", err
	}
	subject := req.Subject
	if subject == "" {
		subject = replies.ReplySubject(orig.Subject)
	}
	if err := replies.CheckSubject(subject); err != nil {
		return nil, "", err
	}
	body, err := o.body(ctx, req)
	if err != nil {
		return nil, "", err
	}
	msgID := mailcompose.ReplyMessageID(req.ReplyID, o.domain)
	var b bytes.Buffer
	mailcompose.WriteField(&b, "From", mailcompose.Mailbox(o.from))
	mailcompose.WriteField(&b, "To", mailcompose.Mailbox(to))
	mailcompose.WriteField(&b, "Subject", mailcompose.Text(subject))
	mailcompose.WriteField(&b, "Date", o.deps.Now().Format(time.RFC1123Z))
	mailcompose.WriteField(&b, "Message-ID", msgID)
	th.Write(&b)
	if err := o.writeFields(&b, req, orig); err != nil {
		return nil, "", err
	}
	mailcompose.WriteField(&b, "MIME-Version", "1.0")
	entity, err := o.entity(ctx, req, body)
	if err != nil {
		return nil, "", err
	}
	if o.smime != nil {
		if entity, err = o.smime.sign(entity); err != nil {
			return nil, "", fmt.Errorf("s/mime: %w", err)
		}
	}
	b.Write(entity)
	if int64(b.Len()) > o.cfg.MaxMessageBytes {
		return nil, "", fmt.Errorf("reply exceeds %d bytes", o.cfg.MaxMessageBytes)
	}
	return b.Bytes(), msgID, nil
}

// writeFields adds the fields of Deps.Fields.
func (o *Outbound) writeFields(b *bytes.Buffer, req *gateway.ReplyRequested, orig *gateway.MessageReceived) error {
	if o.deps.Fields == nil {
		return nil
	}
	fs, err := o.deps.Fields(req, orig)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if f.Name == "" || strings.ContainsAny(f.Name, "\r\n\x00: ") || strings.ContainsAny(f.Value, "\r\n\x00") {
			return fmt.Errorf("header field %q: name or value not usable in a header", f.Name)
		}
		mailcompose.WriteField(b, f.Name, f.Value)
	}
	return nil
}

// entity renders the reply's MIME entity: its content headers and body.
func (o *Outbound) entity(ctx context.Context, req *gateway.ReplyRequested, body []byte) ([]byte, error) {
	var b bytes.Buffer
	if len(req.Attachments) == 0 {
		writeTextPart(&b, body)
		return b.Bytes(), nil
	}
	boundary := mailcompose.RandomBoundary()
	mailcompose.WriteField(&b, "Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	b.WriteString("\r\nThis is a MIME message.\r\n\r\n")
	mp := mailcompose.NewMultipart(&b, boundary)
	mp.Next()
	writeTextPart(&b, body)
	for i, a := range req.Attachments {
		mp.Next()
		if err := o.writeAttachment(ctx, &b, a); err != nil {
			return nil, fmt.Errorf("attachment %d: %w", i+1, err)
		}
		if int64(b.Len()) > o.cfg.MaxMessageBytes {
			return nil, fmt.Errorf("reply exceeds %d bytes", o.cfg.MaxMessageBytes)
		}
	}
	mp.Close()
	return b.Bytes(), nil
}

func (o *Outbound) body(ctx context.Context, req *gateway.ReplyRequested) ([]byte, error) {
	if req.Body.SHA256 == "" {
		return nil, nil
	}
	body, err := o.deps.Blobs.ReadAll(ctx, req.Body, o.cfg.MaxMessageBytes)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if !utf8.Valid(body) {
		return nil, errors.New("body is not UTF-8 text")
	}
	return body, nil
}

func writeTextPart(b *bytes.Buffer, body []byte) {
	mailcompose.WriteTextPart(b, "text/plain; charset=utf-8", "", string(body))
	b.WriteString("\r\n")
}

func (o *Outbound) writeAttachment(ctx context.Context, b *bytes.Buffer, a gateway.Part) error {
	mt, params, err := mime.ParseMediaType(a.MediaType)
	if err != nil || strings.HasPrefix(mt, "multipart/") || strings.ContainsAny(mt, "\r\n") {
		mt, params = "application/octet-stream", nil
	}
	ctParams := map[string]string{}
	if cs := params["charset"]; cs != "" {
		ctParams["charset"] = cs
	}
	name := a.Filename
	if name == "" {
		name = "attachment-" + strings.ReplaceAll(a.Path, ".", "-")
	}
	if err := mailcompose.CheckText("filename", name); err != nil {
		return err
	}
	if len(name) > mailcompose.MaxFilenameBytes || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("filename %q is too long or holds a path", name)
	}
	ct := mime.FormatMediaType(mt, ctParams)
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if ct == "" || cd == "" {
		return fmt.Errorf("cannot encode media type %q or filename %q", mt, name)
	}
	mailcompose.WriteField(b, "Content-Type", ct)
	mailcompose.WriteField(b, "Content-Disposition", cd)
	mailcompose.WriteField(b, "Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	rc, err := o.deps.Blobs.Open(ctx, a.Blob)
	if err != nil {
		return err
	}
	defer rc.Close()
	enc := mailcompose.NewBase64Writer(b)
	n, err := io.Copy(enc, io.LimitReader(rc, o.cfg.MaxMessageBytes+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", a.Blob.SHA256, err)
	}
	if n > o.cfg.MaxMessageBytes {
		return fmt.Errorf("attachment exceeds %d bytes", o.cfg.MaxMessageBytes)
	}
	enc.Close()
	b.WriteString("\r\n")
	return nil
}

// recipient validates the planned address: exactly one mailbox, equal to
// what was planned, with no line break in address or display name.
func recipient(a gateway.Address) (gateway.Address, error) {
	if err := mailcompose.CheckText("recipient", a.Address+a.Name); err != nil {
		return gateway.Address{}, err
	}
	plain, err := replies.ParseMailbox(a.Address)
	if err != nil {
		return gateway.Address{}, fmt.Errorf("recipient: %w", err)
	}
	to, err := replies.ParseMailbox(formatAddress(a))
	if err != nil {
		return gateway.Address{}, fmt.Errorf("recipient: %w", err)
	}
	if to.Address != a.Address || plain.Address != a.Address {
		return gateway.Address{}, fmt.Errorf("recipient %q is not one plain address", a.Address)
	}
	return to, nil
}

func formatAddress(a gateway.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return (&mail.Address{Name: a.Name, Address: a.Address}).String()
}

// threadingOf finds what a reply to orig refers to: the original's
// Message-ID and References as they stand in its raw bytes, or as recorded
// when the bytes have no header we can read.
func (o *Outbound) threadingOf(ctx context.Context, req *gateway.ReplyRequested, orig *gateway.MessageReceived) mailcompose.Thread {
	var h mail.Header
	if orig.Raw.SHA256 != "" {
		h, _ = o.originalHeader(ctx, orig.Raw)
	}
	return mailcompose.ThreadOf(h, replies.OriginalMessageID(orig), req.InReplyTo)
}

func (o *Outbound) originalHeader(ctx context.Context, ref blob.Ref) (mail.Header, error) {
	rc, err := o.deps.Blobs.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	m, err := mail.ReadMessage(bufio.NewReader(io.LimitReader(rc, maxHeaderRead)))
	if err != nil {
		return nil, err
	}
	return m.Header, nil
}
