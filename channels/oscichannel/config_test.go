package oscichannel

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/pkcs11"
	"github.com/poststelle/poststelle/internal/corpus"
)

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{PollInterval: time.Minute,
			Intermediary: IntermediaryConfig{URL: "https://intermediary.example/osci", CipherCertFile: "c.cer", SignatureCertFile: "s.cer"},
			Cipher:       KeyConfig{PKCS12File: "cipher.p12"}, Signature: KeyConfig{PKCS12File: "sig.p12"}}
	}
	token := func() *pkcs11.Config {
		return &pkcs11.Config{Module: "/usr/lib/softhsm/libsofthsm2.so", Token: "behoerde", PINFile: "pin", Label: "cipher"}
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		field  string // "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"off", func(c *Config) { *c = Config{} }, ""},
		{"no url", func(c *Config) { c.Intermediary.URL = "" }, "intermediary.url"},
		{"ftp url", func(c *Config) { c.Intermediary.URL = "ftp://x/" }, "intermediary.url"},
		{"no cipher cert", func(c *Config) { c.Intermediary.CipherCertFile = "" }, "intermediary.cipher_cert_file"},
		{"no signature cert", func(c *Config) { c.Intermediary.SignatureCertFile = "" }, "intermediary.signature_cert_file"},
		{"no cipher key", func(c *Config) { c.Cipher.PKCS12File = "" }, "cipher.pkcs12_file"},
		{"no signature key", func(c *Config) { c.Signature.PKCS12File = "" }, "signature.pkcs12_file"},
		{"pkcs11", func(c *Config) { c.Cipher = KeyConfig{PKCS11: token()}; c.Signature = KeyConfig{PKCS11: token()} }, ""},
		{"pkcs11 and pkcs12", func(c *Config) { c.Cipher.PKCS11 = token() }, "cipher"},
		{"pkcs11 no module", func(c *Config) { c.Signature = KeyConfig{PKCS11: token()}; c.Signature.PKCS11.Module = "" }, "signature"},
		{"pkcs11 no key", func(c *Config) { c.Cipher = KeyConfig{PKCS11: token()}; c.Cipher.PKCS11.Label = "" }, "cipher"},
		{"method", func(c *Config) { c.SignatureMethod = "dsa" }, "signature_method"},
		{"pss", func(c *Config) { c.SignatureMethod = "rsa-pss" }, ""},
		{"passive listen", func(c *Config) { c.Passive = &PassiveConfig{Listen: "nowhere"} }, "passive.listen"},
		{"passive tls half", func(c *Config) { c.Passive = &PassiveConfig{Listen: "127.0.0.1:8443", TLSCertFile: "x.pem"} }, "passive"},
		{"negative size", func(c *Config) { c.MaxMessageBytes = -1 }, "max_message_bytes"},
		{"vhn anchors", func(c *Config) { c.VHNAnchors = []string{"bebpo-vhn-ca.pem"} }, ""},
		{"vhn anchor empty", func(c *Config) { c.VHNAnchors = []string{"a.pem", " "} }, "vhn_anchors[1]"},
		{"vhn", func(c *Config) { c.VHN = &KeyConfig{PKCS12File: "vhn.p12"} }, ""},
		{"vhn without key", func(c *Config) { c.VHN = &KeyConfig{} }, "vhn.pkcs12_file"},
		{"business card", func(c *Config) { c.BusinessCard = &BusinessCardConfig{SafeID: "DE.Justiz.x", Role: "egvp_bebpo"} }, ""},
		{"business card without SAFE-ID", func(c *Config) { c.BusinessCard = &BusinessCardConfig{Organisation: "Stadt"} }, "business_card.safe_id"},
		{"directory", func(c *Config) {
			c.Directory = []DirectoryEntry{{SafeID: "a", CipherCertFile: "a.pem"}, {SafeID: "b", CipherCert: "PEM"}}
		}, ""},
		{"directory without SAFE-ID", func(c *Config) { c.Directory = []DirectoryEntry{{CipherCertFile: "a.pem"}} }, "directory[0].safe_id"},
		{"directory twice", func(c *Config) {
			c.Directory = []DirectoryEntry{{SafeID: "a", CipherCertFile: "a.pem"}, {SafeID: "a", CipherCertFile: "b.pem"}}
		}, "directory[1]"},
		{"directory file and PEM", func(c *Config) {
			c.Directory = []DirectoryEntry{{SafeID: "a", CipherCertFile: "a.pem", CipherCert: "PEM"}}
		}, "directory[0]"},
		{"directory neither", func(c *Config) { c.Directory = []DirectoryEntry{{SafeID: "a"}} }, "directory[0]"},
	}
	for _, tc := range cases {
		c := good()
		tc.mutate(&c)
		err := c.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.field+":")):
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.field)
		}
	}
}

func TestLoadPKCS12Refuses(t *testing.T) {
	k := p12(t, "bob_cipher_4096")
	wrong := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(wrong, []byte("654321"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPKCS12(KeyConfig{PKCS12File: k.PKCS12File, PasswordFile: wrong}); err == nil {
		t.Error("wrong PIN accepted")
	}
	big := filepath.Join(t.TempDir(), "big.p12")
	if err := os.WriteFile(big, make([]byte, maxKeyFileBytes+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPKCS12(KeyConfig{PKCS12File: big}); err == nil {
		t.Error("oversized key file accepted")
	}
	if kp, err := LoadPKCS12(k); err != nil || kp.Cert == nil || kp.Key == nil {
		t.Errorf("good file: %v", err)
	}
}

// TestLoadAnchors: the CA certificates of a PEM file, or one DER file, are the VHN
// anchors; a leaf certificate, a file without certificates or a missing file is an
// error at start, not a silently empty trust list.
func TestLoadAnchors(t *testing.T) {
	vhn := makeVHN(t, "DE.Justiz.a.1", "DE.Justiz.b.2")
	dir := t.TempDir()
	both := filepath.Join(dir, "both.pem")
	ca, _ := os.ReadFile(vhn.caFile)
	forger, _ := os.ReadFile(vhn.forgerFile)
	der := filepath.Join(dir, "ca.der")
	leaf := filepath.Join(dir, "leaf.pem")
	empty := filepath.Join(dir, "empty.pem")
	for f, data := range map[string][]byte{both: append(ca, forger...), der: vhn.ca.Raw,
		leaf: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vhn.leaf.X509.Raw}), empty: []byte("-----BEGIN nothing\n")} {
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadAnchors([]string{both, der})
	if err != nil || len(got) != 3 || !bytes.Equal(got[2].Raw, vhn.ca.Raw) {
		t.Fatalf("anchors %d, %v", len(got), err)
	}
	for _, bad := range []string{leaf, empty, filepath.Join(dir, "missing.pem")} {
		if _, err := LoadAnchors([]string{bad}); err == nil {
			t.Errorf("%s accepted", filepath.Base(bad))
		}
	}
}

// The directory's certificates load from a file or from PEM text; a broken one stops
// the sender from starting.
func TestLoadDirectory(t *testing.T) {
	alice := pair(t, "alice_cipher_4096").Cert
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: alice.Raw}))
	c := Config{Directory: []DirectoryEntry{
		{SafeID: "file", CipherCertFile: corpus.Path(t, "osci", "zertifikate", "alice_cipher_4096.cer")},
		{SafeID: "pem", CipherCert: pemText}}}
	dir, err := c.loadDirectory()
	if err != nil {
		t.Fatal(err)
	}
	if !dir["file"].Equal(alice) || !dir["pem"].Equal(alice) {
		t.Errorf("directory %v", dir)
	}
	c.Directory = append(c.Directory, DirectoryEntry{SafeID: "broken", CipherCert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"})
	if _, err := c.loadDirectory(); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("broken entry: %v", err)
	}
}
