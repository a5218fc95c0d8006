package demail

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/crypto/trustedlist/tltest"
	"github.com/poststelle/poststelle/crypto/verify"
)

// writePEM writes der as one PEM block of typ and returns the file.
func writePEM(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// crlOf is ca's CRL, issued an hour ago, listing serials as revoked since
// revokedAt.
func crlOf(t testing.TB, ca *testCA, revokedAt time.Time, serials ...*big.Int) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, s := range serials {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: revokedAt})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.x, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// schemeOperator signs test trusted lists.
type schemeOperator struct {
	key  *rsa.PrivateKey
	x    *x509.Certificate
	file string // its certificate as PEM, for tl_signers
}

func newSchemeOperator(t testing.TB) *schemeOperator {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Test TL Scheme Operator"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := x509.ParseCertificate(der)
	return &schemeOperator{key: key, x: x, file: writePEM(t, "tl-signer.pem", "CERTIFICATE", der)}
}

// list writes a trusted list naming services and returns its file.
func (op *schemeOperator) list(t testing.TB, services ...tltest.Service) string {
	t.Helper()
	data, err := tltest.Sign(tltest.List{Territory: "DE", Services: services}, op.key, op.x)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "tl.xml")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// qualify configures c as an operator of a qualified provider does: the
// trusted list that names the provider's CA as a granted CA/QC service,
// and the CA's current CRL.
func (w *world) qualify(t testing.TB, c *Config) {
	t.Helper()
	op := newSchemeOperator(t)
	c.Qualification = &QualificationConfig{TrustedLists: []string{op.list(t, tltest.Service{CA: w.ca.x})}, TLSigners: []string{op.file}}
	c.Providers[0].CRLFiles = []string{writePEM(t, "provider-ca.crl", "X509 CRL", crlOf(t, w.ca, time.Time{}))}
}

// TestWrittenFormNeedsQualifiedSeal checks that only a qualified seal of
// the provider, with its revocation status known, satisfies the written
// form (De-Mail-Gesetz § 5 Abs. 5), and that every other outcome says why.
func TestWrittenFormNeedsQualifiedSeal(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	qc := tltest.QCStatements(tltest.QCESeal, true)
	revokedDER := w.ca.issue(t, w.ecKey, now.Add(-time.Hour), now.Add(24*time.Hour), qc)
	revoked, err := cert.Parse(revokedDER)
	if err != nil {
		t.Fatal(err)
	}
	plainDER := w.ca.issue(t, w.ecKey, now.Add(-time.Hour), now.Add(24*time.Hour))
	noQSCD := w.ca.issue(t, w.ecKey, now.Add(-time.Hour), now.Add(24*time.Hour), tltest.QCStatements(tltest.QCESeal, false))
	crl, err := trust.ParseCRL(crlOf(t, w.ca, now.Add(-30*time.Minute), revoked.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	op := newSchemeOperator(t)
	granted := op.list(t, tltest.Service{CA: w.ca.x})
	withdrawn := op.list(t, tltest.Service{CA: w.ca.x, Status: trustedlist.StatusWithdrawn, StatusStart: now.Add(-24 * time.Hour),
		History: []tltest.State{{Status: trustedlist.StatusGranted, StatusStart: now.Add(-365 * 24 * time.Hour)}}})
	otherCA := op.list(t, tltest.Service{CA: w.otherCA.x})

	for _, tc := range []struct {
		name          string
		certDER       []byte
		authoritative string
		list          string // "" for no trusted list
		crls          []*trust.CRL
		verdict       Verdict
		qualification string
		writtenForm   bool
		problem       string // "" for none
	}{
		{"qualified seal, not revoked", w.ecCert, "yes", granted, []*trust.CRL{crl}, ProviderSigned, trust.QESeal, true, ""},
		{"qualified seal, not absenderbestätigt", w.ecCert, "no", granted, []*trust.CRL{crl}, ProviderSigned, trust.QESeal, false, ""},
		{"no trusted list configured", w.ecCert, "yes", "", []*trust.CRL{crl}, ProviderSigned, NotChecked, false,
			"demail: written form not established"},
		{"revocation status unknown", w.ecCert, "yes", granted, nil, ProviderSigned, trust.IndeterminatePrefix + trust.QESeal, false,
			"demail: written form not established"},
		{"revoked certificate", revokedDER, "yes", granted, []*trust.CRL{crl}, Revoked, "", false, "demail: integrity certificate-revoked"},
		{"service withdrawn", w.ecCert, "yes", withdrawn, []*trust.CRL{crl}, ProviderSigned, trust.AdESeal, false,
			"demail: written form not established"},
		{"provider CA not on the list", w.ecCert, "yes", otherCA, []*trust.CRL{crl}, ProviderSigned, trust.SigNA, false,
			"demail: written form not established"},
		// Without a QcType the type defaults to eSig (EN 319 412-5), as DSS has it.
		{"certificate not qualified", plainDER, "yes", granted, []*trust.CRL{crl}, ProviderSigned, trust.AdESig, false,
			"demail: written form not established"},
		{"qualified, key not on a QSCD", noQSCD, "yes", granted, []*trust.CRL{crl}, ProviderSigned, trust.AdESealQC, false,
			"demail: written form not established"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewTrust([]Provider{{Name: providerName, Anchors: []*cert.Certificate{w.ca.cert}, CRLs: tc.crls}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.list != "" {
				store, err := verify.LoadTrust(context.Background(), verify.TrustConfig{Paths: []string{tc.list}, TLSigners: []string{op.file}})
				if err != nil {
					t.Fatal(err)
				}
				tr = tr.WithQualification(store)
			}
			msg := stamp{fields: normalFields(tc.authoritative), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: tc.certDER}.message(t)
			h, in := Parse(msg), Verify(msg, tr, now)
			ev, problems := Evidence(h, in), Problems(h, in)
			if in.Verdict != tc.verdict || in.Qualification != tc.qualification || ev.WrittenForm != tc.writtenForm {
				t.Fatalf("verdict %q qualification %q (%s) written form %v; want %q %q %v", in.Verdict, in.Qualification,
					in.QualificationDetail, ev.WrittenForm, tc.verdict, tc.qualification, tc.writtenForm)
			}
			if ev.Qualification != in.Qualification || ev.QualificationDetail != in.QualificationDetail {
				t.Errorf("evidence %q/%q, integrity %q/%q", ev.Qualification, ev.QualificationDetail, in.Qualification, in.QualificationDetail)
			}
			switch {
			case tc.problem == "" && len(problems) != 0:
				t.Errorf("problems %q, want none", problems)
			case tc.problem != "" && !hasPrefix(problems, tc.problem):
				t.Errorf("problems %q lack %q", problems, tc.problem)
			}
			if tc.writtenForm && !strings.Contains(in.QualificationDetail, "not revoked") && !strings.Contains(in.QualificationDetail, "good") {
				t.Errorf("detail %q does not name the revocation status", in.QualificationDetail)
			}
		})
	}
}

// TestQualificationConfig checks the demail.qualification section and the
// CRL files: errors name the field, and a list signed by anyone but the
// configured signer is refused.
func TestQualificationConfig(t *testing.T) {
	w := newWorld(t)
	op, stranger := newSchemeOperator(t), newSchemeOperator(t)
	list := op.list(t, tltest.Service{CA: w.ca.x})
	junk := filepath.Join(t.TempDir(), "junk.crl")
	if err := os.WriteFile(junk, []byte("no CRL"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func() Config {
		return Config{Providers: []ProviderConfig{{Name: providerName, CAFile: caFile(t, w.ca)}}}
	}
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string // in the error of Validate or LoadTrust
	}{
		{"no lists", func(c *Config) { c.Qualification = &QualificationConfig{TLSigners: []string{op.file}} }, "qualification.trusted_lists: required"},
		{"no signer", func(c *Config) { c.Qualification = &QualificationConfig{TrustedLists: []string{list}} }, "qualification.tl_signers: required"},
		{"list signed by another", func(c *Config) {
			c.Qualification = &QualificationConfig{TrustedLists: []string{list}, TLSigners: []string{stranger.file}}
		}, "qualification: "},
		{"unreadable CRL", func(c *Config) { c.Providers[0].CRLFiles = []string{junk} }, "providers[0].crl_files[0]: "},
		{"missing CRL", func(c *Config) { c.Providers[0].CRLFiles = []string{junk + ".absent"} }, "providers[0].crl_files[0]: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.modify(&c)
			err := c.Validate()
			if err == nil {
				_, err = c.LoadTrust()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	c := base()
	w.qualify(t, &c)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tr, err := c.LoadTrust()
	if err != nil {
		t.Fatal(err)
	}
	msg := stamp{fields: normalFields("yes"), body: body, alg: "sha256/ec-dsa", key: w.ecKey, cert: w.ecCert}.message(t)
	if in := Verify(msg, tr, time.Now()); !in.Qualified() {
		t.Fatalf("configured qualification: %q (%s)", in.Qualification, in.QualificationDetail)
	}
}
