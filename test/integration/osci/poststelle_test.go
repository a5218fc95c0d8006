//go:build integration

package osci_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
	"github.com/poststelle/poststelle/test/integration/osci/intermediary"
)

var (
	serveOnce sync.Once
	serveBin  string
	serveErr  error
)

// poststelleBin builds `poststelle` once for the package's tests.
func poststelleBin(t *testing.T) string {
	t.Helper()
	serveOnce.Do(func() {
		dir, err := os.MkdirTemp("", "poststelle-osci-bin-")
		if err != nil {
			serveErr = err
			return
		}
		serveBin, serveErr = servetest.Build(dir)
	})
	if serveErr != nil {
		t.Fatal(serveErr)
	}
	return serveBin
}

// gateway is Bob's Poststelle: `poststelle serve` with an osci: section naming the
// stand-in intermediary, polling it, listening as passive recipient and answering.
type bobGateway struct {
	dir, config, api, passive string
	proc                      *servetest.Process
}

func startBob(t *testing.T, e env, url, alg string, passiveAddr string) *bobGateway {
	t.Helper()
	g := &bobGateway{dir: t.TempDir(), api: servetest.FreeAddr(t), passive: passiveAddr}
	g.config = filepath.Join(g.dir, "poststelle.yaml")
	pin := filepath.Join(g.dir, "pin")
	if err := os.WriteFile(pin, []byte("123456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := func(name string) string { return filepath.Join(e.certs, name) }
	conf := fmt.Sprintf(`data_dir: %s/data
log_level: debug
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
osci:
  intermediary: {url: %q, cipher_cert_file: %q, signature_cert_file: %q}
  cipher: {pkcs12_file: %q, password_file: %q}
  signature: {pkcs12_file: %q, password_file: %q}
  signature_method: %s
  poll_interval: 300ms
  passive: {listen: %q}
  outbound: true
  business_card: {organisation: Bob's Behörde, city: Musterstadt, safe_id: DE.Justiz.b0b0b0b0-0000-4000-8000-000000000b0b.0001, role: egvp_bebpo}
`, g.dir, g.api, servetest.FreeAddr(t), servetest.FreeAddr(t), url,
		c("osci_manager_cipher_4096.cer"), c("osci_manager_signature_4096.cer"),
		c("bob_cipher_4096.p12"), pin, c("bob_signature_4096.p12"), pin, alg, passiveAddr)
	if err := os.WriteFile(g.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	g.proc = servetest.Start(t, poststelleBin(t), g.config, g.api)
	return g
}

// received waits for the MessageReceived of the message id as the library reports it;
// on the wire, and so in the receipt, it is base64.
func (g *bobGateway) received(t *testing.T, id string) servetest.Recorded {
	t.Helper()
	id = base64.StdEncoding.EncodeToString([]byte(id))
	var got servetest.Recorded
	servetest.WaitFor(t, "MessageReceived "+id, func() bool {
		for _, r := range servetest.Replay(t, poststelleBin(t), g.config, "MessageReceived") {
			if r.Payload.(*gateway.MessageReceived).SenderMessageID == id {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

func checkReceived(t *testing.T, m *gateway.MessageReceived, subject string) {
	t.Helper()
	if m.Channel != gateway.ChannelEGVP || m.Subject != subject || !strings.HasPrefix(m.From.Address, "osci:") {
		t.Errorf("received %s %q from %+v", m.Channel, m.Subject, m.From)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems %q", m.Problems)
	}
	if sigs := m.Metadata["osci.contentSignatures"]; !strings.Contains(sigs, ": valid (") || strings.Contains(sigs, "invalid") {
		t.Errorf("content signatures %q", sigs)
	}
	if len(m.Parts) < 2 {
		t.Errorf("parts %+v, want the text and the attachment", m.Parts)
	}
}

// TestPoststelleOSCI: Alice's library stores a delivery for Bob at the stand-in;
// Bob's Poststelle (the real serve binary) fetches and records it (content signature
// valid), and Alice's process card then shows it received. Alice's library forwards
// one to Bob's passive recipient, which records it too. Both with rsa-sha256 and
// RSA-PSS.
func TestPoststelleOSCI(t *testing.T) {
	e := peerEnv(t)
	for _, alg := range sigAlgs {
		t.Run(alg.name, func(t *testing.T) {
			passiveAddr := servetest.FreeAddr(t)
			srv := startIntermediary(t, e, alg.uri, map[string]string{intermediary.CertificateKey(bobCipher(t, e)): "http://" + passiveAddr + "/"})
			g := startBob(t, e, srv.URL(), alg.name, passiveAddr)

			store := runPeer(t, e, "store", "--intermediary", srv.URL(), "--sig-alg", alg.name, "--attach", "3000", "--subject", "Antrag "+alg.name)
			store.mustSucceed(t, "store")
			id, _ := store.doc["messageId"].(string)
			rec := g.received(t, id)
			checkReceived(t, rec.Payload.(*gateway.MessageReceived), "Antrag "+alg.name)
			servetest.WaitFor(t, "the mailbox emptied", func() bool { return len(srv.Mailbox(bobCipher(t, e))) == 0 })
			pc := runPeer(t, e, "processcard", "--intermediary", srv.URL(), "--sig-alg", alg.name, "--message-id", id)
			pc.mustSucceed(t, "processcard")
			if cards, _ := pc.doc["processCards"].([]any); len(cards) != 1 || obj(cards[0], "reception") == nil {
				t.Errorf("process cards %v, want the delivery received", pc.doc["processCards"])
			}

			fwd := runPeer(t, e, "forward", "--intermediary", srv.URL(), "--sig-alg", alg.name, "--attach", "2000",
				"--subject", "Klage "+alg.name, "--recipient-url", "http://127.0.0.1:9/unused")
			fwd.mustSucceed(t, "forward")
			fid, _ := fwd.doc["messageId"].(string)
			frec := g.received(t, fid)
			checkReceived(t, frec.Payload.(*gateway.MessageReceived), "Klage "+alg.name)
			if m := frec.Payload.(*gateway.MessageReceived); m.Metadata["osci.messageType"] != "acceptDelivery" {
				t.Errorf("forwarded delivery came as %q", m.Metadata["osci.messageType"])
			}

		})
	}
}

// TestPoststelleAnswer: the office answers Alice's delivery through the API; Bob's
// Poststelle stores the answer for Alice's cipher certificate, and Alice's library
// fetches it, decrypts it and verifies Bob's content signature. Both with rsa-sha256
// and RSA-PSS.
func TestPoststelleAnswer(t *testing.T) {
	e := peerEnv(t)
	for _, alg := range sigAlgs {
		t.Run(alg.name, func(t *testing.T) {
			srv := startIntermediary(t, e, alg.uri, nil)
			g := startBob(t, e, srv.URL(), alg.name, servetest.FreeAddr(t))
			store := runPeer(t, e, "store", "--intermediary", srv.URL(), "--sig-alg", alg.name, "--attach", "3000", "--subject", "Antrag "+alg.name)
			store.mustSucceed(t, "store")
			id, _ := store.doc["messageId"].(string)
			rec := g.received(t, id)
			g.reply(t, rec.Stream)
			servetest.WaitEvents(t, poststelleBin(t), g.config, "ReplySent", 1)
			fetch := runPeer(t, e, "fetch", "--intermediary", srv.URL(), "--sig-alg", alg.name,
				"--signer", "alice_signature_4096.p12", "--decrypter", "carol_cipher_4096.p12")
			fetch.mustSucceed(t, "fetch the answer")
			if fetch.doc["subject"] != "Re: Antrag "+alg.name {
				t.Errorf("answer subject %v", fetch.doc["subject"])
			}
			checkAnswer(t, fetch.doc)
		})
	}
}

// reply answers a message through the office API as the demo office.
func (g *bobGateway) reply(t *testing.T, stream string) {
	t.Helper()
	servetest.Reply(t, g.api, filepath.Join(g.dir, "data"), stream, "Ihr Antrag ist eingegangen.")
}

// checkAnswer says Alice's library decrypted the answer and found Bob's content
// signature valid over the text and the attachment.
func checkAnswer(t *testing.T, got map[string]any) {
	t.Helper()
	cs, _ := got["containers"].([]any)
	if len(cs) == 0 {
		t.Fatalf("no content container in the answer: %v", got)
	}
	var sigs int
	for _, c := range cs {
		if e := obj(c, "decryptError"); e != nil {
			t.Errorf("answer not decrypted: %v", e)
		}
		ss, _ := obj(c, "signatures").([]any)
		for _, s := range ss {
			sigs++
			if obj(s, "valid") != true {
				t.Errorf("Bob's content signature not valid: %v", s)
			}
		}
	}
	if sigs == 0 {
		t.Error("the answer arrived unsigned")
	}
	want := map[string]string{"antwort.txt": sha256Hex("Ihr Antrag ist eingegangen.")}
	if have := attachmentsOf(got); fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("answer attachments %v, want %v", have, want)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
