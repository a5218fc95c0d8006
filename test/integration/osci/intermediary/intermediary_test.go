package intermediary

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/crypto/xmlenc"
	"github.com/poststelle/poststelle/osci"
)

const (
	certDir   = "../../../../testdata/osci/zertifikate"
	goldenDir = "../../../../osci/testdata/library"
)

func start(t *testing.T) *Server {
	t.Helper()
	keys, err := SampleKeys(certDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(t.Context(), Config{Keys: keys, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// client is a Go OSCI client for the tests: it composes, signs and encrypts
// requests with the sample keys and reads the answers.
type client struct {
	t       *testing.T
	url     string
	sig     *KeyPair
	cipher  *KeyPair
	manager *x509.Certificate
}

func newClient(t *testing.T, url, name string) *client {
	return newClientKeys(t, url, name, name)
}

func newClientKeys(t *testing.T, url, sigName, cipherName string) *client {
	t.Helper()
	sig, err := LoadPKCS12(filepath.Join(certDir, sigName+"_signature_4096.p12"), "123456")
	if err != nil {
		t.Fatal(err)
	}
	ciph, err := LoadPKCS12(filepath.Join(certDir, cipherName+"_cipher_4096.p12"), "123456")
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadCertificate(filepath.Join(certDir, "osci_manager_cipher_4096.cer"))
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, url: url, sig: sig, cipher: ciph, manager: m}
}

func parsed(t *testing.T, c *x509.Certificate) *cert.Certificate {
	t.Helper()
	p, err := cert.Parse(c.Raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// request composes a signed request with the client's certificates (and extra ones).
func (c *client) request(m osci.Message, extra ...osci.CertificateEntry) []byte {
	t := c.t
	t.Helper()
	sig, ciph := parsed(t, c.sig.Certificate), parsed(t, c.cipher.Certificate)
	sigID := osci.CertificateID("originator", "signature", sig)
	m.NonIntermediaryCertificates = append([]osci.CertificateEntry{
		{Role: "CipherCertificateOriginator", ID: osci.CertificateID("originator", "cipher", ciph), Cert: ciph},
	}, extra...)
	m.NonIntermediaryCertificates = append(m.NonIntermediaryCertificates, osci.CertificateEntry{Role: "SignatureCertificateOriginator", ID: sigID, Cert: sig})
	m.Signed = true
	env, err := osci.ComposeEnvelope(&m)
	if err != nil {
		t.Fatal(err)
	}
	if env, err = osci.SignEnvelope(context.Background(), env, osci.SignOptions{Signer: c.sig.Key, CertificateID: sigID}); err != nil {
		t.Fatal(err)
	}
	return env
}

// encrypt frames an envelope and encrypts it for the intermediary.
func (c *client) encrypt(env []byte) []byte {
	t := c.t
	t.Helper()
	var inner, out bytes.Buffer
	if err := osci.WriteMessage(&inner, osci.NewBoundary(), true, env, nil); err != nil {
		t.Fatal(err)
	}
	enc := osci.Encryptor{Recipients: []*x509.Certificate{c.manager}}
	if err := enc.EncryptTransport(context.Background(), &inner, &out, osci.NewBoundary(), true); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

var faultCode = regexp.MustCompile(`<osci:Code>(\d{4})</osci:Code>`)

// post sends a body and returns the answer read as the client, or the fault's code.
func (c *client) post(body []byte) (*osci.Request, osci.Code) {
	t := c.t
	t.Helper()
	resp, err := http.Post(c.url, "text/xml; charset=UTF-8", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if m := faultCode.FindSubmatch(raw.Bytes()); m != nil && bytes.Contains(raw.Bytes(), []byte("<soap:Fault>")) {
		n, _ := strconv.Atoi(string(m[1]))
		return nil, osci.Code(n)
	}
	me := osci.Supplier{Decrypter: osci.Decrypter{Key: c.cipher.Key.(crypto.Decrypter), Certificate: c.cipher.Certificate, Policy: xmlenc.OSCIPolicy()}}
	ans, err := me.ReadRequest(context.Background(), &raw, osci.DirSpool{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if ans.Signature == nil || !ans.Signature.Valid() {
		t.Fatalf("answer not signed validly: %+v", ans.Signature)
	}
	fb := ans.Envelope.Feedback()
	if len(fb) == 0 {
		t.Fatalf("answer %s without feedback", ans.Type())
	}
	return ans, fb[0].Code
}

func challenge(n int) osci.ControlBlock {
	return osci.ControlBlock{Challenge: "Y2hhbGxlbmdl" + strconv.Itoa(n), HasChallenge: true, SequenceNumber: 0, HasSequence: true}
}

// TestDialog walks an explicit dialog and checks each refusal of a wrong control
// block leaves the dialog usable.
func TestDialog(t *testing.T) {
	srv := start(t)
	bob := newClient(t, srv.URL(), "bob")
	ans, code := bob.post(bob.encrypt(bob.request(osci.Message{Type: osci.InitDialog, Control: osci.ControlBlock{Challenge: "aW5pdA==", HasChallenge: true}})))
	if code != osci.CodeDialogOpen || ans.Type() != osci.ResponseToInitDialog {
		t.Fatalf("initDialog: %v %s", ans, code)
	}
	cb := ans.Envelope.ControlBlock
	if cb.Response != "aW5pdA==" || !cb.HasChallenge || cb.ConversationID == "" || cb.HasSequence {
		t.Fatalf("initDialog control block %+v", cb)
	}
	conv, last := cb.ConversationID, cb.Challenge
	fetch := func(seq int64, response, ch string) osci.Code {
		_, code := bob.post(bob.encrypt(bob.request(osci.Message{Type: osci.FetchDelivery,
			Control: osci.ControlBlock{ConversationID: conv, Response: response, HasResponse: true, Challenge: ch, HasChallenge: true, SequenceNumber: seq, HasSequence: true}})))
		return code
	}
	cases := []struct {
		name          string
		seq           int64
		response, chl string
		want          osci.Code
	}{
		{"wrong response", 0, "d3Jvbmc=", "YzE=", osci.CodeWrongDialogParameters},
		{"wrong sequence", 1, last, "YzI=", osci.CodeWrongDialogParameters},
		{"empty mailbox", 0, last, "YzM=", osci.CodeNoDelivery},
		{"replayed challenge", 0, last, "YzM=", osci.CodeWrongDialogParameters},
		{"refusals left the dialog as it was", 0, last, "YzQ=", osci.CodeNoDelivery},
	}
	for _, c := range cases {
		if got := fetch(c.seq, c.response, c.chl); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	_, code = bob.post(bob.encrypt(bob.request(osci.Message{Type: osci.FetchDelivery, Control: challenge(9)})))
	if code != osci.CodeDialogRequired {
		t.Errorf("fetchDelivery outside a dialog: %s, want %s", code, osci.CodeDialogRequired)
	}
}

// TestStoreFetch stores through the Go client, replays the message id, and fetches as
// the addressee and as another client.
func TestStoreFetch(t *testing.T) {
	srv := start(t)
	alice := newClient(t, srv.URL(), "alice")
	ans, code := alice.post(alice.encrypt(alice.request(osci.Message{Type: osci.GetMessageID, Control: challenge(1)})))
	if code != osci.CodeDialogClosed {
		t.Fatalf("getMessageId: %s", code)
	}
	id := ans.Envelope.Operation.MessageID
	bobCipher, err := LoadCertificate(filepath.Join(certDir, "bob_cipher_4096.cer"))
	if err != nil {
		t.Fatal(err)
	}
	addressee := osci.CertificateEntry{Role: "CipherCertificateAddressee", ID: "addressee_cipher", Cert: parsed(t, bobCipher)}
	store := func(ch int, id string, to osci.CertificateEntry) osci.Code {
		_, code := alice.post(alice.encrypt(alice.request(osci.Message{Type: osci.StoreDelivery, Control: challenge(ch),
			Operation: osci.Operation{MessageID: id, Subject: "go"}, ContentPackage: []byte(`<osci:ContentContainer Id="cc"><osci:Content Id="c1"><osci:Base64Content Id="b1">aGFsbG8=</osci:Base64Content></osci:Content></osci:ContentContainer>`)}, to)))
		return code
	}
	if got := store(2, id, addressee); got != osci.CodeDialogClosed {
		t.Fatalf("storeDelivery: %s", got)
	}
	if box := srv.Mailbox(bobCipher); len(box) != 1 || box[0] != id {
		t.Fatalf("mailbox %v", box)
	}
	selfSigned := selfSignedCipher(t)
	for _, c := range []struct {
		name string
		id   string
		to   osci.CertificateEntry
		want osci.Code
	}{
		{"replayed message id", id, addressee, osci.CodeIllegalMessageID},
		{"message id not issued", "bm90LWlzc3VlZA==", addressee, osci.CodeIllegalMessageID},
		{"no message id", "", addressee, osci.CodeNoMessageID},
		{"addressee certificate of no known CA", id, osci.CertificateEntry{Role: "CipherCertificateAddressee", ID: "x", Cert: selfSigned}, osci.CodeRecipientCipherCertBadSignature},
	} {
		if got := store(10+len(c.name), c.id, c.to); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if pc, ok := srv.ProcessCard(id); !ok || pc.Card.Creation == nil || len(pc.Report) != 3 || pc.Report[0].MathResult != "ok" {
		t.Errorf("process card %+v", pc)
	}
	for _, c := range []struct {
		who  string
		want osci.Code
	}{{"dave", osci.CodeNoDelivery}, {"bob", osci.CodeDialogOpen}} {
		cl := newClient(t, srv.URL(), c.who)
		ans, _ := cl.post(cl.encrypt(cl.request(osci.Message{Type: osci.InitDialog, Control: osci.ControlBlock{Challenge: "aW5pdA" + c.who, HasChallenge: true}})))
		cb := ans.Envelope.ControlBlock
		got, code := cl.post(cl.encrypt(cl.request(osci.Message{Type: osci.FetchDelivery,
			Control:   osci.ControlBlock{ConversationID: cb.ConversationID, Response: cb.Challenge, HasResponse: true, Challenge: "ZmV0Y2g" + c.who, HasChallenge: true, HasSequence: true},
			Operation: osci.Operation{Selection: &osci.Selection{MessageIDs: []string{id}}}})))
		if code != c.want {
			t.Errorf("fetch as %s: %s, want %s", c.who, code, c.want)
			continue
		}
		if got != nil && (!strings.Contains(string(got.ContentPackageXML()), "aGFsbG8=") || got.Envelope.ProcessCards()[0].Card.Reception == nil) {
			t.Errorf("fetched delivery %s", got.Envelope.Doc.Root.Local)
		}
	}
}

func selfSignedCipher(t *testing.T) *cert.Certificate {
	t.Helper()
	// Bob's key certified by nobody we know: openssl makes the certificate.
	dir := t.TempDir()
	key := filepath.Join(dir, "k.pem")
	crt := filepath.Join(dir, "c.pem")
	run(t, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=Mallory Cipher")
	c, err := LoadCertificate(crt)
	if err != nil {
		t.Fatal(err)
	}
	return parsed(t, c)
}

// TestGoldenReplay posts the library's captured requests: each is refused the second
// time for its challenge, and the captured storeDelivery for its message id, which
// this intermediary never issued.
func TestGoldenReplay(t *testing.T) {
	srv := start(t)
	// The captures' originator is Alice with Carol's cipher key.
	c := newClientKeys(t, srv.URL(), "alice", "carol")
	body := golden(t, "getmessageid")
	if _, code := c.post(body); code != osci.CodeDialogClosed {
		t.Fatalf("captured getMessageId: %s", code)
	}
	if _, code := c.post(body); code != osci.CodeWrongDialogParameters {
		t.Errorf("replayed getMessageId: %s, want %s", code, osci.CodeWrongDialogParameters)
	}
	if _, code := c.post(golden(t, "storedelivery-rsa-pss")); code != osci.CodeIllegalMessageID {
		t.Errorf("captured storeDelivery: %s, want %s", code, osci.CodeIllegalMessageID)
	}
}

// TestBadInput: tampered transport ciphertext, a signature wrapped around a forged
// body, an unsigned request, something that is not OSCI at all.
func TestBadInput(t *testing.T) {
	srv := start(t)
	alice := newClient(t, srv.URL(), "alice")
	signed := alice.request(osci.Message{Type: osci.GetMessageID, Control: challenge(1)})
	tampered := alice.encrypt(signed)
	i := bytes.LastIndex(tampered, []byte("\r\n--")) - 20
	tampered[i] ^= 1
	wrapped := bytes.Replace(signed, []byte(`<soap:Body Id="body"><osci:getMessageId></osci:getMessageId></soap:Body>`),
		[]byte(`<soap:Body><osci:getMessageId></osci:getMessageId></soap:Body>`), 1)
	wrapped = bytes.Replace(wrapped, []byte(`</soap:Header>`), []byte(`<x:Wrap xmlns:x="urn:x" soap:actor="http://schemas.xmlsoap.org/soap/actor/next"><soap:Body Id="body"><osci:getMessageId></osci:getMessageId></soap:Body></x:Wrap></soap:Header>`), 1)
	unsigned, err := osci.ComposeEnvelope(&osci.Message{Type: osci.GetMessageID, Control: challenge(3)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		body []byte
		want osci.Code
	}{
		{"tampered ciphertext", tampered, osci.CodeNotDecryptable},
		// The signed body moved into a header of its own: the reference finds it there,
		// where it is not what the intermediary reads, and the signature counts for nothing.
		{"signature wrapping", alice.encrypt(wrapped), osci.CodeSignatureInvalid},
		{"unsigned", alice.encrypt(unsigned), osci.CodeSignatureRequired},
		{"not OSCI", []byte("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello"), osci.CodeNotOSCI},
	} {
		if _, code := alice.post(c.body); code != c.want {
			t.Errorf("%s: %s, want %s", c.name, code, c.want)
		}
	}
	for _, r := range srv.Refusals() {
		t.Logf("refused %s: %v", r.Code, r.Err)
	}
	if n := len(srv.Refusals()); n != 4 {
		t.Errorf("%d refusals recorded, want 4", n)
	}
}

func golden(t *testing.T, name string) []byte {
	t.Helper()
	wire, err := os.ReadFile(filepath.Join(goldenDir, name, "request.http"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := bytes.Cut(wire, []byte("\r\n\r\n"))
	return body
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// TestCryptographicTimestamp: asked for a cryptographic creation timestamp, the
// intermediary puts a token of its TSA into the process card; the reception stays
// plain as asked.
func TestCryptographicTimestamp(t *testing.T) {
	_, tsaURL := tsptest.Start(t, tsptest.Normal)
	keys, err := SampleKeys(certDir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(t.Context(), Config{Keys: keys, SpoolDir: t.TempDir(),
		Timestamps: &tsp.Client{TSAs: []tsp.TSA{{Name: "test TSA", URL: tsaURL}}, Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	alice := newClient(t, srv.URL(), "alice")
	ans, _ := alice.post(alice.encrypt(alice.request(osci.Message{Type: osci.GetMessageID, Control: challenge(1)})))
	id := ans.Envelope.Operation.MessageID
	bob, err := LoadCertificate(filepath.Join(certDir, "bob_cipher_4096.cer"))
	if err != nil {
		t.Fatal(err)
	}
	got, code := alice.post(alice.encrypt(alice.request(osci.Message{Type: osci.StoreDelivery, Control: challenge(2),
		QualityOfTimestamp: []osci.QualityOfTimestamp{{Service: "creation", Quality: "cryptographic"}, {Service: "reception", Quality: "plain"}},
		Operation:          osci.Operation{MessageID: id}, ContentPackage: []byte(`<osci:ContentContainer Id="cc"></osci:ContentContainer>`)},
		osci.CertificateEntry{Role: "CipherCertificateAddressee", ID: "a", Cert: parsed(t, bob)})))
	if code != osci.CodeDialogClosed {
		t.Fatalf("storeDelivery: %s", code)
	}
	cards := got.Envelope.ProcessCards()
	if len(cards) != 1 || cards[0].Card.Creation == nil || !cards[0].Card.Creation.IsCryptographic() {
		t.Fatalf("process card %+v, want a cryptographic creation", cards)
	}
	if _, err := tsp.ParseToken(cards[0].Card.Creation.Cryptographic); err != nil {
		t.Errorf("creation token: %v", err)
	}
}

// TestForwardUnreachable: a passive recipient that cannot be reached, or is not on
// loopback, or not HTTP, fails the forwardDelivery with 9809.
func TestForwardUnreachable(t *testing.T) {
	srv := start(t)
	alice := newClient(t, srv.URL(), "alice")
	bob, err := LoadCertificate(filepath.Join(certDir, "bob_cipher_4096.cer"))
	if err != nil {
		t.Fatal(err)
	}
	for i, target := range []string{"http://127.0.0.1:9/passive", "http://192.0.2.1/passive", "ftp://127.0.0.1/"} {
		ans, _ := alice.post(alice.encrypt(alice.request(osci.Message{Type: osci.GetMessageID, Control: challenge(10 * i)})))
		id := ans.Envelope.Operation.MessageID
		_, code := alice.post(alice.encrypt(alice.request(osci.Message{Type: osci.ForwardDelivery, Control: challenge(10*i + 1),
			Operation:      osci.Operation{MessageID: id, ContentReceiver: target},
			ContentPackage: []byte(`<osci:ContentContainer Id="cc"></osci:ContentContainer>`)},
			osci.CertificateEntry{Role: "CipherCertificateAddressee", ID: "a", Cert: parsed(t, bob)})))
		if code != osci.CodeForwardFailedNotReached {
			t.Errorf("forward to %s: %s, want %s", target, code, osci.CodeForwardFailedNotReached)
		}
	}
}
