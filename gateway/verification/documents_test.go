package verification_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/pades/padestest"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/verification"
)

// TestSignedDocumentsInParts: a signed PDF attached to a message on any
// channel is verified like a CMS part; an unsigned PDF or XML adds
// nothing; a changed signed PDF fails; a document too large to look into
// is reported as not checked.
func TestSignedDocumentsInParts(t *testing.T) {
	bs, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := verifytest.New(t, "p256")
	signed, err := padestest.Sign(padestest.Unsigned("Widerspruch Az. 63-2026-117", 0), "Sig", "ETSI.CAdES.detached",
		func(covered []byte) ([]byte, error) { return p.Sign(t, covered, false), nil })
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(signed, []byte("63-2026-117"), []byte("63-2026-118"), 1)
	put := func(b []byte) blob.Ref {
		r, err := bs.PutBytes(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	hs, err := verification.Handlers(ctx, verification.Config{TrustAnchors: []string{p.CACert}, MaxPartSize: 1 << 20}, verification.Deps{Blobs: bs})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		parts []gateway.Part
		want  []string // indications of the signatures, in part order
	}{
		{"signed PDF on the portal", []gateway.Part{{Path: "1", MediaType: "application/pdf", Filename: "widerspruch.pdf", Kind: "attachment", Blob: put(signed)}},
			[]string{"TOTAL_PASSED"}},
		{"signed PDF named by extension only", []gateway.Part{{Path: "2", MediaType: "application/octet-stream", Filename: "Widerspruch.PDF", Kind: "attachment", Blob: put(signed)}},
			[]string{"TOTAL_PASSED"}},
		{"changed after signing", []gateway.Part{{Path: "1", MediaType: "application/pdf", Filename: "w.pdf", Kind: "attachment", Blob: put(changed)}},
			[]string{"TOTAL_FAILED"}},
		{"unsigned PDF and XML", []gateway.Part{
			{Path: "1", MediaType: "application/pdf", Filename: "antrag.pdf", Kind: "attachment", Blob: put(padestest.Unsigned("Antrag", 0))},
			{Path: "2", MediaType: "application/xml", Filename: "xrechnung.xml", Kind: "attachment", Blob: put([]byte(`<Invoice xmlns="urn:x"/>`))}},
			nil},
		{"too large to look into", []gateway.Part{{Path: "1", MediaType: "application/pdf", Filename: "plan.pdf", Kind: "attachment",
			Blob: put(padestest.Unsigned("Bauplan", 2<<20))}}, []string{"INDETERMINATE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &gateway.MessageReceived{Channel: gateway.ChannelPortal, Subject: "Antrag", ReceivedAt: time.Now(), Parts: tc.parts}
			out, err := hs[0].Handle(ctx, &eventstore.Event{RecordedAt: time.Now()}, m)
			if err != nil {
				t.Fatal(err)
			}
			sv := out[0].(*gateway.SignaturesVerified)
			var got []string
			for _, s := range sv.Signatures {
				got = append(got, s.Indication)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("indications %v, want %v (%+v)", got, tc.want, sv.Signatures)
			}
		})
	}
}
