package mailmsg

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mozilla.org/pkcs7"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestWalkPlainMessage(t *testing.T) {
	raw := crlf(`Received: from mx.example.org by gw.example.de; Tue, 3 Jun 2025 10:00:00 +0200
Received: from client by mx.example.org; Tue, 3 Jun 2025 09:59:59 +0200
From: =?ISO-8859-1?Q?J=FCrgen_M=FCller?= <juergen@example.org>
To: "Bauamt" <bauamt@kreis.example>, poststelle@kreis.example
Subject: =?UTF-8?B?QW50cmFnIGF1ZiBCYXVnZW5laG1pZ3VuZyDigJMgRmx1cnN0w7xjayAxMg==?=
Message-ID: <abc@example.org>
X-De-Mail-Authoritative: yes
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Sehr geehrte Damen und Herren, anbei mein Antrag f=FCr das Flurst=FCck.
`)
	msg, st := walkBytes(t, raw, Limits{})
	if msg.Subject != "Antrag auf Baugenehmigung – Flurstück 12" {
		t.Errorf("subject %q", msg.Subject)
	}
	if msg.From != (gateway.Address{Address: "juergen@example.org", Name: "Jürgen Müller"}) {
		t.Errorf("from %+v", msg.From)
	}
	if len(msg.To) != 2 || msg.To[0].Address != "bauamt@kreis.example" || msg.To[1].Address != "poststelle@kreis.example" {
		t.Errorf("to %+v", msg.To)
	}
	if msg.MessageID != "<abc@example.org>" {
		t.Errorf("message id %q", msg.MessageID)
	}
	if len(msg.Received) != 2 || !strings.HasPrefix(msg.Received[0], "from mx.example.org") {
		t.Errorf("received %q", msg.Received)
	}
	if len(msg.Untrusted) != 1 || msg.Untrusted[0].Name != "X-De-Mail-Authoritative" {
		t.Errorf("untrusted %+v", msg.Untrusted)
	}
	if len(msg.Parts) != 1 {
		t.Fatalf("parts %+v", msg.Parts)
	}
	p := msg.Parts[0]
	if p.Path != "1" || p.Kind != KindBody || p.MediaType != "text/plain; charset=iso-8859-1" {
		t.Errorf("part %+v", p)
	}
	body := st.get(t, p.Blob)
	if !bytes.Contains(body, []byte("f\xfcr das Flurst\xfcck")) {
		t.Errorf("body not decoded from quoted-printable: %q", body)
	}
	if len(msg.Problems) != 0 {
		t.Errorf("problems %q", msg.Problems)
	}
}

func TestWalkMixedAndNested(t *testing.T) {
	pdf := []byte("%PDF-1.7 a scanned form\x00\x01\x02")
	raw := crlf(`From: a@example.org
To: b@example.de
Subject: mixed
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

preamble is ignored
--outer
Content-Type: multipart/alternative; boundary=alt

--alt
Content-Type: text/plain; charset=utf-8

Hallo
--alt
Content-Type: text/html; charset=utf-8

<p>Hallo</p>
--alt--
--outer
Content-Type: application/pdf; name="ignored.pdf"
Content-Disposition: attachment; filename*=utf-8''Antrag%20%C3%BCber%20Zuschuss.pdf
Content-Transfer-Encoding: base64

` + wrap64(pdf) + `
--outer
Content-Type: message/rfc822

From: c@example.org
Subject: =?utf-8?q?weitergeleitet?=
Content-Type: multipart/mixed; boundary=inner

--inner
Content-Type: text/plain

inner text
--inner
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="=?UTF-8?Q?Anh=C3=A4ng.bin?="

xyz
--inner--
--outer--
epilogue
`)
	msg, st := walkBytes(t, raw, Limits{})
	want := []struct{ path, mt, kind, file string }{
		{"1.1", "text/plain; charset=utf-8", KindBody, ""},
		{"1.2", "text/html; charset=utf-8", KindBody, ""},
		{"2", "application/pdf", KindAttachment, "Antrag über Zuschuss.pdf"},
		{"3", "message/rfc822", KindMessage, ""},
		{"3.1", "text/plain", KindBody, ""},
		{"3.2", "application/octet-stream", KindAttachment, "Anhäng.bin"},
	}
	if len(msg.Parts) != len(want) {
		t.Fatalf("got %d parts %+v", len(msg.Parts), msg.Parts)
	}
	for i, w := range want {
		p := msg.Parts[i]
		if p.Path != w.path || p.MediaType != w.mt || p.Kind != w.kind || p.Filename != w.file {
			t.Errorf("part %d = %+v, want %+v", i, p, w)
		}
	}
	if got := st.get(t, msg.Parts[0].Blob); string(got) != "Hallo" {
		t.Errorf("alternative text %q", got)
	}
	if got := st.get(t, msg.Parts[2].Blob); !bytes.Equal(got, pdf) {
		t.Errorf("attachment %q", got)
	}
	nested := st.get(t, msg.Parts[3].Blob)
	if !bytes.HasPrefix(nested, []byte("From: c@example.org\r\n")) || !bytes.HasSuffix(nested, []byte("--inner--")) {
		t.Errorf("nested message bytes %q", nested)
	}
	if len(msg.Problems) != 0 {
		t.Errorf("problems %q", msg.Problems)
	}
}

func wrap64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	out.WriteString(s)
	return out.String()
}

// testSigner makes a throwaway certificate and key.
func testSigner(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func sign(t *testing.T, content []byte, detached bool) []byte {
	t.Helper()
	cert, key := testSigner(t)
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	if detached {
		sd.Detach()
	}
	der, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestWalkMultipartSigned shows that the signed-content blob holds exactly
// the bytes the detached signature covers: the signature verifies over it.
func TestWalkMultipartSigned(t *testing.T) {
	signedEntity := crlf(`Content-Type: multipart/mixed; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Antrag mit Signatur.
--inner
Content-Type: application/pdf
Content-Disposition: attachment; filename=antrag.pdf

%PDF-1.4
--inner--
`)
	signedEntity = bytes.TrimSuffix(signedEntity, []byte("\r\n"))
	sig := sign(t, signedEntity, true)
	raw := append(crlf(`From: a@example.org
Subject: signed
MIME-Version: 1.0
Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="sig"

This is an S/MIME signed message
--sig
`), signedEntity...)
	raw = append(raw, crlf(`
--sig
Content-Type: application/pkcs7-signature; name=smime.p7s
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename=smime.p7s

`+wrap64(sig)+`
--sig--
`)...)
	msg, st := walkBytes(t, raw, Limits{})
	want := []struct{ path, kind string }{
		{"0", KindSignedContent}, {"1.1", KindBody}, {"1.2", KindAttachment}, {"2", KindSignature},
	}
	if len(msg.Parts) != len(want) {
		t.Fatalf("parts %+v", msg.Parts)
	}
	for i, w := range want {
		if msg.Parts[i].Path != w.path || msg.Parts[i].Kind != w.kind {
			t.Errorf("part %d = %+v, want %v", i, msg.Parts[i], w)
		}
	}
	content := st.get(t, msg.Parts[0].Blob)
	if !bytes.Equal(content, signedEntity) {
		t.Fatalf("signed content differs:\n%q\n%q", content, signedEntity)
	}
	p7, err := pkcs7.Parse(st.get(t, msg.Parts[3].Blob))
	if err != nil {
		t.Fatal(err)
	}
	p7.Content = content
	if err := p7.Verify(); err != nil {
		t.Errorf("signature over stored signed content: %v", err)
	}
	if len(msg.Problems) != 0 || len(msg.Parts[3].Problems) != 0 {
		t.Errorf("problems %q %q", msg.Problems, msg.Parts[3].Problems)
	}
}

func TestWalkSMIMEClassification(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test Recipient"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaKey.PublicKey, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	opaque := sign(t, []byte("Content-Type: text/plain\r\n\r\ninner"), false)
	enveloped, err := pkcs7.Encrypt([]byte("secret"), []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ctype, disp string
		content           []byte
		kind              string
		problem           bool
		inner             string // kind and file name of the unpacked part 1.1, "" for none
	}{
		{"opaque signed with smime-type", `application/pkcs7-mime; smime-type=signed-data; name=smime.p7m`, "", opaque, KindSignedData, false, "body "},
		{"opaque signed without smime-type", `application/x-pkcs7-mime`, "", opaque, KindSignedData, false, "body "},
		{"enveloped", `application/pkcs7-mime; smime-type=enveloped-data`, "", enveloped, KindEncrypted, false, ""},
		{"enveloped mislabelled", `application/pkcs7-mime; smime-type=signed-data`, "", enveloped, KindEncrypted, true, ""},
		{"p7m as octet-stream", `application/octet-stream`, `attachment; filename="Antrag.pdf.p7m"`, opaque, KindSignedData, false, "attachment Antrag.pdf"},
		{"p7s as octet-stream", `application/octet-stream`, `attachment; filename="Antrag.pdf.p7s"`, sign(t, []byte("x"), true), KindSignature, false, ""},
		{"p7s that is not CMS", `application/pkcs7-signature`, ``, []byte("not der"), KindSignature, true, ""},
		{"pkcs7-mime that is not CMS", `application/pkcs7-mime`, ``, []byte("\x30\x03\x02\x01\x01"), KindSignedData, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := "From: a@example.org\r\nContent-Type: " + tc.ctype + "\r\nContent-Transfer-Encoding: base64\r\n"
			if tc.disp != "" {
				raw += "Content-Disposition: " + tc.disp + "\r\n"
			}
			raw += "\r\n" + wrap64(tc.content) + "\r\n"
			msg, st := walkBytes(t, []byte(raw), Limits{})
			want := 1
			if tc.inner != "" {
				want = 2
			}
			if len(msg.Parts) != want {
				t.Fatalf("parts %+v", msg.Parts)
			}
			if tc.inner != "" {
				in := msg.Parts[1]
				if in.Path != "1.1" || in.Kind+" "+in.Filename != tc.inner {
					t.Errorf("unpacked part %+v, want %q", in, tc.inner)
				}
				if tc.kind == KindSignedData && tc.inner == "body " && string(st.get(t, in.Blob)) != "inner" {
					t.Errorf("unpacked content %q", st.get(t, in.Blob))
				}
			}
			p := msg.Parts[0]
			if p.Kind != tc.kind || (len(p.Problems) > 0) != tc.problem {
				t.Errorf("part %+v, want kind %s problem %v", p, tc.kind, tc.problem)
			}
			if !bytes.Equal(st.get(t, p.Blob), tc.content) {
				t.Errorf("stored content differs")
			}
		})
	}
}

// hasProblem reports whether some problem contains sub.
func hasProblem(msg *Message, sub string) bool {
	for _, p := range msg.Problems {
		if strings.Contains(p, sub) {
			return true
		}
	}
	for _, part := range msg.Parts {
		for _, p := range part.Problems {
			if strings.Contains(p, sub) {
				return true
			}
		}
	}
	return false
}

func manyParts(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
	}
	b.WriteString("--b--\r\n")
	return b.Bytes()
}

func deepMultipart(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\n")
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ndeep\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

// messageBomb nests a message inside a message depth times around a
// payload, so that unpacking stores the payload once per level.
func messageBomb(depth, payload int) []byte {
	inner := []byte("From: x@example.org\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("A", payload) + "\r\n")
	for i := 0; i < depth; i++ {
		inner = append([]byte("From: x@example.org\r\nContent-Type: message/rfc822\r\n\r\n"), inner...)
	}
	return inner
}

func TestWalkBadInput(t *testing.T) {
	tests := []struct {
		name     string
		raw      []byte
		lim      Limits
		problem  string // a problem that must be reported, "" for none
		minParts int
		maxParts int
	}{
		{"empty input", nil, Limits{}, "", 1, 1},
		{"header only, no body", []byte("From: a@example.org\r\nSubject: x\r\n"), Limits{}, "", 1, 1},
		{"bare LF line endings", []byte("From: a@example.org\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\none\n--x\n\ntwo\n--x--\n"), Limits{}, "", 2, 2},
		{"garbage content type", crlf("Content-Type: ;;;===\n\nbody\n"), Limits{}, "not understood", 1, 1},
		{"broken parameters keep boundary", crlf("Content-Type: multipart/mixed; boundary=abc; foo\n\n--abc\n\none\n--abc--\n"), Limits{}, "parameters not understood", 1, 1},
		{"multipart without boundary", crlf("Content-Type: multipart/mixed\n\n--x\n\none\n--x--\n"), Limits{}, "without boundary", 1, 1},
		{"boundary never occurs", crlf("Content-Type: multipart/mixed; boundary=zzz\n\n--x\n\none\n--x--\n"), Limits{}, "never occurs", 0, 0},
		{"missing close delimiter", crlf("Content-Type: multipart/mixed; boundary=x\n\n--x\n\none\n--x\n\ntwo\n"), Limits{}, "no closing boundary", 2, 2},
		{"boundary too long", []byte("Content-Type: multipart/mixed; boundary=\"" + strings.Repeat("b", 300) + "\"\r\n\r\nx\r\n"), Limits{}, "longer than 200", 1, 1},
		{"8-bit junk in headers", []byte("From: \xff\xfe <a@example.org>\r\nSubject: caf\xe9 \x00\x01\r\nno colon here\r\n \tstray\r\n\r\nbody\r\n"), Limits{}, "not UTF-8", 1, 1},
		{"header line without colon", crlf("From: a@example.org\nthis is not a header\n\nbody\n"), Limits{}, "without colon", 1, 1},
		{"continuation first", crlf(" folded first\nFrom: a@example.org\n\nbody\n"), Limits{}, "continuation line", 1, 1},
		{"unknown encoded word charset", crlf("Subject: =?x-unknown-9?Q?abc?=\n\nbody\n"), Limits{}, "encoded words not decoded", 1, 1},
		{"unparsable address list", crlf("From: <<<@@@>>>\nTo: ,,,\"\n\nbody\n"), Limits{}, "address list not parsed", 1, 1},
		{"base64 junk", crlf("Content-Transfer-Encoding: base64\n\nSGFs!!bG8=\n"), Limits{}, "outside the alphabet", 1, 1},
		{"base64 stray char", crlf("Content-Transfer-Encoding: base64\n\nSGFsbG8gA\n"), Limits{}, "single stray", 1, 1},
		{"unknown transfer encoding", crlf("Content-Transfer-Encoding: x-uuencode\n\nbegin 644 x\n"), Limits{}, "unknown transfer encoding", 1, 1},
		{"10,000 parts", manyParts(10000), Limits{}, "more than 1000 parts", 1000, 1000},
		{"deep nesting", deepMultipart(200), Limits{}, "nested deeper than 16", 1, 1},
		{"nested-message bomb by depth", messageBomb(100, 10), Limits{}, "nested deeper than 16", 17, 17},
		{"nested-message bomb by size", messageBomb(12, 100000), Limits{MaxStoredBytes: 400000}, "storage budget", 1, 12},
		{"header over limit", append([]byte("Subject: "+strings.Repeat("x", 300<<10)+"\r\n\r\n"), "body"...), Limits{}, "too large", 0, 0},
		{"part header over limit", crlf("Content-Type: multipart/mixed; boundary=x\n\n--x\nX: " + strings.Repeat("y", 70000) + "\n\nbody\n--x--\n"), Limits{MaxHeaderBytes: 65536}, "part 1 header", 0, 0},
		{"multipart/signed with one part", crlf("Content-Type: multipart/signed; boundary=s\n\n--s\nContent-Type: text/plain\n\nx\n--s--\n"), Limits{}, "instead of 2", 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, st := walkBytes(t, tc.raw, tc.lim)
			if tc.problem != "" && !hasProblem(msg, tc.problem) {
				t.Errorf("want a problem containing %q, got %q", tc.problem, msg.Problems)
			}
			if tc.problem == "" && len(msg.Problems) > 0 {
				t.Errorf("unexpected problems %q", msg.Problems)
			}
			if len(msg.Parts) < tc.minParts || len(msg.Parts) > tc.maxParts {
				t.Errorf("%d parts, want %d..%d", len(msg.Parts), tc.minParts, tc.maxParts)
			}
			checkInvariants(t, msg, st)
		})
	}
}

// checkInvariants holds for every walk, whatever the input.
func checkInvariants(t testing.TB, msg *Message, st *memStore) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range msg.Parts {
		if seen[p.Path] {
			t.Errorf("path %s recorded twice", p.Path)
		}
		seen[p.Path] = true
		if p.Blob.SHA256 != "" {
			st.get(t, p.Blob)
		}
	}
	if len(msg.Problems) > maxProblems+1 {
		t.Errorf("%d problems, cap is %d", len(msg.Problems), maxProblems+1)
	}
	texts := []string{msg.Subject, msg.MessageID, msg.Date, msg.From.Name, msg.From.Address}
	for _, a := range append(msg.To, msg.Cc...) {
		texts = append(texts, a.Name, a.Address)
	}
	texts = append(texts, msg.Received...)
	for _, h := range msg.Untrusted {
		texts = append(texts, h.Name, h.Value)
	}
	for _, s := range texts {
		if strings.ContainsFunc(s, isControl) {
			t.Errorf("control character recorded in %q", s)
		}
	}
	rec := gateway.MessageReceived{Subject: msg.Subject, From: msg.From, To: msg.To, Cc: msg.Cc, Parts: msg.Parts,
		Problems: msg.Problems, Transport: gateway.TransportEvidence{Received: msg.Received, Untrusted: msg.Untrusted}}
	e, err := gateway.NewReceived("t", "k", &rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Errorf("receipt event invalid: %v", err)
	}
}

// TestWalkStreamsLargeAttachment walks a 64 MiB base64 attachment that is
// generated on the fly and checks that the walk allocates a small fraction
// of it: the content streams through fixed buffers.
func TestWalkStreamsLargeAttachment(t *testing.T) {
	const size = 64 << 20
	st := &genStore{size: size}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	msg, err := Walk(context.Background(), st, st.rawRef(), Limits{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Parts) != 2 || msg.Parts[1].Blob.Size != size/57*57 {
		t.Fatalf("parts %+v", msg.Parts)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("walk allocated %d bytes for a %d byte attachment", alloc, size)
	}
}

// TestWalkStreamsOpaqueSignedData unpacks a 16 MiB application/pkcs7-mime
// signed-data message from a real blob store and checks that the walk
// allocates a small fraction of it: the signed content streams out of the
// stored part instead of being read into memory.
func TestWalkStreamsOpaqueSignedData(t *testing.T) {
	const size = 16 << 20
	line := strings.Repeat("Antrag ", 10) + "\r\n"
	inner := "Content-Type: text/plain\r\n\r\n" + strings.Repeat(line, size/len(line))
	var raw bytes.Buffer
	raw.WriteString("From: a@example.org\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw.WriteString(wrap64(sign(t, []byte(inner), false)))
	st, err := blob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref, err := st.Put(ctx, bytes.NewReader(raw.Bytes()), 0)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Buffer{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	msg, err := Walk(ctx, st, ref, Limits{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Parts) != 2 || msg.Parts[1].Path != "1.1" || msg.Parts[1].Blob.Size != int64(len(inner)-len("Content-Type: text/plain\r\n\r\n")) {
		t.Fatalf("parts %+v problems %q", msg.Parts, msg.Problems)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("walk allocated %d bytes for a %d byte signed-data part", alloc, msg.Parts[0].Blob.Size)
	}
}

func TestWalkHeaderControlCharacters(t *testing.T) {
	tests := []struct {
		name, header string
		subject      string // "" when the test looks at another field
		field        string // the field named in the problem, "" for none
	}{
		{"NUL in Subject", "Subject: Antrag\x00 Az. 12\r\n", "Antrag\uFFFD Az. 12", "Subject"},
		{"C0 and DEL in Subject", "Subject: a\x01b\x1bc\x7fd\r\n", "a\uFFFDb\uFFFDc\uFFFDd", "Subject"},
		{"bare CR in Subject", "Subject: a\rb\r\n", "a\uFFFDb", "Subject"},
		{"TAB kept", "Subject: a\tb\r\n", "a\tb", ""},
		{"NUL from an encoded word", "Subject: =?utf-8?q?x=00y?=\r\n", "x\uFFFDy", "Subject"},
		{"C1 CSI from an encoded word", "Subject: =?utf-8?b?wpsyShg=?=\r\n", "\uFFFD2J\uFFFD", "Subject"},
		{"umlauts untouched", "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n", "Grüße", ""},
		{"NUL in From display name", "From: \"Max\x00 M\" <max@example.org>\r\n", "", "From"},
		{"NUL in Received", "Received: from a\x00b by c\r\n", "", "Received"},
		{"NUL in Message-ID", "Message-ID: <a\x00b@example.org>\r\n", "", "Message-ID"},
		{"ESC in an untrusted header", "X-De-Mail-Authoritative: yes\x1b[2J\r\n", "", "X-De-Mail-Authoritative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.header + "\r\nbody\r\n")
			msg, st := walkBytes(t, raw, Limits{})
			checkInvariants(t, msg, st)
			if tc.subject != "" && msg.Subject != tc.subject {
				t.Errorf("subject %q, want %q", msg.Subject, tc.subject)
			}
			want := "header " + tc.field + ": " + controlsProblem
			found := slices.Contains(msg.Problems, want)
			if tc.field != "" && !found {
				t.Errorf("problems %q lack %q", msg.Problems, want)
			}
			if tc.field == "" && hasProblem(msg, controlsProblem) {
				t.Errorf("problems %q for a clean header", msg.Problems)
			}
			if !bytes.Equal(st.get(t, msg.Parts[0].Blob), []byte("body\r\n")) {
				t.Errorf("body changed")
			}
		})
	}
}

func TestReplaceControlsOncePerField(t *testing.T) {
	msg, _ := walkBytes(t, []byte("To: =?utf-8?q?a=00?= <a@example.org>, =?utf-8?q?b=07?= <b@example.org>\r\n\r\nx\r\n"), Limits{})
	n := 0
	for _, p := range msg.Problems {
		if strings.Contains(p, controlsProblem) {
			n++
		}
	}
	if n != 1 || msg.To[0].Name != "a\uFFFD" || msg.To[1].Name != "b\uFFFD" {
		t.Fatalf("to %+v, %d control problems in %q", msg.To, n, msg.Problems)
	}
}
