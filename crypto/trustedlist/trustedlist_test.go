package trustedlist

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/xmldsig"
	"github.com/poststelle/poststelle/internal/corpus"
)

func readCorpus(t testing.TB, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(corpus.Path(t, append([]string{"signatures"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gematikSigner(t testing.TB) []*cert.Certificate {
	t.Helper()
	cs, err := cert.ParseAll(readCorpus(t, "tl", "gematik-TSL-Signing-Unit-4.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// keyInfoSigner returns the certificate in the list's own KeyInfo, standing
// in for the signing certificate the LOTL would publish.
func keyInfoSigner(t testing.TB, data []byte) []*cert.Certificate {
	t.Helper()
	_, sig, err := xmldsig.ParseAndVerify(data, xmldsig.Limits{}, xmldsig.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return []*cert.Certificate{sig.Signer}
}

func TestGermanTLv4(t *testing.T) {
	data := readCorpus(t, "tl", "de-tl.xml")
	signers := keyInfoSigner(t, data)
	// DSS refuses v4 by default; so do we.
	tl, err := Load(data, Config{SigningCertificates: signers})
	if !errors.Is(err, ErrVersion) || tl == nil || tl.Version != 4 {
		t.Fatalf("default versions: tl=%v err=%v", tl != nil, err)
	}
	tl, err = Load(data, Config{SigningCertificates: signers, AcceptedVersions: []int{4, 5, 6}})
	if err != nil {
		t.Fatal(err)
	}
	if tl.SequenceNumber != 22 || tl.SchemeTerritory != "DE" || tl.Type != TypeEUGeneric || tl.IsLOTL() {
		t.Errorf("scheme: seq %d territory %q type %q", tl.SequenceNumber, tl.SchemeTerritory, tl.Type)
	}
	if tl.IssueDate.Format(time.DateOnly) != "2015-08-12" || tl.NextUpdate.IsZero() || len(tl.DistributionPoints) == 0 {
		t.Errorf("dates %v %v dp %v", tl.IssueDate, tl.NextUpdate, tl.DistributionPoints)
	}
	// DSS TLParsingTaskTest counts 413 distinct service certificates.
	// crypto/cert refuses 5 of them (RSA modulus encoded as a negative
	// INTEGER); they are reported as warnings, not silently dropped.
	if n := len(tl.ServiceCertificates()); n+len(tl.Warnings) != 413 || len(tl.Warnings) != 5 {
		t.Errorf("%d distinct service certificates and %d warnings, want 413 together: %v", n, len(tl.Warnings), tl.Warnings)
	}
	var qualified, withHistory, subjectNames int
	for _, p := range tl.Providers {
		for _, s := range p.Services {
			if s.Current.Type == ServiceTypeCAQC {
				qualified++
			}
			if len(s.History) > 0 {
				withHistory++
			}
			for _, h := range s.History {
				subjectNames += len(h.Identity.SubjectNames)
			}
			for _, q := range s.Current.Extensions.Qualifications {
				if len(q.Qualifiers) != 1 || q.Qualifiers[0] != QualifierQCWithSSCD || q.Criteria.Assert != "all" || len(q.Criteria.KeyUsage) == 0 {
					t.Fatalf("qualification %+v", q)
				}
			}
		}
	}
	if len(tl.Providers) != 14 || qualified == 0 || withHistory != 37 || subjectNames == 0 {
		t.Errorf("providers %d CA/QC %d with history %d subject names %d", len(tl.Providers), qualified, withHistory, subjectNames)
	}
}

func TestLOTL(t *testing.T) {
	data := readCorpus(t, "tl", "eu-lotl.xml")
	tl, err := Load(data, Config{SigningCertificates: keyInfoSigner(t, data)})
	if err != nil {
		t.Fatal(err)
	}
	if tl.Version != 5 || tl.SequenceNumber != 248 || tl.SchemeTerritory != "EU" || !tl.IsLOTL() || len(tl.Providers) != 0 {
		t.Errorf("v%d seq %d %s lotl=%v tsps=%d", tl.Version, tl.SequenceNumber, tl.SchemeTerritory, tl.IsLOTL(), len(tl.Providers))
	}
	de := tl.PointersTo("DE")
	if len(de) == 0 {
		t.Fatal("no pointer to DE")
	}
	if certs := tl.SigningCertificatesFor("DE"); len(certs) == 0 {
		t.Error("no signing certificates for DE")
	}
	for _, p := range de {
		if p.Location == "" || p.Type == "" {
			t.Errorf("pointer %+v", p)
		}
	}
}

func TestGematikTSL(t *testing.T) {
	data := readCorpus(t, "xades", "xades-ecc-brainpool.xml")
	tl, err := Load(data, Config{SigningCertificates: gematikSigner(t), AcceptedVersions: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	if tl.Version != 3 || tl.SequenceNumber != 10180 || tl.Signature.Signer.Subject.CommonName != "TSL Signing Unit 4" {
		t.Errorf("v%d seq %d signer %v", tl.Version, tl.SequenceNumber, tl.Signature.Signer.Subject)
	}
	var services int
	for _, p := range tl.Providers {
		services += len(p.Services)
	}
	if services != 148 {
		t.Errorf("%d services, want 148", services)
	}
	// Signed by a key that is not configured: refused.
	lotl := readCorpus(t, "tl", "eu-lotl.xml")
	if _, err := Load(data, Config{SigningCertificates: keyInfoSigner(t, lotl), AcceptedVersions: []int{3}}); !errors.Is(err, xmldsig.ErrSignature) {
		t.Errorf("wrong signer: %v", err)
	}
}

func TestTamperedServiceName(t *testing.T) {
	data := readCorpus(t, "xades", "xades-ecc-brainpool.xml")
	i := bytes.Index(data, []byte("<ServiceName><Name"))
	j := bytes.IndexByte(data[i+len("<ServiceName><Name"):], '>') + i + len("<ServiceName><Name") + 1
	tampered := bytes.Clone(data)
	tampered[j] ^= 0x01
	_, err := Load(tampered, Config{SigningCertificates: gematikSigner(t), AcceptedVersions: []int{3}})
	if !errors.Is(err, xmldsig.ErrDigest) {
		t.Fatalf("got %v, want digest failure", err)
	}
}

func TestCache(t *testing.T) {
	ctx := context.Background()
	data := readCorpus(t, "xades", "xades-ecc-brainpool.xml")
	cfg := Config{SigningCertificates: gematikSigner(t), AcceptedVersions: []int{3}}
	c := &Cache{Dir: filepath.Join(t.TempDir(), "tl")}
	if _, err := c.Load(ctx, "gematik", cfg); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty cache: %v", err)
	}
	if _, err := c.Store(ctx, "gematik", data, cfg); err != nil {
		t.Fatal(err)
	}
	// A bad copy is refused and the good one stays.
	bad := bytes.Replace(data, []byte("gematik GmbH"), []byte("gematik GmbX"), 1)
	if _, err := c.Store(ctx, "gematik", bad, cfg); err == nil {
		t.Fatal("tampered list stored")
	}
	tl, err := c.Load(ctx, "gematik", cfg)
	if err != nil || tl.SequenceNumber != 10180 {
		t.Fatalf("last good copy: %v", err)
	}
	if _, err := c.Store(ctx, "../x", data, cfg); err == nil {
		t.Error("path traversal name accepted")
	}
	// A tampered file on disk is detected on load.
	p := filepath.Join(c.Dir, "gematik.xml")
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(ctx, "gematik", cfg); err == nil {
		t.Error("tampered cache file loaded")
	}
}

func TestStateAt(t *testing.T) {
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	s := Service{
		Current: ServiceState{Status: StatusWithdrawn, StatusStart: d("2020-01-01")},
		History: []ServiceState{{Status: StatusGranted, StatusStart: d("2016-07-01")}, {Status: StatusAccredited, StatusStart: d("2010-01-01")}},
	}
	tests := []struct {
		at   string
		want string
		ok   bool
	}{
		{"2009-12-31", "", false},
		{"2010-01-01", StatusAccredited, true},
		{"2018-05-05", StatusGranted, true},
		{"2021-01-01", StatusWithdrawn, true},
	}
	for _, tc := range tests {
		st, ok := s.StateAt(d(tc.at))
		if ok != tc.ok || st.Status != tc.want {
			t.Errorf("%s: %q %v", tc.at, st.Status, ok)
		}
	}
}
