package portal

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/fitconnect"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
)

// answerEnv receives one submission and returns its receipt, ready to answer.
func answerEnv(t *testing.T, replyChannel map[string]any) (*testEnv, *gateway.MessageReceived, string) {
	t.Helper()
	return answerEnvWith(t, replyChannel, nil)
}

// answerEnvWith is answerEnv with the environment changed by mod.
func answerEnvWith(t *testing.T, replyChannel map[string]any, mod func(*testEnv, *Config, *gateway.IntakeDeps)) (*testEnv, *gateway.MessageReceived, string) {
	t.Helper()
	e := newEnvOf(t, mod)
	s := build(t, subSpec{meta: func(m map[string]any) {
		m["$schema"] = replyMetadataSchema
		if replyChannel == nil {
			delete(m, "replyChannel")
		} else {
			m["replyChannel"] = replyChannel
		}
	}})
	e.fake.add(s)
	if err := e.in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := e.received(t)
	if len(got) != 1 || got[0].msg.Portal.Decision != gateway.PortalAccepted {
		t.Fatalf("%d messages, problems %v", len(got), got[0].msg.Problems)
	}
	return e, got[0].msg, got[0].stream
}

func (e *testEnv) put(t testing.TB, b []byte) gateway.Part {
	t.Helper()
	ref, err := e.env.Blobs.Put(context.Background(), bytes.NewReader(b), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return gateway.Part{Blob: ref}
}

func decryptWith(t testing.TB, jwe string, k *rsa.PrivateKey) []byte {
	t.Helper()
	obj, err := jose.ParseEncryptedCompact(jwe, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
	if err != nil {
		t.Fatal(err)
	}
	b, err := obj.Decrypt(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fitConnectAnswerEnv receives one submission that named a FIT-Connect
// reply channel with a fresh citizen's key.
func fitConnectAnswerEnv(t *testing.T) (*testEnv, *gateway.MessageReceived, string, *rsa.PrivateKey) {
	t.Helper()
	return fitConnectAnswerEnvWith(t, nil)
}

// fitConnectAnswerEnvWith is fitConnectAnswerEnv with the environment
// changed by mod.
func fitConnectAnswerEnvWith(t *testing.T, mod func(*testEnv, *Config, *gateway.IntakeDeps)) (*testEnv, *gateway.MessageReceived, string, *rsa.PrivateKey) {
	t.Helper()
	citizen, err := rsa.GenerateKey(rand.Reader, 4096) // metadata 2.1.0 asks for 4096 bits
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: &citizen.PublicKey, Algorithm: "RSA-OAEP-256", KeyID: "citizen-reply-key"})
	if err != nil {
		t.Fatal(err)
	}
	var pubMap map[string]any
	if err := json.Unmarshal(jwk, &pubMap); err != nil {
		t.Fatal(err)
	}
	pubMap["key_ops"] = []string{"wrapKey"}
	pub, _ := json.Marshal(pubMap)
	e, orig, stream := answerEnvWith(t, map[string]any{"fitConnect": map[string]any{"encryptionPublicKey": json.RawMessage(pub),
		"processStandards": []string{"urn:xoev-de:example:standard:1"}}}, mod)
	if orig.Portal.ReplyChannel != "fitConnect" {
		t.Fatalf("reply channel %q", orig.Portal.ReplyChannel)
	}
	return e, orig, stream, citizen
}

// request records the office's answer in the message's stream, as the
// office API does before the Sender attempts it.
func (e *testEnv) request(t testing.TB, stream string, req *gateway.ReplyRequested) {
	t.Helper()
	evs, err := e.env.Log.ReadStream(context.Background(), gateway.DefaultTenant, stream)
	if err != nil || len(evs) == 0 {
		t.Fatalf("stream %s: %d events, %v", stream, len(evs), err)
	}
	ev, err := gateway.Follow("test/office", &evs[0], len(evs), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.env.Log.Append(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// TestAnswerThroughFITConnect: an answer to a submission that named a
// FIT-Connect reply channel goes back as a reply encrypted to its key, with
// its attachment, and the platform's submit-reply is recorded as evidence.
func TestAnswerThroughFITConnect(t *testing.T) {
	e, orig, stream, citizen := fitConnectAnswerEnv(t)
	out, err := newOutbound(e.in.cfg, OutboundDeps{Blobs: e.env.Blobs, Logger: slog.New(slog.DiscardHandler), Evidence: e.in.deps.Evidence}, e.fake)
	if err != nil {
		t.Fatal(err)
	}
	att := e.put(t, []byte("%PDF Bescheid"))
	att.MediaType, att.Filename = "application/pdf", "bescheid.pdf"
	req := &gateway.ReplyRequested{ReplyID: "rpl-1", Channel: gateway.ChannelPortal, To: orig.From, Subject: "Ihr Antrag",
		Body: e.put(t, []byte("Sehr geehrte Frau Mustermann, ...")).Blob, Attachments: []gateway.Part{att}}
	e.request(t, stream, req)
	info, err := out.Send(context.Background(), req, orig)
	if err != nil {
		t.Fatal(err)
	}
	r := e.fake.replies[info.ChannelMessageID]
	if r == nil || r.submissionID != orig.Portal.SubmissionID || len(r.attachments) != 1 {
		t.Fatalf("reply %+v", r)
	}
	var data struct {
		Subject, Text string
	}
	if err := json.Unmarshal(decryptWith(t, r.encData, citizen), &data); err != nil || data.Subject != "Ihr Antrag" || !strings.HasPrefix(data.Text, "Sehr geehrte") {
		t.Errorf("data %+v %v", data, err)
	}
	rawMD := decryptWith(t, r.encMetadata, citizen)
	v, err := fitconnect.NewMetadataValidator(fitconnect.MetadataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Parse(rawMD); err != nil {
		t.Errorf("the reply's metadata does not validate: %v", err)
	}
	var md metadata
	if err := json.Unmarshal(rawMD, &md); err != nil || len(md.ContentStructure.Attachments) != 1 ||
		md.ContentStructure.Attachments[0].Filename != "bescheid.pdf" {
		t.Errorf("metadata %+v %v", md, err)
	}
	if got := decryptWith(t, r.attachments[md.ContentStructure.Attachments[0].AttachmentID], citizen); string(got) != "%PDF Bescheid" {
		t.Errorf("attachment %q", got)
	}
	var kinds []gateway.EvidenceKind
	for _, ev := range e.evidence(t) {
		if ev.Channel == gateway.ChannelPortal && slices.Contains(ev.References, gateway.EvidenceReference{Kind: "replyId", Value: "rpl-1"}) {
			kinds = append(kinds, ev.Kind)
			if ev.Verification == nil || ev.Verification.Indication != "TOTAL_PASSED" {
				t.Errorf("submit-reply's verification %+v", ev.Verification)
			}
		}
	}
	if !slices.Equal(kinds, []gateway.EvidenceKind{gateway.EvidenceDispatched}) {
		t.Errorf("the answer's evidence %v", kinds)
	}
}

// TestAnswerWithoutFITConnectReplyChannel: a submission that named another
// reply channel, or none, cannot be answered on the portal: the failure is
// permanent (triage) and says why.
func TestAnswerWithoutFITConnectReplyChannel(t *testing.T) {
	for _, rc := range []map[string]any{{"eMail": map[string]any{"address": "erika@example.org"}}, nil} {
		e, orig, _ := answerEnv(t, rc)
		out, err := newOutbound(e.in.cfg, OutboundDeps{Blobs: e.env.Blobs}, e.fake)
		if err != nil {
			t.Fatal(err)
		}
		_, err = out.Send(context.Background(), &gateway.ReplyRequested{ReplyID: "rpl-2", Channel: gateway.ChannelPortal,
			Body: e.put(t, []byte("x")).Blob}, orig)
		if !replies.IsPermanent(err) || !errors.Is(err, ErrNoFITConnectReplyChannel) {
			t.Errorf("reply channel %v: err %v", rc, err)
		}
		if len(e.fake.replies) != 0 {
			t.Error("a reply was created")
		}
	}
	out, _ := newOutbound(Config{}, OutboundDeps{Blobs: gatewayBlobs(t)}, newFake())
	if _, err := out.Send(context.Background(), &gateway.ReplyRequested{ReplyID: "rpl-3"}, &gateway.MessageReceived{Channel: gateway.ChannelSMTP}); !replies.IsPermanent(err) {
		t.Errorf("an answer to an e-mail: %v", err)
	}
}

func gatewayBlobs(t *testing.T) *blob.Store { return newEnv(t, nil).env.Blobs }
