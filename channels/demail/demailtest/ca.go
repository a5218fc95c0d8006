// Package demailtest is a stand-in De-Mail provider (DMDA) for tests: a
// CA for its certificates, the stamping of a message as TR 01201 Teil 3.4
// clause 3.1.21 tells a provider to do (header fields, X-de-mail-integrity,
// X-de-mail-signature-certificate) and the confirmation messages of clause
// 3.5.1 with their signed XML attachment. It writes the hashed and signed
// bytes itself rather than with channels/demail's code, so that a mistake
// in the verifier cannot cancel out against the same mistake here; for the
// same reason it does not import channels/demail, whose tests use it.
package demailtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CA is a certificate authority made at test time, standing in for the
// De-Mail PKI (or for any other CA a test needs).
type CA struct {
	Key  crypto.Signer
	Cert *x509.Certificate
}

// NewCA makes a self-signed P-256 CA valid from two days ago to two days
// ahead.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demailtest: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("demailtest: CA certificate: %w", err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("demailtest: CA certificate: %w", err)
	}
	return &CA{Key: key, Cert: x}, nil
}

// PEM is the CA certificate as an operator configures it.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// IssueSigning makes a provider signature certificate for key, valid from
// notBefore to notAfter, with exts (such as qcStatements) added, and
// returns its DER.
func (ca *CA) IssueSigning(key crypto.Signer, notBefore, notAfter time.Time, exts ...pkix.Extension) ([]byte, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "Signatur De-Mail-Provider"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("demailtest: signature certificate: %w", err)
	}
	return der, nil
}

// IssueTLS makes a TLS certificate with a fresh P-256 key for usage
// (client or server authentication), valid for 127.0.0.1 for a day.
func (ca *CA) IssueTLS(cn string, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("demailtest: TLS key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("demailtest: TLS certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serial is unique enough among the certificates of one test run.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
