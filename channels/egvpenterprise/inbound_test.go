package egvpenterprise

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/channels/egvpenterprise/enterprisetest"
	"github.com/poststelle/poststelle/egvp"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/egvprecord"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/internal/gatewaytest"
)

// box is the receiving mailbox of the samples (their addressee's SAFE-ID).
const box = "DE.Justiz.233a8870-6319-4d4c-8f79-a3bb8fa8f328.51b7"

var samples = []string{"Testnachricht_1", "TestnachrichtEeb_1", "Testnachricht_xjustiz321"}

type rig struct {
	env   *gatewaytest.Env
	srv   *enterprisetest.Server
	url   string
	cfg   Config
	crash func(gateway.Receipt)
	// evidence, when set, is the inbound side's evidence recorder.
	evidence *gateway.EvidenceRecorder
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{env: gatewaytest.New(t), srv: enterprisetest.New(box)}
	hs := httptest.NewServer(r.srv)
	t.Cleanup(hs.Close)
	r.url = hs.URL + "/EGVP-WS/EGVP-WebService"
	r.cfg = Config{Endpoint: r.url, UserID: box, PollInterval: time.Hour}
	return r
}

// inbound is a fresh Inbound over the rig's log and blobs: a new one is what a
// restarted process builds.
func (r *rig) inbound(t *testing.T) *Inbound {
	t.Helper()
	in, err := New(r.cfg, gateway.IntakeDeps{Intake: &gateway.Intake{Log: r.env.Log}, Blobs: r.env.Blobs,
		Evidence: r.evidence, Logger: slog.New(slog.DiscardHandler), AfterRecord: func(rc gateway.Receipt) {
			if r.crash != nil {
				r.crash(rc)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func (r *rig) addSample(t *testing.T, name, id string) []byte {
	t.Helper()
	data, err := enterprisetest.SampleZIP(corpus.Path(t, "egvp", "Messages", name))
	if err != nil {
		t.Fatal(err)
	}
	r.srv.Add(box, enterprisetest.Message{ID: id, ZIP: data})
	return data
}

func (r *rig) received(t *testing.T) []*gateway.MessageReceived {
	t.Helper()
	reg := gateway.NewRegistry()
	evs, err := r.env.Log.Read(context.Background(), 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*gateway.MessageReceived
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := p.(*gateway.MessageReceived); ok {
			out = append(out, m)
		}
	}
	return out
}

type report struct {
	Uebermittlungsweg        string `xml:"Uebermittlungsweg"`
	Eingangszeitpunkt        string `xml:"Eingangszeitpunkt"`
	AuthentifizierteAbsender string `xml:"AuthentifizierteAbsender"`
	Betreff                  string `xml:"Nachricht>Betreff"`
	EmpfaengerAktenzeichen   string `xml:"Nachricht>EmpfaengerAktenzeichen"`
	RollenID                 string `xml:"Absender>Rollen_ID"`
	Dokumente                []struct {
		Name string `xml:"OriginalDateiName"`
	} `xml:"Dokument"`
}

// TestSamples: the three real messages, packed as Enterprise's receiveMessage
// returns them, arrive with the values of their check reports, are committed once
// recorded, and keep their ZIP as the raw message.
func TestSamples(t *testing.T) {
	r := newRig(t)
	zips := map[string][]byte{}
	for _, s := range samples {
		zips[s] = r.addSample(t, s, "ent-"+s)
	}
	in := r.inbound(t)
	if err := in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := r.received(t)
	if len(got) != len(samples) {
		t.Fatalf("%d receipts, want %d", len(got), len(samples))
	}
	if c := r.srv.Committed(box); len(c) != len(samples) {
		t.Errorf("committed %q", c)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range samples {
		m := got[i]
		t.Run(s, func(t *testing.T) {
			var rep report
			data, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", s, "pruefvermerk.xml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := xml.Unmarshal(data, &rep); err != nil {
				t.Fatal(err)
			}
			if len(m.Problems) != 0 {
				t.Errorf("problems %q", m.Problems)
			}
			if m.Metadata[MetaMessageID] != "ent-"+s || m.Channel != gateway.ChannelEGVP {
				t.Errorf("metadata %v channel %s", m.Metadata, m.Channel)
			}
			e := m.EGVP
			if e == nil {
				t.Fatal("no egvp section")
			}
			want := map[string][2]string{
				"route":                {e.OriginRoute, rep.Uebermittlungsweg},
				"subject":              {m.Subject, rep.Betreff},
				"recipient's file no.": {e.RecipientFileNumber, strings.TrimSpace(rep.EmpfaengerAktenzeichen)},
				"role":                 {e.SenderRole, rep.RollenID},
				"Eingangszeitpunkt":    {m.ReceivedAt.In(berlin).Format("02.01.2006, 15:04:05"), rep.Eingangszeitpunkt},
			}
			for k, v := range want {
				if v[0] != v[1] {
					t.Errorf("%s: %q, the report says %q", k, v[0], v[1])
				}
			}
			if (rep.AuthentifizierteAbsender == "ja") != (e.Origin == string(egvp.LevelVHN)) || !strings.Contains(e.OriginReason, "EGVP Enterprise") {
				t.Errorf("origin %s %q; the report says authenticated %s", e.Origin, e.OriginReason, rep.AuthentifizierteAbsender)
			}
			// The same fields as the EGVP layer reads from the export directly.
			direct, err := egvp.ReadExport(context.Background(), os.DirFS(corpus.Path(t, "egvp", "Messages", s)), egvp.Config{}, egvp.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if w := egvprecord.Fields(direct); !equalJSON(t, w, e) {
				t.Errorf("egvp section\n got %+v\nwant %+v", e, w)
			}
			if m.From.Address != AddressPrefix+direct.SenderSafeID {
				t.Errorf("from %q", m.From.Address)
			}
			var docs []string
			for _, p := range m.Parts {
				if strings.HasPrefix(p.Path, "a.") {
					docs = append(docs, p.Filename)
				}
			}
			var wantDocs []string
			for _, d := range rep.Dokumente {
				wantDocs = append(wantDocs, d.Name)
			}
			slices.Sort(docs)
			slices.Sort(wantDocs)
			if !slices.Equal(docs, wantDocs) {
				t.Errorf("documents %q, the report lists %q", docs, wantDocs)
			}
			if raw := readBlob(t, r, m); !bytes.Equal(raw, zips[s]) {
				t.Error("the raw message is not the messageZIP as received")
			}
		})
	}
	// A second poll finds nothing uncommitted and records nothing.
	if err := in.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(r.received(t)); n != len(samples) {
		t.Errorf("%d receipts after a second poll", n)
	}
}

func readBlob(t *testing.T, r *rig, m *gateway.MessageReceived) []byte {
	t.Helper()
	rc, err := r.env.Blobs.Open(context.Background(), m.Raw)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCrashBetweenAppendAndCommit: a process that dies after the receipt is durable
// and before the commit leaves the message uncommitted; the restarted process
// receives it again, recognises it by its key and commits it: one message, one
// stream.
func TestCrashBetweenAppendAndCommit(t *testing.T) {
	r := newRig(t)
	r.addSample(t, "TestnachrichtEeb_1", "ent-1")
	errCrash := errors.New("crash")
	r.crash = func(gateway.Receipt) { panic(errCrash) }
	func() {
		defer func() {
			if p := recover(); p != errCrash {
				t.Fatalf("recovered %v", p)
			}
		}()
		_ = r.inbound(t).Poll(context.Background())
	}()
	if c := r.srv.Committed(box); len(c) != 0 {
		t.Fatalf("committed %q before the crash point", c)
	}
	first := r.received(t)
	if len(first) != 1 {
		t.Fatalf("%d receipts before the restart", len(first))
	}
	var dup []bool
	r.crash = func(rc gateway.Receipt) { dup = append(dup, rc.Duplicate) }
	if err := r.inbound(t).Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dup, []bool{true}) {
		t.Errorf("the second take was duplicate %v, want [true]", dup)
	}
	if n := r.srv.Receives(box, "ent-1"); n != 2 {
		t.Errorf("received %d times, want 2", n)
	}
	if c := r.srv.Committed(box); !slices.Equal(c, []string{"ent-1"}) {
		t.Errorf("committed %q", c)
	}
	if got := r.received(t); len(got) != 1 {
		t.Errorf("%d receipts after the restart, want 1", len(got))
	}
}

// TestFailuresLeaveUncommitted: a failing receive, a failing commit and a failing
// record each leave the message uncommitted; the next poll takes it once.
func TestFailuresLeaveUncommitted(t *testing.T) {
	r := newRig(t)
	r.addSample(t, "Testnachricht_1", "ent-1")
	in := r.inbound(t)
	ctx := context.Background()
	r.srv.FailNext("receiveMessage", enterprisetest.FailFault)
	if err := in.Poll(ctx); err == nil {
		t.Error("a failed receive is no error")
	}
	if len(r.received(t)) != 0 || len(r.srv.Committed(box)) != 0 {
		t.Fatal("recorded or committed despite the failed receive")
	}
	r.srv.FailNext("commitReceivedMessage", enterprisetest.FailHTTP)
	if err := in.Poll(ctx); err == nil {
		t.Error("a failed commit is no error")
	}
	if len(r.received(t)) != 1 || len(r.srv.Committed(box)) != 0 {
		t.Fatal("want recorded and uncommitted after the failed commit")
	}
	if err := in.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if len(r.received(t)) != 1 || len(r.srv.Committed(box)) != 1 {
		t.Errorf("%d receipts, committed %q", len(r.received(t)), r.srv.Committed(box))
	}
	// A log that fails: nothing committed.
	r.addSample(t, "TestnachrichtEeb_1", "ent-2")
	failing := r.inbound(t)
	failing.deps.Intake = failRecorder{}
	if err := failing.Poll(ctx); err == nil {
		t.Error("a failed record is no error")
	}
	if slices.Contains(r.srv.Committed(box), "ent-2") {
		t.Error("committed without a record")
	}
}

type failRecorder struct{}

func (failRecorder) Record(context.Context, string, string, *gateway.MessageReceived) (gateway.Receipt, error) {
	return gateway.Receipt{}, errors.New("log unavailable")
}

// TestUnreadableKeptAndCommitted: a messageZIP that is not a ZIP, a ZIP without the
// OSCI message, and a ZIP with a hostile name are recorded with their problems (to
// triage) and committed once kept.
func TestUnreadableKeptAndCommitted(t *testing.T) {
	r := newRig(t)
	mk := func(files map[string]string) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for n, c := range files {
			w, _ := zw.Create(n)
			_, _ = w.Write([]byte(c))
		}
		_ = zw.Close()
		return b.Bytes()
	}
	cases := map[string]struct {
		zip     []byte
		problem string
	}{
		"not-a-zip":    {[]byte("this is no zip"), "the messageZIP is not readable"},
		"no-osci":      {mk(map[string]string{"MsgProps.xml": "<EGVPMessageProps/>", "attachments/a.pdf": "%PDF"}), "has no oscicontentdata.osci"},
		"hostile-name": {mk(map[string]string{"../../etc/passwd": "x"}), "not a relative path"},
	}
	for id, c := range cases {
		r.srv.Add(box, enterprisetest.Message{ID: id, ZIP: c.zip})
	}
	if err := r.inbound(t).Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]*gateway.MessageReceived{}
	for _, m := range r.received(t) {
		got[m.Metadata[MetaMessageID]] = m
	}
	for id, c := range cases {
		m := got[id]
		if m == nil {
			t.Errorf("%s: not recorded", id)
			continue
		}
		if p := strings.Join(m.Problems, "; "); !strings.Contains(p, c.problem) {
			t.Errorf("%s: problems %q, want %q", id, p, c.problem)
		}
		if !bytes.Equal(readBlob(t, r, m), c.zip) {
			t.Errorf("%s: raw bytes not kept", id)
		}
	}
	if c := r.srv.Committed(box); len(c) != len(cases) {
		t.Errorf("committed %q", c)
	}
}

// TestTooLargeLeft: a message over the cap is neither recorded nor committed, and
// not fetched again by the same process.
func TestTooLargeLeft(t *testing.T) {
	r := newRig(t)
	r.cfg.MaxMessageBytes = 64 << 10
	r.addSample(t, "Testnachricht_1", "big")
	in := r.inbound(t)
	if err := in.Poll(context.Background()); err == nil {
		t.Error("a message over the cap is no error")
	}
	if err := in.Poll(context.Background()); err != nil {
		t.Errorf("second poll: %v", err)
	}
	if n := r.srv.Receives(box, "big"); n != 1 {
		t.Errorf("fetched %d times, want 1", n)
	}
	if len(r.received(t)) != 0 || len(r.srv.Committed(box)) != 0 {
		t.Error("recorded or committed")
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		c    Config
		want string
	}{
		{Config{}, ""},
		{Config{PollInterval: time.Minute, Endpoint: "ftp://x", UserID: "u"}, "endpoint"},
		{Config{PollInterval: time.Minute, Endpoint: "http://x/ws"}, "user_id"},
		{Config{Outbound: true, Endpoint: "http://x/ws", UserID: "u", Username: "p"}, "needs password_file"},
		{Config{Outbound: true, Endpoint: "http://x/ws", UserID: "u", PasswordEnv: "X"}, "username: required"},
		{Config{Outbound: true, Endpoint: "http://x/ws", UserID: "u", Username: "p", PasswordEnv: "X", PasswordFile: "f"}, "exclude"},
		{Config{Outbound: true, Endpoint: "http://x/ws", UserID: "u", CAFile: "ca.pem"}, "ca_file"},
		{Config{Outbound: true, Endpoint: "https://x/ws", UserID: "u", CAFile: "ca.pem", Username: "p", PasswordFile: "f"}, ""},
		{Config{Outbound: true, Endpoint: "http://x/ws", UserID: "u", BusinessCard: &egvp.BusinessCardConfig{Organisation: "Stadt"}}, "business_card.safe_id"},
		{Config{Outbound: true, Endpoint: "http://x/ws", UserID: "u", BusinessCard: &egvp.BusinessCardConfig{SafeID: "DE.Justiz.x"}}, ""},
	}
	for _, tc := range cases {
		err := tc.c.Validate()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestPassword(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("geheim\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{PasswordFile: f}
	if pw, err := c.password(); err != nil || pw != "geheim" {
		t.Errorf("file: %q %v", pw, err)
	}
	t.Setenv("EGVP_TEST_PW", "aus der Umgebung")
	c = Config{PasswordEnv: "EGVP_TEST_PW"}
	if pw, err := c.password(); err != nil || pw != "aus der Umgebung" {
		t.Errorf("env: %q %v", pw, err)
	}
	c = Config{PasswordEnv: "EGVP_TEST_UNSET_PW"}
	if _, err := c.password(); err == nil {
		t.Error("an unset variable is no error")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestVHNAnchors: with vhn_ca_files configured, the issuer of the transport
// certificate is Poststelle's check, not Enterprise's: a CA that did not issue the
// samples' VHN certificates takes the VHN away, with the reason.
func TestVHNAnchors(t *testing.T) {
	r := newRig(t)
	r.cfg.VHNCAFiles = []string{corpus.Path(t, "egvp", "Messages", "TestnachrichtEeb_1", "certificates", "osci-manager.crt")}
	r.addSample(t, "TestnachrichtEeb_1", "ent-1")
	if err := r.inbound(t).Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := r.received(t)
	if len(got) != 1 {
		t.Fatalf("%d receipts", len(got))
	}
	if e := got[0].EGVP; e.Origin != string(egvp.LevelSenderSigned) || !strings.Contains(e.OriginReason, "not issued by a configured VHN CA") {
		t.Errorf("origin %s %q", e.Origin, e.OriginReason)
	}
	r.cfg.VHNCAFiles = []string{filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := New(r.cfg, gateway.IntakeDeps{Intake: &gateway.Intake{Log: r.env.Log}, Blobs: r.env.Blobs}); err == nil {
		t.Error("a missing VHN CA file is no error")
	}
}
