package osci

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmlenc"
)

func decrypterOf(t *testing.T, name string) Decrypter {
	k := loadKey(t, name)
	return Decrypter{Key: k.Key.(crypto.Decrypter), Certificate: k.X509, Policy: xmlenc.OSCIPolicy()}
}

const plainContainer = `<osci:ContentContainer Id="coco"><osci:Content Id="c1" href="cid:a.pdf"></osci:Content><osci:Content><osci:Base64Content Id="note.txt">aGFsbG8=</osci:Base64Content></osci:Content></osci:ContentContainer>`

// encryptedStore is a StoreDelivery whose container and attachment are encrypted for
// bob, framed.
func encryptedStore(t *testing.T, attachment []byte) []byte {
	t.Helper()
	bob := loadKey(t, "bob_cipher_4096")
	var ct bytes.Buffer
	enc, err := Encryptor{Recipients: []*x509.Certificate{bob.X509}}.EncryptContainer(context.Background(), []byte(plainContainer),
		[]AttachmentPlain{{ContentID: "a.pdf", Body: bytes.NewReader(attachment), Out: &ct}})
	if err != nil {
		t.Fatal(err)
	}
	m := composeCases(t)[StoreDelivery]
	m.ContentPackage = enc.XML
	envelope, err := ComposeEnvelope(m)
	if err != nil {
		t.Fatal(err)
	}
	var msg bytes.Buffer
	if err := WriteMessage(&msg, NewBoundary(), true, envelope, []OutPart{{ContentID: "a.pdf", Size: int64(ct.Len()), Body: &ct}}); err != nil {
		t.Fatal(err)
	}
	return msg.Bytes()
}

func readEnvelope(t *testing.T, msg []byte, spool Spool) (*Envelope, *Multipart) {
	t.Helper()
	mp, err := ReadMessage(context.Background(), bytes.NewReader(msg), Limits{}, spool)
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(mp.Envelope, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return env, mp
}

func TestContentEncryption(t *testing.T) {
	attachment := bytes.Repeat([]byte("%PDF\x00\xff attachment "), 20_000)
	msg := encryptedStore(t, attachment)
	spool := DirSpool{Dir: t.TempDir()}
	env, mp := readEnvelope(t, msg, spool)
	if len(env.ContentPackage.Encrypted) != 1 || len(env.ContentPackage.Containers) != 0 {
		t.Fatalf("content package %+v", env.ContentPackage)
	}
	if p := mp.Part("a.pdf"); p == nil || bytes.Contains(mustRead(t, p), attachment[:64]) {
		t.Fatal("the attachment travels in the clear")
	}
	dc, err := DecryptContainer(context.Background(), env.ContentPackage.Encrypted[0], mp, decrypterOf(t, "bob_cipher_4096"), Limits{}, spool)
	if err != nil {
		t.Fatal(err)
	}
	c := dc.Container
	if c.ID != "coco" || len(c.Contents) != 2 || c.Contents[0].AttachmentID() != "a.pdf" || string(c.Contents[1].Base64) != "hallo" || len(c.Encrypted) != 1 {
		t.Fatalf("container %+v", c)
	}
	p := dc.Attachments["a.pdf"]
	if p == nil || !bytes.Equal(mustRead(t, p), attachment) || p.Size != int64(len(attachment)) {
		t.Fatal("decrypted attachment differs")
	}
	if dc.Result.Algorithms.Data != xmlenc.AES256GCM {
		t.Errorf("algorithms %+v", dc.Result.Algorithms)
	}
}

func TestContentEncryptionRefuses(t *testing.T) {
	attachment := bytes.Repeat([]byte("x"), 4096)
	msg := encryptedStore(t, attachment)
	t.Run("wrong key", func(t *testing.T) {
		env, mp := readEnvelope(t, msg, DirSpool{Dir: t.TempDir()})
		_, err := DecryptContainer(context.Background(), env.ContentPackage.Encrypted[0], mp, decrypterOf(t, "carol_cipher_4096"), Limits{}, DirSpool{Dir: t.TempDir()})
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("tampered attachment", func(t *testing.T) {
		i := bytes.LastIndex(msg, []byte("\r\n--MIME_boundary")) - 100
		bad := append([]byte(nil), msg...)
		bad[i] ^= 1
		env, mp := readEnvelope(t, bad, DirSpool{Dir: t.TempDir()})
		out := t.TempDir()
		_, err := DecryptContainer(context.Background(), env.ContentPackage.Encrypted[0], mp, decrypterOf(t, "bob_cipher_4096"), Limits{}, DirSpool{Dir: out})
		if !errors.Is(err, ErrDecrypt) || !errors.Is(err, xmlenc.ErrDecrypt) {
			t.Fatalf("error %v", err)
		}
		if left, _ := os.ReadDir(out); len(left) != 0 {
			t.Errorf("%d spooled files of a tampered attachment kept", len(left))
		}
	})
}

func mustRead(t *testing.T, p *Part) []byte {
	t.Helper()
	r, err := p.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// transportMessage is a signed StoreDelivery encrypted for the intermediary.
func transportMessage(t *testing.T) []byte {
	t.Helper()
	inner := signStore(t, "", nil)
	var innerMsg bytes.Buffer
	if err := WriteMessage(&innerMsg, NewBoundary(), true, inner.envelope, []OutPart{{ContentID: "a.pdf", Size: int64(len(inner.parts["a.pdf"])), Body: bytes.NewReader(inner.parts["a.pdf"])}}); err != nil {
		t.Fatal(err)
	}
	manager := loadKey(t, "osci_manager_cipher_4096")
	var out bytes.Buffer
	if err := (Encryptor{Recipients: []*x509.Certificate{manager.X509}}).EncryptTransport(context.Background(), &innerMsg, &out, NewBoundary(), true); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestTransportEncryption(t *testing.T) {
	msg := transportMessage(t)
	env, mp := readEnvelope(t, msg, DirSpool{Dir: t.TempDir()})
	if env.Type != Encrypted || env.ControlBlock != nil || len(mp.Parts) != 1 || mp.Parts[0].ContentID != TransportContentID {
		t.Fatalf("outer message %s with %d parts", env.Type, len(mp.Parts))
	}
	inner, res, err := DecryptTransport(context.Background(), env, mp, decrypterOf(t, "osci_manager_cipher_4096"), Limits{}, DirSpool{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Algorithms.Data != xmlenc.AES256GCM {
		t.Errorf("algorithms %+v", res.Algorithms)
	}
	ienv, err := ParseEnvelope(inner.Envelope, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	chk, err := ienv.VerifySignature(context.Background(), inner)
	if err != nil || !chk.Valid() || ienv.Type != StoreDelivery {
		t.Fatalf("inner %s: %v %v", ienv.Type, err, chk.Err())
	}
}

func TestTransportEncryptionRefuses(t *testing.T) {
	msg := transportMessage(t)
	for name, dec := range map[string]Decrypter{
		"wrong recipient": decrypterOf(t, "bob_cipher_4096"),
		"tampered":        decrypterOf(t, "osci_manager_cipher_4096"),
	} {
		t.Run(name, func(t *testing.T) {
			m := msg
			if name == "tampered" {
				m = append([]byte(nil), msg...)
				i := bytes.Index(m, []byte("Content-ID: <osci_enc>")) + 2000
				if m[i] == 'A' {
					m[i] = 'B'
				} else {
					m[i] = 'A'
				}
			}
			env, mp := readEnvelope(t, m, DirSpool{Dir: t.TempDir()})
			out := t.TempDir()
			inner, _, err := DecryptTransport(context.Background(), env, mp, dec, Limits{}, DirSpool{Dir: out})
			if !errors.Is(err, ErrDecrypt) || inner != nil {
				t.Fatalf("error %v", err)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("%d spooled files of a refused message kept", len(left))
			}
		})
	}
}
