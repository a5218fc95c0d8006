package xmlenc_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/crypto/xmlenc"
)

type reader struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

var (
	readersOnce sync.Once
	readers     []reader
)

// testReaders makes three RSA-2048 readers with self-signed certificates.
func testReaders(t testing.TB) []reader {
	t.Helper()
	return makeReaders()
}

func makeReaders() []reader {
	readersOnce.Do(func() {
		for i := 0; i < 3; i++ {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(100 + i)), Subject: pkix.Name{CommonName: "reader " + string(rune('A'+i)), Organization: []string{"Poststelle Test"}},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageKeyEncipherment}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
			if err != nil {
				panic(err)
			}
			c, _ := x509.ParseCertificate(der)
			readers = append(readers, reader{k, c})
		}
	})
	return readers
}

func parseED(t testing.TB, data []byte, p xmlenc.Policy) *xmlenc.EncryptedData {
	t.Helper()
	d, err := xmldsig.Parse(data, xmldsig.Limits{})
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, data)
	}
	ed, err := xmlenc.ParseEncryptedData(d.Root, p)
	if err != nil {
		t.Fatalf("ParseEncryptedData: %v", err)
	}
	return ed
}

func (r reader) recipient() xmlenc.Recipient {
	return xmlenc.Recipient{Key: r.key, Certificate: r.cert}
}

// TestRoundTrip encrypts for several readers with each way of naming the
// certificate and OAEP variant, and wants every reader to decrypt, with
// the algorithms reported.
func TestRoundTrip(t *testing.T) {
	rs := testReaders(t)
	ctx := context.Background()
	plain := []byte(`<osci:ContentContainer xmlns:osci="http://www.osci.de/2002/04/osci"><osci:Content>Bescheid</osci:Content></osci:ContentContainer>`)
	cases := []struct {
		name string
		opts xmlenc.EncryptOptions
		want xmlenc.Algorithms
	}{
		{"osci default", xmlenc.EncryptOptions{}, xmlenc.Algorithms{Data: xmlenc.AES256GCM, IVLength: 12, KeyTransport: xmlenc.RSAOAEP, OAEPDigest: xmlenc.DigestSHA256, MGF: xmlenc.MGF1SHA256}},
		{"issuer serial aes128", xmlenc.EncryptOptions{Algorithm: xmlenc.AES128GCM, Identify: xmlenc.IdentifyIssuerSerial}, xmlenc.Algorithms{Data: xmlenc.AES128GCM, IVLength: 12, KeyTransport: xmlenc.RSAOAEP, OAEPDigest: xmlenc.DigestSHA256, MGF: xmlenc.MGF1SHA256}},
		{"ski sha512", xmlenc.EncryptOptions{Identify: xmlenc.IdentifySKI, OAEPDigest: crypto.SHA512, MGF: crypto.SHA512}, xmlenc.Algorithms{Data: xmlenc.AES256GCM, IVLength: 12, KeyTransport: xmlenc.RSAOAEP, OAEPDigest: xmlenc.DigestSHA512, MGF: xmlenc.MGF1SHA512}},
		{"mgf1p", xmlenc.EncryptOptions{KeyTransport: xmlenc.RSAOAEPMGF1P, OAEPDigest: crypto.SHA1}, xmlenc.Algorithms{Data: xmlenc.AES256GCM, IVLength: 12, KeyTransport: xmlenc.RSAOAEPMGF1P, OAEPDigest: xmlenc.DigestSHA1, MGF: xmlenc.MGF1SHA1}},
		{"iv16 for old osci", xmlenc.EncryptOptions{IVLength: 16}, xmlenc.Algorithms{Data: xmlenc.AES256GCM, IVLength: 16, KeyTransport: xmlenc.RSAOAEP, OAEPDigest: xmlenc.DigestSHA256, MGF: xmlenc.MGF1SHA256, Legacy: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			opts.Recipients = []*x509.Certificate{rs[0].cert, rs[1].cert, rs[2].cert}
			opts.ID, opts.Type = "enc-1", xmlenc.TypeElement
			enc, err := xmlenc.Encrypt(ctx, plain, opts)
			if err != nil {
				t.Fatal(err)
			}
			ed := parseED(t, enc.XML, xmlenc.DefaultPolicy())
			if ed.ID != "enc-1" || ed.Type != xmlenc.TypeElement || len(ed.EncryptedKeys) != 3 {
				t.Fatalf("parsed %+v", ed)
			}
			for i, r := range rs {
				got, res, err := xmlenc.Decrypt(ctx, ed, xmlenc.DecryptOptions{Policy: xmlenc.DefaultPolicy(), Recipient: r.recipient()})
				if err != nil {
					t.Fatalf("reader %d: %v", i, err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("reader %d: plaintext differs", i)
				}
				if res.Algorithms != c.want {
					t.Errorf("reader %d: algorithms %+v, want %+v", i, res.Algorithms, c.want)
				}
				if res.EncryptedKey != ed.EncryptedKeys[i] || !bytes.Equal(res.Key, enc.Key) {
					t.Errorf("reader %d opened key %p, want its own", i, res.EncryptedKey)
				}
			}
		})
	}
}

// TestStreamRoundTrip encrypts an attachment through EncryptStream and
// decrypts it through a resolver, with the key of the message.
func TestStreamRoundTrip(t *testing.T) {
	rs := testReaders(t)
	ctx := context.Background()
	body := bytes.Repeat([]byte("0123456789abcdef-Anlage-"), 100_000)
	msg, err := xmlenc.Encrypt(ctx, []byte("<a/>"), xmlenc.EncryptOptions{Recipients: []*x509.Certificate{rs[0].cert}})
	if err != nil {
		t.Fatal(err)
	}
	var part bytes.Buffer
	att, err := xmlenc.EncryptStream(ctx, bytes.NewReader(body), &part, "cid:attachment-1@osci", xmlenc.EncryptOptions{Key: msg.Key, MimeType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(att.Key, msg.Key) {
		t.Fatal("attachment key differs from the message's")
	}
	ed := parseED(t, att.XML, xmlenc.DefaultPolicy())
	if ed.CipherReference != "cid:attachment-1@osci" || len(ed.EncryptedKeys) != 0 {
		t.Fatalf("parsed %+v", ed)
	}
	resolver := func(_ context.Context, uri string) (io.ReadCloser, error) {
		if uri != ed.CipherReference {
			return nil, errors.New("no such part")
		}
		return io.NopCloser(bytes.NewReader(part.Bytes())), nil
	}
	var out bytes.Buffer
	res, err := xmlenc.DecryptTo(ctx, ed, &out, xmlenc.DecryptOptions{Key: msg.Key, Resolver: resolver})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), body) || res.Bytes != int64(len(body)) {
		t.Fatalf("attachment differs: %d bytes, want %d", out.Len(), len(body))
	}
	// The last byte of the tag flipped: the plaintext was written, but
	// the error says to discard it.
	bad := bytes.Clone(part.Bytes())
	bad[len(bad)-1] ^= 1
	badResolver := func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(bad)), nil
	}
	if _, err := xmlenc.DecryptTo(ctx, ed, io.Discard, xmlenc.DecryptOptions{Key: msg.Key, Resolver: badResolver}); !errors.Is(err, xmlenc.ErrDecrypt) {
		t.Fatalf("tampered tag: %v, want ErrDecrypt", err)
	}
}

// TestBadInput wants typed errors for broken, refused and hostile input.
func TestBadInput(t *testing.T) {
	rs := testReaders(t)
	ctx := context.Background()
	enc, err := xmlenc.Encrypt(ctx, []byte("geheim"), xmlenc.EncryptOptions{Recipients: []*x509.Certificate{rs[0].cert}, OmitIVLength: true})
	if err != nil {
		t.Fatal(err)
	}
	good := string(enc.XML)
	dataCV := between(good, "</xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>", "</xenc:CipherValue>")
	flip := func(b64 string, i int) string {
		raw := mustB64(t, b64)
		raw[i%len(raw)] ^= 0x40
		return b64Enc(raw)
	}
	decrypt := func(doc string, r reader, p xmlenc.Policy) error {
		d, err := xmldsig.Parse([]byte(doc), xmldsig.Limits{})
		if err != nil {
			return err
		}
		ed, err := xmlenc.ParseEncryptedData(d.Root, p)
		if err != nil {
			return err
		}
		_, _, err = xmlenc.Decrypt(ctx, ed, xmlenc.DecryptOptions{Policy: p, Recipient: r.recipient()})
		return err
	}
	dp := xmlenc.DefaultPolicy()
	cases := []struct {
		name   string
		doc    string
		reader reader
		policy xmlenc.Policy
		want   error
	}{
		{"wrong reader", good, rs[1], dp, xmlenc.ErrNoKey},
		{"tampered ciphertext", strings.Replace(good, dataCV, flip(dataCV, 14), 1), rs[0], dp, xmlenc.ErrDecrypt},
		{"tampered tag", strings.Replace(good, dataCV, flip(dataCV, -1+len(mustB64(t, dataCV))), 1), rs[0], dp, xmlenc.ErrDecrypt},
		{"truncated", strings.Replace(good, dataCV, b64Enc(mustB64(t, dataCV)[:20]), 1), rs[0], dp, xmlenc.ErrDecrypt},
		{"too short for the IV", strings.Replace(good, dataCV, b64Enc([]byte("abc")), 1), rs[0], dp, xmlenc.ErrDecrypt},
		{"unknown data algorithm", strings.Replace(good, xmlenc.AES256GCM, "urn:x:rot13", 1), rs[0], dp, xmlenc.ErrUnsupported},
		{"unknown key transport", strings.Replace(good, `"`+xmlenc.RSAOAEP+`"`, `"urn:x:rsa"`, 1), rs[0], dp, xmlenc.ErrUnsupported},
		{"unknown mgf", strings.Replace(good, xmlenc.MGF1SHA256, "urn:x:mgf", 1), rs[0], dp, xmlenc.ErrUnsupported},
		{"wrong oaep digest", strings.Replace(good, `DigestMethod Algorithm="`+xmlenc.DigestSHA256, `DigestMethod Algorithm="`+xmlenc.DigestSHA512, 1), rs[0], dp, xmlenc.ErrNoKey},
		{"tripledes refused", strings.Replace(good, xmlenc.AES256GCM, xmlenc.TripleDESCBC, 1), rs[0], dp, xmlenc.ErrRefused},
		{"cbc refused by strict policy", strings.Replace(good, xmlenc.AES256GCM, xmlenc.AES256CBC, 1), rs[0], xmlenc.Policy{}, xmlenc.ErrRefused},
		{"rsa-1_5 refused", strings.Replace(strings.Replace(good, `"`+xmlenc.RSAOAEP+`"`, `"`+xmlenc.RSA15+`"`, 1), `<ds:DigestMethod Algorithm="`+xmlenc.DigestSHA256+`"/><xenc11:MGF xmlns:xenc11="`+xmlenc.NamespaceXEnc11+`" Algorithm="`+xmlenc.MGF1SHA256+`"/>`, "", 1), rs[0], dp, xmlenc.ErrRefused},
		{"oversized", strings.Replace(good, dataCV, b64Enc(make([]byte, 2000)), 1), rs[0], xmlenc.Policy{MaxCipherValue: 1000}, xmlenc.ErrTooLarge},
		{"two cipher values", strings.Replace(good, "</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>", "</xenc:CipherValue><xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>", 1), rs[0], dp, xmlenc.ErrFormat},
		{"text in EncryptedData", strings.Replace(good, "<xenc:EncryptionMethod", "x<xenc:EncryptionMethod", 1), rs[0], dp, xmlenc.ErrFormat},
		{"bad base64", strings.Replace(good, dataCV, "!!!!", 1), rs[0], dp, xmlenc.ErrFormat},
		{"bad iv length", strings.Replace(good, `Algorithm="`+xmlenc.AES256GCM+`"/>`, `Algorithm="`+xmlenc.AES256GCM+`"><o:IvLength xmlns:o="`+xmlenc.NamespaceOSCI128+`" Value="7"/></xenc:EncryptionMethod>`, 1), rs[0], dp, xmlenc.ErrFormat},
		{"16 byte iv refused", strings.Replace(good, `Algorithm="`+xmlenc.AES256GCM+`"/>`, `Algorithm="`+xmlenc.AES256GCM+`"><o:IvLength xmlns:o="`+xmlenc.NamespaceOSCI128+`" Value="16"/></xenc:EncryptionMethod>`, 1), rs[0], xmlenc.Policy{}, xmlenc.ErrRefused},
		{"wrong key size", strings.Replace(good, `Algorithm="`+xmlenc.AES256GCM+`"/>`, `Algorithm="`+xmlenc.AES256GCM+`"><xenc:KeySize>128</xenc:KeySize></xenc:EncryptionMethod>`, 1), rs[0], dp, xmlenc.ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := decrypt(c.doc, c.reader, c.policy)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
	var refused *xmlenc.RefusedError
	if err := decrypt(cases[9].doc, rs[0], dp); !errors.As(err, &refused) || refused.Algorithm != xmlenc.TripleDESCBC {
		t.Fatalf("refusal %v does not name the algorithm", err)
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		panic("no " + a)
	}
	s = s[i+len(a):]
	return s[:strings.Index(s, b)]
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64Enc(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// tokenKey is a decrypter that is not an *rsa.PrivateKey, as a PKCS#11
// key is: the package must use only the crypto.Decrypter interface.
type tokenKey struct {
	k     *rsa.PrivateKey
	calls int
}

func (t *tokenKey) Public() crypto.PublicKey { return t.k.Public() }

func (t *tokenKey) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	t.calls++
	return t.k.Decrypt(r, msg, opts)
}

// TestDecrypterInterface decrypts through an opaque crypto.Decrypter and
// wants only the reader's own EncryptedKey tried (the others name other
// certificates).
func TestDecrypterInterface(t *testing.T) {
	rs := testReaders(t)
	ctx := context.Background()
	enc, err := xmlenc.Encrypt(ctx, []byte("x"), xmlenc.EncryptOptions{Recipients: []*x509.Certificate{rs[0].cert, rs[1].cert, rs[2].cert}, Identify: xmlenc.IdentifyIssuerSerial})
	if err != nil {
		t.Fatal(err)
	}
	tok := &tokenKey{k: rs[2].key}
	got, res, err := xmlenc.Decrypt(ctx, parseED(t, enc.XML, xmlenc.DefaultPolicy()), xmlenc.DecryptOptions{Recipient: xmlenc.Recipient{Key: tok, Certificate: rs[2].cert}})
	if err != nil || string(got) != "x" {
		t.Fatalf("decrypt: %v", err)
	}
	if tok.calls != 1 || res.EncryptedKey.Identity.Serial.Cmp(rs[2].cert.SerialNumber) != 0 {
		t.Fatalf("%d key operations, opened key of serial %v", tok.calls, res.EncryptedKey.Identity.Serial)
	}
	// Without the certificate every EncryptedKey is a candidate: OAEP
	// tells the wrong ones apart.
	tok.calls = 0
	if _, _, err := xmlenc.Decrypt(ctx, parseED(t, enc.XML, xmlenc.DefaultPolicy()), xmlenc.DecryptOptions{Recipient: xmlenc.Recipient{Key: tok}}); err != nil || tok.calls != 3 {
		t.Fatalf("without certificate: %v after %d key operations", err, tok.calls)
	}
}

// TestStreamMemoryBounded decrypts a 48 MiB attachment streamed through a
// pipe and wants the allocations to stay far below its size.
func TestStreamMemoryBounded(t *testing.T) {
	ctx := context.Background()
	const size = 48 << 20
	key := bytes.Repeat([]byte{1}, 32)
	pr, pw := io.Pipe()
	var enc *xmlenc.Encrypted
	done := make(chan error, 1)
	go func() {
		var err error
		enc, err = xmlenc.EncryptStream(ctx, io.LimitReader(zeros{}, size), pw, "cid:big", xmlenc.EncryptOptions{Key: key})
		pw.CloseWithError(err)
		done <- err
	}()
	ed := &xmlenc.EncryptedData{Method: xmlenc.EncryptionMethod{Algorithm: xmlenc.AES256GCM}, CipherReference: "cid:big"}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := xmlenc.DecryptTo(ctx, ed, io.Discard, xmlenc.DecryptOptions{Key: key,
		Resolver: func(context.Context, string) (io.ReadCloser, error) { return pr, nil }})
	runtime.ReadMemStats(&after)
	if err != nil || <-done != nil {
		t.Fatalf("decrypt %v", err)
	}
	if res.Bytes != size || enc == nil {
		t.Fatalf("%d bytes", res.Bytes)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Fatalf("allocated %d bytes to stream %d", grew, size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestImplicitIVLength follows the OSCI library: a GCM EncryptionMethod
// without osci128:IvLength has a 16 byte IV under OSCIPolicy and a 12 byte
// one (XML Encryption 1.1) under DefaultPolicy; ours always says.
func TestImplicitIVLength(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{3}, 32)
	for _, c := range []struct {
		ivLen    int
		omit     bool
		policy   xmlenc.Policy
		wantIV   int
		wantFail bool
	}{
		{16, true, xmlenc.OSCIPolicy(), 16, false},
		{16, true, xmlenc.DefaultPolicy(), 12, true},
		{12, true, xmlenc.DefaultPolicy(), 12, false},
		{12, true, xmlenc.OSCIPolicy(), 16, true},
		{12, false, xmlenc.OSCIPolicy(), 12, false},
		{16, false, xmlenc.DefaultPolicy(), 16, false},
	} {
		enc, err := xmlenc.Encrypt(ctx, []byte("Inhalt"), xmlenc.EncryptOptions{Key: key, IVLength: c.ivLen, OmitIVLength: c.omit})
		if err != nil {
			t.Fatal(err)
		}
		got, res, err := xmlenc.Decrypt(ctx, parseED(t, enc.XML, c.policy), xmlenc.DecryptOptions{Policy: c.policy, Key: key})
		if c.wantFail {
			if !errors.Is(err, xmlenc.ErrDecrypt) {
				t.Errorf("iv %d omitted %v: %v, want ErrDecrypt", c.ivLen, c.omit, err)
			}
			continue
		}
		if err != nil || string(got) != "Inhalt" || res.Algorithms.IVLength != c.wantIV {
			t.Errorf("iv %d omitted %v: %q %v %+v", c.ivLen, c.omit, got, err, res)
		}
	}
}
