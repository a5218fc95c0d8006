// Package vhnpki makes a throw-away PKI for the EGVP interop tests that stands where
// the Bundesnotarkammer's VHN CAs stand: a CA named like theirs ("Justiz VHN CA"),
// transport signature certificates named like the VHNs it issues ("VHN - Justiz"), and
// an OCSP responder on 127.0.0.1 that the stand-in intermediary asks, as a real
// intermediary asks BNotK's, so that its inspection of the certificate carries an
// online result. It is a test fixture; nothing here is a real VHN.
package vhnpki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// maxOCSPRequest caps an OCSP request body; real ones are a few hundred bytes.
const maxOCSPRequest = 16 << 10

var oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}

// CA is a VHN-like issuing CA with its OCSP responder.
type CA struct {
	Certificate *x509.Certificate
	key         *rsa.PrivateKey
	ln          net.Listener
	srv         *http.Server
	done        chan struct{}

	mu      sync.Mutex
	serial  int64
	revoked map[string]time.Time
	asked   int
}

// Leaf is a certificate the CA issued, with its key.
type Leaf struct {
	Certificate *x509.Certificate
	Key         *rsa.PrivateKey
}

// NewCA makes a self-signed CA with the common name (e.g. "Justiz VHN CA") and starts
// its OCSP responder on 127.0.0.1; Close stops it.
func NewCA(commonName string) (*CA, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("vhnpki: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Poststelle test PKI"}, Country: []string{"DE"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("vhnpki: CA certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("vhnpki: CA certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("vhnpki: OCSP responder: %w", err)
	}
	ca := &CA{Certificate: c, key: key, ln: ln, done: make(chan struct{}), serial: 1, revoked: map[string]time.Time{}}
	ca.srv = &http.Server{Handler: http.HandlerFunc(ca.answer), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(ca.done)
		_ = ca.srv.Serve(ln)
	}()
	return ca, nil
}

// OCSPURL is where the responder takes requests; every certificate the CA issues
// names it in its Authority Information Access.
func (ca *CA) OCSPURL() string { return "http://" + ca.ln.Addr().String() + "/ocsp" }

// Close stops the responder.
func (ca *CA) Close() error {
	err := ca.srv.Shutdown(context.Background())
	<-ca.done
	return err
}

// Asked is how many OCSP requests the responder answered.
func (ca *CA) Asked() int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.asked
}

// Issue makes a signature certificate for commonName ("VHN - Justiz", "VHN -
// besonderes elektronisches Behördenpostfach"); uid, when set, goes into the subject
// as the UID attribute, as a mailbox-bound VHN carries the mailbox's SAFE-ID.
func (ca *CA) Issue(commonName, uid string) (*Leaf, error) {
	return ca.IssueWithResponders(commonName, uid, []string{ca.OCSPURL()})
}

// IssueWithResponders is Issue with other OCSP responder URLs in the certificate, for
// tests of an intermediary that must not ask them, or must not believe their answer.
func (ca *CA) IssueWithResponders(commonName, uid string, responders []string) (*Leaf, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("vhnpki: key: %w", err)
	}
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	subject := pkix.Name{CommonName: commonName, Organization: []string{"Poststelle test PKI"}, Country: []string{"DE"}}
	if uid != "" {
		subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: oidUID, Value: uid}}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		OCSPServer:   responders,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("vhnpki: certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("vhnpki: certificate: %w", err)
	}
	return &Leaf{Certificate: c, Key: key}, nil
}

// Revoke makes the responder answer revoked for the certificate from now on.
func (ca *CA) Revoke(c *x509.Certificate) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.revoked[c.SerialNumber.String()] = time.Now().Add(-time.Minute)
}

// answer is the OCSP responder (RFC 6960, POST): good for the serials this CA issued,
// revoked for the revoked ones, unknown for any other.
func (ca *CA) answer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an OCSP request", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxOCSPRequest+1))
	if err != nil || len(body) > maxOCSPRequest {
		http.Error(w, "request unreadable or too large", http.StatusBadRequest)
		return
	}
	req, err := ocsp.ParseRequest(body)
	if err != nil {
		_, _ = w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	now := time.Now()
	tmpl := ocsp.Response{SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour), Status: ocsp.Unknown}
	ca.mu.Lock()
	ca.asked++
	if at, ok := ca.revoked[req.SerialNumber.String()]; ok {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, at, ocsp.KeyCompromise
	} else if req.SerialNumber.Sign() > 0 && req.SerialNumber.Int64() <= ca.serial && req.SerialNumber.Int64() > 1 {
		tmpl.Status = ocsp.Good
	}
	ca.mu.Unlock()
	if !bytes.Equal(req.IssuerKeyHash, issuerKeyHash(ca.Certificate, req.HashAlgorithm)) {
		tmpl.Status = ocsp.Unknown
	}
	der, err := ocsp.CreateResponse(ca.Certificate, ca.Certificate, tmpl, ca.key)
	if err != nil {
		_, _ = w.Write(ocsp.InternalErrorErrorResponse)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(der)
}

// issuerKeyHash is the hash of the CA's public key as an OCSP request names it.
func issuerKeyHash(c *x509.Certificate, h crypto.Hash) []byte {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil || !h.Available() {
		return nil
	}
	d := h.New()
	d.Write(spki.PublicKey.RightAlign())
	return d.Sum(nil)
}

// WritePKCS12 writes the leaf's key and certificate (and the CA's) as a PKCS#12 file
// the Java library and the gateway load, through openssl (Go's x/crypto/pkcs12 only
// reads). It returns the file's path.
func (ca *CA) WritePKCS12(l *Leaf, dir, name, password string) (string, error) {
	if _, err := exec.LookPath("openssl"); err != nil {
		return "", errors.New("vhnpki: openssl not found (test/setup.sh installs it)")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		return "", fmt.Errorf("vhnpki: key: %w", err)
	}
	keyPEM, certPEM, caPEM := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-ca.pem")
	for path, b := range map[string]*pem.Block{
		keyPEM:  {Type: "PRIVATE KEY", Bytes: keyDER},
		certPEM: {Type: "CERTIFICATE", Bytes: l.Certificate.Raw},
		caPEM:   {Type: "CERTIFICATE", Bytes: ca.Certificate.Raw},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			return "", fmt.Errorf("vhnpki: %w", err)
		}
	}
	p12 := filepath.Join(dir, name+".p12")
	// SHA-1/3DES, as the sample PKI's files are: the Java library and the gateway
	// (x/crypto/pkcs12, which reads no PBES2) both load it.
	out, err := exec.Command("openssl", "pkcs12", "-export", "-inkey", keyPEM, "-in", certPEM, "-certfile", caPEM,
		"-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1",
		"-out", p12, "-passout", "pass:"+password).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("vhnpki: openssl pkcs12: %w\n%s", err, out)
	}
	return p12, nil
}
