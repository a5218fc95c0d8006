package trust

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/internal/corpus"
)

// TestGematikTSLSignerChain loads the gematik TSL (brainpoolP256r1, TSL
// version 3) through the offline cache, makes its services trust anchors
// and validates the TSL's own signer, "TSL Signing Unit 4", at the list's
// signing time: a brainpool ECDSA path TSL Signing Unit 4 → GEM.TSL-CA3.
func TestGematikTSLSignerChain(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile(corpus.Path(t, "signatures", "xades", "xades-ecc-brainpool.xml"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore()
	if err := s.LoadAnchors(ctx, corpus.Path(t, "signatures", "tl", "gematik-TSL-Signing-Unit-4.pem")); err != nil {
		t.Fatal(err)
	}
	signer := s.Anchors()[0].Cert
	cfg := trustedlist.Config{SigningCertificates: []*cert.Certificate{signer}, AcceptedVersions: []int{3}}
	cache := &trustedlist.Cache{Dir: filepath.Join(t.TempDir(), "tl")}
	if _, err := cache.Store(ctx, "gematik", data, cfg); err != nil {
		t.Fatal(err)
	}
	tl, err := cache.Load(ctx, "gematik", cfg)
	if err != nil {
		t.Fatal(err)
	}
	tlStore := NewStore()
	if err := tlStore.AddTrustedList(tl); err != nil {
		t.Fatal(err)
	}
	if n := len(tlStore.Anchors()); n < 100 {
		t.Errorf("%d anchors from the TSL", n)
	}
	at := tl.Signature.SigningTime
	if at.IsZero() || at.Year() != 2021 {
		t.Fatalf("signing time %v", at)
	}
	r := tlStore.Validate(Input{Leaf: signer, Time: at, RevocationOptional: true})
	if r.Indication != Passed || len(r.Chain) != 2 || subject(r.Chain[1]) != "GEM.TSL-CA3" {
		t.Fatalf("%s/%s chain %d %+v", r.Indication, r.SubIndication, len(r.Chain), r.Checks)
	}
	// The gematik services are CA/PKC, not CA/QC: no eIDAS qualification.
	if got := r.SignatureQualification(Passed); got != SigNA {
		t.Errorf("qualification %s", got)
	}
	// After the signer expired (2025-05-26) without proof of existence.
	r = tlStore.Validate(Input{Leaf: signer, Time: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), RevocationOptional: true})
	if r.SubIndication != SubOutOfBoundsNoPOE {
		t.Errorf("after expiry %s/%s", r.Indication, r.SubIndication)
	}
}
