package smtpout

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mozilla.org/pkcs7"
)

func sealFiles(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Stadt Musterstadt Siegel", Organization: []string{"Stadt Musterstadt"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), EmailAddresses: []string{"poststelle@stadt.example"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "seal.pem"), filepath.Join(dir, "seal.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestSMIMESignedReply(t *testing.T) {
	f := newFixture(t)
	certFile, keyFile := sealFiles(t)
	o, err := New(Config{From: "poststelle@stadt.example", Relay: RelayConfig{Host: "127.0.0.1", TLS: TLSNone},
		SMIME: &SMIMEConfig{CertFile: certFile, KeyFile: keyFile}}, Deps{Blobs: f.blobs})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := o.Render(context.Background(), f.req, f.orig)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if mt != "multipart/signed" || params["protocol"] != "application/pkcs7-signature" || params["micalg"] != "sha-256" {
		t.Fatalf("content type %q %v", mt, params)
	}
	if m.Header.Get("In-Reply-To") != "<antrag-1@example.org>" {
		t.Fatal("threading lost when signing")
	}
	// The signed entity is the first part exactly as it stands between the boundaries.
	body, _ := io.ReadAll(m.Body)
	delim := []byte("\r\n--" + params["boundary"])
	start := bytes.Index(body, []byte("--"+params["boundary"]+"\r\n")) + len(params["boundary"]) + 4
	end := bytes.Index(body[start:], delim)
	signed := body[start : start+end]
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	mr.NextPart()
	sigPart, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, sigPart))
	if err != nil {
		t.Fatal(err)
	}
	p7, err := pkcs7.Parse(sig)
	if err != nil {
		t.Fatal(err)
	}
	p7.Content = signed
	if err := p7.Verify(); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if !strings.HasPrefix(string(signed), "Content-Type: multipart/mixed") {
		t.Fatalf("signed entity starts %q", signed[:40])
	}
	p7.Content = append(bytes.Clone(signed), '!')
	if p7.Verify() == nil {
		t.Fatal("a changed entity verifies")
	}
	// OpenSSL agrees, where it is installed (it is in CI).
	if openssl, err := exec.LookPath("openssl"); err == nil {
		in := filepath.Join(t.TempDir(), "reply.eml")
		os.WriteFile(in, raw, 0o600)
		out, err := exec.Command(openssl, "smime", "-verify", "-noverify", "-in", in, "-out", os.DevNull).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl smime -verify: %v\n%s", err, out)
		}
	}
}
