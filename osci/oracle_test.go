package osci

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/internal/corpus"
)

// TestSignatureOracle has xmlsec1 verify message signatures SignEnvelope made, requests
// and supplier responses without attachments (xmlsec1 cannot resolve cid:), with
// rsa-sha256 (this xmlsec1 has no RSA-PSS; xmldsig's own oracle test checks PSS values
// with openssl). A changed signed value must fail it too.
func TestSignatureOracle(t *testing.T) {
	xmlsec, err := exec.LookPath("xmlsec1")
	if err != nil {
		t.Fatal("xmlsec1 is not installed: run test/setup.sh")
	}
	dir := t.TempDir()
	cases := composeCases(t)
	for _, tc := range []struct {
		typ     MessageType
		key     string
		party   string
		certDir string
	}{
		{FetchDelivery, "alice_signature_4096", "originator", "alice_signature_4096.cer"},
		{InitDialog, "alice_signature_4096", "originator", "alice_signature_4096.cer"},
		{ResponseToFetchProcessCard, "osci_manager_signature_4096", "intermed", "osci_manager_signature_4096.cer"},
		{ResponseToStoreDelivery, "osci_manager_signature_4096", "intermed", "osci_manager_signature_4096.cer"},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			m := cases[tc.typ]
			m.Signed = true
			data, err := ComposeEnvelope(m)
			if err != nil {
				t.Fatal(err)
			}
			k := loadKey(t, tc.key)
			signed, err := SignEnvelope(context.Background(), data, SignOptions{Signer: k.Key, CertificateID: CertificateID(tc.party, "signature", k.Cert)})
			if err != nil {
				t.Fatal(err)
			}
			env, err := ParseEnvelope(signed, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"--verify", "--pubkey-cert-der", corpus.Path(t, "osci", "zertifikate", tc.certDir)}
			for _, e := range env.Doc.Root.Elements()[0].Elements() {
				args = append(args, "--id-attr:Id", e.Space+":"+e.Local)
			}
			args = append(args, "--id-attr:Id", NamespaceSOAP+":Body")
			file := filepath.Join(dir, string(tc.typ)+".xml")
			if err := os.WriteFile(file, signed, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(xmlsec, append(args, file)...).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("OK")) {
				t.Fatalf("xmlsec1: %v\n%s", err, out)
			}
			changed := strings.Replace(string(signed), `<osci:Challenge>c`, `<osci:Challenge>x`, 1)
			if changed == string(signed) {
				t.Fatal("mutation did not apply")
			}
			if err := os.WriteFile(file, []byte(changed), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(xmlsec, append(args, file)...).CombinedOutput(); err == nil {
				t.Fatalf("xmlsec1 verified a changed message:\n%s", out)
			}
		})
	}
}
