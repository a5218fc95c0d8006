package osci

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

const unsignedContainer = `<osci:ContentContainer Id="coco"><osci:Content><osci:Base64Content Id="note.txt">aGFsbG8=</osci:Base64Content></osci:Content><osci:Content Id="c1" href="cid:a.pdf"></osci:Content><osci:Content Id="c2"><x:doc xmlns:x="urn:x">text</x:doc></osci:Content></osci:ContentContainer>`

func signedContainer(t *testing.T, att []byte, method string) []byte {
	t.Helper()
	alice := loadKey(t, "alice_signature_4096")
	out, err := SignContainer(context.Background(), []byte(unsignedContainer), SignOptions{
		Signer: alice.Key, Method: method, CertificateID: CertificateID("originator", "signature", alice.Cert),
		Open: func(context.Context, string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(att)), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// contentMessage frames a StoreDelivery whose package holds pkg, with one part.
func contentMessage(t *testing.T, pkg, part []byte) (*Envelope, *Multipart) {
	t.Helper()
	m := composeCases(t)[StoreDelivery]
	m.ContentPackage = pkg
	env, err := ComposeEnvelope(m)
	if err != nil {
		t.Fatal(err)
	}
	var msg bytes.Buffer
	if err := WriteMessage(&msg, NewBoundary(), true, env, []OutPart{{ContentID: "a.pdf", Size: int64(len(part)), Body: bytes.NewReader(part)}}); err != nil {
		t.Fatal(err)
	}
	return readEnvelope(t, msg.Bytes(), DirSpool{Dir: t.TempDir()})
}

func TestContentSignature(t *testing.T) {
	att := bytes.Repeat([]byte("%PDF attachment\x00"), 5000)
	for _, method := range []string{xmldsig.AlgRSASHA256, xmldsig.AlgRSAPSSSHA256} {
		signed := signedContainer(t, att, method)
		t.Run("clear "+method, func(t *testing.T) {
			env, mp := contentMessage(t, signed, att)
			c := env.ContentPackage.Containers[0]
			if len(c.Signatures) != 1 || len(c.Contents) != 3 {
				t.Fatalf("container %+v", c)
			}
			checks, err := VerifyContainer(context.Background(), env.Doc, c, []*Certificates{env.NonIntermediaryCertificates}, mp.Part)
			if err != nil {
				t.Fatal(err)
			}
			if len(checks) != 1 || !checks[0].Valid() || checks[0].Result.Algorithm != method {
				t.Fatalf("%v", checks[0].Err())
			}
			// Another attachment under the signed name breaks it.
			env, mp = contentMessage(t, signed, []byte("forged"))
			checks, _ = VerifyContainer(context.Background(), env.Doc, env.ContentPackage.Containers[0], []*Certificates{env.NonIntermediaryCertificates}, mp.Part)
			if checks[0].Valid() {
				t.Fatal("forged attachment accepted")
			}
		})
	}
	t.Run("encrypted", func(t *testing.T) {
		signed := signedContainer(t, att, "")
		bob := loadKey(t, "bob_cipher_4096")
		var ct bytes.Buffer
		enc, err := Encryptor{Recipients: []*x509.Certificate{bob.X509}}.EncryptContainer(context.Background(), signed,
			[]AttachmentPlain{{ContentID: "a.pdf", Body: bytes.NewReader(att), Out: &ct}})
		if err != nil {
			t.Fatal(err)
		}
		env, mp := contentMessage(t, enc.XML, ct.Bytes())
		spool := DirSpool{Dir: t.TempDir()}
		dc, err := DecryptContainer(context.Background(), env.ContentPackage.Encrypted[0], mp, decrypterOf(t, "bob_cipher_4096"), Limits{}, spool)
		if err != nil {
			t.Fatal(err)
		}
		checks, err := VerifyContainer(context.Background(), dc.Doc, dc.Container, []*Certificates{env.NonIntermediaryCertificates},
			func(cid string) *Part { return dc.Attachments[cid] })
		if err != nil || len(checks) != 1 || !checks[0].Valid() {
			t.Fatalf("%v %v", err, checks[0].Err())
		}
	})
	t.Run("unsigned content", func(t *testing.T) {
		// A content added after signing is not covered.
		signed := signedContainer(t, att, "")
		extra := bytes.Replace(signed, []byte(`</osci:ContentContainer>`), []byte(`<osci:Content Id="c3">added</osci:Content></osci:ContentContainer>`), 1)
		env, mp := contentMessage(t, extra, att)
		checks, _ := VerifyContainer(context.Background(), env.Doc, env.ContentPackage.Containers[0], []*Certificates{env.NonIntermediaryCertificates}, mp.Part)
		if checks[0].Valid() {
			t.Fatal("unsigned content accepted")
		}
	})
}

func TestCheckAttachments(t *testing.T) {
	att := []byte("%PDF")
	env, mp := contentMessage(t, []byte(unsignedContainer), att)
	if err := env.CheckAttachments(mp); err != nil {
		t.Fatal(err)
	}
	dangling := bytes.Replace([]byte(unsignedContainer), []byte(`cid:a.pdf`), []byte(`cid:b.pdf`), 1)
	env, mp = contentMessage(t, dangling, att)
	if err := env.CheckAttachments(mp); !errors.Is(err, ErrFormat) {
		t.Errorf("dangling reference: %v", err)
	}
	orphan := bytes.Replace([]byte(unsignedContainer), []byte(`<osci:Content Id="c1" href="cid:a.pdf"></osci:Content>`), nil, 1)
	env, mp = contentMessage(t, orphan, att)
	if err := env.CheckAttachments(mp); !errors.Is(err, ErrFormat) {
		t.Errorf("part referenced by nothing: %v", err)
	}
}
