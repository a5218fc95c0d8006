package assembly

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/packblob"
)

func TestBlobsConfig(t *testing.T) {
	tests := []struct {
		name, yaml, want string // want "" means valid
	}{
		{"default local", "", ""},
		{"explicit local", "blobs: {backend: local}", ""},
		{"unknown backend", "blobs: {backend: ftp}", `blobs.backend: "ftp" is not local or s3`},
		{"s3 without endpoint", "blobs: {backend: s3, s3: {bucket: b, access_key_file: a, secret_key_file: s}}", "blobs.s3.endpoint"},
		{"s3 without bucket", "blobs: {backend: s3, s3: {endpoint: \"127.0.0.1:9000\", access_key_file: a, secret_key_file: s}}", "blobs.s3.bucket"},
		{"s3 without key files", "blobs: {backend: s3, s3: {endpoint: \"127.0.0.1:9000\", bucket: b}}", "secret_key_file"},
		{"s3 CA without TLS", "blobs: {backend: s3, s3: {endpoint: \"127.0.0.1:9000\", bucket: b, access_key_file: a, secret_key_file: s, ca_file: c}}", "tls is off"},
		{"s3 valid", "blobs: {backend: s3, s3: {endpoint: \"127.0.0.1:9000\", bucket: b, access_key_file: a, secret_key_file: s, tls: true, ca_file: c}}", ""},
		{"unknown key", "blobs: {backend: s3, s3: {secret_key: inline}}", "secret_key"},
		{"packs off", "blobs: {backend: local, max_packed_bytes: -1}", ""},
		{"pack threshold", "blobs: {max_packed_bytes: 65536}", ""},
		{"pack threshold negative", "blobs: {max_packed_bytes: -2}", "blobs.max_packed_bytes"},
		{"pack threshold on s3", "blobs: {backend: s3, max_packed_bytes: 100, s3: {endpoint: \"127.0.0.1:9000\", bucket: b, access_key_file: a, secret_key_file: s}}", "local backend only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "poststelle.yaml")
			if err := os.WriteFile(f, []byte(tc.yaml+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(f)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadConfig: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestOpenBlobsLocalPlain: with encryption off the store is the pack
// store in the data directory, and a data directory from before packs has
// its file blobs served as they are.
func TestOpenBlobsLocalPlain(t *testing.T) {
	cfg := config(t, "blobs: {encryption: off}\n")
	b, err := OpenBlobs(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := b.(*packblob.Store)
	if !ok || s.Dir() != filepath.Join(cfg.DataDir, "blobs") {
		t.Fatalf("plain blob store is %T, want the pack store in the data directory", b)
	}
	defer s.Close()
	files, err := blob.Open(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := files.PutBytes(context.Background(), []byte("Zugang vor den Packs"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.ReadAll(context.Background(), ref, 0); err != nil || string(got) != "Zugang vor den Packs" {
		t.Fatalf("old file blob through the default store: %q %v", got, err)
	}
}

// TestOpenBlobsEncryptedDefault: by default blobs are encrypted at rest.
// serve makes the KEK on a local store's first start (mode 0600), a
// command beside it never does; blobs stored before encryption stay
// readable and are not erasable, new ones are written encrypted (their
// bytes are in no file of the data directory) and erase for good.
func TestOpenBlobsEncryptedDefault(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	cfg := config(t, "")
	if b, err := OpenBlobs(ctx, cfg, logger); err != nil {
		t.Fatalf("a command on a data directory never encrypted: %v", err)
	} else if _, ok := b.(*packblob.Store); !ok {
		t.Fatalf("a command on a data directory never encrypted opens %T, want the plain pack store", b)
	} else {
		b.(io.Closer).Close()
	}
	plain, err := packblob.Open(ctx, packblob.Config{Dir: filepath.Join(cfg.DataDir, "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	old, err := plain.PutBytes(ctx, []byte("Zugang vor der Verschluesselung"))
	plain.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, err := openBlobs(ctx, cfg, logger, true)
	if err != nil {
		t.Fatalf("serve's first start: %v", err)
	}
	defer b.(io.Closer).Close()
	if fi, err := os.Stat(cfg.Blobs.KEKFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file: %v %v", fi, err)
	}
	if got, err := b.ReadAll(ctx, old, 0); err != nil || string(got) != "Zugang vor der Verschluesselung" {
		t.Fatalf("plaintext blob from before: %q %v", got, err)
	}
	secret := []byte("Geheimnis-4711 im Antrag")
	ref, err := b.PutBytes(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	assertNotInFiles(t, cfg.DataDir, secret)
	kek, err := os.ReadFile(cfg.Blobs.KEKFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cfg.Blobs.KEKFile); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBlobs(ctx, cfg, logger); err == nil || !strings.Contains(err.Error(), "blobs.kek_file") {
		t.Fatalf("a command with the key store but without its KEK: %v, want an error naming blobs.kek_file", err)
	}
	if err := os.WriteFile(cfg.Blobs.KEKFile, kek, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err = OpenBlobs(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("a command after serve made the KEK: %v", err)
	}
	if got, err := b.ReadAll(ctx, ref, 0); err != nil || string(got) != string(secret) {
		t.Fatalf("encrypted blob: %q %v", got, err)
	}
	er := b.(blob.Eraser)
	if err := er.Erase(ctx, old); !errors.Is(err, blob.ErrNotErasable) {
		t.Fatalf("erase of the plaintext blob: %v, want ErrNotErasable", err)
	}
	if err := er.Erase(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAll(ctx, ref, 0); !errors.Is(err, blob.ErrErased) {
		t.Fatalf("read after erasure: %v, want ErrErased", err)
	}
	b.(io.Closer).Close()
}

// assertNotInFiles fails when any file under dir holds needle.
func assertNotInFiles(t *testing.T, dir string, needle []byte) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			t.Errorf("%s holds %q in plaintext", path, needle)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestComposeConfiguration: the gateways' configuration in
// docker-compose.yml loads (Kafka log, S3 blobs encrypted at rest, ops
// listener).
func TestComposeConfiguration(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Configs map[string]struct {
			Content string `yaml:"content"`
		} `yaml:"configs"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "poststelle.yaml")
	if err := os.WriteFile(f, []byte(compose.Configs["poststelle"].Content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(f)
	if err != nil {
		t.Fatalf("docker-compose.yml's gateway configuration: %v", err)
	}
	if cfg.Blobs.Backend != "s3" || cfg.EventStore.Backend != "kafka" || cfg.Ops.Listen == "" ||
		len(cfg.EventStore.Kafka.Brokers) != 3 || cfg.EventStore.Kafka.ReplicationFactor != 3 {
		t.Fatalf("compose configuration: blobs %q, log %q with %d brokers, ops %q", cfg.Blobs.Backend,
			cfg.EventStore.Backend, len(cfg.EventStore.Kafka.Brokers), cfg.Ops.Listen)
	}
	// Encrypted at rest under a KEK every gateway shares: serve never makes
	// one for S3, so the file is the keys job's (test/compose checks it).
	if !cfg.Blobs.encrypted() || cfg.Blobs.KEKFile != "/var/lib/poststelle/keys/blob-kek" || cfg.Blobs.KeysAllowVersioning {
		t.Fatalf("compose configuration: encryption %q, kek_file %q, keys_allow_versioning %v", cfg.Blobs.Encryption,
			cfg.Blobs.KEKFile, cfg.Blobs.KeysAllowVersioning)
	}
}
