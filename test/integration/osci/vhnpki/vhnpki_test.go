package vhnpki

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"testing"

	"golang.org/x/crypto/ocsp"
	"golang.org/x/crypto/pkcs12"
)

// TestIssueAndPKCS12: a mailbox-bound VHN carries the SAFE-ID as its UID and the
// responder's URL, verifies against the CA, and its PKCS#12 file opens with the reader
// the gateway uses, holding the key for the certificate.
func TestIssueAndPKCS12(t *testing.T) {
	ca, err := NewCA("beBPo VHN CA")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	const safeID = "DE.Justiz.9d2c7e1f-5a4b-4c3d-8e6f-0a1b2c3d4e5f.1234"
	l, err := ca.Issue("VHN - besonderes elektronisches Behördenpostfach", safeID)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Certificate
	if err := c.CheckSignatureFrom(ca.Certificate); err != nil {
		t.Fatalf("not issued by the CA: %v", err)
	}
	var uid string
	for _, n := range c.Subject.Names {
		if n.Type.Equal(oidUID) {
			uid, _ = n.Value.(string)
		}
	}
	if uid != safeID || len(c.OCSPServer) != 1 || c.OCSPServer[0] != ca.OCSPURL() || c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		t.Errorf("UID %q, OCSP %v, key usage %v", uid, c.OCSPServer, c.KeyUsage)
	}
	p12, err := ca.WritePKCS12(l, t.TempDir(), "vhn", "123456")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p12)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := pkcs12.ToPEM(raw, "123456")
	if err != nil {
		t.Fatalf("x/crypto/pkcs12 cannot read it: %v", err)
	}
	var leaf, issuer, keys int
	for _, b := range blocks {
		switch {
		case b.Type == "CERTIFICATE" && bytes.Equal(b.Bytes, c.Raw):
			leaf++
		case b.Type == "CERTIFICATE" && bytes.Equal(b.Bytes, ca.Certificate.Raw):
			issuer++
		case b.Type == "PRIVATE KEY":
			keys++
		default:
			t.Errorf("unexpected %s in the file", b.Type)
		}
	}
	if leaf != 1 || issuer != 1 || keys != 1 {
		t.Errorf("%d leaf, %d CA certificates and %d keys, want one of each", leaf, issuer, keys)
	}
}

// TestResponder: good for an issued certificate, revoked once revoked, unknown for a
// serial the CA never issued; every answer signed by the CA.
func TestResponder(t *testing.T) {
	ca, err := NewCA("Justiz VHN CA")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	good, err := ca.Issue("VHN - Justiz", "")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := ca.Issue("VHN - Justiz", "")
	if err != nil {
		t.Fatal(err)
	}
	ca.Revoke(bad.Certificate)
	never := *good.Certificate
	never.SerialNumber = new(big.Int).Lsh(bad.Certificate.SerialNumber, 8)
	for _, tc := range []struct {
		name string
		c    *x509.Certificate
		want int
	}{{"good", good.Certificate, ocsp.Good}, {"revoked", bad.Certificate, ocsp.Revoked}, {"never issued", &never, ocsp.Unknown}} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ocsp.CreateRequest(tc.c, ca.Certificate, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := postOCSP(ca.OCSPURL(), req)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ocsp.ParseResponse(resp, ca.Certificate)
			if err != nil || r.Status != tc.want {
				t.Fatalf("answer %v, status %v, want %v", err, r, tc.want)
			}
		})
	}
	if ca.Asked() != 3 {
		t.Errorf("asked %d times, want 3", ca.Asked())
	}
}

func postOCSP(url string, req []byte) ([]byte, error) {
	resp, err := http.Post(url, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}
