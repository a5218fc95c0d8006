package demail

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
)

// testCA is a CA made at test time, standing in for the De-Mail PKI.
type testCA struct {
	key  crypto.Signer
	x    *x509.Certificate
	cert *cert.Certificate
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := x509.ParseCertificate(der)
	c, err := cert.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{key: key, x: x, cert: c}
}

// issue makes a provider signature certificate valid from notBefore to
// notAfter for key, with exts (such as qcStatements) added.
func (ca *testCA) issue(t testing.TB, key crypto.Signer, notBefore, notAfter time.Time, exts ...pkix.Extension) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "Signatur De-Mail-Provider"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.x, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// stamp is the test "provider": it writes a De-Mail message the way
// TR 01201 Teil 3.4 clause 3.1.21 tells a DMDA to, building the hashed
// bytes by hand rather than with the package's code, so that a mistake in
// the verifier cannot cancel out against the same mistake here.
type stamp struct {
	fields [][2]string // header fields in order
	body   string      // with a single final CRLF
	alg    string      // "a" tag
	key    crypto.Signer
	cert   []byte   // DER; nil for hash-only
	h      []string // "h" tag; nil = the TR's list for these fields
	extra  string   // appended inside the tag list, e.g. "l=3;"
}

var hashOf = map[string]crypto.Hash{"sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}

func (s stamp) message(t testing.TB) []byte {
	t.Helper()
	hname, sname, _ := strings.Cut(s.alg, "/")
	hash := hashOf[hname]
	bh := hash.New()
	bh.Write([]byte(s.body))
	var header, input strings.Builder
	for _, f := range s.fields {
		header.WriteString(f[0] + ": " + f[1] + "\r\n")
	}
	hlist := s.h
	if hlist == nil {
		// Every field of the list, Reply-To even when absent (an absent
		// field hashes as nothing, RFC 6376 section 5.4); the private id
		// only when present, as the TR says.
		for _, n := range trHeaderOrder {
			present := n != "X-de-mail-private-id"
			for _, f := range s.fields {
				present = present || strings.EqualFold(f[0], n)
			}
			if present {
				hlist = append(hlist, n)
			}
		}
	}
	for _, n := range hlist {
		for _, f := range s.fields {
			if strings.EqualFold(f[0], n) {
				input.WriteString(f[0] + ": " + f[1] + "\r\n")
				break
			}
		}
	}
	tags := "v=1; a=" + s.alg + "; c=simple/simple; d=" + "provider.de-mail.example" + ";\r\n\t" + s.extra
	if s.cert != nil {
		tags += "q=x-header/x-de-mail-signature-certificate; "
	}
	tags += "h=" + strings.Join(hlist, ":") + ";\r\n\tbh=" + base64.StdEncoding.EncodeToString(bh.Sum(nil)) + "; b="
	integrity := "X-de-mail-integrity: " + tags
	input.WriteString(integrity)
	hh := hash.New()
	hh.Write([]byte(input.String()))
	digest := hh.Sum(nil)
	var b []byte
	switch sname {
	case "":
		b = digest
	case "rsassa-pss":
		var err error
		b, err = s.key.(*rsa.PrivateKey).Sign(rand.Reader, digest, &rsa.PSSOptions{SaltLength: hash.Size(), Hash: hash})
		if err != nil {
			t.Fatal(err)
		}
	default:
		var err error
		b, err = s.key.Sign(rand.Reader, digest, hash)
		if err != nil {
			t.Fatal(err)
		}
	}
	sig := base64.StdEncoding.EncodeToString(b)
	header.WriteString(integrity + sig[:10] + "\r\n\t" + sig[10:] + "\r\n")
	if s.cert != nil {
		c := base64.StdEncoding.EncodeToString(s.cert)
		header.WriteString("X-de-mail-signature-certificate: " + c[:60] + "\r\n " + c[60:] + "\r\n")
	}
	return []byte(header.String() + "\r\n" + s.body)
}

// trHeaderOrder is clause 3.1.21's list, written out again here on purpose.
var trHeaderOrder = []string{"From", "Date", "Message-ID", "Subject", "Reply-To",
	"X-de-mail-confirmation-of-dispatch", "X-de-mail-confirmation-of-receipt", "X-de-mail-confirmation-of-retrieve",
	"X-de-mail-authoritative", "X-de-mail-private", "X-de-mail-sender", "X-de-mail-chosen-recipient",
	"X-de-mail-auth-mechanism", "X-de-mail-auth-level", "X-de-mail-originator-provider", "X-de-mail-message-type",
	"X-de-mail-version", "X-de-mail-private-id", "X-de-mail-message-id", "X-de-mail-account-holder"}

// normalFields is a normal De-Mail with every field table 1 requires.
func normalFields(authoritative string) [][2]string {
	return [][2]string{
		{"From", "Erika Mustermann <erika.mustermann@mustermann.de-mail.example>"},
		{"To", "poststelle@kreis.de-mail.example"},
		{"Date", "Tue, 03 Mar 2026 10:15:00 +0100"},
		{"Message-ID", "<4711@provider.de-mail.example>"},
		{"Subject", "Antrag auf Baugenehmigung"},
		{"X-de-mail-confirmation-of-dispatch", "yes"},
		{"X-de-mail-confirmation-of-receipt", "yes"},
		{"X-de-mail-confirmation-of-retrieve", "no"},
		{"X-de-mail-authoritative", authoritative},
		{"X-de-mail-private", "no"},
		{"X-de-mail-sender", "erika.mustermann@mustermann.de-mail.example"},
		{"X-de-mail-chosen-recipient", "to=poststelle@kreis.de-mail.example"},
		{"X-de-mail-auth-mechanism", "eID"},
		{"X-de-mail-auth-level", "high"},
		{"X-de-mail-originator-provider", "provider.de-mail.example"},
		{"X-de-mail-message-type", "normal"},
		{"X-de-mail-version", "1.8"},
		{"X-de-mail-private-id", "Az-63-2026-117"},
		{"X-de-mail-message-id", "4711@provider.de-mail.example"},
		{"X-de-mail-account-holder", "Erika Mustermann"},
		{"X-de-mail-actual-recipient", "to=poststelle@kreis.de-mail.example"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
	}
}
