package smtp_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/channels/smtp"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
)

// smtpDriver delivers over SMTP as a sending MTA does.
type smtpDriver struct {
	srv  *smtp.Server
	mu   sync.Mutex
	last []byte
}

func (d *smtpDriver) Start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	srv, err := smtp.New(smtp.Config{Listen: "127.0.0.1:0", Hostname: "gw.kreis.example", AcceptAll: true,
		MaxMessageBytes: max}, deps)
	if err != nil {
		t.Fatal(err)
	}
	d.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func (d *smtpDriver) Send(t testing.TB, raw []byte) channeltest.Answer {
	d.mu.Lock()
	d.last = raw
	d.mu.Unlock()
	return d.transaction(t, raw)
}

func (d *smtpDriver) Retry(t testing.TB) channeltest.Answer {
	d.mu.Lock()
	raw := d.last
	d.mu.Unlock()
	return d.transaction(t, raw)
}

// transaction runs one SMTP transaction and returns the final reply's code.
func (d *smtpDriver) transaction(t testing.TB, raw []byte) channeltest.Answer {
	c, err := gosmtp.Dial(d.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("sender.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("buerger@example.org", nil); err != nil {
		return answer(err)
	}
	if err := c.Rcpt("poststelle@kreis.example", nil); err != nil {
		return answer(err)
	}
	w, err := c.Data()
	if err != nil {
		return answer(err)
	}
	if _, err := w.Write(raw); err != nil {
		return answer(err)
	}
	// go-smtp's client takes only 250 as the end of DATA.
	if _, err := w.CloseWithResponse(); err != nil {
		return answer(err)
	}
	return channeltest.Answer{Accepted: true, Code: "250"}
}

func answer(err error) channeltest.Answer {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return channeltest.Answer{Code: strconv.Itoa(se.Code)}
	}
	return channeltest.Answer{Code: "error: " + err.Error()}
}

func TestChannelConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New:   func(testing.TB) channeltest.Driver { return &smtpDriver{} },
		Codes: channeltest.Codes{Accepted: "250", Temporary: "451", TooLarge: "552", Refused: "554"},
	})
}
