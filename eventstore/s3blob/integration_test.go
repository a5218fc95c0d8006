//go:build integration

package s3blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blob/blobtest"
)

// s3Config is the server test/integration/s3/seaweed.sh started; the
// integration run without it is a failure, not a skip.
func s3Config(t *testing.T) Config {
	t.Helper()
	c := Config{Endpoint: os.Getenv("S3_ENDPOINT"), Bucket: os.Getenv("S3_BUCKET"),
		AccessKeyFile: os.Getenv("S3_ACCESS_KEY_FILE"), SecretKeyFile: os.Getenv("S3_SECRET_KEY_FILE")}
	if c.Endpoint == "" || c.Bucket == "" {
		t.Fatal("S3_ENDPOINT and S3_BUCKET are not set: run test/integration/s3/run.sh")
	}
	return c
}

// TestConformanceS3 runs the blob suite against a real S3 server; every
// test gets its own prefix in the bucket.
func TestConformanceS3(t *testing.T) {
	base := s3Config(t)
	blobtest.Run(t, blobtest.Backend{
		LargeSize: 48 << 20,
		Storage: func(t *testing.T) blobtest.Storage {
			var b [8]byte
			rand.Read(b[:])
			cfg := base
			cfg.Prefix = "conformance-" + hex.EncodeToString(b[:]) + "/"
			return blobtest.Storage{
				Open: func() (blob.Backend, error) { return Open(context.Background(), cfg) },
				Corrupt: func(ref blob.Ref, content []byte) error {
					s, err := New(cfg)
					if err != nil {
						return err
					}
					_, err = s.client.PutObject(context.Background(), s.bucket, s.key(ref.SHA256),
						bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{})
					return err
				},
			}
		},
	})
}

// TestTemporaryObjectsRemoved: a large put leaves nothing under tmp/.
func TestTemporaryObjectsRemoved(t *testing.T) {
	cfg := s3Config(t)
	cfg.Prefix = "tmpcheck-" + hex.EncodeToString([]byte(t.Name()))[:12] + "/"
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2*defaultPartSize+7)
	rand.Read(data)
	if _, err := s.PutBytes(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	for obj := range s.client.ListObjects(context.Background(), s.bucket, minio.ListObjectsOptions{Prefix: cfg.Prefix + "tmp/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		t.Errorf("temporary object left: %s", obj.Key)
	}
	uploads, err := s.core.ListMultipartUploads(context.Background(), s.bucket, cfg.Prefix, "", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(uploads.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open", len(uploads.Uploads))
	}
}

// BenchmarkPut10KiB compares our put of a 10 KiB message (hashed, signed,
// Content-MD5, checksum header) with the client's plain PutObject of the
// same bytes beside it, the baseline: the ratio is what verification costs.
func BenchmarkPut10KiB(b *testing.B) {
	cfg := s3ConfigB(b)
	cfg.Prefix = "bench/"
	s, err := Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 10<<10)
	b.Run("store", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; b.Loop(); i++ {
			data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
			if _, err := s.PutBytes(context.Background(), data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-putobject", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; b.Loop(); i++ {
			data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16)
			if _, err := s.client.PutObject(context.Background(), s.bucket, fmt.Sprintf("bench/raw/%d", i),
				bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func s3ConfigB(b *testing.B) Config {
	c := Config{Endpoint: os.Getenv("S3_ENDPOINT"), Bucket: os.Getenv("S3_BUCKET"),
		AccessKeyFile: os.Getenv("S3_ACCESS_KEY_FILE"), SecretKeyFile: os.Getenv("S3_SECRET_KEY_FILE")}
	if c.Endpoint == "" || c.Bucket == "" {
		b.Fatal("S3_ENDPOINT and S3_BUCKET are not set: run test/integration/s3/run.sh")
	}
	return c
}

// TestServerRefusesBadDigests checks what Put relies on: the server
// refuses a body that does not match the Content-MD5 or the
// x-amz-checksum-sha256 sent with it, so bytes altered on the way are not
// stored under the name of the bytes we sent.
func TestServerRefusesBadDigests(t *testing.T) {
	cfg := s3Config(t)
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Antrag auf Baugenehmigung")
	other := []byte("Antrag auf Abrissgenehmigung")
	md := md5.Sum(other)
	sum := sha256.Sum256(other)
	cases := []struct {
		name string
		md5  string
		opts minio.PutObjectOptions
	}{
		{"content-md5 of other bytes", base64.StdEncoding.EncodeToString(md[:]), minio.PutObjectOptions{}},
		{"checksum-sha256 of other bytes", "", minio.PutObjectOptions{
			UserMetadata: map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum[:])}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "digests/" + strings.ReplaceAll(tc.name, " ", "-")
			_, err := s.core.PutObject(context.Background(), s.bucket, key, bytes.NewReader(body), int64(len(body)), tc.md5, "", tc.opts)
			if err == nil {
				t.Fatalf("the server stored a body that does not match its digest")
			}
			t.Logf("refused: %v", err)
		})
	}
}
