package oscichannel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/channeltest"
	"github.com/poststelle/poststelle/osci"
)

// forwarder plays the intermediary handing deliveries to the passive recipient: each
// message of the suite becomes the attachment of an acceptDelivery, signed as content
// by alice, encrypted for bob, signed as a message and transport-encrypted by
// osci_manager, as forwardDelivery makes it.
type forwarder struct {
	t       testing.TB
	url     string
	blobs   gateway.BlobStore
	dir     string
	manager osci.Supplier
	n       atomic.Int64

	mu   sync.Mutex
	sent map[[32]byte]sentFrame
	last []byte
}

type sentFrame struct {
	id   string
	file string
}

var creation = time.Date(2026, 12, 2, 7, 30, 0, 0, time.UTC)

func newForwarder(t testing.TB) *forwarder {
	m := pair(t, "osci_manager_signature_4096")
	mc := pair(t, "osci_manager_cipher_4096")
	return &forwarder{t: t, dir: t.TempDir(), sent: map[[32]byte]sentFrame{},
		manager: osci.Supplier{Decrypter: decrypterOf(t, "osci_manager_cipher_4096"), Signer: m.Key, SignatureCertificate: m.Cert, CipherCertificate: mc.Cert}}
}

func (f *forwarder) Start(t testing.TB, deps gateway.IntakeDeps, max int64) {
	cfg := authorityConfig(t, "http://127.0.0.1:1/")
	cfg.Passive = &PassiveConfig{Listen: "127.0.0.1:0"}
	cfg.MaxMessageBytes = max
	p, err := NewPassive(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	f.url, f.blobs = "http://"+p.Addr().String()+"/", deps.Blobs
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func (f *forwarder) Send(t testing.TB, raw []byte) channeltest.Answer {
	sum := sha256.Sum256(raw)
	f.mu.Lock()
	f.last = raw
	fr, again := f.sent[sum]
	f.mu.Unlock()
	if !again {
		fr = sentFrame{id: base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "msg-%03d", f.n.Add(1))), file: filepath.Join(f.dir, fmt.Sprintf("frame-%x", sum[:8]))}
	}
	a := f.deliver(t, raw, fr, !again)
	if !again {
		f.mu.Lock()
		f.sent[sum] = fr
		f.mu.Unlock()
	}
	return a
}

func (f *forwarder) Retry(t testing.TB) channeltest.Answer {
	f.mu.Lock()
	raw := f.last
	f.mu.Unlock()
	return f.Send(t, raw)
}

func (f *forwarder) Transmitted(t testing.TB, raw []byte) []byte {
	f.mu.Lock()
	fr := f.sent[sha256.Sum256(raw)]
	f.mu.Unlock()
	b, err := os.ReadFile(fr.file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *forwarder) CheckReceipt(t testing.TB, raw []byte, m *gateway.MessageReceived) {
	t.Helper()
	f.mu.Lock()
	fr := f.sent[sha256.Sum256(raw)]
	f.mu.Unlock()
	checkReceipt(t, f.blobs, fr.id, raw, m)
}

// checkReceipt checks the receipt of a delivery made by content and bundle.
func checkReceipt(t testing.TB, blobs gateway.BlobStore, id string, raw []byte, m *gateway.MessageReceived) {
	t.Helper()
	fr := sentFrame{id: id}
	if m.Channel != gateway.ChannelEGVP || m.SenderMessageID != fr.id || m.Transport.Coordinates != fr.id || m.Subject != "Antrag "+fr.id {
		t.Errorf("receipt %s %q %q %q, want egvp %q", m.Channel, m.SenderMessageID, m.Transport.Coordinates, m.Subject, fr.id)
	}
	if !m.ReceivedAt.Equal(creation) {
		t.Errorf("received at %v, want the process card's creation %v", m.ReceivedAt, creation)
	}
	if !strings.HasPrefix(m.From.Address, "osci:") || m.From.Name == "" || m.Metadata[MetaOriginatorCipher] == "" {
		t.Errorf("from %+v", m.From)
	}
	if got := m.Metadata[MetaContentSignatures]; !strings.Contains(got, ": valid") || strings.Contains(got, "invalid") {
		t.Errorf("content signatures %q", got)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems %q", m.Problems)
	}
	if len(m.Parts) != 1 || m.Parts[0].Filename != "antrag.eml" {
		t.Fatalf("parts %+v", m.Parts)
	}
	rc, err := blobs.Open(context.Background(), m.Parts[0].Blob)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, raw) {
		t.Error("the decrypted content differs from what was sent")
	}
}

// Stage writes the frames of raws to files first: osci.Encryptor.EncryptTransport
// holds a message's ciphertext in memory, which is the sender's cost, not the
// channel's.
func (f *forwarder) Stage(t testing.TB, raws [][]byte) func(testing.TB) []channeltest.Answer {
	frames := make([]sentFrame, len(raws))
	for i, raw := range raws {
		frames[i] = sentFrame{id: base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "staged-%03d", i)), file: filepath.Join(f.dir, fmt.Sprintf("staged-%d", i))}
		body, err := acceptDelivery(t, f.manager, raw, frames[i].id, f.dir)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(frames[i].file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, body); err != nil {
			t.Fatal(err)
		}
		out.Close()
	}
	return func(t testing.TB) []channeltest.Answer {
		answers := make([]channeltest.Answer, len(frames))
		var wg sync.WaitGroup
		for i := range frames {
			wg.Go(func() {
				in, err := os.Open(frames[i].file)
				if err != nil {
					t.Error(err)
					return
				}
				defer in.Close()
				answers[i] = f.post(t, in)
			})
		}
		wg.Wait()
		return answers
	}
}

// deliver posts raw as a delivery and reports the recipient's answer.
func (f *forwarder) deliver(t testing.TB, raw []byte, fr sentFrame, keep bool) channeltest.Answer {
	body, err := acceptDelivery(t, f.manager, raw, fr.id, f.dir)
	if err != nil {
		t.Fatal(err)
	}
	var frame io.Reader = body
	var file *os.File
	if keep {
		if file, err = os.Create(fr.file); err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		frame = io.TeeReader(body, file)
	}
	return f.post(t, frame)
}

func (f *forwarder) post(t testing.TB, frame io.Reader) channeltest.Answer {
	ctx := context.Background()
	resp, err := http.Post(f.url, "text/xml; charset=UTF-8", frame)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	back, err := f.manager.ReadRequest(ctx, resp.Body, osci.DirSpool{Dir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	return answerOf(t, back)
}

func answerOf(t testing.TB, back *osci.Request) channeltest.Answer {
	if back.Type() == osci.Fault {
		return channeltest.Answer{Code: back.Envelope.SOAPFault.Code.String()}
	}
	if back.Type() != osci.ResponseToAcceptDelivery || !back.Encrypted || back.Signature == nil || !back.Signature.Valid() {
		t.Fatalf("answer %s encrypted %v signature %+v", back.Type(), back.Encrypted, back.Signature)
	}
	fb := back.Envelope.Feedback()
	if len(fb) == 0 {
		t.Fatal("answer without feedback")
	}
	return channeltest.Answer{Accepted: !fb[0].Code.Error(), Code: fb[0].Code.String()}
}

const docContainer = `<osci:ContentContainer xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" Id="coco"><osci:Content Id="c1" href="cid:antrag.eml"></osci:Content></osci:ContentContainer>`

// content is raw as an OSCI delivery's content: a container signed by alice and
// encrypted for bob, its attachment's ciphertext in a file of dir, and the
// certificates the envelope carries.
func content(t testing.TB, raw []byte, dir string) ([]byte, *osci.Part, []osci.CertificateEntry, error) {
	ctx := context.Background()
	alice, aliceC, bob := pair(t, "alice_signature_4096"), pair(t, "alice_cipher_4096"), pair(t, "bob_cipher_4096")
	signed, err := osci.SignContainer(ctx, []byte(docContainer), osci.SignOptions{Signer: alice.Key,
		CertificateID: osci.CertificateID("originator", "signature", alice.Cert), Attachments: []string{"antrag.eml"},
		Open: func(context.Context, string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }})
	if err != nil {
		return nil, nil, nil, err
	}
	ct, err := os.CreateTemp(dir, "ct-*")
	if err != nil {
		return nil, nil, nil, err
	}
	defer ct.Close()
	enc, err := osci.Encryptor{Recipients: []*x509.Certificate{bob.X509}}.EncryptContainer(ctx, signed,
		[]osci.AttachmentPlain{{ContentID: "antrag.eml", Body: bytes.NewReader(raw), Out: ct}})
	if err != nil {
		return nil, nil, nil, err
	}
	size, _ := ct.Seek(0, io.SeekCurrent)
	certs := []osci.CertificateEntry{
		{Role: "CipherCertificateOriginator", ID: osci.CertificateID("originator", "cipher", aliceC.Cert), Cert: aliceC.Cert},
		{Role: "CipherCertificateAddressee", ID: osci.CertificateID("addressee", "cipher", bob.Cert), Cert: bob.Cert},
		{Role: "SignatureCertificateOriginator", ID: osci.CertificateID("originator", "signature", alice.Cert), Cert: alice.Cert}}
	return enc.XML, &osci.Part{ContentID: "antrag.eml", Size: size, Data: fileSpooled(ct.Name())}, certs, nil
}

func bundle(id string) osci.ProcessCardBundle {
	return osci.ProcessCardBundle{MessageID: id, Card: osci.ProcessCard{RecentModification: creation,
		Creation: &osci.Timestamp{Plain: creation}, Forwarding: &osci.Timestamp{Plain: creation}, Subject: "Antrag " + id}}
}

// acceptDelivery is the body of an acceptDelivery carrying raw, streamed: the content
// encrypted into a file, the message written through a pipe.
func acceptDelivery(t testing.TB, manager osci.Supplier, raw []byte, id, dir string) (io.Reader, error) {
	pkg, part, certs, err := content(t, raw, dir)
	if err != nil {
		return nil, err
	}
	a := &osci.Answer{
		Message: osci.Message{Type: osci.AcceptDelivery, Control: osci.ControlBlock{Challenge: "Y2gt" + id, HasChallenge: true},
			Operation:                   osci.Operation{ProcessCards: []osci.ProcessCardBundle{bundle(id)}},
			NonIntermediaryCertificates: certs, ContentPackage: pkg},
		Attachments:      []*osci.Part{part},
		EncryptFor:       pair(t, "bob_cipher_4096").X509,
		CertificateRoles: []string{"CipherCertificateIntermediary", "SignatureCertificateIntermediary"},
	}
	pr, pw := io.Pipe()
	go func() {
		err := manager.WriteAnswer(context.Background(), pw, a)
		_ = os.Remove(string(part.Data.(fileSpooled)))
		pw.CloseWithError(err)
	}()
	return pr, nil
}

type fileSpooled string

func (f fileSpooled) Open() (io.ReadCloser, error) { return os.Open(string(f)) }

// TestPassiveConformance runs the channel contract's suite against the passive
// recipient, the intermediary posting acceptDelivery.
func TestPassiveConformance(t *testing.T) {
	channeltest.Run(t, channeltest.Config{
		New:   func(t testing.TB) channeltest.Driver { return newForwarder(t) },
		Codes: channeltest.Codes{Accepted: "0000", Temporary: "9808", TooLarge: "9904", Refused: "9805"},
	})
}
