package osci

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"io"
	"testing"
)

// benchMessage is a signed StoreDelivery with a 1 MiB attachment, framed.
func benchMessage(b *testing.B) []byte {
	b.Helper()
	alice := loadKey(b, "alice_signature_4096")
	bob := loadKey(b, "bob_cipher_4096")
	m := &Message{
		Type: StoreDelivery, Signed: true,
		Control:   ControlBlock{ConversationID: "1", SequenceNumber: 1, HasSequence: true, Response: "r", HasResponse: true, Challenge: "c", HasChallenge: true},
		Operation: Operation{MessageID: "bWVzc2FnZS0x"},
		NonIntermediaryCertificates: []CertificateEntry{
			{Role: "CipherCertificateAddressee", ID: "addressee_cipher", Cert: bob.Cert},
			{Role: "SignatureCertificateOriginator", ID: "originator_signature", Cert: alice.Cert},
		},
		ContentPackage: []byte(`<osci:ContentContainer Id="coco"><osci:Content href="cid:a.pdf"></osci:Content></osci:ContentContainer>`),
	}
	env, err := ComposeEnvelope(m)
	if err != nil {
		b.Fatal(err)
	}
	att := bytes.Repeat([]byte("%PDF-1.7 \x00\xff"), (1<<20)/11)
	signed, err := SignEnvelope(context.Background(), env, SignOptions{Signer: alice.Key, CertificateID: "originator_signature", Attachments: []string{"a.pdf"},
		Open: func(context.Context, string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(att)), nil }})
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteMessage(&out, NewBoundary(), true, signed, []OutPart{{ContentID: "a.pdf", Size: int64(len(att)), Body: bytes.NewReader(att)}}); err != nil {
		b.Fatal(err)
	}
	return out.Bytes()
}

// BenchmarkReceive1MiB: framing with the attachment spooled to disk, envelope parse and
// the signature check over envelope and attachment.
func BenchmarkReceive1MiB(b *testing.B) {
	msg := benchMessage(b)
	spool := DirSpool{Dir: b.TempDir()}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mp, err := ReadMessage(context.Background(), bytes.NewReader(msg), Limits{}, spool)
		if err != nil {
			b.Fatal(err)
		}
		env, err := ParseEnvelope(mp.Envelope, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		chk, err := env.VerifySignature(context.Background(), mp)
		if err != nil || !chk.Valid() {
			b.Fatal(err, chk.Err())
		}
		_ = spool.Remove(mp.Spooled()...)
	}
}

// BenchmarkFraming1MiB is the framing alone, the part of receiving that touches every byte.
func BenchmarkFraming1MiB(b *testing.B) {
	msg := benchMessage(b)
	spool := DirSpool{Dir: b.TempDir()}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mp, err := ReadMessage(context.Background(), bytes.NewReader(msg), Limits{}, spool)
		if err != nil {
			b.Fatal(err)
		}
		_ = spool.Remove(mp.Spooled()...)
	}
}

// BenchmarkReceiveEncrypted1MiB adds transport decryption (RSA-OAEP 4096 and AES-GCM,
// streamed into the framing) in front of BenchmarkReceive1MiB.
func BenchmarkReceiveEncrypted1MiB(b *testing.B) {
	inner := benchMessage(b)
	manager := loadKey(b, "osci_manager_cipher_4096")
	var msg bytes.Buffer
	if err := (Encryptor{Recipients: []*x509.Certificate{manager.X509}}).EncryptTransport(context.Background(), bytes.NewReader(inner), &msg, NewBoundary(), true); err != nil {
		b.Fatal(err)
	}
	dec := Decrypter{Key: manager.Key.(crypto.Decrypter), Certificate: manager.X509}
	spool := DirSpool{Dir: b.TempDir()}
	b.SetBytes(int64(msg.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		outer, err := ReadMessage(context.Background(), bytes.NewReader(msg.Bytes()), Limits{}, spool)
		if err != nil {
			b.Fatal(err)
		}
		oenv, err := ParseEnvelope(outer.Envelope, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		mp, _, err := DecryptTransport(context.Background(), oenv, outer, dec, Limits{}, spool)
		if err != nil {
			b.Fatal(err)
		}
		env, err := ParseEnvelope(mp.Envelope, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if chk, err := env.VerifySignature(context.Background(), mp); err != nil || !chk.Valid() {
			b.Fatal(err)
		}
		_ = spool.Remove(append(outer.Spooled(), mp.Spooled()...)...)
	}
}

// BenchmarkParseEnvelope1MiB parses an envelope that carries 1 MiB inline, as an
// osci:Base64Content, the form EGVP uses for small documents.
func BenchmarkParseEnvelope1MiB(b *testing.B) {
	inline := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("Schriftsatz \x00\xff"), (1<<20)/14))
	m := &Message{
		Type:      StoreDelivery,
		Control:   ControlBlock{SequenceNumber: 1, HasSequence: true, Challenge: "c", HasChallenge: true},
		Operation: Operation{MessageID: "bWVzc2FnZS0x"},
		ContentPackage: []byte(`<osci:ContentContainer Id="coco"><osci:Content><osci:Base64Content Id="doc.pdf">` + inline +
			`</osci:Base64Content></osci:Content></osci:ContentContainer>`),
	}
	env, err := ComposeEnvelope(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(env)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := ParseEnvelope(env, Limits{})
		if err != nil || len(e.ContentPackage.Containers[0].Contents[0].Base64) < 1<<19 {
			b.Fatal(err)
		}
	}
}
