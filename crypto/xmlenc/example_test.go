package xmlenc_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/crypto/xmlenc"
)

// Example encrypts a content container for a reader and an attachment
// with the same key, then decrypts both as the reader, the way an OSCI
// message carries them.
func Example() {
	ctx := context.Background()
	r := makeReaders()[0]
	content := []byte(`<osci:Content xmlns:osci="http://www.osci.de/2002/04/osci">Bescheid</osci:Content>`)
	enc, err := xmlenc.Encrypt(ctx, content, xmlenc.EncryptOptions{Recipients: []*x509.Certificate{r.cert}, Type: xmlenc.TypeElement})
	if err != nil {
		panic(err)
	}
	var part bytes.Buffer
	att, err := xmlenc.EncryptStream(ctx, bytes.NewReader([]byte("%PDF-1.7 ...")), &part, "cid:anlage.pdf", xmlenc.EncryptOptions{Key: enc.Key})
	if err != nil {
		panic(err)
	}

	// The reader's side: parse, find its EncryptedKey, decrypt.
	doc, err := xmldsig.Parse(enc.XML, xmldsig.Limits{})
	if err != nil {
		panic(err)
	}
	ed, err := xmlenc.ParseEncryptedData(doc.Root, xmlenc.OSCIPolicy())
	if err != nil {
		panic(err)
	}
	plain, res, err := xmlenc.Decrypt(ctx, ed, xmlenc.DecryptOptions{Policy: xmlenc.OSCIPolicy(),
		Recipient: xmlenc.Recipient{Key: r.key, Certificate: r.cert}})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(plain) == string(content), res.Algorithms.Data, res.Algorithms.KeyTransport, res.Algorithms.MGF, res.Algorithms.IVLength)

	attDoc, _ := xmldsig.Parse(att.XML, xmldsig.Limits{})
	attED, _ := xmlenc.ParseEncryptedData(attDoc.Root, xmlenc.OSCIPolicy())
	var spool bytes.Buffer // a file in practice, deleted when DecryptTo fails
	_, err = xmlenc.DecryptTo(ctx, attED, &spool, xmlenc.DecryptOptions{Policy: xmlenc.OSCIPolicy(), Key: res.Key,
		Resolver: func(_ context.Context, uri string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(part.Bytes())), nil
		}})
	fmt.Println(err, spool.String())
	// Output:
	// true http://www.w3.org/2009/xmlenc11#aes256-gcm http://www.w3.org/2009/xmlenc11#rsa-oaep http://www.w3.org/2009/xmlenc11#mgf1sha256 12
	// <nil> %PDF-1.7 ...
}
