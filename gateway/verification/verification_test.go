package verification_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
	"github.com/poststelle/poststelle/gateway/verification"
	"github.com/poststelle/poststelle/internal/gatewaytest"
	"github.com/poststelle/poststelle/mail/mailmsg"
)

// env is the pipeline test set-up of gateway/pipeline's tests plus a blob store.
type env struct {
	log   *sqlitelog.Log
	off   *pubsub.SQLOffsets
	blobs *blob.Store
}

func newEnv(t *testing.T) *env {
	g := gatewaytest.New(t)
	return &env{log: g.Log, off: g.Offsets, blobs: g.Blobs}
}

// receive stores raw, walks it as the mail adapters do and records it.
func (e *env) receive(t *testing.T, subject string, raw []byte) {
	t.Helper()
	ctx := context.Background()
	ref, err := e.blobs.PutBytes(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mailmsg.Walk(ctx, e.blobs, ref, mailmsg.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	in := &gateway.Intake{Log: e.log}
	_, err = in.Record(ctx, "", gateway.MessageKey(gateway.ChannelSMTP, subject), &gateway.MessageReceived{
		Channel: gateway.ChannelSMTP, Subject: subject, From: gateway.Address{Address: "erika@example.org"},
		ReceivedAt: time.Now(), Raw: ref, Parts: msg.Parts,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) run(t *testing.T, hs []pipeline.Handler) {
	t.Helper()
	p, err := pipeline.New(pipeline.Config{Log: e.log, Offsets: e.off, Registry: gateway.NewRegistry(), MaxRetries: 2, RetryInterval: time.Millisecond}, hs...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls the log until want events of type typ exist and returns
// their payloads by the subject of the message they follow.
func (e *env) waitFor(t *testing.T, typ string, want int) map[string]gateway.Payload {
	t.Helper()
	reg := gateway.NewRegistry()
	deadline := time.Now().Add(60 * time.Second)
	for {
		evs, err := e.log.Read(context.Background(), 0, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		subjects := map[string]string{}
		var got []eventstore.Event
		for _, ev := range evs {
			switch ev.Type {
			case "MessageReceived":
				p, err := reg.Decode(&ev)
				if err != nil {
					t.Fatal(err)
				}
				subjects[ev.Stream] = p.(*gateway.MessageReceived).Subject
			case typ:
				got = append(got, ev)
			}
		}
		if len(got) >= want || time.Now().After(deadline) {
			if len(got) != want {
				t.Fatalf("%d %s events, want %d", len(got), typ, want)
			}
			out := map[string]gateway.Payload{}
			for i := range got {
				p, err := reg.Decode(&got[i])
				if err != nil {
					t.Fatal(err)
				}
				out[subjects[got[i].Stream]] = p
			}
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wrap64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var sb strings.Builder
	for len(s) > 76 {
		sb.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return sb.String() + s
}

func TestSignaturesAndTimestamps(t *testing.T) {
	e := newEnv(t)
	p := verifytest.New(t, "p256")
	tsa, tsaURL := tsptest.Start(t, tsptest.Normal)
	_, downURL := tsptest.Start(t, tsptest.Down)

	smime := p.SignSMIME(t, []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nIch beantrage hiermit ...\r\n"))
	doc := []byte("%PDF-1.4 Antrag\n")
	p7s := p.Sign(t, doc, false)
	withP7S := []byte("From: erika@example.org\r\nSubject: p7s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nAnbei mein Antrag.\r\n" +
		"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=antrag.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + wrap64(doc) + "\r\n" +
		"--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Disposition: attachment; filename=antrag.pdf.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n" + wrap64(p7s) + "\r\n" +
		"--b--\r\n")
	tampered := bytes.Replace(withP7S, []byte(wrap64(doc)), []byte(wrap64([]byte("%PDF-1.4 Antrag?\n"))), 1)
	plain := []byte("From: a@example.org\r\nSubject: plain\r\n\r\nhello\r\n")
	e.receive(t, "smime", smime)
	e.receive(t, "p7s", withP7S)
	e.receive(t, "tampered", tampered)
	e.receive(t, "plain", plain)

	hs, err := verification.Handlers(context.Background(), verification.Config{
		TrustAnchors:  []string{p.CACert},
		TSAs:          []verification.TSAConfig{{Name: "down", URL: downURL}, {Name: "test TSA", URL: tsaURL}},
		TSAAttempts:   1,
		TSARetryDelay: time.Millisecond,
	}, verification.Deps{Blobs: e.blobs, Verifier: "poststelle test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 {
		t.Fatalf("%d handlers", len(hs))
	}
	e.run(t, hs)

	verified := e.waitFor(t, "SignaturesVerified", 4)
	want := map[string]struct {
		part, ind, sub string
	}{
		"smime":    {"2", "TOTAL_PASSED", ""},
		"p7s":      {"3", "TOTAL_PASSED", ""},
		"tampered": {"3", "TOTAL_FAILED", "HASH_FAILURE"},
	}
	for subject, w := range want {
		sv := verified[subject].(*gateway.SignaturesVerified)
		if len(sv.Signatures) != 1 {
			t.Fatalf("%s: %+v", subject, sv)
		}
		s := sv.Signatures[0]
		if s.Part != w.part || s.Indication != w.ind || s.SubIndication != w.sub || !strings.Contains(s.Signer, "Erika Mustermann") || s.SigningTime.IsZero() {
			t.Errorf("%s: %+v", subject, s)
		}
		// No trusted list: not qualified, so no written form.
		if sv.WrittenFormSatisfied || s.Qualification != "N/A" {
			t.Errorf("%s: written form %v, qualification %s", subject, sv.WrittenFormSatisfied, s.Qualification)
		}
		raw, err := e.blobs.ReadAll(context.Background(), sv.Report, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := report.ReadJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: report: %v", subject, err)
		}
		if len(rep.Signatures) != 1 || string(rep.Signatures[0].Indication) != w.ind {
			t.Errorf("%s: report %+v", subject, rep.Signatures)
		}
		if rep.Policy == nil || rep.Policy.Name != verify.DefaultPolicyName {
			t.Errorf("%s: report names policy %+v, want the default", subject, rep.Policy)
		}
		html, err := e.blobs.ReadAll(context.Background(), sv.ReportHTML, 1<<20)
		if err != nil || !bytes.Contains(html, []byte("<html")) || !bytes.Contains(html, []byte("Prüfrichtlinie")) {
			t.Errorf("%s: Prüfprotokoll %v", subject, err)
		}
	}
	if sv := verified["plain"].(*gateway.SignaturesVerified); len(sv.Signatures) != 0 || sv.WrittenFormSatisfied || sv.WrittenFormReason != "no signature" || sv.Report.SHA256 == "" {
		t.Errorf("plain: %+v", sv)
	}

	stamped := e.waitFor(t, "TimestampApplied", 4)
	for subject, raw := range map[string][]byte{"smime": smime, "p7s": withP7S, "tampered": tampered, "plain": plain} {
		ta := stamped[subject].(*gateway.TimestampApplied)
		if ta.TSA != "test TSA" || ta.Serial == "" || ta.GenTime.IsZero() {
			t.Errorf("%s: %+v", subject, ta)
		}
		der, err := e.blobs.ReadAll(context.Background(), ta.Token, tsp.MaxTokenSize)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tsp.ParseToken(der)
		if err != nil {
			t.Fatal(err)
		}
		if res := tok.Verify(tsp.VerifyOptions{Data: raw}); !res.Valid {
			t.Errorf("%s: token does not verify over the raw message: %+v", subject, res.Checks)
		}
		if tok.Verify(tsp.VerifyOptions{Data: append(bytes.Clone(raw), 'x')}).Valid {
			t.Errorf("%s: token verifies over other bytes", subject)
		}
	}
	if n := tsa.Requests.Load(); n != 4 {
		t.Errorf("TSA answered %d requests, want 4", n)
	}
}

func TestNoTSANoTimestampHandler(t *testing.T) {
	e := newEnv(t)
	hs, err := verification.Handlers(context.Background(), verification.Config{}, verification.Deps{Blobs: e.blobs})
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].Name != verification.HandlerVerify {
		t.Errorf("handlers %v", hs)
	}
	if _, err := verification.Handlers(context.Background(), verification.Config{TrustAnchors: []string{filepath.Join(t.TempDir(), "missing.pem")}}, verification.Deps{Blobs: e.blobs}); err == nil {
		t.Error("missing trust anchor accepted")
	}
	if _, err := verification.Handlers(context.Background(), verification.Config{TSAs: []verification.TSAConfig{{URL: "http://127.0.0.1:1", Policy: "x.y"}}}, verification.Deps{Blobs: e.blobs}); err == nil {
		t.Error("malformed policy accepted")
	}
	if _, err := verification.Handlers(context.Background(), verification.Config{Policy: verify.Policy{RevocationFreshness: "always"}}, verification.Deps{Blobs: e.blobs}); err == nil {
		t.Error("unknown validation policy setting accepted")
	}
}
