package tsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/crypto/sigalg"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// testTSA is a minimal RFC 3161 TSA for tests, listening on 127.0.0.1.
type testTSA struct {
	key      *ecdsa.PrivateKey
	certDER  []byte
	cert     *x509.Certificate
	serial   atomic.Int64
	mode     string // "", "wrong-nonce", "reject", "http-500", "oversize", "wrong-imprint", "no-eku"
	requests atomic.Int64
}

func newTestTSA(t *testing.T, mode string) *testTSA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ekuOID := oidEKUTimeStamping
	if mode == "no-eku" {
		ekuOID = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}
	}
	ekuVal, _ := asn1.Marshal([]asn1.ObjectIdentifier{ekuOID})
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Poststelle Test TSA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: ekuVal}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testTSA{key: key, certDER: der, cert: c, mode: mode}
}

var oidEKUTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

func (a *testTSA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	switch a.mode {
	case "http-500":
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case "oversize":
		w.Write(bytes.Repeat([]byte{0x30}, 1<<20))
		return
	case "reject":
		w.Write(statusOnly(StatusRejection, "policy not supported"))
		return
	}
	req, err := ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if a.mode == "wrong-nonce" {
		req.Nonce = new(big.Int).Add(req.Nonce, big.NewInt(1))
	}
	if a.mode == "wrong-imprint" {
		req.HashedMessage = bytes.Clone(req.HashedMessage)
		req.HashedMessage[0] ^= 1
	}
	w.Header().Set("Content-Type", "application/timestamp-reply")
	w.Write(a.grant(req))
}

func statusOnly(status int, text string) []byte {
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

func (a *testTSA) grant(req *Request) []byte {
	var info cryptobyte.Builder
	info.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 3, 4})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(sigalg.DigestOID(req.Hash))
			})
			b.AddASN1OctetString(req.HashedMessage)
		})
		b.AddASN1Int64(a.serial.Add(1))
		b.AddASN1(cbasn1.GeneralizedTime, func(b *cryptobyte.Builder) {
			b.AddBytes([]byte(time.Now().UTC().Format("20060102150405.999Z")))
		})
		if req.Nonce != nil {
			b.AddASN1BigInt(req.Nonce)
		}
	})
	token := signTSTInfo(a.key, a.cert, a.certDER, info.BytesOrPanic())
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(StatusGranted) })
		b.AddBytes(token)
	})
	return b.BytesOrPanic()
}

// signTSTInfo builds a TimeStampToken: SignedData with content-type,
// message-digest and signing-certificate-v2 attributes, ECDSA P-256.
func signTSTInfo(key crypto.Signer, c *x509.Certificate, certDER, info []byte) []byte {
	md := sha256.Sum256(info)
	ch := sha256.Sum256(certDER)
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
	slices.SortFunc(attrs, bytes.Compare)
	var set cryptobyte.Builder
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			b.AddBytes(a)
		}
	})
	setDER := set.BytesOrPanic()
	setBody := cryptobyte.String(setDER)
	setBody.ReadASN1(&setBody, cbasn1.SET)
	digest := sha256.Sum256(setDER)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
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
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(certDER) })
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(c.RawIssuer)
							b.AddASN1BigInt(c.SerialNumber)
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

func startTSA(t *testing.T, mode string) (*testTSA, string) {
	t.Helper()
	a := newTestTSA(t, mode)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test TSA must listen on 127.0.0.1, got %s", srv.URL)
	}
	return a, srv.URL
}

func TestClient(t *testing.T) {
	digest := sha256.Sum256([]byte("MessageReceived raw bytes"))
	tests := []struct {
		name      string
		modes     []string
		wantErr   string
		wantTSA   int // index of the TSA that answers
		wantCalls []int64
	}{
		{name: "first TSA answers", modes: []string{"", ""}, wantTSA: 0, wantCalls: []int64{1, 0}},
		{name: "fallback after HTTP errors", modes: []string{"http-500", ""}, wantTSA: 1, wantCalls: []int64{2, 1}},
		{name: "fallback after rejection", modes: []string{"reject", ""}, wantTSA: 1, wantCalls: []int64{2, 1}},
		{name: "wrong nonce", modes: []string{"wrong-nonce"}, wantErr: "nonce", wantCalls: []int64{2}},
		{name: "wrong imprint", modes: []string{"wrong-imprint"}, wantErr: "imprint", wantCalls: []int64{2}},
		{name: "oversize response", modes: []string{"oversize"}, wantErr: "exceeds", wantCalls: []int64{2}},
		{name: "TSA certificate without timeStamping EKU", modes: []string{"no-eku"}, wantErr: "tsa-extended-key-usage", wantCalls: []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tsas []*testTSA
			c := &Client{Attempts: 2, RetryDelay: time.Millisecond}
			for i, m := range tt.modes {
				a, url := startTSA(t, m)
				tsas = append(tsas, a)
				c.TSAs = append(c.TSAs, TSA{Name: "tsa" + string(rune('0'+i)), URL: url})
			}
			st, err := c.Timestamp(context.Background(), digest[:])
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if st.TSA != c.TSAs[tt.wantTSA].Name || !st.Result.Valid {
					t.Errorf("answered by %s valid %v", st.TSA, st.Result.Valid)
				}
				// The stored token re-parses and verifies on its own.
				tok, err := ParseToken(st.Raw)
				if err != nil {
					t.Fatal(err)
				}
				if r := tok.Verify(VerifyOptions{Digest: digest[:]}); !r.Valid {
					t.Errorf("stored token: %v", failedChecks(r))
				}
			}
			for i, want := range tt.wantCalls {
				if got := tsas[i].requests.Load(); got != want {
					t.Errorf("TSA %d got %d requests, want %d", i, got, want)
				}
			}
		})
	}
}

func TestClientContextCancelled(t *testing.T) {
	_, url := startTSA(t, "http-500")
	c := &Client{TSAs: []TSA{{URL: url}}, Attempts: 5, RetryDelay: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	d := sha256.Sum256(nil)
	if _, err := c.Timestamp(ctx, d[:]); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v", err)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	req := &Request{Hash: crypto.SHA256, HashedMessage: d[:], Nonce: big.NewInt(42), CertReq: true, Policy: asn1.ObjectIdentifier{1, 2, 3}}
	der, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if got.Nonce.Int64() != 42 || !got.CertReq || !got.Policy.Equal(req.Policy) || !bytes.Equal(got.HashedMessage, d[:]) {
		t.Errorf("round trip: %+v", got)
	}
	if _, err := (&Request{Hash: crypto.SHA256, HashedMessage: d[:5]}).Marshal(); err == nil {
		t.Error("short digest accepted")
	}
}

func TestParseResponseRejection(t *testing.T) {
	resp, err := ParseResponse(statusOnly(StatusRejection, "no"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != StatusRejection || resp.Token != nil || resp.StatusStrings[0] != "no" {
		t.Errorf("%+v", resp)
	}
	if _, err := ParseResponse(statusOnly(StatusGranted, "")); err == nil {
		t.Error("granted without token accepted")
	}
}
