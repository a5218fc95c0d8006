package cert_test

import (
	"encoding/asn1"
	"os"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/cms"
	"github.com/poststelle/poststelle/internal/corpus"
)

func signerCertificate(t *testing.T, elem ...string) *cert.Certificate {
	t.Helper()
	b, err := os.ReadFile(corpus.Path(t, append([]string{"signatures", "cades"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	sd, err := cms.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	r := sd.Verify(cms.VerifyOptions{}).Signers[0]
	if r.Certificate == nil {
		t.Fatal("no signing certificate")
	}
	return r.Certificate
}

func TestQCStatementsOfRealSigners(t *testing.T) {
	tests := []struct {
		file                   []string
		compliance, sscd, isQC bool
		retention              int
		policies               int
	}{
		{[]string{"Signature-C-DE_CRY-3.p7m"}, true, false, true, 30, 1},
		{[]string{"dss-916", "test.txt.signed.qes.attached.p7s"}, true, true, true, 0, 2},
		{[]string{"dss-667", "DER_reordered_prova.txt.p7m"}, true, true, true, 20, 1},
		{[]string{"wrongContentHints.p7m"}, false, false, false, 0, 2},
	}
	for _, tt := range tests {
		c := signerCertificate(t, tt.file...)
		if (c.QC != nil) != tt.isQC {
			t.Fatalf("%v: QC statements present=%v", tt.file, c.QC != nil)
		}
		if c.QC != nil && (c.QC.Compliance != tt.compliance || c.QC.SSCD != tt.sscd || c.QC.RetentionPeriod != tt.retention) {
			t.Errorf("%v: %+v", tt.file, c.QC)
		}
		if len(c.Policies) != tt.policies {
			t.Errorf("%v: %d policies", tt.file, len(c.Policies))
		}
	}
	// dss-667's signer has a malformed (non-minimal length) non-critical
	// policies extension: recorded, not fatal.
	if c := signerCertificate(t, "dss-667", "DER_reordered_prova.txt.p7m"); len(c.ExtensionErrors) != 1 {
		t.Errorf("extension errors: %v", c.ExtensionErrors)
	}
}

func TestParseQCStatementsSynthetic(t *testing.T) {
	var b cryptobyte.Builder
	stmt := func(oid asn1.ObjectIdentifier, info func(*cryptobyte.Builder)) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			if info != nil {
				info(b)
			}
		})
	}
	var outer cryptobyte.Builder
	stmt(cert.OIDQcCompliance, nil)
	stmt(cert.OIDQcSSCD, nil)
	stmt(cert.OIDQcType, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(cert.OIDQcTypeESeal) })
	})
	stmt(cert.OIDQcPDS, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.IA5String, func(b *cryptobyte.Builder) { b.AddBytes([]byte("https://pds.example/de")) })
				b.AddASN1(cbasn1.PrintableString, func(b *cryptobyte.Builder) { b.AddBytes([]byte("de")) })
			})
		})
	})
	stmt(cert.OIDQcCCLegislation, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.PrintableString, func(b *cryptobyte.Builder) { b.AddBytes([]byte("DE")) })
		})
	})
	stmt(cert.OIDQcsPkixQCSyntaxV2, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(cert.OIDSemanticsEIDASLegal) })
	})
	stmt(cert.OIDQcType, func(b *cryptobyte.Builder) { b.AddASN1Int64(5) }) // malformed info
	outer.AddASN1(cbasn1.SEQUENCE, func(o *cryptobyte.Builder) { o.AddBytes(b.BytesOrPanic()) })
	q, err := cert.ParseQCStatements(outer.BytesOrPanic())
	if err != nil {
		t.Fatal(err)
	}
	if !q.Compliance || !q.SSCD || !q.HasType(cert.OIDQcTypeESeal) || q.HasType(cert.OIDQcTypeESign) ||
		len(q.PDS) != 1 || q.PDS[0].Language != "de" || len(q.CCLegislation) != 1 || q.CCLegislation[0] != "DE" ||
		len(q.SemanticsIDs) != 1 || !q.SemanticsIDs[0].Equal(cert.OIDSemanticsEIDASLegal) || len(q.Errors) != 1 {
		t.Errorf("%+v", q)
	}
	if _, err := cert.ParseQCStatements([]byte{0x30, 0x03, 0x02, 0x01}); err == nil {
		t.Error("truncated statements accepted")
	}
}
