package assembly

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blobkeys"
	"github.com/poststelle/poststelle/eventstore/cryptblob"
	"github.com/poststelle/poststelle/eventstore/packblob"
	"github.com/poststelle/poststelle/eventstore/s3blob"
)

// OpenBlobs opens the configured blob store for a command beside the
// gateway (log verify, evidence): the local directory (small blobs in
// packs, the rest and every blob written before packs as files), or the S3
// bucket after checking that it answers; encrypted at rest unless
// blobs.encryption is off. It never creates a KEK: only serve does, on a
// local store's first start.
func OpenBlobs(ctx context.Context, cfg *Config, logger *slog.Logger) (blob.Backend, error) {
	return openBlobs(ctx, cfg, logger, false)
}

func openBlobs(ctx context.Context, cfg *Config, logger *slog.Logger, serve bool) (blob.Backend, error) {
	inner, err := openPlainBlobs(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	if !cfg.Blobs.encrypted() || (!serve && neverEncrypted(cfg)) {
		return inner, nil
	}
	store, err := encryptBlobs(ctx, cfg, inner, logger, serve)
	if err != nil {
		closeQuietly(inner)
		return nil, err
	}
	return store, nil
}

// neverEncrypted reports a local data directory that serve never opened
// with encryption on: no KEK and no key store, so every blob in it is
// plaintext (one from before encryption at rest, or a copy made for an
// audit without the keys) and a command reads it as such.
func neverEncrypted(cfg *Config) bool {
	if cfg.Blobs.Backend == "s3" {
		return false
	}
	_, errKEK := os.Stat(cfg.Blobs.KEKFile)
	_, errKeys := os.Stat(filepath.Join(cfg.DataDir, "blobkeys.db"))
	return errors.Is(errKEK, fs.ErrNotExist) && errors.Is(errKeys, fs.ErrNotExist)
}

func openPlainBlobs(ctx context.Context, cfg *Config, logger *slog.Logger) (blob.Backend, error) {
	if cfg.Blobs.Backend != "s3" {
		store, err := packblob.Open(ctx, packblob.Config{Dir: filepath.Join(cfg.DataDir, "blobs"),
			MaxPacked: cfg.Blobs.MaxPackedBytes, Logger: logger.With("component", "blobs")})
		if err != nil {
			return nil, fmt.Errorf("open blob store: %w", err)
		}
		return store, nil
	}
	store, err := s3blob.Open(ctx, s3Conn(cfg, logger))
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return store, nil
}

func s3Conn(cfg *Config, logger *slog.Logger) s3blob.Config {
	s := cfg.Blobs.S3
	return s3blob.Config{Endpoint: s.Endpoint, Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region,
		AccessKeyFile: s.AccessKeyFile, SecretKeyFile: s.SecretKeyFile, TLS: s.TLS, CAFile: s.CAFile,
		PartSize: s.PartSize, MaxRetries: s.MaxRetries, Logger: logger}
}

// encryptBlobs wraps inner in encryption at rest: the key store beside the
// blobs (state in <data_dir>/blobkeys.db for the local store, the bucket's
// keys/ for S3, which every node shares) and the KEK.
func encryptBlobs(ctx context.Context, cfg *Config, inner blob.Backend, logger *slog.Logger, serve bool) (*encryptedBlobs, error) {
	local := cfg.Blobs.Backend != "s3"
	kek, err := loadKEK(cfg.Blobs.KEKFile, serve && local, logger)
	if err != nil {
		return nil, fmt.Errorf("blobs.kek_file: %w", err)
	}
	var keys blobkeys.Store
	if local {
		keys, err = blobkeys.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "blobkeys.db"), logger.With("component", "blobkeys"))
	} else {
		keys, err = blobkeys.OpenS3(ctx, blobkeys.S3Config{Conn: s3Conn(cfg, logger), AllowVersioning: cfg.Blobs.KeysAllowVersioning,
			Logger: logger.With("component", "blobkeys")})
	}
	if err != nil {
		return nil, fmt.Errorf("open blob key store: %w", err)
	}
	return &encryptedBlobs{Store: cryptblob.New(inner, keys, kek, logger.With("component", "cryptblob")), inner: inner, keys: keys}, nil
}

// loadKEK reads the KEK, creating it when allowed and absent: the first
// start of a local store. The key's bytes are never logged.
func loadKEK(path string, create bool, logger *slog.Logger) (cryptblob.KEK, error) {
	kek, err := cryptblob.LoadKEK(path)
	if err == nil || !create || !errors.Is(err, fs.ErrNotExist) {
		return kek, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return cryptblob.KEK{}, err
	}
	if kek, err = cryptblob.CreateKEK(path); err != nil {
		return cryptblob.KEK{}, err
	}
	logger.Info("created the key-encryption key of encryption at rest; back it up with the data directory's keys",
		"file", path, "kek", kek.ID())
	return kek, nil
}

// encryptedBlobs is the encrypted store with what it must close.
type encryptedBlobs struct {
	*cryptblob.Store
	inner blob.Backend
	keys  blobkeys.Store
}

// Close closes the key store and the inner store.
func (e *encryptedBlobs) Close() error {
	err := e.keys.Close()
	if c, ok := e.inner.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return err
}

func closeQuietly(b blob.Backend) {
	if c, ok := b.(io.Closer); ok {
		c.Close()
	}
}
