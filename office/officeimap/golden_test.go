package officeimap

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestCopyGolden pins the bytes of the office copy (prefix and suffix around
// the original): a client that cached a UID must see the same bytes after an
// upgrade.
func TestCopyGolden(t *testing.T) {
	base := offices.Message{Office: "bauamt", Stream: "msg-7f3a", Seq: 3, Channel: gateway.ChannelSMTP,
		SenderMessageID: "<antrag-1@example.org>", From: gateway.Address{Name: "Erika Muster", Address: "buerger@example.org"},
		To:      []gateway.Address{{Address: "poststelle@stadt.example"}, {Name: "Bauamt, Abteilung 2", Address: "bauamt@stadt.example"}},
		Subject: "Antrag auf Anhörung nach § 28 VwVfG zum Bauvorhaben Musterstraße 12, Flurstück 4711/3", ReceivedAt: time.Date(2026, 3, 2, 9, 0, 1, 0, time.UTC),
		Raw:      blob.Ref{SHA256: strings.Repeat("ab", 32), Size: 1234},
		Metadata: map[string]string{"date": "Mon, 2 Mar 2026 10:00:00 +0100"},
		Routing:  offices.Routing{DecidedBy: "rules", Rule: "bau-aktenzeichen"}}
	imap := base
	imap.Channel, imap.SenderMessageID, imap.Coordinates = gateway.ChannelIMAP, "<imap-1@example.org>", "INBOX/1/7"
	imap.Metadata = nil
	imap.From = gateway.Address{Name: "kein gültiger", Address: "nicht-parsebar"}
	imap.Subject = "Hallo"
	dm := base
	dm.Channel, dm.SenderMessageID = gateway.ChannelDeMail, "4711@provider.de-mail.example"
	dm.DeMail = &gateway.DeMailEvidence{MessageType: "normal", MessageID: "4711@provider.de-mail.example",
		Sender: "erika.muster@muster.de-mail.example", AuthLevel: "high", AuthMechanism: "eID",
		OriginatorProvider: "provider.de-mail.example", Authoritative: true, Verdict: "provider-signed",
		VerdictDetail: "signed by provider provider.de-mail.example (CN=Signatur <Provider>)", Qualification: "QESeal",
		QualificationDetail: "PASSED; certificate: QC for eSeal with QSCD", ProviderCertificate: strings.Repeat("cd", 32), WrittenForm: true}
	eeb := base
	eeb.Channel, eeb.SenderMessageID = gateway.ChannelEGVP, "osci-20260302-4711"
	eeb.From = gateway.Address{Name: "VG Koblenz", Address: "osci:c0ffee"}
	eeb.Subject = "Zustellung 1 K 519/20.KO"
	eeb.Metadata = nil
	eeb.EEB = &offices.EEBTask{Requested: true, Documents: []string{"urteil-1", "beschluss-2"}, Due: eeb.ReceivedAt.Add(offices.DefaultEEBDueAfter),
		Status: offices.EEBOpen}
	for _, tc := range []struct {
		name      string
		m         offices.Message
		maxInline int64
	}{
		{"copy-smtp.eml", base, 1 << 20},
		{"copy-demail.eml", dm, 1 << 20},
		{"copy-imap-too-large.eml", imap, 100},
		{"copy-egvp-eeb.eml", eeb, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := renderCopy(tc.m, tc.maxInline)
			if tc.m.EEB != nil {
				// The task's state is the keyword's, never the copy's.
				answered := tc.m
				answered.EEB = &offices.EEBTask{Requested: true, Documents: tc.m.EEB.Documents, Due: tc.m.EEB.Due, Status: offices.EEBSent, ReplyID: "rpl-1"}
				if a := renderCopy(answered, tc.maxInline); !bytes.Equal(a.prefix, c.prefix) || !bytes.Equal(a.suffix, c.suffix) {
					t.Error("answering the eEB changed the copy's bytes")
				}
			}
			got := append(append(bytes.Clone(c.prefix), "<original>"...), c.suffix...)
			path := filepath.Join("testdata", "golden", tc.name)
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				os.WriteFile(path, got, 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update once)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}
