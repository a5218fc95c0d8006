//go:build integration

package demail

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/poststelle/poststelle/channels/demail/demailtest"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
)

// TestAnswerWithReceiptConfirmation: the office answers a De-Mail whose
// sender asked for confirmations through the office API. The provider
// gateway's submission endpoint receives the answer over TLS with our
// client certificate, with the dispatch options the sender chose
// (clauses 3.1.2 to 3.1.6) and the ReplyID as X-de-mail-private-id
// (3.1.17); ReplySent is recorded only after its 250. The provider's
// confirmation of receipt, carrying that private id, comes back through
// the mailbox and becomes delivery evidence on the answer.
func TestAnswerWithReceiptConfirmation(t *testing.T) {
	pv := newProvider(t)
	box := postfach(7)
	sk := startSink(t, pv)
	pv.mustDeliver(t, box, pv.stamp(t, deMailFields(box, "an-1", "Antrag auf Akteneinsicht", "yes"), letter, false))
	g := start(t, pv, channels{mailbox: box, outbound: sk.addr})
	stream, _ := receipt(t, g.received(t, 1), "Antrag auf Akteneinsicht")
	g.message(t, stream, func(m offices.Message) bool { return m.Routing.Rule != "" })

	code, out := g.curl(t, officeUser, officePassword, "POST", "/offices/bauamt/messages/"+stream+"/replies",
		`{"subject": "Re: Antrag auf Akteneinsicht", "body": "Sehr geehrte Frau Mustermann,\nIhr Antrag ist eingegangen.\n"}`)
	if code != 202 {
		t.Fatalf("reply: %d %s", code, out)
	}
	var accepted struct {
		ReplyID string          `json:"replyId"`
		Channel gateway.Channel `json:"channel"`
		To      gateway.Address `json:"to"`
	}
	if err := json.Unmarshal(out, &accepted); err != nil {
		t.Fatal(err)
	}
	if accepted.Channel != gateway.ChannelDeMail || accepted.To.Address != "erika.mustermann@mustermann.de-mail.example" {
		t.Fatalf("reply planned as %+v, want on De-Mail to the sender", accepted)
	}

	sub := sk.next(t)
	if len(sub.peer) == 0 || !bytes.Equal(sub.peer[0].Raw, pv.client.Certificate[0]) || sub.tlsVers < tls.VersionTLS12 {
		sub.release <- nil
		t.Fatalf("the gateway saw client certificate %v over TLS %x, want ours", sub.peer, sub.tlsVers)
	}
	answer := crlf(sub.data)
	m, err := mail.ReadMessage(bytes.NewReader(answer))
	if err != nil {
		sub.release <- nil
		t.Fatal(err)
	}
	want := map[string]string{"X-de-mail-private-id": accepted.ReplyID, "X-de-mail-confirmation-of-receipt": "yes",
		"X-de-mail-confirmation-of-dispatch": "yes", "X-de-mail-confirmation-of-retrieve": "no",
		"X-de-mail-authoritative": "yes", "X-de-mail-private": "no"}
	for name, v := range want {
		if got := m.Header[textproto.CanonicalMIMEHeaderKey(name)]; len(got) != 1 || got[0] != v {
			t.Errorf("submitted %s: %q, want exactly %q", name, got, v)
		}
	}
	if len(sub.rcpt) != 1 || sub.rcpt[0] != accepted.To.Address || !strings.Contains(m.Header.Get("From"), box.user) {
		t.Errorf("envelope to %v, From %q", sub.rcpt, m.Header.Get("From"))
	}
	// The gateway has not answered yet: the answer must not count as sent.
	if sent := servetest.Events(t, bin, g.config, "ReplySent"); len(sent) != 0 {
		sub.release <- nil
		t.Fatalf("ReplySent recorded before the gateway's 250: %+v", sent[0])
	}
	sub.release <- nil
	sent := servetest.WaitEvents(t, bin, g.config, "ReplySent", 1)[0].(*gateway.ReplySent)
	if sent.ReplyID != accepted.ReplyID || sent.Channel != gateway.ChannelDeMail || !strings.HasPrefix(sent.Response, "250") {
		t.Errorf("ReplySent %+v", sent)
	}

	// The provider stamps the answer for delivery, the recipient's
	// provider puts it in the mailbox, and the confirmation of receipt goes
	// back to the authority's mailbox.
	stamped := pv.stamp(t, submitted(m, box, accepted.To.Address), bodyOf(answer), false)
	now := time.Now().Truncate(time.Second)
	c, err := pv.confirmation(demailtest.Confirmation{Type: demailtest.ConfirmationOfReceipt, Of: stamped, To: box.user,
		ID: "an-1-reply-delivered@provider.de-mail.example", Time: now})
	if err != nil {
		t.Fatal(err)
	}
	pv.mustDeliver(t, box, c)
	r := g.evidence(t, 1)[0]
	ev := r.Payload.(*gateway.DeliveryEvidenceRecorded)
	verified(t, "receipt confirmation of the answer", ev)
	if !strings.Contains(ev.Verification.Detail, "Hash: body hash matches the answer as submitted") {
		t.Errorf("the Hash was not compared with the answer as submitted: %s", ev.Verification.Detail)
	}
	if ev.ReplyID != accepted.ReplyID || ev.Kind != gateway.EvidenceDelivered || r.Stream != stream || ev.Unlinked != "" {
		t.Fatalf("evidence %+v in %s, want delivered for reply %s in %s", ev, r.Stream, accepted.ReplyID, stream)
	}
	om := g.message(t, stream, func(m offices.Message) bool { return len(m.Evidence) > 0 })
	if om.Evidence[0].ReplyID != accepted.ReplyID || om.Evidence[0].Kind != gateway.EvidenceDelivered {
		t.Fatalf("office API evidence %+v", om.Evidence)
	}
}

// TestSinkRequiresClientCertificate checks the stand-in's submission
// endpoint as the outbound meets it: without a client certificate, or with
// one of another CA, the handshake fails or MAIL is refused.
func TestSinkRequiresClientCertificate(t *testing.T) {
	pv := newProvider(t)
	sk := startSink(t, pv)
	for name, cert := range map[string]*tls.Certificate{"none": nil, "another CA's": &pv.stranger} {
		cfg := &tls.Config{RootCAs: pv.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c, err := gosmtp.DialStartTLS(sk.addr, cfg)
		if err == nil {
			err = c.Mail("poststelle@kreis.de-mail.example", nil)
			c.Close()
		}
		if err == nil {
			t.Errorf("client certificate %s: the sink accepted MAIL", name)
		}
	}
	c, err := gosmtp.DialStartTLS(sk.addr, &tls.Config{RootCAs: pv.roots, ServerName: "127.0.0.1",
		Certificates: []tls.Certificate{pv.client}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("poststelle@kreis.de-mail.example", nil); err != nil {
		t.Fatalf("our client certificate: MAIL %v", err)
	}
}

// submitted is the header of an answer as the provider delivers it: the
// author's fields and dispatch options as submitted, and the provider's
// own fields of table 1.
func submitted(m *mail.Message, box mailbox, to string) [][2]string {
	f := [][2]string{}
	for _, name := range []string{"From", "To", "Date", "Message-ID", "Subject"} {
		f = append(f, [2]string{name, m.Header.Get(name)})
	}
	for _, name := range []string{"X-de-mail-confirmation-of-dispatch", "X-de-mail-confirmation-of-receipt",
		"X-de-mail-confirmation-of-retrieve", "X-de-mail-authoritative", "X-de-mail-private"} {
		f = append(f, [2]string{name, m.Header.Get(name)})
	}
	return append(f,
		[2]string{"X-de-mail-sender", box.user},
		[2]string{"X-de-mail-chosen-recipient", "to=" + to},
		[2]string{"X-de-mail-auth-mechanism", "certificate"},
		[2]string{"X-de-mail-auth-level", "high"},
		[2]string{"X-de-mail-originator-provider", demailtest.ProviderName},
		[2]string{"X-de-mail-message-type", "normal"},
		[2]string{"X-de-mail-version", "1.8"},
		[2]string{"X-de-mail-private-id", m.Header.Get("X-de-mail-private-id")},
		[2]string{"X-de-mail-message-id", fmt.Sprintf("reply-%d@%s", time.Now().UnixNano(), demailtest.ProviderName)},
		[2]string{"X-de-mail-account-holder", "Kreis Musterland"},
		[2]string{"X-de-mail-actual-recipient", "to=" + to},
		[2]string{"MIME-Version", m.Header.Get("MIME-Version")},
		[2]string{"Content-Type", m.Header.Get("Content-Type")},
	)
}

// crlf gives a message received by SMTP CRLF line ends throughout.
func crlf(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}
