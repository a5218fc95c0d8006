// Package tsptest is a minimal RFC 3161 time-stamping authority for tests:
// ECDSA P-256, a self-signed certificate with the critical timeStamping EKU,
// listening on 127.0.0.1. Modes make it misbehave in the ways a client must
// survive. It does not import package tsp, so tsp's own tests can use it.
package tsptest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Modes of the test TSA.
const (
	Normal       = ""
	Down         = "down"          // 503
	HTTP500      = "http-500"      // 500
	Oversize     = "oversize"      // a 1 MiB body
	Reject       = "reject"        // status rejection
	WrongNonce   = "wrong-nonce"   // answers another nonce
	WrongImprint = "wrong-imprint" // stamps other data
	NoEKU        = "no-eku"        // certificate without the timeStamping EKU
)

// PKIStatus values (RFC 3161).
const (
	StatusGranted   = 0
	StatusRejection = 2
)

// TSA is the test authority.
type TSA struct {
	Mode     string
	Key      *ecdsa.PrivateKey
	CertDER  []byte
	Cert     *x509.Certificate
	Requests atomic.Int64
	serial   atomic.Int64
}

// New makes a TSA with a fresh key and certificate.
func New(t testing.TB, mode string) *TSA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eku := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8} // timeStamping
	if mode == NoEKU {
		eku = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4} // emailProtection
	}
	ekuVal, _ := asn1.Marshal([]asn1.ObjectIdentifier{eku})
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Poststelle Test TSA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: ekuVal}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &TSA{Mode: mode, Key: key, CertDER: der, Cert: c}
}

// Start runs a new TSA on 127.0.0.1 until the test ends and returns its URL.
func Start(t testing.TB, mode string) (*TSA, string) {
	t.Helper()
	a := New(t, mode)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test TSA must listen on 127.0.0.1, got %s", srv.URL)
	}
	return a, srv.URL
}

// ServeHTTP answers a TimeStampReq.
func (a *TSA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.Requests.Add(1)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	switch a.Mode {
	case Down:
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case HTTP500:
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case Oversize:
		w.Write(bytes.Repeat([]byte{0x30}, 1<<20))
		return
	case Reject:
		w.Write(StatusOnly(StatusRejection, "policy not supported"))
		return
	}
	alg, hashed, nonce, err := parseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if a.Mode == WrongNonce && nonce != nil {
		nonce = new(big.Int).Add(nonce, big.NewInt(1))
	}
	if a.Mode == WrongImprint {
		hashed = bytes.Clone(hashed)
		hashed[0] ^= 1
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(StatusGranted) })
		b.AddBytes(a.Token(alg, hashed, nonce))
	})
	w.Header().Set("Content-Type", "application/timestamp-reply")
	w.Write(b.BytesOrPanic())
}

// parseRequest reads what the TSA echoes from a TimeStampReq: the imprint's
// AlgorithmIdentifier (DER), the hashed message and the nonce.
func parseRequest(der []byte) (alg, hashed []byte, nonce *big.Int, err error) {
	in := cryptobyte.String(der)
	var req, imprint cryptobyte.String
	var version int64
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1Integer(&version) || !req.ReadASN1(&imprint, cbasn1.SEQUENCE) ||
		!imprint.ReadASN1Element((*cryptobyte.String)(&alg), cbasn1.SEQUENCE) || !imprint.ReadASN1Bytes(&hashed, cbasn1.OCTET_STRING) {
		return nil, nil, nil, errors.New("tsptest: malformed TimeStampReq")
	}
	req.SkipOptionalASN1(cbasn1.OBJECT_IDENTIFIER) // reqPolicy
	if req.PeekASN1Tag(cbasn1.INTEGER) {
		nonce = new(big.Int)
		if !req.ReadASN1Integer(nonce) {
			return nil, nil, nil, errors.New("tsptest: malformed nonce")
		}
	}
	return alg, hashed, nonce, nil
}

// Token signs a TSTInfo over hashed (digest algorithm alg, DER
// AlgorithmIdentifier) as a TimeStampToken.
func (a *TSA) Token(alg, hashed []byte, nonce *big.Int) []byte {
	var info cryptobyte.Builder
	info.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 3, 4, 1}) // policy
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(alg)
			b.AddASN1OctetString(hashed)
		})
		b.AddASN1Int64(a.serial.Add(1))
		b.AddASN1(cbasn1.GeneralizedTime, func(b *cryptobyte.Builder) {
			b.AddBytes([]byte(time.Now().UTC().Format("20060102150405.999Z")))
		})
		if nonce != nil {
			b.AddASN1BigInt(nonce)
		}
	})
	return a.sign(info.BytesOrPanic())
}

// sign wraps a TSTInfo into SignedData with content-type, message-digest and
// signing-certificate-v2 attributes.
func (a *TSA) sign(info []byte) []byte {
	md := sha256.Sum256(info)
	ch := sha256.Sum256(a.CertDER)
	attr := func(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(cbasn1.SET, value)
		})
		return b.BytesOrPanic()
	}
	attrs := [][]byte{
		attr(cms.OIDAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(cms.OIDTSTInfo) }),
		attr(cms.OIDAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(md[:]) }),
		attr(cms.OIDAttrSigningCertificateV2, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1OctetString(ch[:]) })
				})
			})
		}),
	}
	slices.SortFunc(attrs, bytes.Compare) // DER orders a SET OF by encoding
	var set cryptobyte.Builder
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, at := range attrs {
			b.AddBytes(at)
		}
	})
	setDER := set.BytesOrPanic()
	setBody := cryptobyte.String(setDER)
	setBody.ReadASN1(&setBody, cbasn1.SET)
	digest := sha256.Sum256(setDER)
	sig, err := a.Key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		panic(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(cms.OIDSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(3)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(sigalg.OIDDigestSHA256) })
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(cms.OIDTSTInfo)
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1OctetString(info) })
				})
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(a.CertDER) })
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(a.Cert.RawIssuer)
							b.AddASN1BigInt(a.Cert.SerialNumber)
						})
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(sigalg.OIDDigestSHA256) })
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(setBody) })
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(sigalg.OIDECDSAWithSHA256) })
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return b.BytesOrPanic()
}

// StatusOnly is a TimeStampResp without a token.
func StatusOnly(status int, text string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(int64(status))
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(text)) })
			})
		})
	})
	return b.BytesOrPanic()
}
