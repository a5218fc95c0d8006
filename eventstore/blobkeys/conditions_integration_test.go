//go:build integration

package blobkeys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/s3blob"
)

// TestServerHonoursConditions checks what the S3 store's agreement between
// concurrent adds rests on: the server refuses a write with If-None-Match: *
// over an existing object and one with If-Match of another ETag. (Without
// it the store degrades to last writer wins, see S3.)
func TestServerHonoursConditions(t *testing.T) {
	conn := s3blob.Config{Endpoint: os.Getenv("S3_ENDPOINT"), Bucket: os.Getenv("S3_BUCKET"),
		AccessKeyFile: os.Getenv("S3_ACCESS_KEY_FILE"), SecretKeyFile: os.Getenv("S3_SECRET_KEY_FILE")}
	if conn.Endpoint == "" || conn.Bucket == "" {
		t.Fatal("S3_ENDPOINT and S3_BUCKET are not set: run test/integration/s3/run.sh")
	}
	var b [8]byte
	rand.Read(b[:])
	conn.Prefix = "conditions-" + hex.EncodeToString(b[:]) + "/"
	s, err := OpenS3(context.Background(), S3Config{Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	plain := blob.Ref{SHA256: hex.EncodeToString(append(b[:], make([]byte, 24)...)), Size: 1}
	first := tombstone(plain, time.Now())
	if err := s.write(ctx, first, ""); err != nil {
		t.Fatalf("first write: %v", err)
	}
	if err := s.write(ctx, first, ""); !errors.Is(err, errConflict) {
		t.Fatalf("If-None-Match: * over an existing object: %v, want a refusal", err)
	}
	_, etag, found, err := s.read(ctx, plain.SHA256)
	if err != nil || !found {
		t.Fatalf("read back: %v %v", found, err)
	}
	if err := s.write(ctx, first, `0123456789abcdef0123456789abcdef`); !errors.Is(err, errConflict) {
		t.Fatalf("If-Match with another ETag: %v, want a refusal", err)
	}
	if err := s.write(ctx, first, etag); err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
}
