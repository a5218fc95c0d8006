package servetest

import (
	"bytes"
	"fmt"
	"regexp"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// SMTPReply is what the gateway's SMTP receiver answered to a message's
// end of data.
type SMTPReply struct {
	Text string // the reply text after the code, e.g. "2.0.0 OK: recorded as rcv-…"
	// EventID is the id of the MessageReceived event the reply names.
	EventID string
	// Duplicate is true when the reply says the message was recorded before.
	Duplicate bool
}

var recordedAs = regexp.MustCompile(`(already )?recorded as (\S+)`)

// SendSMTP delivers one message to addr in a session of its own, as a
// sending MTA would, and returns the 250 reply. An error means the message
// was not acknowledged: refused, or the connection was lost before the
// reply (it may still have been recorded).
func SendSMTP(addr, from, to string, msg []byte) (SMTPReply, error) {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return SMTPReply{}, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = 20*time.Second, 30*time.Second
	if err := c.Hello("sender.example.org"); err != nil {
		return SMTPReply{}, fmt.Errorf("EHLO: %w", err)
	}
	if err := c.Mail(from, nil); err != nil {
		return SMTPReply{}, fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return SMTPReply{}, fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return SMTPReply{}, fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))); err != nil {
		return SMTPReply{}, fmt.Errorf("write message: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return SMTPReply{}, fmt.Errorf("end of data: %w", err)
	}
	c.Quit()
	r := SMTPReply{Text: resp.StatusText}
	if m := recordedAs.FindStringSubmatch(resp.StatusText); m != nil {
		r.Duplicate, r.EventID = m[1] != "", m[2]
	}
	return r, nil
}
