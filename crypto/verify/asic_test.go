package verify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/crypto/asic"
	"github.com/poststelle/poststelle/crypto/asic/asictest"
	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/crypto/xmldsig/xmldsigtest"
)

// TestGeneratedASiC verifies ASiC-S and ASiC-E containers with CAdES and
// XAdES signatures (values by openssl) and their broken variants: a
// changed data object, an added unsigned one, a missing one. A data object
// counts as covered when a signature's reference to it matched, whatever
// the verdict on the rest of that signature.
func TestGeneratedASiC(t *testing.T) {
	p := verifytest.New(t, "p256")
	store := anchors(t, p)
	k, base := xadesSigner(t, p, "p256")
	antrag := asictest.Entry{Name: "antrag.txt", Data: []byte("Antrag auf Baugenehmigung\n")}
	plan := asictest.Entry{Name: "anlagen/lageplan.pdf", Data: []byte("%PDF-1.7 Lageplan")}
	extra := asictest.Entry{Name: "nachgereicht.txt", Data: []byte("nicht signiert")}
	changed := asictest.Entry{Name: antrag.Name, Data: []byte("Antrag auf Abriss\n")}

	xades := func(files ...asictest.Entry) asictest.Entry {
		s := base
		s.Shape = xmldsigtest.Detached
		s.Contents = map[string][]byte{}
		for _, f := range files {
			s.DetachedNames = append(s.DetachedNames, f.Name)
			s.Contents[f.Name] = f.Data
		}
		return asictest.Entry{Name: "META-INF/signatures.xml", Data: asictest.XAdESSignatures(xmldsigtest.Sign(t, k, s))}
	}
	cadesS := asictest.Entry{Name: "META-INF/signature.p7s", Data: p.Sign(t, antrag.Data, false)}
	manifest := asictest.Entry{Name: "META-INF/ASiCManifest001.xml", Data: asictest.Manifest("META-INF/signature001.p7s", antrag, plan)}
	cadesE := asictest.Entry{Name: "META-INF/signature001.p7s", Data: p.Sign(t, manifest.Data, false)}
	mS, mE := asictest.MimeType(asic.MimeTypeS), asictest.MimeType(asic.MimeTypeE)
	xE := xades(antrag, plan)

	cases := []struct {
		name      string
		entries   []asictest.Entry
		ind       report.Indication
		sub       report.SubIndication
		typ       string
		uncovered string
		format    string
	}{
		{"ASiC-S CAdES", []asictest.Entry{mS, antrag, cadesS}, report.TotalPassed, "", asic.TypeS, "", "CAdES-BASELINE-B"},
		{"ASiC-S CAdES changed", []asictest.Entry{mS, changed, cadesS}, report.TotalFailed, report.HashFailure, asic.TypeS, "antrag.txt", "CAdES-BASELINE-B"},
		{"ASiC-S XAdES", []asictest.Entry{mS, antrag, xades(antrag)}, report.TotalPassed, "", asic.TypeS, "", "XAdES-BES"},
		{"ASiC-E XAdES", []asictest.Entry{mE, antrag, plan, xE}, report.TotalPassed, "", asic.TypeE, "", "XAdES-BES"},
		{"ASiC-E XAdES unsigned extra file", []asictest.Entry{mE, antrag, plan, extra, xE}, report.TotalPassed, "", asic.TypeE, "nachgereicht.txt", "XAdES-BES"},
		{"ASiC-E XAdES changed", []asictest.Entry{mE, changed, plan, xE}, report.TotalFailed, report.HashFailure, asic.TypeE, "antrag.txt", "XAdES-BES"},
		{"ASiC-E XAdES file missing", []asictest.Entry{mE, antrag, xE}, report.Indeterminate, report.SignedDataNotFound, asic.TypeE, "", "XAdES-BES"},
		{"ASiC-E CAdES manifest", []asictest.Entry{mE, antrag, plan, manifest, cadesE}, report.TotalPassed, "", asic.TypeE, "", "CAdES-BASELINE-B"},
		{"ASiC-E CAdES manifest, file changed", []asictest.Entry{mE, changed, plan, manifest, cadesE}, report.TotalFailed, report.HashFailure, asic.TypeE, "antrag.txt", "CAdES-BASELINE-B"},
		{"ASiC-E CAdES manifest, extra file", []asictest.Entry{mE, antrag, plan, extra, manifest, cadesE}, report.TotalPassed, "", asic.TypeE, "nachgereicht.txt", "CAdES-BASELINE-B"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := verify.Verify(context.Background(), asictest.Zip(t, c.entries...), verify.Options{Trust: store})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Signatures) != 1 {
				t.Fatalf("%d signatures", len(rep.Signatures))
			}
			s := rep.Signatures[0]
			if s.Indication != c.ind || s.SubIndication != c.sub || s.Format != c.format {
				t.Errorf("%s %s/%s, want %s %s/%s; %+v", s.Format, s.Indication, s.SubIndication, c.format, c.ind, c.sub, s.Checks)
			}
			if rep.Container == nil || rep.Container.Type != c.typ {
				t.Fatalf("container %+v", rep.Container)
			}
			if got := strings.Join(rep.Container.Uncovered, ","); got != c.uncovered {
				t.Errorf("uncovered %q, want %q", got, c.uncovered)
			}
			if want := c.ind == report.TotalPassed && c.uncovered == ""; verify.AllPassed(rep) != want {
				t.Errorf("AllPassed %v, want %v", !want, want)
			}
			if err := rep.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestASiCRefused(t *testing.T) {
	for name, data := range map[string][]byte{
		"plain zip":  asictest.Zip(t, asictest.Entry{Name: "a.txt", Data: []byte("a")}),
		"traversal":  asictest.Zip(t, asictest.Entry{Name: "../a.txt", Data: []byte("a")}, asictest.Entry{Name: "META-INF/signature.p7s", Data: []byte{0x30}}),
		"broken zip": []byte("PK\x03\x04 not really"),
	} {
		if rep, err := verify.Verify(context.Background(), data, verify.Options{}); err == nil || rep != nil {
			t.Errorf("%s: no error", name)
		}
	}
}
