// Package erstest is a test PKI for evidence records: a root CA and
// RFC 3161 TSAs under it whose clocks the test sets, so that a record can be
// built "today" and renewed "ten years on". TSAs stamp under any SHA-2
// algorithm (evidence-record chains need imprints under their own hash) and
// implement ers.Stamper directly and over HTTP.
package erstest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/tsp"
)

// CA is a root certification authority.
type CA struct {
	Key  *ecdsa.PrivateKey
	Cert *x509.Certificate

	mu      sync.Mutex
	revoked []x509.RevocationListEntry
}

// Revoke lists the TSA's certificate on the CA's CRLs issued from now on,
// revoked at the given time (keyCompromise).
func (ca *CA) Revoke(tsa *TSA, at time.Time) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.revoked = append(ca.revoked, x509.RevocationListEntry{SerialNumber: tsa.Cert.SerialNumber, RevocationTime: at, ReasonCode: 1})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		panic(err)
	}
	return n
}

// NewCA makes a self-signed root valid from notBefore to notAfter.
func NewCA(name string, notBefore, notAfter time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("erstest: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"Poststelle Test"}, Country: []string{"DE"}},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("erstest: CA certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Key: key, Cert: c}, nil
}

// PEM is the CA certificate in PEM.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// TSA is a time-stamping authority whose clock is Now.
type TSA struct {
	Key  *ecdsa.PrivateKey
	Cert *x509.Certificate
	// Now is the TSA's clock.
	Now func() time.Time
	// NoCRL leaves the CA's CRL out of the tokens. By default each token
	// carries a CRL of the TSA's CA issued at the token's time, as DSS
	// wants revocation data for a TSA certificate and validates offline.
	NoCRL  bool
	ca     *CA
	serial atomic.Int64
	crlNum atomic.Int64
}

// NewTSA issues a TSA certificate (critical timeStamping EKU as RFC 3161
// section 2.3 demands) valid from notBefore to notAfter; its clock starts
// at notBefore + 1 hour.
func (ca *CA) NewTSA(name string, notBefore, notAfter time.Time) (*TSA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("erstest: TSA key: %w", err)
	}
	ekuVal, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"Poststelle Test"}, Country: []string{"DE"}},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: ekuVal}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("erstest: TSA certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	start := notBefore.Add(time.Hour)
	return &TSA{Key: key, Cert: c, Now: func() time.Time { return start }, ca: ca}, nil
}

// crl is the CA's empty CRL issued at now, valid for a week.
func (a *TSA) crl(now time.Time) ([]byte, error) {
	a.ca.mu.Lock()
	revoked := slices.Clone(a.ca.revoked)
	a.ca.mu.Unlock()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(a.crlNum.Add(1)), ThisUpdate: now, NextUpdate: now.Add(7 * 24 * time.Hour),
		RevokedCertificateEntries: revoked,
	}, a.ca.Cert, a.ca.Key)
	if err != nil {
		return nil, fmt.Errorf("erstest: CRL: %w", err)
	}
	return der, nil
}

// Stamp implements ers.Stamper without a network.
func (a *TSA) Stamp(_ context.Context, h crypto.Hash, digest []byte) ([]byte, error) {
	oid := sigalg.DigestOID(h)
	if oid == nil || len(digest) != h.Size() {
		return nil, fmt.Errorf("erstest: digest of %d bytes for %v", len(digest), h)
	}
	var alg cryptobyte.Builder
	alg.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
	return a.token(alg.BytesOrPanic(), digest, nil)
}

// ServeHTTP answers an RFC 3161 TimeStampReq.
func (a *TSA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := tsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var alg cryptobyte.Builder
	alg.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(sigalg.DigestOID(req.Hash)) })
	tok, err := a.token(alg.BytesOrPanic(), req.HashedMessage, req.Nonce)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(0) })
		b.AddBytes(tok)
	})
	w.Header().Set("Content-Type", "application/timestamp-reply")
	w.Write(b.BytesOrPanic())
}

func (a *TSA) token(alg, hashed []byte, nonce *big.Int) ([]byte, error) {
	var info cryptobyte.Builder
	info.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 4998, 1}) // test policy
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(alg)
			b.AddASN1OctetString(hashed)
		})
		b.AddASN1Int64(a.serial.Add(1))
		b.AddASN1(cbasn1.GeneralizedTime, func(b *cryptobyte.Builder) {
			b.AddBytes([]byte(a.Now().UTC().Format("20060102150405Z")))
		})
		if nonce != nil {
			b.AddASN1BigInt(nonce)
		}
	})
	tst, err := info.Bytes()
	if err != nil {
		return nil, err
	}
	var crl []byte
	if !a.NoCRL {
		if crl, err = a.crl(a.Now()); err != nil {
			return nil, err
		}
	}
	return a.sign(tst, crl)
}

// sign wraps a TSTInfo into a CMS SignedData (cms.Sign: content-type,
// message-digest and signing-certificate-v2 signed attributes) with the CRL
// (if any) among the SignedData's crls.
func (a *TSA) sign(info, crl []byte) ([]byte, error) {
	opts := cms.SignOptions{Signer: a.Key, Certificates: [][]byte{a.Cert.Raw}, ContentType: cms.OIDTSTInfo}
	if crl != nil {
		opts.CRLs = [][]byte{crl}
	}
	tok, err := cms.Sign(context.Background(), info, opts)
	if err != nil {
		return nil, fmt.Errorf("erstest: sign: %w", err)
	}
	return tok, nil
}
