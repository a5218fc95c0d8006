package cms

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/sigalg"
)

// signPKI is a CA and a signer certificate issued by it.
type signPKI struct {
	key    crypto.Signer
	leaf   []byte
	ca     []byte
	caFile string // PEM, for openssl -CAfile
}

var rsaKeyOnce = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func newSignPKI(t *testing.T, key crypto.Signer) *signPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Poststelle Test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	ca, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(ca)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x5ea1), Subject: pkix.Name{CommonName: "Poststelle Test Seal", Organization: []string{"Poststelle"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		// openssl cms -verify checks for S/MIME purpose by default.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	leaf, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &signPKI{key: key, leaf: leaf, ca: ca, caFile: caFile}
}

// opensslVerify runs openssl cms -verify and reports whether it accepted.
func opensslVerify(t *testing.T, p *signPKI, p7s, detached []byte) (bool, string) {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "sig.der"), p7s, 0o600))
	args := []string{"cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.der", "-CAfile", p.caFile, "-out", "out.bin"}
	if detached != nil {
		must(os.WriteFile(filepath.Join(dir, "content.bin"), detached, 0o600))
		args = append(args, "-content", "content.bin")
	}
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return err == nil, string(out)
}

func TestSignRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is required for these tests: %v", err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name     string
		key      crypto.Signer
		hash     crypto.Hash
		pss      bool
		detached bool
		wantAlg  string
		// noOpenSSL: OpenSSL 3.0 has no Ed25519 in CMS ("no default
		// digest" when signing, "invalid digest" when verifying), so only
		// our verifier judges that case.
		noOpenSSL bool
	}{
		{"rsa-sha256-attached", rsaKeyOnce(), 0, false, false, "SHA-256withRSA", false},
		{"rsa-sha256-detached", rsaKeyOnce(), crypto.SHA256, false, true, "SHA-256withRSA", false},
		{"rsa-sha384", rsaKeyOnce(), crypto.SHA384, false, true, "SHA-384withRSA", false},
		{"rsa-sha512", rsaKeyOnce(), crypto.SHA512, false, false, "SHA-512withRSA", false},
		{"rsa-pss-sha256", rsaKeyOnce(), crypto.SHA256, true, true, "SHA-256withRSAandMGF1", false},
		{"rsa-pss-sha512", rsaKeyOnce(), crypto.SHA512, true, false, "SHA-512withRSAandMGF1", false},
		{"p256-sha256", p256, crypto.SHA256, false, true, "SHA-256withECDSA", false},
		{"p384-sha384", p384, crypto.SHA384, false, false, "SHA-384withECDSA", false},
		{"ed25519", ed, 0, false, true, "Ed25519", true},
	}
	content := bytes.Repeat([]byte("Widerspruch gegen den Bescheid vom 1. Dezember\n"), 50)
	signingTime := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newSignPKI(t, c.key)
			der, err := Sign(context.Background(), content, SignOptions{
				Signer: c.key, Certificates: [][]byte{p.leaf, p.ca}, Hash: c.hash, PSS: c.pss,
				Detached: c.detached, SigningTime: signingTime,
			})
			if err != nil {
				t.Fatal(err)
			}
			var detached []byte
			if c.detached {
				detached = content
			}
			sd, err := Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			if sd.BER {
				t.Error("Sign produced non-DER output")
			}
			if sd.HasContent == c.detached || (!c.detached && !bytes.Equal(sd.Content, content)) {
				t.Fatalf("HasContent=%v for detached=%v", sd.HasContent, c.detached)
			}
			if len(sd.Certificates) != 2 {
				t.Errorf("%d certificates, want signer and CA", len(sd.Certificates))
			}
			r := sd.Verify(VerifyOptions{DetachedContent: detached}).Signers[0]
			if !r.Valid {
				t.Fatalf("own verifier rejects: %+v", r.Checks)
			}
			if got := r.SignatureAlgorithm.Name(); got != c.wantAlg {
				t.Errorf("algorithm %s, want %s", got, c.wantAlg)
			}
			if ck, _ := r.Check(CheckSigningCertificateRef); ck.Outcome != Passed || !r.SigningCertificateRefUnique ||
				r.SigningCertificateRefs[0].Version != 2 || !r.SigningCertificateRefs[0].IssuerSerialMatch {
				t.Errorf("signing-certificate-v2: %+v %+v", ck, r.SigningCertificateRefs)
			}
			if !r.SigningTime.Equal(signingTime) {
				t.Errorf("signing time %v", r.SigningTime)
			}
			if r.SignedAttrsEncoding != EncodingTransmitted {
				t.Errorf("signed attributes verified %s, want as transmitted (DER)", r.SignedAttrsEncoding)
			}
			if ok, out := opensslVerify(t, p, der, detached); !ok && !c.noOpenSSL {
				t.Fatalf("openssl cms -verify rejects:\n%s", out)
			}

			// A changed byte in the content fails both.
			bad := bytes.Clone(content)
			bad[9] ^= 0x01
			badDER, badDetached := der, bad
			if !c.detached {
				badDER, badDetached = bytes.Replace(der, content[:40], bad[:40], 1), nil
			}
			checkRejected(t, p, badDER, badDetached, !c.noOpenSSL)
			// So does a changed byte in the signature value.
			sig := sd.Signers[0].Signature
			i := bytes.Index(der, sig) + len(sig)/2
			badSig := bytes.Clone(der)
			badSig[i] ^= 0x01
			checkRejected(t, p, badSig, detached, !c.noOpenSSL)
		})
	}
}

func checkRejected(t *testing.T, p *signPKI, der, detached []byte, withOpenSSL bool) {
	t.Helper()
	if sd, err := Parse(der); err == nil {
		if r := sd.Verify(VerifyOptions{DetachedContent: detached}).Signers[0]; r.Valid {
			t.Error("own verifier accepts a changed byte")
		}
	}
	if ok, _ := opensslVerify(t, p, der, detached); ok && withOpenSSL {
		t.Error("openssl accepts a changed byte")
	}
}

func TestSignContentTypeTSTInfo(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := newSignPKI(t, key)
	info := testTSTInfo(t, crypto.SHA256, make([]byte, 32))
	der, err := Sign(context.Background(), info, SignOptions{Signer: key, Certificates: [][]byte{p.leaf}, ContentType: OIDTSTInfo})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if !sd.EContentType.Equal(OIDTSTInfo) || sd.Version != 3 {
		t.Fatalf("eContentType %s version %d, want TSTInfo and 3", sd.EContentType, sd.Version)
	}
	if r := sd.Verify(VerifyOptions{}).Signers[0]; !r.Valid {
		t.Fatalf("checks %+v", r.Checks)
	}
}

func TestSignRefuses(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := newSignPKI(t, key)
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	ctAttr := Attribute{Type: OIDAttrContentType, Values: [][]byte{{0x06, 0x01, 0x00}}}
	cases := []struct {
		name string
		ctx  context.Context
		opts SignOptions
		want string
	}{
		{"no signer", ctx, SignOptions{Certificates: [][]byte{p.leaf}}, "no signer"},
		{"no certificate", ctx, SignOptions{Signer: key}, "no signer certificate"},
		{"foreign key", ctx, SignOptions{Signer: other, Certificates: [][]byte{p.leaf}}, "does not belong"},
		{"sha1", ctx, SignOptions{Signer: key, Certificates: [][]byte{p.leaf}, Hash: crypto.SHA1}, "unsupported digest"},
		{"own attribute", ctx, SignOptions{Signer: key, Certificates: [][]byte{p.leaf}, SignedAttributes: []Attribute{ctAttr}}, "made by Sign"},
		{"bad value", ctx, SignOptions{Signer: key, Certificates: [][]byte{p.leaf},
			UnsignedAttributes: []Attribute{{Type: OIDAttrCertValues, Values: [][]byte{{0x30, 0x05}}}}}, "not one DER element"},
		{"cancelled", cancelled, SignOptions{Signer: key, Certificates: [][]byte{p.leaf}}, "context canceled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Sign(c.ctx, []byte("x"), c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

// testTSTInfo encodes a minimal TSTInfo over digest.
func testTSTInfo(t *testing.T, h crypto.Hash, digest []byte) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(algorithmIdentifier(sigalg.DigestOID(h), nil))
			b.AddASN1OctetString(digest)
		})
		b.AddASN1Int64(42)
		b.AddASN1GeneralizedTime(time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC))
	})
	return b.BytesOrPanic()
}

func TestAddSignatureTimestamp(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := newSignPKI(t, key)
	tsaKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tsa := newSignPKI(t, tsaKey)
	content := []byte("Eingangsbestätigung")
	ctx := context.Background()
	der, err := Sign(ctx, content, SignOptions{Signer: key, Certificates: [][]byte{p.leaf, p.ca}, Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	stamp := func(ctx context.Context, digest []byte) ([]byte, error) {
		return Sign(ctx, testTSTInfo(t, crypto.SHA256, digest), SignOptions{Signer: tsaKey,
			Certificates: [][]byte{tsa.leaf}, ContentType: OIDTSTInfo})
	}
	stamped, err := AddSignatureTimestampFrom(ctx, der, stamp)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := Parse(stamped)
	if err != nil {
		t.Fatal(err)
	}
	r := sd.Verify(VerifyOptions{DetachedContent: content}).Signers[0]
	if !r.Valid || len(r.Timestamps) != 1 {
		t.Fatalf("valid=%v timestamps=%d checks %+v", r.Valid, len(r.Timestamps), r.Checks)
	}
	ts := r.Timestamps[0]
	if ts.Kind != TimestampSignature || ts.Signer == nil || !ts.Signer.Valid {
		t.Fatalf("timestamp %+v", ts)
	}
	if imprintOutcome(ts) != Passed {
		t.Fatalf("imprint check: %+v", ts.Checks)
	}
	// The signature itself is untouched: openssl still accepts it.
	if ok, out := opensslVerify(t, p, stamped, content); !ok {
		t.Fatalf("openssl rejects the stamped signature:\n%s", out)
	}
	// A second timestamp adds a second attribute; both are evaluated.
	twice, err := AddSignatureTimestampFrom(ctx, stamped, stamp)
	if err != nil {
		t.Fatal(err)
	}
	sd2, err := Parse(twice)
	if err != nil {
		t.Fatal(err)
	}
	if r := sd2.Verify(VerifyOptions{DetachedContent: content}).Signers[0]; !r.Valid || len(r.Timestamps) != 2 {
		t.Fatalf("twice: valid=%v timestamps=%d", r.Valid, len(r.Timestamps))
	}
	// A token over something else fails the imprint check.
	wrong, err := Sign(ctx, testTSTInfo(t, crypto.SHA256, make([]byte, 32)), SignOptions{Signer: tsaKey,
		Certificates: [][]byte{tsa.leaf}, ContentType: OIDTSTInfo})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := AddSignatureTimestamp(der, wrong)
	if err != nil {
		t.Fatal(err)
	}
	sd3, _ := Parse(bad)
	r3 := sd3.Verify(VerifyOptions{DetachedContent: content}).Signers[0]
	if len(r3.Timestamps) != 1 || imprintOutcome(r3.Timestamps[0]) != Failed {
		t.Fatalf("timestamp over other data: %+v", r3.Timestamps)
	}
	if _, err := AddSignatureTimestamp(der, []byte{0x30, 0x80, 0, 0}); err == nil {
		t.Fatal("indefinite-length token accepted")
	}
	if _, err := AddUnsignedAttribute(der, 1, Attribute{Type: OIDAttrSignatureTimeStamp, Values: [][]byte{wrong}}); err == nil {
		t.Fatal("signer index out of range accepted")
	}
}

func imprintOutcome(ts *TimestampResult) Outcome {
	for _, c := range ts.Checks {
		if c.ID == CheckTimestampImprint {
			return c.Outcome
		}
	}
	return NotChecked
}

// CRLs go into the crls field, where openssl cms -verify -crl_check finds
// the signer's revocation status; without them the same check fails.
func TestSignCRLs(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "CRL CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(8),
		Subject: pkix.Name{CommonName: "CRL Seal"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &signPKI{caFile: caFile}
	content := []byte("Bescheid")
	for _, tc := range []struct {
		name string
		crls [][]byte
		want bool
	}{{"with CRL", [][]byte{crl}, true}, {"without", nil, false}} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := Sign(context.Background(), content, SignOptions{Signer: key, Certificates: [][]byte{leafDER, caDER},
				CRLs: tc.crls, SigningTime: now})
			if err != nil {
				t.Fatal(err)
			}
			sd, err := Parse(der)
			if err != nil || len(sd.CRLs) != len(tc.crls) {
				t.Fatalf("parse: %v, %d CRLs", err, len(sd.CRLs))
			}
			if r := sd.Verify(VerifyOptions{}).Signers[0]; !r.Valid {
				t.Fatalf("checks %+v", r.Checks)
			}
			f := filepath.Join(dir, "sig.der")
			if err := os.WriteFile(f, der, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f, "-CAfile", p.caFile,
				"-crl_check", "-out", os.DevNull).CombinedOutput()
			if (err == nil) != tc.want {
				t.Fatalf("openssl -crl_check: err %v, want success %v\n%s", err, tc.want, out)
			}
		})
	}
	if _, err := Sign(context.Background(), content, SignOptions{Signer: key, Certificates: [][]byte{leafDER}, CRLs: [][]byte{{0x04, 0x00}}}); err == nil {
		t.Fatal("a CRL that is no SEQUENCE accepted")
	}
}

// opaqueSigner hides the key's type, as a PKCS#11 key does, and records
// the options Sign passes.
type opaqueSigner struct {
	inner crypto.Signer
	opts  []crypto.SignerOpts
}

func (o *opaqueSigner) Public() crypto.PublicKey { return o.inner.Public() }
func (o *opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	o.opts = append(o.opts, opts)
	return o.inner.Sign(r, digest, opts)
}

// A crypto.Signer that is no *rsa.PrivateKey gets the PSS options it needs
// (a token is asked for RSASSA-PSS by them), and a faulty one is caught.
func TestSignOpaqueSigner(t *testing.T) {
	o := &opaqueSigner{inner: rsaKeyOnce()}
	p := newSignPKI(t, o)
	der, err := Sign(context.Background(), []byte("x"), SignOptions{Signer: o, Certificates: [][]byte{p.leaf, p.ca}, PSS: true, Hash: crypto.SHA384})
	if err != nil {
		t.Fatal(err)
	}
	pss, ok := o.opts[0].(*rsa.PSSOptions)
	if len(o.opts) != 1 || !ok || pss.Hash != crypto.SHA384 || pss.SaltLength != rsa.PSSSaltLengthEqualsHash {
		t.Fatalf("signer options %#v", o.opts)
	}
	sd, _ := Parse(der)
	if r := sd.Verify(VerifyOptions{}).Signers[0]; !r.Valid {
		t.Fatalf("checks %+v", r.Checks)
	}
	if ok, out := opensslVerify(t, p, der, nil); !ok {
		t.Fatalf("openssl:\n%s", out)
	}
	// A token that returns a wrong value is caught before the bytes leave.
	bad := &faultySigner{o}
	if _, err := Sign(context.Background(), []byte("x"), SignOptions{Signer: bad, Certificates: [][]byte{p.leaf}}); err == nil ||
		!strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("faulty signer: %v", err)
	}
}

type faultySigner struct{ crypto.Signer }

func (f *faultySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := f.Signer.Sign(r, digest, opts)
	if err == nil {
		sig[len(sig)/2] ^= 0x01
	}
	return sig, err
}
