//go:build integration

package demail

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/internal/servetest"
)

// TestGatewayMailboxRequiresClientCertificate checks the stand-in's
// Dovecot as the channel meets it: a login without a client certificate,
// or with one of another CA, is refused; with ours it succeeds.
func TestGatewayMailboxRequiresClientCertificate(t *testing.T) {
	pv := newProvider(t)
	u := postfach(8)
	if c, err := pv.dial(u, nil); err == nil {
		c.Close()
		t.Fatal("the gateway mailbox admitted a client without a certificate")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("refusal without a certificate: %v", err)
	}
	if c, err := pv.dial(u, &pv.stranger); err == nil {
		c.Close()
		t.Fatal("the gateway mailbox admitted a client certificate of another CA")
	}
	c, err := pv.dial(u, &pv.client)
	if err != nil {
		t.Fatalf("our client certificate: %v", err)
	}
	c.Close()
}

// TestAuthoritativeMessageSatisfiesWrittenForm: an absenderbestätigt
// De-Mail the provider sealed (PVD IO clauses 3.1.5, 3.1.21) with its
// qualified seal certificate (qcStatements by openssl, the CA on a trusted
// list, its CRL configured) is recorded on
// channel demail with its typed evidence and writtenForm true, the
// provider's fields leave transport.untrusted, and it is routed to the
// office; the gateway mailbox is emptied.
func TestAuthoritativeMessageSatisfiesWrittenForm(t *testing.T) {
	pv := newProvider(t)
	box := postfach(1)
	msg := pv.stamp(t, deMailFields(box, "wf-1", "Antrag auf Baugenehmigung", "yes"), letter, false)
	pv.mustDeliver(t, box, msg)
	g := start(t, pv, channels{mailbox: box})
	stream, m := receipt(t, g.received(t, 1), "Antrag auf Baugenehmigung")
	d := m.DeMail
	switch {
	case m.Channel != gateway.ChannelDeMail || d == nil:
		t.Fatalf("receipt on %s with deMail %+v", m.Channel, d)
	case !d.WrittenForm || d.Verdict != "provider-signed" || !d.Authoritative || d.Qualification != "QESeal":
		t.Fatalf("deMail %+v: want writtenForm, provider-signed, authoritative, QESeal", d)
	case d.MessageID != "wf-1@provider.de-mail.example" || d.PrivateID != "Az-wf-1" || d.AuthLevel != "high" ||
		d.AuthMechanism != "eID" || d.Sender != "erika.mustermann@mustermann.de-mail.example" ||
		d.OriginatorProvider != "provider.de-mail.example" || !d.ConfirmReceipt || d.ProviderCertificate == "":
		t.Fatalf("deMail fields %+v", d)
	case len(m.Problems) != 0:
		t.Fatalf("problems %q", m.Problems)
	case strings.Contains(untrusted(m), "x-de-mail-"):
		t.Fatalf("the provider's fields are still untrusted: %s", untrusted(m))
	case m.SenderMessageID != "wf-1@provider.de-mail.example":
		t.Fatalf("senderMessageId %q", m.SenderMessageID)
	}
	om := g.message(t, stream, func(m offices.Message) bool { return m.Routing.Rule != "" })
	if om.Channel != gateway.ChannelDeMail || om.Routing.Rule != "alles" || len(om.Problems) != 0 {
		t.Fatalf("office API: %+v", om)
	}
	servetest.WaitFor(t, "the gateway mailbox is emptied", func() bool { return pv.inbox(t, box) == 0 })
}

// TestTamperedMessageIsBroken: a provider-signed De-Mail changed on the way
// in its body, or in a protected header field (the subject), has the
// verdict broken, no written form, the problem on the receipt; it goes to
// triage, and once the mailroom routes it by hand the office downloads its
// exact bytes.
func TestTamperedMessageIsBroken(t *testing.T) {
	pv := newProvider(t)
	box := postfach(2)
	body := pv.stamp(t, deMailFields(box, "tb-1", "Widerspruch", "yes"), letter, false)
	body = bytes.Replace(body, []byte("anbei mein Antrag"), []byte("anbei kein Antrag"), 1)
	subject := pv.stamp(t, deMailFields(box, "tb-2", "Antrag", "yes"), letter, false)
	subject = bytes.Replace(subject, []byte("Subject: Antrag"), []byte("Subject: Ruecknahme"), 1)
	pv.mustDeliver(t, box, body)
	pv.mustDeliver(t, box, subject)
	g := start(t, pv, channels{mailbox: box})
	rs := g.received(t, 2)
	for subj, raw := range map[string][]byte{"Widerspruch": body, "Ruecknahme": subject} {
		stream, m := receipt(t, rs, subj)
		if m.DeMail == nil || m.DeMail.Verdict != "broken" || m.DeMail.WrittenForm {
			t.Errorf("%s: deMail %+v, want verdict broken without written form", subj, m.DeMail)
		}
		if !hasProblem(m.Problems, "demail: integrity broken") {
			t.Errorf("%s: problems %q", subj, m.Problems)
		}
		if !strings.Contains(untrusted(m), "x-de-mail-authoritative") {
			t.Errorf("%s: the provider's fields are not untrusted: %s", subj, untrusted(m))
		}
		servetest.WaitFor(t, subj+" in triage", func() bool {
			code, body := g.curl(t, mailroomUser, mailroomPassword, "GET", "/triage/"+stream, "")
			var it offices.TriageItem
			return code == 200 && json.Unmarshal(body, &it) == nil && it.Kind == "routing"
		})
		if code, _ := g.curl(t, officeUser, officePassword, "GET", "/offices/bauamt/messages/"+stream, ""); code != 404 {
			t.Errorf("%s: the office sees a message in triage: %d", subj, code)
		}
		if code, body := g.curl(t, mailroomUser, mailroomPassword, "POST", "/triage/"+stream+"/assign",
			`{"offices":["bauamt"],"reason":"Integrität gebrochen, Original an das Bauamt zur Prüfung"}`); code != 201 {
			t.Fatalf("%s: assign %d %s", subj, code, body)
		}
		om := g.message(t, stream, func(m offices.Message) bool { return m.Routing.DecidedBy != "" })
		if !hasProblem(om.Problems, "demail: integrity broken") {
			t.Errorf("%s: the office API shows no problem: %q", subj, om.Problems)
		}
		code, got := g.curl(t, officeUser, officePassword, "GET", "/offices/bauamt/messages/"+stream+"/raw", "")
		if code != 200 || !bytes.Equal(got, raw) {
			t.Errorf("%s: raw download %d, %d bytes, want the %d bytes delivered", subj, code, len(got), len(raw))
		}
	}
}

// TestForeignCertificateIsUntrusted: the headers are signed correctly but
// with a certificate that does not chain to the configured provider's CA
// (same subject, another CA): untrusted, no written form.
func TestForeignCertificateIsUntrusted(t *testing.T) {
	pv := newProvider(t)
	box := postfach(3)
	pv.mustDeliver(t, box, pv.stamp(t, deMailFields(box, "fc-1", "Antrag mit fremdem Siegel", "yes"), letter, true))
	g := start(t, pv, channels{mailbox: box})
	_, m := receipt(t, g.received(t, 1), "Antrag mit fremdem Siegel")
	if m.DeMail == nil || m.DeMail.Verdict != "untrusted" || m.DeMail.WrittenForm {
		t.Fatalf("deMail %+v, want untrusted without written form", m.DeMail)
	}
	if !hasProblem(m.Problems, "demail: integrity untrusted") || !strings.Contains(untrusted(m), "x-de-mail-integrity") {
		t.Fatalf("problems %q, untrusted %s", m.Problems, untrusted(m))
	}
}

// TestSpoofedHeadersOnPlainMail: the very bytes the provider stamped, sent
// as plain e-mail over the SMTP channel and taken in by the plain IMAP
// channel, carry no De-Mail evidence: the X-de-mail-* fields stay under
// transport.untrusted.
func TestSpoofedHeadersOnPlainMail(t *testing.T) {
	pv := newProvider(t)
	demailBox, plain := postfach(4), postfach(5)
	viaIMAP := pv.stamp(t, deMailFields(plain, "sp-1", "Gefaelscht per IMAP", "yes"), letter, false)
	viaSMTP := pv.stamp(t, deMailFields(plain, "sp-2", "Gefaelscht per SMTP", "yes"), letter, false)
	pv.mustDeliver(t, plain, viaIMAP)
	smtpAddr := servetest.FreeAddr(t)
	g := start(t, pv, channels{mailbox: demailBox, smtp: smtpAddr, imap: &plain})
	if _, err := servetest.SendSMTP(smtpAddr, "erika@example.org", plain.user, viaSMTP); err != nil {
		t.Fatal(err)
	}
	rs := g.received(t, 2)
	for subj, ch := range map[string]gateway.Channel{"Gefaelscht per IMAP": gateway.ChannelIMAP, "Gefaelscht per SMTP": gateway.ChannelSMTP} {
		_, m := receipt(t, rs, subj)
		if m.Channel != ch || m.DeMail != nil {
			t.Errorf("%s: channel %s, deMail %+v: want %s without De-Mail evidence", subj, m.Channel, m.DeMail, ch)
		}
		u := untrusted(m)
		for _, f := range []string{"x-de-mail-integrity", "x-de-mail-authoritative", "x-de-mail-sender", "x-de-mail-signature-certificate"} {
			if !strings.Contains(u, f) {
				t.Errorf("%s: %s not under transport.untrusted (%s)", subj, f, u)
			}
		}
	}
}

// TestProviderDeliversBySMTP: a provider gateway that delivers by SMTP
// (demail.smtp) with its client certificate of the provider's CA: the
// message is recorded on channel demail with the written form and the
// certificate's fingerprint in the envelope evidence; deliveries without a
// client certificate or with another CA's are refused and record nothing.
func TestProviderDeliversBySMTP(t *testing.T) {
	pv := newProvider(t)
	box := postfach(4)
	addr := servetest.FreeAddr(t)
	g := start(t, pv, channels{mailbox: box, demailSMTP: addr})
	waitListening(t, addr)
	gwClient, err := tls.LoadX509KeyPair(pv.file("gateway-client.pem"), pv.file("gateway-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	refused := pv.stamp(t, deMailFields(box, "sm-0", "Von fremder Hand", "yes"), letter, false)
	for name, cert := range map[string]*tls.Certificate{"none": nil, "another CA's": &pv.stranger} {
		if err := pv.deliverSMTP(t, addr, cert, box.user, refused); err == nil {
			t.Errorf("client certificate %s: delivery accepted", name)
		}
	}
	msg := pv.stamp(t, deMailFields(box, "sm-1", "Antrag per SMTP zugestellt", "yes"), letter, false)
	if err := pv.deliverSMTP(t, addr, &gwClient, box.user, msg); err != nil {
		t.Fatal(err)
	}
	rs := g.received(t, 1)
	if len(rs) != 1 {
		t.Fatalf("%d receipts, want only the gateway's delivery", len(rs))
	}
	_, m := receipt(t, rs, "Antrag per SMTP zugestellt")
	fp := sha256.Sum256(gwClient.Certificate[0])
	if m.Channel != gateway.ChannelDeMail || m.DeMail == nil || !m.DeMail.WrittenForm ||
		m.Transport.Envelope["tlsClientCertSHA256"] != hex.EncodeToString(fp[:]) {
		t.Fatalf("receipt on %s, deMail %+v, envelope %v", m.Channel, m.DeMail, m.Transport.Envelope)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	servetest.WaitFor(t, addr+" accepts connections", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}
