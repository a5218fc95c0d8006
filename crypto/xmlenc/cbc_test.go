package xmlenc

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// cbcCiphertext encrypts one block whose last byte is pad, behind the IV.
func cbcCiphertext(key, iv []byte, body []byte, pad byte) []byte {
	block, _ := aes.NewCipher(key)
	last := make([]byte, 16)
	copy(last, body)
	last[15] = pad
	out := append(bytes.Clone(iv), last...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(out[16:], out[16:])
	return out
}

// TestCBCPadding wants the XML Encryption padding checked strictly: the
// last octet counts 1 to 16 padding octets (of any value); 0 and more
// than the block size are refused, as is a ciphertext that is not whole
// blocks.
func TestCBCPadding(t *testing.T) {
	key := bytes.Repeat([]byte{5}, 16)
	iv := bytes.Repeat([]byte{6}, 16)
	alg, _ := lookupData(AES128CBC)
	for pad := 0; pad < 256; pad++ {
		ct := cbcCiphertext(key, iv, []byte("0123456789abcdeX"), byte(pad))
		var out bytes.Buffer
		_, err := decryptStream(context.Background(), alg, key, 16, bytes.NewReader(ct), &out, 1<<20)
		ok := pad >= 1 && pad <= 16
		switch {
		case ok && err != nil:
			t.Fatalf("pad %d refused: %v", pad, err)
		case ok && out.Len() != 16-pad:
			t.Fatalf("pad %d: %d plaintext bytes", pad, out.Len())
		case !ok && !errors.Is(err, ErrDecrypt):
			t.Fatalf("pad %d: %v, want ErrDecrypt", pad, err)
		}
	}
	ct := cbcCiphertext(key, iv, nil, 4)
	if _, err := decryptStream(context.Background(), alg, key, 16, bytes.NewReader(append(ct, 1, 2, 3)), io.Discard, 1<<20); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("partial block: %v", err)
	}
	if _, err := decryptStream(context.Background(), alg, key, 16, bytes.NewReader(iv), io.Discard, 1<<20); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("IV only: %v", err)
	}
}

// TestReferencesAndRetrieval covers a base64-transformed CipherReference
// and an EncryptedKey reached by ds:RetrievalMethod.
func TestReferencesAndRetrieval(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{8}, 32)
	var part bytes.Buffer
	if _, err := EncryptStream(ctx, strings.NewReader("Anlage"), &part, "cid:a", EncryptOptions{Key: key}); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(part.Bytes())
	wrapped := b64[:10] + "\r\n" + b64[10:]
	doc := `<e:EncryptedData xmlns:e="` + NamespaceXEnc + `" xmlns:ds="` + NamespaceDSig + `"><e:EncryptionMethod Algorithm="` + AES256GCM + `"/>` +
		`<e:CipherData><e:CipherReference URI="cid:a"><e:Transforms><ds:Transform Algorithm="` + TransformB64 + `"/></e:Transforms></e:CipherReference></e:CipherData></e:EncryptedData>`
	d, err := xmldsig.Parse([]byte(doc), xmldsig.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := ParseEncryptedData(d.Root, DefaultPolicy())
	if err != nil || !ed.Base64 {
		t.Fatalf("parse: %v %+v", err, ed)
	}
	plain, _, err := Decrypt(ctx, ed, DecryptOptions{Key: key, Resolver: func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(wrapped)), nil
	}})
	if err != nil || string(plain) != "Anlage" {
		t.Fatalf("base64 reference: %q %v", plain, err)
	}
	_, _, err = Decrypt(ctx, ed, DecryptOptions{Key: key, Resolver: func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("*not base64*")), nil
	}})
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("bad base64 reference: %v", err)
	}

	r := fuzzRecipient()
	enc, err := Encrypt(ctx, []byte("Inhalt"), EncryptOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	wrappedKey, err := wrapForTest(key, r)
	if err != nil {
		t.Fatal(err)
	}
	edXML := strings.Replace(string(enc.XML), "<xenc:CipherData>", `<ds:KeyInfo xmlns:ds="`+NamespaceDSig+`"><ds:RetrievalMethod URI="#k1" Type="`+TypeEncrypted+`"/></ds:KeyInfo><xenc:CipherData>`, 1)
	full := `<env xmlns:xenc="` + NamespaceXEnc + `"><xenc:EncryptedKey Id="k1"><xenc:EncryptionMethod Algorithm="` + RSAOAEPMGF1P + `"/><xenc:CipherData><xenc:CipherValue>` +
		base64.StdEncoding.EncodeToString(wrappedKey) + `</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey>` + edXML + `</env>`
	d, err = xmldsig.Parse([]byte(full), xmldsig.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ed, err = ParseEncryptedData(d.Root.Elements()[1], DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Decrypt(ctx, ed, DecryptOptions{Recipient: r}); !errors.Is(err, ErrNoKey) {
		t.Fatalf("RetrievalMethod without the document: %v", err)
	}
	plain, res, err := Decrypt(ctx, ed, DecryptOptions{Recipient: r, Document: d})
	if err != nil || string(plain) != "Inhalt" || res.EncryptedKey.ID != "k1" {
		t.Fatalf("RetrievalMethod: %q %v", plain, err)
	}
}

func wrapForTest(key []byte, r Recipient) ([]byte, error) {
	return rsa.EncryptOAEP(sha1.New(), rand.Reader, r.Key.Public().(*rsa.PublicKey), key, nil)
}
