package verify_test

import (
	"context"
	"testing"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
)

// BenchmarkVerifyDetached measures the whole path for a detached CAdES-B
// signature over 4 KiB: detection, CMS parsing and checks, chain building
// and validation with the embedded CRL, report assembly.
func BenchmarkVerifyDetached(b *testing.B) {
	for _, kt := range []string{"rsa", "p256"} {
		b.Run(kt, func(b *testing.B) {
			p := verifytest.New(b, kt)
			content := make([]byte, 4096)
			sig := p.Sign(b, content, false)
			opts := verify.Options{Detached: content, Trust: anchors(b, p)}
			rep, err := verify.Verify(context.Background(), sig, opts)
			if err != nil || rep.Signatures[0].Indication != report.TotalPassed {
				b.Fatalf("%v %+v", err, rep)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := verify.Verify(context.Background(), sig, opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}
