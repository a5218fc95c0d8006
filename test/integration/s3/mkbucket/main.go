// Command mkbucket creates the bucket the S3 integration tests use, named by
// S3_BUCKET on the server S3_ENDPOINT, with the keys in S3_ACCESS_KEY_FILE
// and S3_SECRET_KEY_FILE. It waits for the server to accept requests.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkbucket:", err)
		os.Exit(1)
	}
}

func run() error {
	access, err1 := os.ReadFile(os.Getenv("S3_ACCESS_KEY_FILE"))
	secret, err2 := os.ReadFile(os.Getenv("S3_SECRET_KEY_FILE"))
	if err1 != nil || err2 != nil {
		return fmt.Errorf("read keys: %v %v", err1, err2)
	}
	c, err := minio.New(os.Getenv("S3_ENDPOINT"), &minio.Options{
		Creds:        credentials.NewStaticV4(strings.TrimSpace(string(access)), strings.TrimSpace(string(secret)), ""),
		BucketLookup: minio.BucketLookupPath, MaxRetries: 1})
	if err != nil {
		return err
	}
	bucket := os.Getenv("S3_BUCKET")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		err = c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
		if err == nil || minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
