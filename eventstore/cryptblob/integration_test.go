//go:build integration

package cryptblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blob/blobtest"
	"github.com/poststelle/poststelle/eventstore/blobkeys"
	"github.com/poststelle/poststelle/eventstore/s3blob"
)

// TestConformanceS3 runs the blob suite over the cluster's configuration:
// ciphertexts in s3blob and keys in the S3 key store, both in the bucket
// test/integration/s3/seaweed.sh started (failing, not skipping, without
// it), each test under its own prefix.
func TestConformanceS3(t *testing.T) {
	base := s3blob.Config{Endpoint: os.Getenv("S3_ENDPOINT"), Bucket: os.Getenv("S3_BUCKET"),
		AccessKeyFile: os.Getenv("S3_ACCESS_KEY_FILE"), SecretKeyFile: os.Getenv("S3_SECRET_KEY_FILE")}
	if base.Endpoint == "" || base.Bucket == "" {
		t.Fatal("S3_ENDPOINT and S3_BUCKET are not set: run test/integration/s3/run.sh")
	}
	blobtest.Run(t, blobtest.Backend{LargeSize: 24 << 20, Storage: func(t *testing.T) blobtest.Storage {
		var b [8]byte
		rand.Read(b[:])
		cfg := base
		cfg.Prefix = "cryptblob-" + hex.EncodeToString(b[:]) + "/"
		kek := testKEK(t)
		open := func() (*Store, error) {
			inner, err := s3blob.Open(context.Background(), cfg)
			if err != nil {
				return nil, err
			}
			keys, err := blobkeys.OpenS3(context.Background(), blobkeys.S3Config{Conn: cfg})
			if err != nil {
				return nil, err
			}
			return New(inner, keys, kek, nil), nil
		}
		return blobtest.Storage{
			Open: func() (blob.Backend, error) { return open() },
			Corrupt: func(ref blob.Ref, content []byte) error {
				s, err := open()
				if err != nil {
					return err
				}
				return s.reencrypt(ref, content)
			},
		}
	}})
}
