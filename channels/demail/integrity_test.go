package demail

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trustedlist/tltest"
)

const body = "Sehr geehrte Damen und Herren,\r\n\r\nanbei mein Antrag.\r\n"

type world struct {
	ca, otherCA *testCA
	ecKey       *ecdsa.PrivateKey
	rsaKey      *rsa.PrivateKey
	ecCert      []byte
	rsaCert     []byte
	expired     []byte
	foreign     []byte // same key, issued by a CA not configured for the provider
	trust       *Trust
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{ca: newCA(t, "Test De-Mail PKI"), otherCA: newCA(t, "Fremde CA")}
	var err error
	if w.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if w.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// The provider's signature certificates are qualified seal
	// certificates, as a real provider's are.
	qc := tltest.QCStatements(tltest.QCESeal, true)
	w.ecCert = w.ca.issue(t, w.ecKey, now.Add(-time.Hour), now.Add(24*time.Hour), qc)
	w.rsaCert = w.ca.issue(t, w.rsaKey, now.Add(-time.Hour), now.Add(24*time.Hour), qc)
	w.expired = w.ca.issue(t, w.ecKey, now.Add(-30*time.Hour), now.Add(-2*time.Hour))
	w.foreign = w.otherCA.issue(t, w.ecKey, now.Add(-time.Hour), now.Add(24*time.Hour))
	w.trust, err = NewTrust([]Provider{{Name: "provider.de-mail.example", Anchors: []*cert.Certificate{w.ca.cert}}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func replace(msg []byte, old, new string) []byte {
	if !bytes.Contains(msg, []byte(old)) {
		panic("test fixture lacks " + old)
	}
	return bytes.Replace(msg, []byte(old), []byte(new), 1)
}

// TestVerifyIntegrity covers clause 3.1.21 end to end: messages stamped by
// the test provider, then tampered, re-signed or mis-certified.
func TestVerifyIntegrity(t *testing.T) {
	w := newWorld(t)
	signedEC := stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}
	fields := normalFields("yes")
	withoutPrivateID := append(fields[:17:17], fields[18:]...)
	cases := []struct {
		name  string
		msg   func() []byte
		trust *Trust
		want  Verdict
	}{
		{"ec-dsa signed by the provider", func() []byte { return signedEC.message(t) }, w.trust, ProviderSigned},
		{"rsa sha512", func() []byte {
			return stamp{fields: normalFields("yes"), body: body, alg: "sha512/rsa", key: w.rsaKey, cert: w.rsaCert}.message(t)
		}, w.trust, ProviderSigned},
		{"rsassa-pss sha384", func() []byte {
			return stamp{fields: normalFields("yes"), body: body, alg: "sha384/rsassa-pss", key: w.rsaKey, cert: w.rsaCert}.message(t)
		}, w.trust, ProviderSigned},
		{"without private id", func() []byte {
			return stamp{fields: withoutPrivateID, body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
		}, w.trust, ProviderSigned},
		{"hash only", func() []byte { return stamp{fields: normalFields("no"), body: body, alg: "sha256"}.message(t) }, w.trust, HashIntact},
		{"hash only but absenderbestätigt", func() []byte { return stamp{fields: normalFields("yes"), body: body, alg: "sha256"}.message(t) }, w.trust, NotTR},
		{"tampered body", func() []byte { return replace(signedEC.message(t), "anbei mein", "anbei kein") }, w.trust, Broken},
		{"tampered body of a hashed message", func() []byte {
			return replace(stamp{fields: normalFields("no"), body: body, alg: "sha256"}.message(t), "anbei mein", "anbei kein")
		}, w.trust, Broken},
		{"tampered subject", func() []byte {
			return replace(signedEC.message(t), "Subject: Antrag", "Subject: Rücknahme")
		}, w.trust, Broken},
		{"tampered option", func() []byte {
			return replace(signedEC.message(t), "X-de-mail-confirmation-of-retrieve: no", "X-de-mail-confirmation-of-retrieve: yes")
		}, w.trust, Broken},
		{"tampered hashed header", func() []byte {
			return replace(stamp{fields: normalFields("no"), body: body, alg: "sha256"}.message(t), "eID", "PIN")
		}, w.trust, Broken},
		{"spoofed subject added on top", func() []byte { return append([]byte("Subject: Gefälscht\r\n"), signedEC.message(t)...) }, w.trust, Broken},
		{"actual recipient rewritten (forwarding, not protected)", func() []byte {
			return replace(signedEC.message(t), "X-de-mail-actual-recipient: to=poststelle@", "X-de-mail-actual-recipient: to=bauamt@")
		}, w.trust, ProviderSigned},
		{"trailing empty lines added to the body", func() []byte { return append(signedEC.message(t), "\r\n\r\n"...) }, w.trust, ProviderSigned},
		{"certificate of another CA", func() []byte {
			return stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.foreign}.message(t)
		}, w.trust, Untrusted},
		{"provider not configured", func() []byte { return signedEC.message(t) }, nil, Untrusted},
		{"expired provider certificate", func() []byte {
			return stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.expired}.message(t)
		}, w.trust, Expired},
		{"certificate not matching the signing key", func() []byte {
			return stamp{fields: normalFields("yes"), body: body, alg: "sha256/rsa", key: w.rsaKey, cert: w.ecCert}.message(t)
		}, w.trust, Broken},
		{"header list not the TR's", func() []byte {
			return stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert,
				h: []string{"From", "Subject", "X-de-mail-message-id"}}.message(t)
		}, w.trust, NotTR},
		{"header list in another order", func() []byte {
			h := append([]string{"Date", "From"}, trHeaderOrder[2:]...)
			return stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert, h: h}.message(t)
		}, w.trust, NotTR},
		{"sha1 refused", func() []byte {
			return replace(signedEC.message(t), "a=sha256/ec-dsa", "a=sha1/ec-dsa")
		}, w.trust, NotTR},
		{"relaxed canonicalisation refused", func() []byte {
			return replace(signedEC.message(t), "c=simple/simple", "c=relaxed/relaxed")
		}, w.trust, NotTR},
		{"signed without q tag", func() []byte {
			return replace(signedEC.message(t), "q=x-header/x-de-mail-signature-certificate; ", "")
		}, w.trust, NotTR},
		{"signed without certificate", func() []byte {
			return replace(signedEC.message(t), "X-de-mail-signature-certificate:", "X-Other-Certificate:")
		}, w.trust, NotTR},
		{"no integrity field", func() []byte {
			return replace(signedEC.message(t), "X-de-mail-integrity:", "X-Other-Integrity:")
		}, w.trust, Missing},
		{"duplicate tag", func() []byte { return replace(signedEC.message(t), "v=1;", "v=1; v=1;") }, w.trust, NotTR},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Verify(c.msg(), c.trust, time.Now())
			if got.Verdict != c.want {
				t.Fatalf("verdict %s (%s), want %s", got.Verdict, got.Detail, c.want)
			}
			if got.Trusted() != (c.want == ProviderSigned) {
				t.Errorf("Trusted() = %v", got.Trusted())
			}
		})
	}
}

// TestVerifyIgnoresLengthTag: the TR forbids "l" and says to ignore it, so
// content appended after the length still breaks the body hash.
func TestVerifyIgnoresLengthTag(t *testing.T) {
	w := newWorld(t)
	s := stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert, extra: "l=10; "}
	got := Verify(s.message(t), w.trust, time.Now())
	if got.Verdict != ProviderSigned || len(got.Notes) == 0 || !strings.Contains(got.Notes[0], "l tag") {
		t.Fatalf("verdict %s, notes %v", got.Verdict, got.Notes)
	}
	got = Verify(append(s.message(t), "Nachtrag\r\n"...), w.trust, time.Now())
	if got.Verdict != Broken {
		t.Fatalf("appended body: verdict %s", got.Verdict)
	}
}

// TestVerifyPinnedCertificate: with pins, a certificate of the right CA
// but not pinned is untrusted.
func TestVerifyPinnedCertificate(t *testing.T) {
	w := newWorld(t)
	tr, err := NewTrust([]Provider{{Name: "Provider.De-Mail.Example.", Anchors: []*cert.Certificate{w.ca.cert},
		Pinned: [][32]byte{sha256.Sum256(w.rsaCert)}}})
	if err != nil {
		t.Fatal(err)
	}
	ec := stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
	if got := Verify(ec, tr, time.Now()); got.Verdict != Untrusted {
		t.Errorf("unpinned: %s (%s)", got.Verdict, got.Detail)
	}
	rs := stamp{fields: normalFields("yes"), body: body, alg: "sha256/rsa", key: w.rsaKey, cert: w.rsaCert}.message(t)
	if got := Verify(rs, tr, time.Now()); got.Verdict != ProviderSigned {
		t.Errorf("pinned: %s (%s)", got.Verdict, got.Detail)
	}
}

func TestNewTrustRefuses(t *testing.T) {
	ca := newCA(t, "CA")
	for name, p := range map[string][]Provider{
		"no fqdn":    {{Name: "localhost", Anchors: []*cert.Certificate{ca.cert}}},
		"no anchors": {{Name: "provider.example"}},
		"twice": {{Name: "provider.example", Anchors: []*cert.Certificate{ca.cert}},
			{Name: "PROVIDER.example", Anchors: []*cert.Certificate{ca.cert}}},
	} {
		if _, err := NewTrust(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
