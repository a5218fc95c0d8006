//go:build integration

// Package egvpenterprise_test drives the EGVP Enterprise connector through the real
// `poststelle serve` binary: the stand-in of Enterprise's web service holds the three
// real samples and a court's eEB request, serve polls it, records and commits them,
// is killed between a record and its commit and recovers without a duplicate, and
// answers through the office API go out by sendAsynchroniousMessage.
package egvpenterprise_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/internal/servetest"
	"github.com/poststelle/poststelle/xjustiz"
)

const box = "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7"

var samples = []string{"Testnachricht_1", "TestnachrichtEeb_1", "Testnachricht_xjustiz321"}

// messages is what the stand-in holds: the samples and the eEB request.
const messages = 4

// eebRequest is a court's XJustiz 3.x message whose document asks for an eEB
// (written for this test in the form of the samples' messages).
const eebRequest = `<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de">
 <tns:nachrichtenkopf xjustizVersion="3.5.1">
  <tns:aktenzeichen.absender>3 K 12/26</tns:aktenzeichen.absender>
  <tns:aktenzeichen.empfaenger>1 K 519/20.KO</tns:aktenzeichen.empfaenger>
  <tns:erstellungszeitpunkt>2026-02-03T09:10:11+01:00</tns:erstellungszeitpunkt>
  <tns:auswahl_absender><tns:absender.gericht listVersionID="3.6"><code>R1101</code></tns:absender.gericht></tns:auswahl_absender>
  <tns:auswahl_empfaenger><tns:empfaenger.gericht listVersionID="3.6"><code>T6076</code></tns:empfaenger.gericht></tns:auswahl_empfaenger>
  <tns:eigeneNachrichtenID>7c1e5a2b-9d3f-4e6a-8b0c-1d2e3f4a5b6c</tns:eigeneNachrichtenID>
 </tns:nachrichtenkopf>
 <tns:grunddaten/>
 <tns:schriftgutobjekte>
  <tns:dokument><tns:identifikation><tns:id>d1</tns:id></tns:identifikation>
   <tns:xjustiz.fachspezifischeDaten><tns:datei><tns:dateiname>urteil.pdf</tns:dateiname></tns:datei>
   <tns:ruecksendungEEB.erforderlich>true</tns:ruecksendungEEB.erforderlich></tns:xjustiz.fachspezifischeDaten></tns:dokument>
 </tns:schriftgutobjekte>
</tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005>`

var (
	buildOnce sync.Once
	bin       string
	buildErr  error
)

func poststelleBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "poststelle-enterprise-bin-")
		if err != nil {
			buildErr = err
			return
		}
		bin, buildErr = servetest.Build(dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

type site struct {
	dir, config, api string
	srv              *enterprisetest.Server
}

// newSite starts the stand-in (behind HTTP Basic authentication, as a site may put
// it) with the samples and writes serve's configuration for it.
func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{dir: t.TempDir(), api: servetest.FreeAddr(t), srv: enterprisetest.New(box)}
	for _, name := range samples {
		data, err := enterprisetest.SampleZIP(corpus.Path(t, "egvp", "Messages", name))
		if err != nil {
			t.Fatal(err)
		}
		s.srv.Add(box, enterprisetest.Message{ID: "ent-" + name, ZIP: data, OSCIDate: time.Now()})
	}
	// A court's request for an eEB: the Justiz sample with an XJustiz message whose
	// document asks for one.
	data, err := enterprisetest.SampleZIP(corpus.Path(t, "egvp", "Messages", "Testnachricht_1"),
		map[string][]byte{"attachments/xjustiz_nachricht.xml": []byte(eebRequest)})
	if err != nil {
		t.Fatal(err)
	}
	s.srv.Add(box, enterprisetest.Message{ID: "ent-request", ZIP: data, OSCIDate: time.Now()})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "poststelle" || p != "geheim" {
			http.Error(w, "unauthorised", http.StatusUnauthorized)
			return
		}
		s.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	pw := filepath.Join(s.dir, "enterprise-password")
	if err := os.WriteFile(pw, []byte("geheim\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.config = filepath.Join(s.dir, "poststelle.yaml")
	conf := fmt.Sprintf(`data_dir: %s/data
log_level: debug
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
egvp_enterprise:
  endpoint: %q
  user_id: %q
  username: poststelle
  password_file: %q
  poll_interval: 200ms
  outbound: true
`, s.dir, s.api, servetest.FreeAddr(t), servetest.FreeAddr(t), hs.URL+"/EGVP-WS/EGVP-WebService", box, pw)
	if err := os.WriteFile(s.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *site) received(t *testing.T) []servetest.Recorded {
	t.Helper()
	return servetest.Replay(t, poststelleBin(t), s.config, "MessageReceived")
}

// TestServeEnterprise: serve, killed right after recording the first message and
// before committing it, leaves it uncommitted; restarted, it receives it again,
// recognises it and commits all four (the samples and a court's eEB request), one
// receipt each, with their EGVP fields. An answer through the office API goes to the
// sender's SAFE-ID.
func TestServeEnterprise(t *testing.T) {
	s := newSite(t)
	crashing := servetest.StartCrashing(t, poststelleBin(t), s.config, 1)
	crashing.WaitKilled(t, 60*time.Second)
	if c := s.srv.Committed(box); len(c) != 0 {
		t.Fatalf("committed %q before the crash point", c)
	}
	if got := s.received(t); len(got) != 1 {
		t.Fatalf("%d receipts after the crash, want 1", len(got))
	}

	servetest.Start(t, poststelleBin(t), s.config, s.api)
	servetest.WaitFor(t, "all messages committed", func() bool { return len(s.srv.Committed(box)) == messages })
	got := s.received(t)
	if len(got) != messages {
		t.Fatalf("%d receipts, want %d (one per message)", len(got), messages)
	}
	streams := map[string]bool{}
	byID := map[string]servetest.Recorded{}
	for _, r := range got {
		m := r.Payload.(*gateway.MessageReceived)
		streams[r.Stream] = true
		byID[m.Metadata["egvpEnterprise.messageId"]] = r
		// The eEB sample answers a request this gateway never sent: the returning-eEB
		// check says so, and that is its only problem.
		problems := m.Problems
		if m.Metadata["egvpEnterprise.messageId"] == "ent-TestnachrichtEeb_1" {
			if len(problems) != 1 || !strings.Contains(problems[0], "eEB for a request this mailbox did not send") {
				t.Errorf("the eEB sample's problems %q, want the unknown request", problems)
			}
			problems = nil
		}
		if m.Channel != gateway.ChannelEGVP || len(problems) != 0 || m.EGVP == nil || m.EGVP.Origin != "vhn" ||
			!strings.Contains(m.EGVP.OriginReason, "EGVP Enterprise") || !strings.HasPrefix(m.From.Address, "safe:") {
			t.Errorf("receipt %s: channel %s problems %q egvp %+v from %q", r.Stream, m.Channel, problems, m.EGVP, m.From.Address)
		}
	}
	if len(streams) != messages {
		t.Errorf("%d streams", len(streams))
	}
	eeb := byID["ent-TestnachrichtEeb_1"].Payload.(*gateway.MessageReceived)
	if eeb.EGVP.MessageType != "nachricht.eeb.zuruecklaufend" || eeb.EGVP.OriginMailbox != "bebpo" || eeb.Subject != "EB zu: 1 K 519/20.KO" {
		t.Errorf("the eEB sample: %+v subject %q", eeb.EGVP, eeb.Subject)
	}
	req := byID["ent-request"].Payload.(*gateway.MessageReceived)
	if !req.EGVP.EEBRequested || !slices.Equal(req.EGVP.EEBDocuments, []string{"d1"}) || req.EGVP.RecipientCode != "T6076" ||
		req.EGVP.SenderFileNumber != "3 K 12/26" {
		t.Errorf("the eEB request: %+v", req.EGVP)
	}
	if n := s.srv.Receives(box, "ent-"+samples[0]); n != 2 {
		t.Errorf("the message of the crash was received %d times, want 2", n)
	}

	answered := byID["ent-Testnachricht_1"]
	s.reply(t, answered.Stream)
	servetest.WaitEvents(t, poststelleBin(t), s.config, "ReplySent", 1)
	sent := s.srv.Sent()
	orig := answered.Payload.(*gateway.MessageReceived)
	if len(sent) != 1 || "safe:"+sent[0].ReceiverID != orig.From.Address || sent[0].UserID != box || !sent[0].SignMessage ||
		!slices.ContainsFunc(sent[0].Attachments, func(a enterprisetest.Attachment) bool {
			return a.Name == "antwort.txt" && string(a.Data) == "Ihre Klage ist eingegangen."
		}) {
		t.Fatalf("sent %+v", sent)
	}
	// The answer carries the XJustiz message egvp.BuildAnswer writes, referencing the
	// original, under our XJustiz id of the reply.
	i := slices.IndexFunc(sent[0].Attachments, func(a enterprisetest.Attachment) bool { return a.Name == "xjustiz_nachricht.xml" })
	if i < 0 {
		t.Fatalf("no xjustiz_nachricht.xml in %+v", sent[0].Attachments)
	}
	x, err := xjustiz.Parse(sent[0].Attachments[i].Data, xjustiz.Limits{})
	if err != nil || len(x.Problems) != 0 || x.Header.ForeignMessageID != orig.EGVP.XJustizMessageID {
		t.Errorf("the answer's XJustiz: %v %q header %+v, original %q", err, x.Problems, x.Header, orig.EGVP.XJustizMessageID)
	}
	replySent := servetest.Events(t, poststelleBin(t), s.config, "ReplySent")
	if len(replySent) != 1 || x.Header.OwnMessageID != egvp.XJustizID(replySent[0].(*gateway.ReplySent).ReplyID) {
		t.Errorf("XJustiz id %q, ReplySent %+v", x.Header.OwnMessageID, replySent)
	}
	// Enterprise's getState (the stand-in's OSCI_SENT) is the answer's delivery evidence.
	evs := servetest.WaitEvents(t, poststelleBin(t), s.config, "DeliveryEvidenceRecorded", 1)
	if ev := evs[0].(*gateway.DeliveryEvidenceRecorded); ev.Kind != gateway.EvidenceDelivered || ev.Attester.Role != "egvp-enterprise" {
		t.Errorf("evidence %+v", ev)
	}
}

// reply answers a message through the office API as the demo office.
func (s *site) reply(t *testing.T, stream string) {
	t.Helper()
	servetest.Reply(t, s.api, filepath.Join(s.dir, "data"), stream, "Ihre Klage ist eingegangen.")
}
