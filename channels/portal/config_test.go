package portal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	ok := func() Config {
		return Config{SubmissionAPI: "https://api.example/submission-api/v1", TokenURL: "https://auth.example/token", ClientID: "c",
			ClientSecretFile: "/run/secret", DestinationID: testDestination, DecryptionKeyFile: "/k.jwk", SigningKeyFile: "/s.jwk"}
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Errorf("an empty section: %v", err)
	}
	c := ok()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.SubmissionAPI = "ftp://x" }, "submission_api"},
		{func(c *Config) { c.TokenURL = "" }, "token_url"},
		{func(c *Config) { c.ClientID = " " }, "client_id"},
		{func(c *Config) { c.ClientSecretFile = "" }, "client_secret_file"},
		{func(c *Config) { c.DestinationID = "dest" }, "destination_id"},
		{func(c *Config) { c.DecryptionKeyFile = "" }, "decryption_key_file or decryption_pkcs11"},
		{func(c *Config) { c.DecryptionPKCS11 = &PKCS11Key{Module: "m"} }, "exclude each other"},
		{func(c *Config) { c.DecryptionKeyFile, c.DecryptionPKCS11 = "", &PKCS11Key{Module: "m"} }, "key_label and pin_file"},
		{func(c *Config) { c.SigningKeyFile = "" }, "signing_key_file"},
		{func(c *Config) { c.CallbackListen = "nohost" }, "callback_listen"},
		{func(c *Config) { c.CallbackListen = "127.0.0.1:0" }, "callback_secret_file"},
		{func(c *Config) { c.PollInterval = -1 }, "poll_interval"},
		{func(c *Config) { c.ReplyHorizon = -time.Hour }, "reply_horizon"},
	} {
		c := ok()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
	}
}

func TestConfigYAML(t *testing.T) {
	var c Config
	err := yaml.Unmarshal([]byte("submission_api: http://127.0.0.1:1/v1\nmax_submission_size: 100MiB\npoll_interval: 30s\n"), &c)
	if err != nil || c.MaxSubmissionSize != 100<<20 || c.pollInterval().Seconds() != 30 || c.replyHorizon() != 14*24*time.Hour {
		t.Fatalf("%+v %v", c, err)
	}
	if err := yaml.Unmarshal([]byte("reply_horizon: 72h\n"), &c); err != nil || c.replyHorizon() != 72*time.Hour {
		t.Fatalf("reply_horizon: %v %v", c.ReplyHorizon, err)
	}
	for _, bad := range []string{"max_submission_size: lots", "max_submission_size: -1KiB"} {
		if err := yaml.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestSecretsNotInErrors: a key file that is not a key is refused without
// its content in the error.
func TestSecretsNotInErrors(t *testing.T) {
	dir := t.TempDir()
	secret := "s3cr3t-value-of-the-key-file"
	path := filepath.Join(dir, "key.jwk")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadKeys(&Config{DecryptionKeyFile: path, SigningKeyFile: path}, nil)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err %v", err)
	}
	b, err := readSecret("client_secret_file", path)
	if err != nil || string(b) != secret {
		t.Fatalf("%q %v", b, err)
	}
}

// TestReplySenderKeysFile: a reply_sender_keys_file that is missing or not
// a JWK Set of signature keys stops the channel at start, naming the file.
func TestReplySenderKeysFile(t *testing.T) {
	dir := t.TempDir()
	notJWKS := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(notJWKS, []byte(`{"keys":[{"kty":"oct","k":"Zm9v"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing.jwks"), notJWKS} {
		_, err := loadSenderKeys(&Config{ReplySenderKeysFile: path})
		if err == nil || !strings.Contains(err.Error(), "reply_sender_keys_file") {
			t.Errorf("%s: %v", path, err)
		}
	}
	if ks, err := loadSenderKeys(&Config{}); ks != nil || err != nil {
		t.Errorf("without the file: %v %v", ks, err)
	}
}
