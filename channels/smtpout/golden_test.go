package smtpout

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/poststelle/poststelle/gateway"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// boundaryRE matches the random multipart boundary, which the golden files
// show as BOUNDARY.
var boundaryRE = regexp.MustCompile(`poststelle-[A-Za-z0-9_-]{24}`)

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestRenderGolden pins the bytes of composed answers: header order and
// folding, RFC 2047 encoding of subject and names, threading, the text as
// quoted-printable and attachments as base64.
func TestRenderGolden(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	o := f.outbound(t, RelayConfig{Host: "127.0.0.1", TLS: TLSNone})
	imapRaw, _ := f.blobs.PutBytes(ctx, []byte("From: a@example.org\r\nMessage-ID: <imap-1@example.org>\r\n"+
		"In-Reply-To: <earlier@stadt.example>\r\n\r\nx\r\n"))
	long, _ := f.blobs.PutBytes(ctx, []byte("Eine Zeile.\r\nNoch eine mit = und Umlauten äöü, die länger ist als sechsundsiebzig Zeichen, damit sie umbrochen wird.\n"))
	for _, tc := range []struct {
		name string
		req  gateway.ReplyRequested
		orig gateway.MessageReceived
	}{
		{"reply-attachment.eml", *f.req, *f.orig},
		{"reply-text.eml", gateway.ReplyRequested{ReplyID: "rpl-2", Office: "bauamt", Channel: gateway.ChannelSMTP,
			To: gateway.Address{Address: "buerger@example.org"}, Subject: "Ihr Schreiben vom 2. März – Aktenzeichen BA-2026/17, Rückfragen zur Statik und zum Brandschutz",
			Body: long}, *f.orig},
		{"reply-imap-original.eml", gateway.ReplyRequested{ReplyID: "rpl-3", Channel: gateway.ChannelSMTP,
			To: gateway.Address{Address: "a@example.org", Name: "Ärger, Anton"}, Body: f.req.Body},
			gateway.MessageReceived{Channel: gateway.ChannelIMAP, SenderMessageID: "<imap-1@example.org>", Subject: "Re: Frage", Raw: imapRaw,
				Transport: gateway.TransportEvidence{Coordinates: "INBOX/1/7"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := o.Render(ctx, &tc.req, &tc.orig)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, boundaryRE.ReplaceAll(raw, []byte("BOUNDARY")))
		})
	}
}
