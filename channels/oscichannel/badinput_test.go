package oscichannel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/routing"
	"github.com/poststelle/poststelle/internal/corpus"
	"github.com/poststelle/poststelle/osci"
)

// syncBuffer collects the channel's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loggedPassive is a passive recipient recording into a real log and blob store.
type loggedPassive struct {
	p     *Passive
	log   *sqlitelog.Log
	blobs *blob.Store
	lines *syncBuffer
}

func newLoggedPassive(t *testing.T, modify func(*Config)) *loggedPassive {
	t.Helper()
	dir := t.TempDir()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := authorityConfig(t, "http://127.0.0.1:1/")
	cfg.Passive = &PassiveConfig{Listen: "127.0.0.1:0"}
	cfg.MaxMessageBytes = 1 << 20
	if modify != nil {
		modify(&cfg)
	}
	lines := &syncBuffer{}
	p, err := NewPassive(cfg, gateway.IntakeDeps{Intake: &gateway.Intake{Log: l}, Blobs: blobs,
		Logger: slog.New(slog.NewJSONHandler(lines, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ln.Close() })
	return &loggedPassive{p: p, log: l, blobs: blobs, lines: lines}
}

func (lp *loggedPassive) post(t *testing.T, body []byte) int {
	t.Helper()
	w := httptest.NewRecorder()
	lp.p.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	return w.Code
}

// received is every MessageReceived in the log with its stream.
func (lp *loggedPassive) received(t *testing.T) ([]*gateway.MessageReceived, []string) {
	t.Helper()
	evs, err := lp.log.Read(context.Background(), 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	reg := gateway.NewRegistry()
	var msgs []*gateway.MessageReceived
	var streams []string
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := p.(*gateway.MessageReceived); ok {
			msgs = append(msgs, m)
			streams = append(streams, evs[i].Stream)
		}
	}
	return msgs, streams
}

// vhnCerts is a VHN CA, a second CA of the same name that did not issue the leaf, and
// beBPo VHN key pairs for two SAFE-IDs, as BNotK's VHN certificates look.
type vhnCerts struct {
	ca, forger  *x509.Certificate
	caFile      string
	forgerFile  string
	leaf, other *KeyPair
}

var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

func makeVHN(t *testing.T, safeID, otherID string) *vhnCerts {
	t.Helper()
	dir := t.TempDir()
	ca := func(name string) (*x509.Certificate, *rsa.PrivateKey, string) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "beBPo VHN CA Test", Organization: []string{"Poststelle Test"}, Country: []string{"DE"}},
			NotBefore: creation.Add(-48 * time.Hour), NotAfter: creation.Add(365 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		file := filepath.Join(dir, name+".pem")
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return c, key, file
	}
	caCert, caKey, caFile := ca("ca")
	forger, _, forgerFile := ca("forger")
	leaf := func(serial int64, id string) *KeyPair {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial),
			Subject: pkix.Name{CommonName: "VHN - besonderes elektronisches Behördenpostfach", Country: []string{"DE"},
				ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidUID, Value: id}}},
			NotBefore: creation.Add(-24 * time.Hour), NotAfter: creation.Add(30 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		xc, _ := x509.ParseCertificate(der)
		c, err := cert.Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		return &KeyPair{Key: key, Cert: c, X509: xc}
	}
	return &vhnCerts{ca: caCert, forger: forger, caFile: caFile, forgerFile: forgerFile,
		leaf: leaf(4711, safeID), other: leaf(4712, otherID)}
}

// inspectionOf is the intermediary's clean inspection of a transport certificate.
func inspectionOf(c *cert.Certificate) []osci.Inspection {
	return []osci.Inspection{{Timestamp: osci.Timestamp{Plain: creation}, X509SubjectName: c.Subject.String(),
		X509IssuerName: c.Issuer.String(), X509Serial: c.SerialNumber, CertType: "advanced",
		MathResult: "ok", OfflineResult: "valid", OnlineResult: "ok"}}
}

// A 3.5.1 eEB whose own id is no UUID and whose court code has no Codeliste
// version: its schema refuses it, the elements read are all there.
const eebSchemaBroken = `<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.eeb.zuruecklaufend.2200007 xmlns:tns="http://www.xjustiz.de">
 <tns:nachrichtenkopf xjustizVersion="3.5.1">
  <tns:aktenzeichen.empfaenger>1 K 519/20.KO</tns:aktenzeichen.empfaenger>
  <tns:erstellungszeitpunkt>2026-12-02T08:00:00Z</tns:erstellungszeitpunkt>
  <tns:auswahl_absender><tns:absender.sonstige>Stadt Musterstadt</tns:absender.sonstige></tns:auswahl_absender>
  <tns:auswahl_empfaenger><tns:empfaenger.gericht><code>T6076</code></tns:empfaenger.gericht></tns:auswahl_empfaenger>
  <tns:eigeneNachrichtenID>eeb-1</tns:eigeneNachrichtenID>
  <tns:fremdeNachrichtenID>e238a754-f63d-4196-98e6-89c50f015b2e</tns:fremdeNachrichtenID>
 </tns:nachrichtenkopf>
 <tns:fachdaten><tns:empfangsbestaetigung>2026-12-01</tns:empfangsbestaetigung></tns:fachdaten>
</tns:nachricht.eeb.zuruecklaufend.2200007>`

// TestReceiveBadInput sends the bad input through the passive recipient into
// a real log: each message is recorded once, kept with its raw bytes, and carries the
// problem that sends it to triage (rule problems: true).
func TestReceiveBadInput(t *testing.T) {
	sample := func(name, file string) []byte {
		b, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", name, file))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const safeID = "DE.Justiz.836cga01-ffff-2856-85ef-268df5e8b136.5555" // TestnachrichtEeb_1's Visitenkarte
	card, xjEEB := sample("TestnachrichtEeb_1", "additionals/visitenkarte.xml"), sample("TestnachrichtEeb_1", "attachments/xjustiz_nachricht.xml")
	vhn := makeVHN(t, safeID, "DE.Justiz.00000000-1111-2222-3333-444444444444.0001")
	alice := pair(t, "alice_signature_4096")
	triage, err := routing.Parse([]byte("rules:\n  - id: egvp-zweifelhaft\n    match: {channel: egvp, problems: true}\n    triage: true\n  - id: egvp\n    match: {channel: egvp}\n    offices: [poststelle]\n"), routing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		anchors     []string
		signer      *KeyPair
		xj          []byte
		origin      string
		reason      string
		wantProblem string // "" for none
	}{
		{"VHN issued by the configured CA", []string{vhn.caFile}, vhn.leaf, xjEEB, "vhn", "", ""},
		{"VHN from another CA of the same name", []string{vhn.forgerFile}, vhn.leaf, xjEEB, "sender-signed",
			"the VHN certificate is not issued by a configured VHN CA", "egvp: the Visitenkarte claims a bebpo mailbox, the transport certificate proves none"},
		{"Visitenkarte's SAFE-ID is not the VHN's", []string{vhn.caFile}, vhn.other, xjEEB, "sender-signed", "", `egvp: the Visitenkarte names SAFE-ID "` + safeID + `", the VHN certificate is for "DE.Justiz.00000000-1111-2222-3333-444444444444.0001"`},
		{"Visitenkarte claims a beBPo, no VHN", nil, alice, xjEEB, "sender-signed",
			"the transport signature's certificate is not a VHN certificate", "egvp: the Visitenkarte claims a bebpo mailbox, the transport certificate proves none"},
		{"XJustiz message fails its schema", []string{vhn.caFile}, vhn.leaf, []byte(eebSchemaBroken), "vhn", "",
			`egvp: xjustiz_nachricht.xml: schema XJustiz 3.5.1: nachricht.eeb.zuruecklaufend.2200007/nachrichtenkopf/eigeneNachrichtenID: "eeb-1" is not a valid Type.GDS.Xdomea.stringUUIDType`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lp := newLoggedPassive(t, func(c *Config) { c.VHNAnchors = tc.anchors })
			id := base64.StdEncoding.EncodeToString([]byte("bad-" + string(rune('a'+i))))
			body := egvpDeliveryFrom(t, tc.signer, card, tc.xj, id, "osci_manager", inspectionOf(tc.signer.Cert))
			if code := lp.post(t, body); code != http.StatusOK {
				t.Fatalf("HTTP %d", code)
			}
			msgs, _ := lp.received(t)
			if len(msgs) != 1 {
				t.Fatalf("%d messages in the log, want 1", len(msgs))
			}
			m := msgs[0]
			if m.EGVP == nil || m.EGVP.Origin != tc.origin || (tc.reason != "" && m.EGVP.OriginReason != tc.reason) {
				t.Fatalf("egvp %+v, want origin %s (%s); problems %q", m.EGVP, tc.origin, tc.reason, m.Problems)
			}
			has := slices.ContainsFunc(m.Problems, func(p string) bool { return strings.Contains(p, tc.wantProblem) })
			switch {
			case tc.wantProblem == "" && len(m.Problems) > 0:
				t.Errorf("problems %q, want none", m.Problems)
			case tc.wantProblem != "" && !has:
				t.Errorf("problems %q, want one with %q", m.Problems, tc.wantProblem)
			}
			d := triage.Decide(routing.NewInput(m, routing.Facts{}))
			if d.Routed() == (tc.wantProblem != "") {
				t.Errorf("decision %+v for problems %q", d, m.Problems)
			}
			rc, err := lp.blobs.Open(context.Background(), m.Raw)
			if err != nil {
				t.Fatalf("raw bytes not kept: %v", err)
			}
			rc.Close()
		})
	}
}

// TestReceiveDuplicateDelivery: the intermediary delivers the same OSCI message twice
// (its acknowledgement was lost, or the gateway crashed before answering): the log
// holds one message in one stream, the second delivery is acknowledged as the
// duplicate it is, and the channel's log line says so.
func TestReceiveDuplicateDelivery(t *testing.T) {
	lp := newLoggedPassive(t, nil)
	card, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", "Testnachricht_1", "additionals", "visitenkarte.xml"))
	if err != nil {
		t.Fatal(err)
	}
	xj, err := os.ReadFile(corpus.Path(t, "egvp", "Messages", "Testnachricht_1", "attachments", "xjustiz_nachricht.xml"))
	if err != nil {
		t.Fatal(err)
	}
	alice := pair(t, "alice_signature_4096")
	id := base64.StdEncoding.EncodeToString([]byte("dup-1"))
	first := egvpDeliveryFrom(t, alice, card, xj, id, "osci_manager", inspectionOf(alice.Cert))
	// The redelivery is encrypted and signed anew, so its bytes differ; the OSCI
	// message id is what names it.
	second := egvpDeliveryFrom(t, alice, card, xj, id, "osci_manager", inspectionOf(alice.Cert))
	if bytes.Equal(first, second) {
		t.Fatal("the two deliveries have the same bytes; the test would not show the id decides")
	}
	for i, body := range [][]byte{first, second, first} {
		if code := lp.post(t, body); code != http.StatusOK {
			t.Fatalf("delivery %d: HTTP %d", i+1, code)
		}
	}
	msgs, streams := lp.received(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the log after three deliveries of one message, want 1", len(msgs))
	}
	if msgs[0].SenderMessageID != id {
		t.Errorf("sender message id %q, want %q", msgs[0].SenderMessageID, id)
	}
	all, err := lp.log.Read(context.Background(), 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Stream != streams[0] {
		t.Errorf("%d events in the log, want the one MessageReceived", len(all))
	}
	lines := lp.lines.String()
	if n := strings.Count(lines, `"duplicate":true`); n != 2 {
		t.Errorf("%d log lines report a duplicate, want 2:\n%s", n, lines)
	}
	if n := strings.Count(lines, `"duplicate":false`); n != 1 {
		t.Errorf("%d log lines report a first delivery, want 1:\n%s", n, lines)
	}
}

// crashAfterAppend records, then fails once as a gateway that crashed before it
// could answer would: the event is durable, the channel does not know it.
type crashAfterAppend struct {
	next    gateway.Recorder
	crashed bool
	mu      sync.Mutex
}

func (c *crashAfterAppend) Record(ctx context.Context, tenant, key string, m *gateway.MessageReceived) (gateway.Receipt, error) {
	rc, err := c.next.Record(ctx, tenant, key, m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && !c.crashed {
		c.crashed = true
		return gateway.Receipt{}, errors.New("injected crash after the append")
	}
	return rc, err
}

// TestActiveRefetchAfterCrash: the active recipient records a delivery but crashes
// before it acknowledges it to the intermediary (no exitDialog), so the next poll
// fetches the same OSCI message again: it stays one event in the log, the refetch is
// recorded as a duplicate and acknowledged, and the log lines show both steps.
func TestActiveRefetchAfterCrash(t *testing.T) {
	dir := t.TempDir()
	l, err := sqlitelog.Open(context.Background(), sqlitelog.Config{Path: filepath.Join(dir, "log.db"),
		Signer: ed25519.NewKeyFromSeed(make([]byte, 32)), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	lines := &syncBuffer{}
	mb := newMailbox(t)
	mb.Start(t, gateway.IntakeDeps{Intake: &crashAfterAppend{next: &gateway.Intake{Log: l}}, Blobs: blobs,
		Logger: slog.New(slog.NewJSONHandler(lines, nil))}, 1<<20)
	raw := []byte("Subject: Ladung\r\n\r\nzum Termin\r\n")
	if a := mb.Send(t, raw); a.Accepted {
		t.Fatalf("first fetch acknowledged despite the crash: %+v", a)
	}
	if a := mb.Retry(t); !a.Accepted {
		t.Fatalf("refetch not acknowledged: %+v", a)
	}
	lp := &loggedPassive{log: l}
	msgs, _ := lp.received(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the log after the refetch, want 1", len(msgs))
	}
	out := lines.String()
	if !strings.Contains(out, `"msg":"delivery left at the intermediary"`) || strings.Count(out, `"duplicate":true`) != 1 {
		t.Errorf("log lines do not show the crash and the one duplicate:\n%s", out)
	}
}
