package oscichannel

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/replies"
	"github.com/poststelle/poststelle/osci"
)

// TestOutboundAnswer: an answer to alice's message goes into the mailbox as
// storeDelivery; alice's key opens it, bob's content signature holds (rsa-sha256 and
// RSA-PSS), and the kept copy is the signed message that was sent.
func TestOutboundAnswer(t *testing.T) {
	ctx := context.Background()
	blobs, err := blob.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	aliceC := pair(t, "alice_cipher_4096")
	fp := aliceC.Cert.Fingerprint()
	orig := &gateway.MessageReceived{Channel: gateway.ChannelEGVP, SenderMessageID: "bXNn",
		From:     gateway.Address{Address: "osci:" + hex.EncodeToString(fp[:])},
		Metadata: map[string]string{MetaOriginatorCipher: base64.StdEncoding.EncodeToString(aliceC.Cert.Raw)}}
	body, err := blobs.PutBytes(ctx, []byte("Sehr geehrte Frau Alice, Ihr Antrag ist eingegangen."))
	if err != nil {
		t.Fatal(err)
	}
	att, err := blobs.PutBytes(ctx, []byte("%PDF-1.7 Bescheid"))
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"rsa-sha256", "rsa-pss"} {
		t.Run(method, func(t *testing.T) {
			mb := newMailbox(t)
			srv := httptest.NewServer(mb)
			defer srv.Close()
			cfg := authorityConfig(t, srv.URL+"/")
			cfg.Outbound, cfg.SignatureMethod = true, method
			out, err := NewOutbound(cfg, OutboundDeps{Blobs: blobs, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			req := &gateway.ReplyRequested{ReplyID: "r1", Channel: gateway.ChannelEGVP, To: orig.From, Subject: "Ihr Antrag",
				Body: body, Attachments: []gateway.Part{{Filename: "bescheid.pdf", Blob: att}}}
			info, err := out.Send(ctx, req, orig)
			if err != nil {
				t.Fatal(err)
			}
			if info.ChannelMessageID == "" || !strings.Contains(info.Response, "process card creation=") {
				t.Errorf("sent info %+v", info)
			}
			if len(mb.stored) != 1 {
				t.Fatalf("%d deliveries stored", len(mb.stored))
			}
			st := mb.stored[0]
			if st.Envelope.Operation.MessageID != info.ChannelMessageID || st.Envelope.Operation.Subject != "Ihr Antrag" {
				t.Errorf("stored %q %q", st.Envelope.Operation.MessageID, st.Envelope.Operation.Subject)
			}
			dc, err := osci.DecryptContainer(ctx, st.Envelope.ContentPackage.Encrypted[0], st.Message, decrypterOf(t, "alice_cipher_4096"), osci.Limits{}, osci.DirSpool{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			checks, err := osci.VerifyContainer(ctx, dc.Doc, dc.Container, []*osci.Certificates{st.Envelope.NonIntermediaryCertificates}, func(cid string) *osci.Part { return dc.Attachments[cid] })
			if err != nil || len(checks) != 1 || !checks[0].Valid() || !checks[0].Signer.Cert.Equal(pair(t, "bob_signature_4096").Cert) {
				t.Fatalf("content signature %v %+v", err, checks)
			}
			wantAlg := "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
			if method == "rsa-pss" {
				wantAlg = xmldsig.AlgRSAPSSSHA256
			}
			if checks[0].Result.Algorithm != wantAlg {
				t.Errorf("content signature made with %s, want %s", checks[0].Result.Algorithm, wantAlg)
			}
			if got := readPart(t, dc.Attachments["anlage-1.pdf"]); got != "%PDF-1.7 Bescheid" {
				t.Errorf("attachment %q", got)
			}
			// The kept copy is the signed inner message as sent.
			rc, err := blobs.Open(ctx, info.Sent)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			mp, err := osci.ReadMessage(ctx, rc, osci.Limits{}, osci.DirSpool{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			env, err := osci.ParseEnvelope(mp.Envelope, osci.Limits{})
			if err != nil || env.Type != osci.StoreDelivery {
				t.Fatalf("kept copy: %v %v", err, env)
			}
			if chk, err := env.VerifySignature(ctx, mp); err != nil || !chk.Valid() {
				t.Errorf("kept copy's signature: %v %v", err, chk)
			}
		})
	}
	t.Run("wrong address is permanent", func(t *testing.T) {
		cfg := authorityConfig(t, "http://127.0.0.1:1/")
		cfg.Outbound = true
		out, err := NewOutbound(cfg, OutboundDeps{Blobs: blobs})
		if err != nil {
			t.Fatal(err)
		}
		_, err = out.Send(ctx, &gateway.ReplyRequested{ReplyID: "r2", To: gateway.Address{Address: "osci:00"}, Body: body}, orig)
		if err == nil || !replies.IsPermanent(err) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("intermediary down is temporary", func(t *testing.T) {
		cfg := authorityConfig(t, "http://127.0.0.1:1/")
		cfg.Outbound = true
		out, err := NewOutbound(cfg, OutboundDeps{Blobs: blobs})
		if err != nil {
			t.Fatal(err)
		}
		_, err = out.Send(ctx, &gateway.ReplyRequested{ReplyID: "r3", To: orig.From, Body: body}, orig)
		if err == nil || replies.IsPermanent(err) {
			t.Fatalf("error %v", err)
		}
	})
}

func readPart(t *testing.T, p *osci.Part) string {
	t.Helper()
	if p == nil {
		t.Fatal("no such part")
	}
	rc, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
