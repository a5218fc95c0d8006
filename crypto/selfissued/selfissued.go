// Package selfissued makes the demo's own small PKI: a self-issued CA and,
// below it, a TSA certificate (critical timeStamping EKU, RFC 3161 section
// 2.3) and a seal certificate (nonRepudiation). Production configurations
// bring certificates from a real CA instead; the demo generates these on
// first start so that a newcomer's receipts carry a timestamp and bundles a
// seal, and the auditor gets one anchor file (the CA certificate) to hand to
// openssl or DSS as trust.
//
// Keys are ECDSA P-256 in PKCS#8 PEM files (mode 0600); certificate files
// hold the certificate followed by the CA certificate, so that a file is a
// complete chain.
package selfissued

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/poststelle/poststelle/crypto/keys"
)

// Profile is the kind of certificate issued below the CA.
type Profile int

// Profiles.
const (
	// TSA: digitalSignature, extended key usage timeStamping only and critical.
	TSA Profile = iota + 1
	// Seal: digitalSignature and nonRepudiation (contentCommitment), as
	// ETSI EN 319 412-3 expects of a seal certificate.
	Seal
)

// Validity of what is generated. The CA outlives the certificates it
// issues, so that renewal (a later issue) stays under the same anchor.
const (
	caValidity   = 20 * 365 * 24 * time.Hour
	leafValidity = 5 * 365 * 24 * time.Hour
)

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
var oidKPTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

// CA is the self-issued CA.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertFile is the anchor: the CA certificate, PEM.
	CertFile string
}

// maxPEM caps the files read back; a chain of two is a few KiB.
const maxPEM = 64 << 10

// LoadOrCreateCA loads the CA from certFile and keyFile, creating both
// first if neither exists. name is the CA's common name.
func LoadOrCreateCA(certFile, keyFile, name string) (*CA, error) {
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	switch {
	case certErr == nil && keyErr == nil:
		certs, err := ReadCertificates(certFile)
		if err != nil {
			return nil, err
		}
		key, err := keys.LoadSigner(keyFile)
		if err != nil {
			return nil, fmt.Errorf("selfissued: CA key: %w", err)
		}
		if !publicKeyEqual(certs[0].PublicKey, key.Public()) {
			return nil, fmt.Errorf("selfissued: %s does not belong to %s", keyFile, certFile)
		}
		return &CA{Cert: certs[0], Key: key, CertFile: certFile}, nil
	case !errors.Is(certErr, os.ErrNotExist) || !errors.Is(keyErr, os.ErrNotExist):
		return nil, fmt.Errorf("selfissued: only one of %s and %s exists; remove it or supply both", certFile, keyFile)
	}
	key, err := newKey(keyFile)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Poststelle demo"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("selfissued: create CA certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := writePEM(certFile, 0o644, der); err != nil {
		return nil, err
	}
	return &CA{Cert: c, Key: key, CertFile: certFile}, nil
}

// LoadOrIssue makes sure certFile (certificate and CA certificate) and
// keyFile exist, issuing a certificate of the profile with common name cn
// when neither does. It reports whether it issued one.
func (ca *CA) LoadOrIssue(certFile, keyFile, cn string, p Profile) (bool, error) {
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	switch {
	case certErr == nil && keyErr == nil:
		return false, nil
	case !errors.Is(certErr, os.ErrNotExist) || !errors.Is(keyErr, os.ErrNotExist):
		return false, fmt.Errorf("selfissued: only one of %s and %s exists; remove it or supply both", certFile, keyFile)
	}
	key, err := newKey(keyFile)
	if err != nil {
		return false, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Poststelle demo"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
	}
	switch p {
	case TSA:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		// crypto/x509 marks the EKU it generates non-critical; RFC 3161
		// wants it critical, so it goes in as an extra extension.
		eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidKPTimeStamping})
		if err != nil {
			return false, err
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: eku}}
	case Seal:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	default:
		return false, fmt.Errorf("selfissued: unknown profile %d", p)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return false, fmt.Errorf("selfissued: issue %s: %w", cn, err)
	}
	if err := writePEM(certFile, 0o644, der, ca.Cert.Raw); err != nil {
		return false, err
	}
	return true, nil
}

// ReadCertificates reads a PEM file of certificates, the first being the
// end-entity's.
func ReadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := readCapped(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("selfissued: %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("selfissued: %s holds no certificate", path)
	}
	return out, nil
}

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("selfissued: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err != nil {
		return nil, fmt.Errorf("selfissued: read %s: %w", path, err)
	}
	if len(b) > maxPEM {
		return nil, fmt.Errorf("selfissued: %s exceeds %d bytes", path, maxPEM)
	}
	return b, nil
}

func newKey(keyFile string) (crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("selfissued: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return nil, fmt.Errorf("selfissued: %w", err)
	}
	f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("selfissued: create %s: %w", keyFile, err)
	}
	if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Sync(), f.Close()); err != nil {
		return nil, fmt.Errorf("selfissued: write %s: %w", keyFile, err)
	}
	return key, nil
}

func writePEM(path string, mode os.FileMode, ders ...[]byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("selfissued: %w", err)
	}
	var b []byte
	for _, d := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("selfissued: write %s: %w", path, err)
	}
	return nil
}

// randomSerial is a positive 127-bit serial; crypto/rand does not fail on
// supported platforms (Go 1.24), so there is no error to return.
func randomSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// crlValidity is how long a demo CRL is current; the demo issues a fresh
// one at every start and whenever a signature needs one.
const crlValidity = 7 * 24 * time.Hour

// CRL issues an empty CRL of the CA (nothing is ever revoked in the demo),
// current from an hour ago for crlValidity, and writes it (DER) to path
// when path is not empty. Evidence carries it so that a validator such as
// DSS has revocation data offline.
func (ca *CA) CRL(path string) ([]byte, error) {
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(now.UnixMicro()),
		ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.Add(crlValidity),
	}, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("selfissued: issue CRL: %w", err)
	}
	if path != "" {
		if err := os.WriteFile(path, der, 0o644); err != nil {
			return nil, fmt.Errorf("selfissued: write %s: %w", path, err)
		}
	}
	return der, nil
}
