package trust

import (
	"testing"

	"github.com/poststelle/poststelle/crypto/cert"
)

// BenchmarkValidate measures building and validating a root → intermediate
// → leaf P-256 path with one CRL per CA (signature checks included).
func BenchmarkValidate(b *testing.B) {
	p := newTestPKI(b)
	s := p.store()
	in := Input{Leaf: p.cert["leaf"], Intermediates: []*cert.Certificate{p.cert["sub"], p.cert["int"]},
		CRLs: []*CRL{p.crl("int"), p.crl("root")}, Time: p.now}
	if r := s.Validate(in); r.Indication != Passed {
		b.Fatalf("%s/%s", r.Indication, r.SubIndication)
	}
	b.ResetTimer()
	for b.Loop() {
		s.Validate(in)
	}
}
