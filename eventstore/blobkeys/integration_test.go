//go:build integration

package blobkeys_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blobkeys"
	"github.com/poststelle/poststelle/eventstore/blobkeys/keystest"
	"github.com/poststelle/poststelle/eventstore/s3blob"
)

// s3Config is the server test/integration/s3/seaweed.sh started; the
// integration run without it is a failure, not a skip.
func s3Config(t *testing.T) s3blob.Config {
	t.Helper()
	c := s3blob.Config{Endpoint: os.Getenv("S3_ENDPOINT"), Bucket: os.Getenv("S3_BUCKET"),
		AccessKeyFile: os.Getenv("S3_ACCESS_KEY_FILE"), SecretKeyFile: os.Getenv("S3_SECRET_KEY_FILE")}
	if c.Endpoint == "" || c.Bucket == "" {
		t.Fatal("S3_ENDPOINT and S3_BUCKET are not set: run test/integration/s3/run.sh")
	}
	return c
}

// TestConformanceS3 runs the key store suite against a real S3 server,
// each test under its own prefix: conditional writes, tombstones and the
// versioning check as the service implements them.
func TestConformanceS3(t *testing.T) {
	base := s3Config(t)
	keystest.Run(t, func(t *testing.T) keystest.Open {
		var b [8]byte
		rand.Read(b[:])
		conn := base
		conn.Prefix = "blobkeys-" + hex.EncodeToString(b[:]) + "/"
		return func(t *testing.T) blobkeys.Store {
			s, err := blobkeys.OpenS3(context.Background(), blobkeys.S3Config{Conn: conn})
			if err != nil {
				t.Fatalf("open S3 key store: %v", err)
			}
			return s
		}
	})
}
