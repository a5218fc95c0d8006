package verify_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/report"
	"github.com/poststelle/poststelle/crypto/tsp/tsptest"
	"github.com/poststelle/poststelle/crypto/verify"
	"github.com/poststelle/poststelle/crypto/verify/verifytest"
	"github.com/poststelle/poststelle/crypto/xmldsig/xmldsigtest"
)

const antragXML = `<?xml version="1.0" encoding="UTF-8"?>
<antrag xmlns="urn:example:antrag"><az>63-2026-117</az><text>Guten Tag</text></antrag>`

// sha256AlgID is the DER AlgorithmIdentifier of SHA-256 (with NULL).
var sha256AlgID, _ = hex.DecodeString("300d06096086480165030402010500")

// xadesSigner signs with the verifytest signer, whose certificate chains to
// the verifytest CA; its CRL goes into the signature as a revocation value.
func xadesSigner(t *testing.T, p *verifytest.PKI, kt string) (*xmldsigtest.Key, xmldsigtest.Spec) {
	t.Helper()
	method := xmldsigtest.RSASHA256
	if kt == "p256" {
		method = xmldsigtest.ECDSASHA256
	}
	k := xmldsigtest.KeyFromFiles(t, p.SignerKey, p.SignerCert, method)
	return k, xmldsigtest.Spec{XAdES: true, CertificateValues: [][]byte{pemFile(t, p.CACert)}, CRLValues: [][]byte{p.CRL}}
}

func pemFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM in %s", path)
	}
	return blk.Bytes
}

// TestGeneratedXAdES verifies XAdES signatures of every shape made with
// the openssl-backed signer, end to end through Verify, and their broken
// and wrapped variants.
func TestGeneratedXAdES(t *testing.T) {
	for _, kt := range []string{"rsa", "p256"} {
		t.Run(kt, func(t *testing.T) {
			p := verifytest.New(t, kt)
			store := anchors(t, p)
			k, base := xadesSigner(t, p, kt)
			content := []byte("Antrag auf Erteilung einer Baugenehmigung\n")
			sign := func(shape string) []byte {
				s := base
				s.Shape, s.Document, s.Content = shape, antragXML, content
				return xmldsigtest.Sign(t, k, s)
			}
			enveloped, enveloping, detached := sign(xmldsigtest.Enveloped), sign(xmldsigtest.Enveloping), sign(xmldsigtest.Detached)
			// The signature moved into a new document element: the old
			// document is still signed, but it is not what a reader sees.
			wrapped := []byte(`<wrapper><antrag xmlns="urn:example:antrag"><az>99-FAKE</az></antrag>` +
				string(bytes.TrimPrefix(enveloping, []byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"))) + `</wrapper>`)
			cases := []struct {
				name   string
				data   []byte
				opts   verify.Options
				ind    report.Indication
				sub    report.SubIndication
				format string
			}{
				{"enveloped", enveloped, verify.Options{Trust: store}, report.TotalPassed, "", "XAdES-BES"},
				{"enveloping", enveloping, verify.Options{Trust: store}, report.TotalPassed, "", "XAdES-BES"},
				{"detached", detached, verify.Options{Trust: store, Detached: content}, report.TotalPassed, "", "XAdES-BES"},
				{"detached without content", detached, verify.Options{Trust: store}, report.Indeterminate, report.SignedDataNotFound, "XAdES-BES"},
				{"detached other content", detached, verify.Options{Trust: store, Detached: []byte("x")}, report.TotalFailed, report.HashFailure, "XAdES-BES"},
				{"enveloped tampered", bytes.Replace(enveloped, []byte("63-2026-117"), []byte("63-2026-118"), 1), verify.Options{Trust: store}, report.TotalFailed, report.HashFailure, "XAdES-BES"},
				{"no anchor", enveloped, verify.Options{}, report.Indeterminate, report.NoCertificateChainFound, "XAdES-BES"},
				{"wrapped", wrapped, verify.Options{Trust: store}, report.Indeterminate, report.SignedDataNotFound, "XAdES-BES"},
				{"value broken", bytes.Replace(enveloped, []byte(`Id="ref-1"`), []byte(`Id="ref-X"`), 1), verify.Options{Trust: store}, report.TotalFailed, report.SigCryptoFailure, "XAdES-BES"},
			}
			for _, c := range cases {
				rep, err := verify.Verify(context.Background(), c.data, c.opts)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if len(rep.Signatures) != 1 {
					t.Fatalf("%s: %d signatures", c.name, len(rep.Signatures))
				}
				s := rep.Signatures[0]
				if s.Indication != c.ind || s.SubIndication != c.sub || s.Format != c.format {
					t.Errorf("%s: %s %s/%s, want %s %s/%s; %+v", c.name, s.Format, s.Indication, s.SubIndication, c.format, c.ind, c.sub, s.Checks)
				}
				if err := rep.Validate(); err != nil {
					t.Errorf("%s: invalid report: %v", c.name, err)
				}
				if s.Signer == nil || s.SigningTime == nil {
					t.Errorf("%s: signer %v signing time %v", c.name, s.Signer, s.SigningTime)
				}
			}
		})
	}
}

// TestXAdESTimestamp: a XAdES-T signature whose SignatureTimeStamp (from
// the test TSA) covers the canonical SignatureValue: the timestamp passes
// with the TSA trusted, is the best signature time, and fails after the
// SignatureValue changes.
func TestXAdESTimestamp(t *testing.T) {
	p := verifytest.New(t, "p256")
	tsa := tsptest.New(t, tsptest.Normal)
	tsaPEM := filepath.Join(t.TempDir(), "tsa.pem")
	if err := os.WriteFile(tsaPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tsa.CertDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := verify.LoadTrust(context.Background(), verify.TrustConfig{Paths: []string{p.CACert, tsaPEM}})
	if err != nil {
		t.Fatal(err)
	}
	k, spec := xadesSigner(t, p, "p256")
	spec.Shape, spec.Document = xmldsigtest.Enveloped, antragXML
	spec.CertificateValues, spec.CRLValues = nil, nil
	spec.Timestamp = func(digest []byte) []byte { return tsa.Token(sha256AlgID, digest, nil) }
	data := xmldsigtest.Sign(t, k, spec)

	rep, err := verify.Verify(context.Background(), data, verify.Options{Trust: store})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Signatures[0]
	if s.Format != "XAdES-T" || len(s.Timestamps) != 1 {
		t.Fatalf("format %s, %d timestamps", s.Format, len(s.Timestamps))
	}
	ts := s.Timestamps[0]
	if ts.Type != report.SignatureTimestamp || ts.Indication != report.Passed {
		t.Errorf("timestamp %s %s/%s: %+v", ts.Type, ts.Indication, ts.SubIndication, ts.Checks)
	}
	if s.BestSignatureTime == nil || !s.BestSignatureTime.Equal(ts.GenTime) || time.Since(ts.GenTime) > time.Hour {
		t.Errorf("best signature time %v, timestamp %v", s.BestSignatureTime, ts.GenTime)
	}
	// The CRL is not in this signature: the chain is not conclusive, the
	// signature's own verdict follows it.
	if s.Indication != report.Indeterminate {
		t.Errorf("signature %s/%s without revocation data", s.Indication, s.SubIndication)
	}

	// Another signature's timestamp: the imprint does not match.
	other := xmldsigtest.Sign(t, k, xmldsigtest.Spec{Shape: xmldsigtest.Enveloped, Document: antragXML, XAdES: true})
	stolen := graft(t, other, data)
	rep, err = verify.Verify(context.Background(), stolen, verify.Options{Trust: store})
	if err != nil {
		t.Fatal(err)
	}
	if ts := rep.Signatures[0].Timestamps; len(ts) != 1 || ts[0].Indication != report.Failed || ts[0].SubIndication != report.HashFailure {
		t.Errorf("grafted timestamp: %+v", ts)
	}
}

// graft copies the unsigned properties of from into to.
func graft(t *testing.T, to, from []byte) []byte {
	t.Helper()
	const start, end = "<xades:UnsignedProperties>", "</xades:UnsignedProperties>"
	f := string(from)
	i, j := strings.Index(f, start), strings.Index(f, end)
	if i < 0 || j < 0 {
		t.Fatal("no unsigned properties")
	}
	out := strings.Replace(string(to), "</xades:SignedProperties></xades:QualifyingProperties>", "</xades:SignedProperties>"+f[i:j+len(end)]+"</xades:QualifyingProperties>", 1)
	if out == string(to) {
		t.Fatal("graft did not apply")
	}
	return []byte(out)
}

// TestXMLRefusals: XML without a signature and DTDs are no signature to
// judge.
func TestXMLRefusals(t *testing.T) {
	for name, data := range map[string]string{
		"no signature": `<a/>`,
		"dtd":          `<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>`,
		"malformed":    `<a><b></a>`,
	} {
		if rep, err := verify.Verify(context.Background(), []byte(data), verify.Options{}); err == nil || rep != nil || !strings.Contains(err.Error(), "not a readable signature") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestXAdESDetachedStreamed: detached content given as a reader gives the
// same verdict as in memory, and a failing reader is an error to retry.
func TestXAdESDetachedStreamed(t *testing.T) {
	p := verifytest.New(t, "p256")
	k, spec := xadesSigner(t, p, "p256")
	content := []byte("Antrag\n")
	spec.Shape, spec.Content = xmldsigtest.Detached, content
	data := xmldsigtest.Sign(t, k, spec)
	rep, err := verify.Verify(context.Background(), data, verify.Options{Trust: anchors(t, p), DetachedReader: opener(content)})
	if err != nil || rep.Signatures[0].Indication != report.TotalPassed {
		t.Fatalf("streamed: %v %+v", err, rep)
	}
	broken := func() (io.ReadCloser, error) { return nil, errors.New("disk on fire") }
	if _, err := verify.Verify(context.Background(), data, verify.Options{DetachedReader: broken}); !errors.Is(err, verify.ErrContentRead) {
		t.Errorf("failing reader: %v", err)
	}
}
