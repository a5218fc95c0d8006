//go:build integration

package osci_test

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"

	"io"
	"mime/multipart"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/pkcs12"
)

// Namespaces of the elements checked.
const (
	nsSOAP = "http://schemas.xmlsoap.org/soap/envelope/"
	nsOSCI = "http://www.osci.de/2002/04/osci"
	nsDS   = "http://www.w3.org/2000/09/xmldsig#"
	nsXENC = "http://www.w3.org/2001/04/xmlenc#"
)

// The transport encryption the library uses by default.
const (
	transportAlg = aes256GCM
	oaepAlg      = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
)

// checkCapture checks one recorded request: the wire form is a MIME
// message whose SOAP body is an EncryptedData for the intermediary's cipher
// certificate, with the ciphertext in the osci_enc part; decrypted with the
// intermediary's key it is the library's plaintext copy (when there is one),
// and that plaintext is the expected OSCI request, which it returns.
func checkCapture(t *testing.T, c peerCase, r runResult) []byte {
	t.Helper()
	plain := decryptTransport(t, r.wireBody)
	if r.plain != nil && !bytes.Equal(plain, r.plain) {
		t.Errorf("decrypted transport message (%d bytes) differs from the library's plaintext copy (%d bytes)", len(plain), len(r.plain))
	}
	checkRequest(t, c, plain)
	return plain
}

// part is one MIME part.
type part struct {
	header textproto.MIMEHeader
	body   []byte
}

// parseMIME reads an OSCI message: MIME headers at the top of the body,
// then a Multipart/Related body.
func parseMIME(t *testing.T, msg []byte) []part {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(bytes.TrimLeft(msg, "\r\n")))
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("MIME headers: %v", err)
	}
	if v := h.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version %q, want 1.0", v)
	}
	boundary := osciBoundary(h.Get("Content-Type"))
	if boundary == "" {
		t.Fatalf("Content-Type %q: want Multipart/Related with a boundary", h.Get("Content-Type"))
	}
	mr := multipart.NewReader(br, boundary)
	var parts []part
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("MIME part %d: %v", len(parts), err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("MIME part %d: %v", len(parts), err)
		}
		parts = append(parts, part{header: p.Header, body: b})
	}
	if len(parts) == 0 {
		t.Fatal("MIME message without parts")
	}
	if id := parts[0].header.Get("Content-ID"); id != "<osci@message>" {
		t.Errorf("first part Content-ID %q, want <osci@message>", id)
	}
	return parts
}

// osciBoundary takes the boundary from a Multipart/Related Content-Type the
// way the library writes it: unquoted, with base64 characters ('+', '/',
// '=') that RFC 2045 allows only quoted, so mime.ParseMediaType refuses it.
func osciBoundary(ct string) string {
	mt, rest, ok := strings.Cut(ct, ";")
	if !ok || !strings.EqualFold(strings.TrimSpace(mt), "multipart/related") {
		return ""
	}
	for _, p := range strings.Split(rest, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(k, "boundary") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// node is a generic XML element.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []node     `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *node) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// find returns the first descendant (depth first) with the name.
func (n *node) find(space, local string) *node {
	for i := range n.Nodes {
		c := &n.Nodes[i]
		if c.XMLName.Space == space && c.XMLName.Local == local {
			return c
		}
		if f := c.find(space, local); f != nil {
			return f
		}
	}
	return nil
}

func (n *node) child(space, local string) *node {
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Space == space && n.Nodes[i].XMLName.Local == local {
			return &n.Nodes[i]
		}
	}
	return nil
}

func parseXML(t *testing.T, b []byte) *node {
	t.Helper()
	var n node
	if err := xml.Unmarshal(b, &n); err != nil {
		t.Fatalf("SOAP envelope: %v", err)
	}
	if n.XMLName.Space != nsSOAP || n.XMLName.Local != "Envelope" {
		t.Fatalf("root %v, want soap:Envelope", n.XMLName)
	}
	return &n
}

// decryptTransport undoes the transport encryption: RSA-OAEP (SHA-256,
// MGF1-SHA-256) with the intermediary's cipher key for the AES-256-GCM key,
// then the osci_enc part, IV first.
func decryptTransport(t *testing.T, wire []byte) []byte {
	t.Helper()
	parts := parseMIME(t, wire)
	env := parseXML(t, parts[0].body)
	body := env.child(nsSOAP, "Body")
	if body == nil || len(body.Nodes) != 1 {
		t.Fatal("wire message: want a soap:Body with exactly one element")
	}
	ed := &body.Nodes[0]
	if ed.XMLName.Space != nsXENC || ed.XMLName.Local != "EncryptedData" {
		t.Fatalf("wire body holds %v, want xenc:EncryptedData (transport encryption)", ed.XMLName)
	}
	if got := ed.child(nsXENC, "EncryptionMethod").attr("Algorithm"); got != transportAlg {
		t.Errorf("transport encryption %q, want %q", got, transportAlg)
	}
	ek := ed.find(nsXENC, "EncryptedKey")
	if ek == nil {
		t.Fatal("no EncryptedKey")
	}
	if got := ek.child(nsXENC, "EncryptionMethod").attr("Algorithm"); got != oaepAlg {
		t.Errorf("key transport %q, want %q", got, oaepAlg)
	}
	key, cert := intermediaryKey(t)
	certB64 := ek.find(nsDS, "X509Certificate")
	if certB64 == nil {
		t.Fatal("EncryptedKey names no certificate")
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(certB64.Text), ""))
	if err != nil || !bytes.Equal(der, cert.Raw) {
		t.Errorf("EncryptedKey's certificate is not osci_manager_cipher_4096.cer (%v)", err)
	}
	cv := ek.find(nsXENC, "CipherValue")
	wrapped, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(cv.Text), ""))
	if err != nil {
		t.Fatalf("EncryptedKey CipherValue: %v", err)
	}
	cek, err := rsa.DecryptOAEP(sha256.New(), nil, key, wrapped, nil)
	if err != nil {
		t.Fatalf("unwrapping the transport key with the intermediary's key: %v", err)
	}
	ref := ed.find(nsXENC, "CipherReference")
	if ref == nil || !strings.HasPrefix(ref.attr("URI"), "cid:") {
		t.Fatal("transport EncryptedData without a cid: CipherReference")
	}
	var ct []byte
	for _, p := range parts[1:] {
		if p.header.Get("Content-ID") == "<"+strings.TrimPrefix(ref.attr("URI"), "cid:")+">" {
			ct = p.body
		}
	}
	if ct == nil {
		t.Fatalf("no MIME part for %s", ref.attr("URI"))
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		t.Fatalf("transport key: %v", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) < gcm.NonceSize()+gcm.Overhead() {
		t.Fatalf("ciphertext of %d bytes is too short", len(ct))
	}
	plain, err := gcm.Open(nil, ct[:gcm.NonceSize()], ct[gcm.NonceSize():], nil)
	if err != nil {
		t.Fatalf("decrypting the transport encryption: %v", err)
	}
	return plain
}

func intermediaryKey(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	e := peerEnv(t)
	b, err := os.ReadFile(filepath.Join(e.certs, "osci_manager_cipher_4096.p12"))
	if err != nil {
		t.Fatal(err)
	}
	// The sample files carry the chain as extra bags, which Decode refuses.
	blocks, err := pkcs12.ToPEM(b, "123456")
	if err != nil {
		t.Fatalf("osci_manager_cipher_4096.p12: %v", err)
	}
	var key *rsa.PrivateKey
	var certs []*x509.Certificate
	for _, blk := range blocks {
		switch blk.Type {
		case "PRIVATE KEY":
			if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
				key = k
			} else if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
				key, _ = k.(*rsa.PrivateKey)
			}
		case "CERTIFICATE":
			if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
				certs = append(certs, c)
			}
		}
	}
	if key == nil {
		t.Fatal("osci_manager_cipher_4096.p12: no RSA key")
	}
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && pub.Equal(&key.PublicKey) {
			return key, c
		}
	}
	t.Fatal("osci_manager_cipher_4096.p12: no certificate for its key")
	return nil, nil
}

// checkRequest checks the decrypted OSCI request.
func checkRequest(t *testing.T, c peerCase, msg []byte) {
	t.Helper()
	parts := parseMIME(t, msg)
	env := parseXML(t, parts[0].body)
	hdr, body := env.child(nsSOAP, "Header"), env.child(nsSOAP, "Body")
	if hdr == nil || body == nil {
		t.Fatal("request without soap:Header or soap:Body")
	}
	// The library puts the request element of storeDelivery, forwardDelivery
	// and fetchDelivery among the header entries (the body then carries only
	// the ContentPackage, or nothing); the others in the body.
	where, other := body, hdr
	if c.inHeader {
		where, other = hdr, body
	}
	if where.child(nsOSCI, c.body) == nil || other.child(nsOSCI, c.body) != nil {
		t.Fatalf("osci:%s not where the library puts it (in the header: %v)", c.body, c.inHeader)
	}
	switch {
	case c.inHeader && c.attachments == 0 && !c.encryptedContent:
		if len(body.Nodes) != 0 {
			t.Errorf("soap:Body of %s holds %d elements, want none", c.body, len(body.Nodes))
		}
	case c.inHeader:
		if len(body.Nodes) != 1 || body.child(nsOSCI, "ContentPackage") == nil {
			t.Errorf("soap:Body of %s: want exactly an osci:ContentPackage", c.body)
		}
	default:
		if len(body.Nodes) != 1 {
			t.Errorf("soap:Body of %s holds %d elements, want 1", c.body, len(body.Nodes))
		}
	}
	checkControlBlock(t, c, hdr.child(nsOSCI, "ControlBlock"))
	checkClientSignature(t, c, hdr.child(nsOSCI, "ClientSignature"))
	if got := len(parts) - 1; got != c.attachments {
		t.Errorf("%d attachment parts, want %d", got, c.attachments)
	}
	if c.encryptedContent {
		cp := body.child(nsOSCI, "ContentPackage")
		if cp == nil || cp.child(nsXENC, "EncryptedData") == nil {
			t.Error("ContentPackage holds no xenc:EncryptedData")
		}
		if cp != nil && cp.child(nsOSCI, "ContentContainer") != nil {
			t.Error("ContentPackage holds a plaintext ContentContainer")
		}
	}
}

func checkControlBlock(t *testing.T, c peerCase, cb *node) {
	t.Helper()
	if cb == nil {
		t.Error("no osci:ControlBlock")
		return
	}
	if ch := cb.child(nsOSCI, "Challenge"); ch == nil || strings.TrimSpace(ch.Text) == "" {
		t.Error("ControlBlock without a Challenge")
	}
	if !c.dialog {
		return
	}
	text := func(local string) string {
		if n := cb.child(nsOSCI, local); n != nil {
			return strings.TrimSpace(n.Text)
		}
		return ""
	}
	if got := cb.attr("ConversationId"); got != conversationID {
		t.Errorf("ConversationId %q, want %q", got, conversationID)
	}
	if got := cb.attr("SequenceNumber"); got != "0" {
		t.Errorf("SequenceNumber %q, want 0", got)
	}
	if got := text("Response"); got != challenge {
		t.Errorf("Response %q, want the intermediary's challenge %q", got, challenge)
	}
}

func checkClientSignature(t *testing.T, c peerCase, cs *node) {
	t.Helper()
	if c.sigAlg == "" {
		if cs != nil {
			t.Error("unsigned request carries a ClientSignature")
		}
		return
	}
	if cs == nil {
		t.Error("no osci:ClientSignature")
		return
	}
	sm := cs.find(nsDS, "SignatureMethod")
	if sm == nil {
		t.Error("ClientSignature without SignatureMethod")
		return
	}
	if got := sm.attr("Algorithm"); got != c.sigAlg {
		t.Errorf("ClientSignature algorithm %q, want %q", got, c.sigAlg)
	}
	if n := len(cs.find(nsDS, "SignedInfo").Nodes); n < 3 {
		t.Errorf("SignedInfo has %d children, want CanonicalizationMethod, SignatureMethod and references", n)
	}
}
