package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/poststelle/poststelle/channels/oscichannel"
	"github.com/poststelle/poststelle/crypto/xmlenc"
	"github.com/poststelle/poststelle/osci"
)

// pin is the PIN of the OSCI library's sample PKI in testdata/osci/zertifikate.
const pin = "123456"

// creation is the process cards' creation time, fixed so that runs compare.
var creation = time.Date(2026, 12, 2, 7, 30, 0, 0, time.UTC)

// parties are the sample PKI's keys: bob is the authority, osci_manager the
// intermediary, alice the lawyer whose content is signed and encrypted for bob.
type parties struct {
	alice, aliceCipher, bobCipher, manager, managerCipher *oscichannel.KeyPair
}

func keyConfig(certs, pinFile, name string) oscichannel.KeyConfig {
	return oscichannel.KeyConfig{PKCS12File: filepath.Join(certs, name+".p12"), PasswordFile: pinFile}
}

func writePin(dir string) (string, error) {
	f := filepath.Join(dir, "pin")
	return f, os.WriteFile(f, []byte(pin+"\n"), 0o600)
}

func loadParties(certs, pinFile string) (*parties, error) {
	var p parties
	for _, k := range []struct {
		dst  **oscichannel.KeyPair
		name string
	}{{&p.alice, "alice_signature_4096"}, {&p.aliceCipher, "alice_cipher_4096"}, {&p.bobCipher, "bob_cipher_4096"},
		{&p.manager, "osci_manager_signature_4096"}, {&p.managerCipher, "osci_manager_cipher_4096"}} {
		kp, err := oscichannel.LoadPKCS12(keyConfig(certs, pinFile, k.name))
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", k.name, err)
		}
		*k.dst = kp
	}
	return &p, nil
}

// supplier is osci_manager as it forwards deliveries and reads the recipient's answers.
func (p *parties) supplier() osci.Supplier {
	d, _ := p.managerCipher.Key.(crypto.Decrypter)
	return osci.Supplier{Decrypter: osci.Decrypter{Key: d, Certificate: p.managerCipher.X509, Policy: xmlenc.OSCIPolicy()},
		Signer: p.manager.Key, SignatureCertificate: p.manager.Cert, CipherCertificate: p.managerCipher.Cert}
}

// payload is message i's attachment: size pseudo-random bytes, distinct per message
// so that no blob is deduplicated and no compression flatters the figures.
func payload(i, size int) []byte {
	r := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	b := make([]byte, size)
	_, _ = r.Read(b)
	return b
}

// docContainer declares the envelope's namespaces, as channels/oscichannel's answers
// do: the library canonicalizes the signed contents in the envelope's scope.
const docContainer = `<osci:ContentContainer xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:osci="http://www.osci.de/2002/04/osci" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Id="coco"><osci:Content Id="c1" href="cid:antrag.bin"></osci:Content></osci:ContentContainer>`

// prepare writes message i as osci_manager forwards it to a passive recipient: an
// acceptDelivery whose content container alice signed (rsa-sha256) and encrypted
// for bob (AES-256-GCM, RSA-OAEP), signed by osci_manager and transport-encrypted
// for bob, to file.
func (p *parties) prepare(ctx context.Context, i, size int, dir, file string) error {
	raw := payload(i, size)
	signed, err := osci.SignContainer(ctx, []byte(docContainer), osci.SignOptions{Signer: p.alice.Key,
		CertificateID: osci.CertificateID("originator", "signature", p.alice.Cert), Attachments: []string{"antrag.bin"},
		Open: func(context.Context, string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }})
	if err != nil {
		return fmt.Errorf("signing the content of message %d: %w", i, err)
	}
	ct, err := os.CreateTemp(dir, "ct-*")
	if err != nil {
		return err
	}
	defer os.Remove(ct.Name())
	defer ct.Close()
	enc, err := osci.Encryptor{Recipients: []*x509.Certificate{p.bobCipher.X509},
		Options: xmlenc.EncryptOptions{Algorithm: xmlenc.AES256GCM}}.EncryptContainer(ctx, signed,
		[]osci.AttachmentPlain{{ContentID: "antrag.bin", Body: bytes.NewReader(raw), Out: ct}})
	if err != nil {
		return fmt.Errorf("encrypting the content of message %d: %w", i, err)
	}
	pkg, err := retrievalKeyInfo(enc.XML, osci.CertificateID("addressee", "cipher", p.bobCipher.Cert))
	if err != nil {
		return fmt.Errorf("message %d: %w", i, err)
	}
	n, _ := ct.Seek(0, io.SeekCurrent)
	id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "bench-%06d", i))
	a := &osci.Answer{
		Message: osci.Message{Type: osci.AcceptDelivery, Control: osci.ControlBlock{Challenge: "Y2gt" + id, HasChallenge: true},
			Operation: osci.Operation{ProcessCards: []osci.ProcessCardBundle{{MessageID: id, Card: osci.ProcessCard{
				RecentModification: creation, Creation: &osci.Timestamp{Plain: creation}, Forwarding: &osci.Timestamp{Plain: creation},
				Subject: "Antrag " + id}}}},
			NonIntermediaryCertificates: []osci.CertificateEntry{
				{Role: "CipherCertificateOriginator", ID: osci.CertificateID("originator", "cipher", p.aliceCipher.Cert), Cert: p.aliceCipher.Cert},
				{Role: "CipherCertificateAddressee", ID: osci.CertificateID("addressee", "cipher", p.bobCipher.Cert), Cert: p.bobCipher.Cert},
				{Role: "SignatureCertificateOriginator", ID: osci.CertificateID("originator", "signature", p.alice.Cert), Cert: p.alice.Cert}},
			ContentPackage: pkg},
		Attachments:      []*osci.Part{{ContentID: "antrag.bin", ContentType: "application/octet-stream", TransferEncoding: "8-bit", Size: n, Data: fileSpooled(ct.Name())}},
		EncryptFor:       p.bobCipher.X509,
		CertificateRoles: []string{"CipherCertificateIntermediary", "SignatureCertificateIntermediary"},
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := p.supplier().WriteAnswer(ctx, out, a); err != nil {
		out.Close()
		return fmt.Errorf("writing message %d: %w", i, err)
	}
	return out.Close()
}

// retrievalKeyInfo names the recipient of the content's EncryptedKey by a
// RetrievalMethod to the addressee's cipher certificate entry, as the library
// writes it, instead of the X509Data crypto/xmlenc writes: the library's
// PassiveRecipientParser (2.4.1) fails on an acceptDelivery whose content key is
// named any other way (a NullPointerException in ContentPackageBuilder);
// channels/oscichannel's answers do the same. The gateway ignores that KeyInfo (it tries
// its own key), so both sides read the same bytes.
func retrievalKeyInfo(pkg []byte, certID string) ([]byte, error) {
	const start, end = "<xenc:CipherData>", "</xenc:EncryptedKey>"
	open := bytes.Index(pkg, []byte("<ds:KeyInfo><ds:X509Data>"))
	if open < 0 || bytes.Count(pkg, []byte("<ds:KeyInfo><ds:X509Data>")) != 1 {
		return nil, fmt.Errorf("the content package has no single EncryptedKey named by X509Data")
	}
	closeAt := bytes.Index(pkg[open:], []byte("</ds:X509Data></ds:KeyInfo>"))
	if closeAt < 0 || !bytes.Contains(pkg[open:], []byte(start)) || !bytes.Contains(pkg, []byte(end)) {
		return nil, fmt.Errorf("the content package's EncryptedKey is not as crypto/xmlenc writes it")
	}
	var b bytes.Buffer
	b.Write(pkg[:open])
	fmt.Fprintf(&b, `<ds:KeyInfo><ds:RetrievalMethod Type="http://www.w3.org/2000/09/xmldsig#X509Data" URI="#%s"></ds:RetrievalMethod></ds:KeyInfo>`, certID)
	b.Write(pkg[open+closeAt+len("</ds:X509Data></ds:KeyInfo>"):])
	return b.Bytes(), nil
}

type fileSpooled string

func (f fileSpooled) Open() (io.ReadCloser, error) { return os.Open(string(f)) }
