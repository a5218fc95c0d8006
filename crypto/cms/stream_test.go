package cms

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.mozilla.org/pkcs7"
)

// pkcs7Signed signs content with a throwaway P-256 key; detached leaves
// the content out.
func pkcs7Signed(t testing.TB, content []byte, detached bool) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stream test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.AddSigner(crt, key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	if detached {
		sd.Detach()
	}
	out, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// toBER re-encodes DER with every constructed element in the indefinite
// form and every OCTET STRING longer than seg cut into segments, the
// second half of them nested once more, as streaming encoders do.
func toBER(t testing.TB, der []byte, seg int) []byte {
	t.Helper()
	var out []byte
	for len(der) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(der, &v)
		if err != nil {
			t.Fatal(err)
		}
		der = rest
		id := byte(v.Class<<6) | byte(v.Tag)
		switch {
		case v.IsCompound:
			out = append(out, id|0x20, 0x80)
			out = append(out, toBER(t, v.Bytes, seg)...)
			out = append(out, 0, 0)
		case v.Class == 0 && v.Tag == asn1.TagOctetString && len(v.Bytes) > seg:
			out = append(out, 0x24, 0x80)
			b := v.Bytes
			half := len(b) / 2
			out = appendSegments(out, b[:half], seg)
			out = append(out, 0x24, 0x80)
			out = appendSegments(out, b[half:], seg)
			out = append(out, 0, 0, 0, 0)
		default:
			out = append(out, v.FullBytes...)
		}
	}
	return out
}

func appendSegments(out, b []byte, seg int) []byte {
	for len(b) > 0 {
		n := min(seg, len(b))
		out = append(out, 0x04, byte(n))
		out = append(out, b[:n]...)
		b = b[n:]
	}
	return out
}

func streamAll(t testing.TB, in []byte) (*ContentReader, []byte, error) {
	t.Helper()
	cr, err := NewContentReader(bytes.NewReader(in))
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(cr)
	return cr, b, err
}

func TestContentReaderMatchesParse(t *testing.T) {
	content := bytes.Repeat([]byte("Antrag auf Erteilung einer Baugenehmigung\r\n"), 300)
	attached := pkcs7Signed(t, content, false)
	cases := map[string][]byte{
		"DER attached":           attached,
		"DER detached":           pkcs7Signed(t, content, true),
		"DER empty content":      pkcs7Signed(t, nil, false),
		"BER segmented attached": toBER(t, attached, 100),
		"BER one-byte segments":  toBER(t, pkcs7Signed(t, []byte("kurz"), false), 1),
	}
	if _, err := exec.LookPath("openssl"); err == nil {
		cases["openssl -stream"] = makeSignature(t, opensslCases[2], content)
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			sd, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			cr, got, err := streamAll(t, in)
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if !cr.EContentType.Equal(sd.EContentType) || cr.HasContent != sd.HasContent {
				t.Fatalf("stream says type %v content %v, Parse %v %v", cr.EContentType, cr.HasContent, sd.EContentType, sd.HasContent)
			}
			if !bytes.Equal(got, sd.Content) {
				t.Fatalf("streamed %d bytes, Parse %d", len(got), len(sd.Content))
			}
		})
	}
}

func TestContentReaderHostile(t *testing.T) {
	good := pkcs7Signed(t, bytes.Repeat([]byte("Inhalt des Antrags "), 200), false)
	ber := toBER(t, good, 40)
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"not a sequence", []byte{0x04, 0x01, 0x00}, "ContentInfo"},
		{"enveloped data", []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x00}, "not signedData"},
		{"truncated DER", good[:1000], "truncated"},
		{"truncated BER", ber[:1000], "truncated"},
		{"length of 9 octets", []byte{0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "octets"},
		{"huge length", []byte{0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "too large"},
		{"indefinite primitive", []byte{0x30, 0x80, 0x06, 0x80}, "indefinite length on a primitive"},
		{"inner overruns outer", []byte{0x30, 0x03, 0x06, 0x09, 0x2a}, "overruns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := streamAll(t, tc.in)
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrFormat with %q", err, tc.want)
			}
		})
	}
}

// failingReader fails after n bytes with a non-format error.
type failingReader struct {
	r io.Reader
	n int
}

var errDisk = errors.New("disk on fire")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errDisk
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestContentReaderInputFailureIsNotFormat(t *testing.T) {
	in := pkcs7Signed(t, bytes.Repeat([]byte("x"), 50000), false)
	for _, at := range []int{0, 10, 30000} {
		cr, err := NewContentReader(&failingReader{r: bytes.NewReader(in), n: at})
		if err == nil {
			_, err = io.ReadAll(cr)
		}
		if !errors.Is(err, errDisk) || errors.Is(err, ErrFormat) {
			t.Fatalf("failure at %d: %v, want the reader's error and not ErrFormat", at, err)
		}
	}
}

// FuzzContentReader: no panics, only format errors from an in-memory
// input, and wherever Parse accepts the input the stream yields the same
// content.
func FuzzContentReader(f *testing.F) {
	content := []byte("Content-Type: text/plain\r\n\r\nHallo")
	f.Add(pkcs7Signed(f, content, false))
	f.Add(pkcs7Signed(f, content, true))
	f.Add(toBER(f, pkcs7Signed(f, content, false), 3))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x00, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		cr, got, err := streamAll(t, in)
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error not wrapping ErrFormat: %v", err)
		}
		sd, perr := Parse(in)
		if perr != nil {
			return
		}
		if err != nil {
			t.Fatalf("Parse accepts what the stream refuses: %v", err)
		}
		if cr.HasContent != sd.HasContent || !cr.EContentType.Equal(sd.EContentType) || !bytes.Equal(got, sd.Content) {
			t.Fatalf("stream and Parse disagree")
		}
	})
}
