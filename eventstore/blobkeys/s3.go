package blobkeys

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/s3blob"
)

// S3Config configures the cluster's key store.
type S3Config struct {
	// Conn is the connection, as for the blob store (eventstore/s3blob);
	// the keys are the objects "<Conn.Prefix>keys/<sha256>", so that the
	// blob store's configuration serves both.
	Conn s3blob.Config
	// AllowVersioning opens a bucket on which versioning is enabled or
	// suspended. There an overwritten key object survives as a noncurrent
	// version and an erased blob stays decryptable, so set it only when
	// something else removes noncurrent versions of "keys/" at once (a
	// lifecycle rule NoncurrentVersionExpiration, checked by the operator).
	AllowVersioning bool
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
}

// S3 is the key store in S3-compatible object storage, one small JSON
// object per key, shared by every node of a cluster.
//
// Adds are conditional writes: If-None-Match: * where there is no object,
// If-Match with the tombstone's ETag where there is one, so that of two
// nodes adding the same blob at once one wins and the other gets the
// winner's entry. A service that ignores the conditions degrades to last
// writer wins, which loses nothing: each Add's ciphertext was durable
// before its entry was written, so whichever entry survives decrypts.
type S3 struct {
	client    *minio.Client
	bucket    string
	prefix    string
	logger    *slog.Logger
	versioned bool
}

var _ Store = (*S3)(nil)

// maxWriteAttempts bounds how often Add and Erase re-read an object that
// another writer changed between their read and their conditional write.
const maxWriteAttempts = 8

// errConflict is a conditional write the service refused.
var errConflict = errors.New("blobkeys: the key object changed meanwhile")

// OpenS3 connects to the bucket, checks that it exists and refuses it when
// it keeps object versions (see S3Config.AllowVersioning).
func OpenS3(ctx context.Context, cfg S3Config) (*S3, error) {
	client, err := s3blob.NewClient(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("blobkeys: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &S3{client: client, bucket: cfg.Conn.Bucket, prefix: cfg.Conn.Prefix + "keys/", logger: logger}
	if err := s.Ping(ctx); err != nil {
		return nil, err
	}
	if err := s.checkVersioning(ctx, cfg.AllowVersioning); err != nil {
		return nil, err
	}
	return s, nil
}

// checkVersioning refuses a versioned bucket unless allowed. A service
// without the versioning API (it answers NotImplemented) keeps no versions
// and passes.
func (s *S3) checkVersioning(ctx context.Context, allow bool) error {
	v, err := s.client.GetBucketVersioning(ctx, s.bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NotImplemented" {
			s.logger.Warn("blobkeys: the S3 service has no versioning API; erasure relies on it keeping no object versions", "bucket", s.bucket)
			return nil
		}
		return fmt.Errorf("blobkeys: read versioning state of bucket %s (the key store needs s3:GetBucketVersioning): %w", s.bucket, err)
	}
	if v.Status == "" {
		return nil
	}
	s.versioned = true
	if !allow {
		return fmt.Errorf("blobkeys: bucket %s has versioning %s: an erased key would survive as a noncurrent version; use a bucket that never had versioning, or set allow_versioning with a lifecycle rule that expires noncurrent versions", s.bucket, v.Status)
	}
	s.logger.Warn("blobkeys: bucket keeps object versions; erased keys survive until a lifecycle rule removes noncurrent versions", "bucket", s.bucket, "versioning", v.Status)
	return nil
}

func (s *S3) key(sum string) string { return s.prefix + sum }

// Ping checks that the bucket exists and the credentials open it.
func (s *S3) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blobkeys: check bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("blobkeys: bucket %s does not exist", s.bucket)
	}
	return nil
}

// Close implements Store; the client holds nothing that needs releasing.
func (s *S3) Close() error { return nil }

// Get implements Store.
func (s *S3) Get(ctx context.Context, plain blob.Ref) (Entry, error) {
	if err := blob.ValidRef(plain); err != nil {
		return Entry{}, err
	}
	r, _, found, err := s.read(ctx, plain.SHA256)
	switch {
	case err != nil:
		return Entry{}, err
	case !found:
		return Entry{}, fmt.Errorf("%w: no key for %s", blob.ErrNotFound, plain.SHA256)
	case r.ErasedAt != nil:
		return Entry{}, &ErasedError{SHA256: plain.SHA256, At: r.ErasedAt.UTC()}
	}
	return r.entry(), nil
}

// Add implements Store.
func (s *S3) Add(ctx context.Context, plain blob.Ref, e Entry) (Entry, error) {
	if err := blob.ValidRef(plain); err != nil {
		return Entry{}, err
	}
	if err := validEntry(e); err != nil {
		return Entry{}, err
	}
	for range maxWriteAttempts {
		r, etag, found, err := s.read(ctx, plain.SHA256)
		if err != nil {
			return Entry{}, err
		}
		if found && r.ErasedAt == nil {
			return r.entry(), nil
		}
		err = s.write(ctx, liveRecord(plain, e), etag)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return Entry{}, err
		}
		return cloneEntry(e), nil
	}
	return Entry{}, fmt.Errorf("blobkeys: add key of %s: %d conflicting writes in a row", plain.SHA256, maxWriteAttempts)
}

// Erase implements Store: the key object is overwritten with a tombstone.
func (s *S3) Erase(ctx context.Context, plain blob.Ref) error {
	if err := blob.ValidRef(plain); err != nil {
		return err
	}
	for range maxWriteAttempts {
		r, etag, found, err := s.read(ctx, plain.SHA256)
		if err != nil {
			return err
		}
		if found && r.ErasedAt != nil {
			return nil
		}
		err = s.write(ctx, tombstone(plain, time.Now()), etag)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return err
		}
		if s.versioned {
			s.logger.Warn("blobkeys: erased key survives as a noncurrent version until the lifecycle rule removes it", "sha256", plain.SHA256)
		}
		return nil
	}
	return fmt.Errorf("blobkeys: erase key of %s: %d conflicting writes in a row", plain.SHA256, maxWriteAttempts)
}

// read fetches and parses the key object of sum; found is false when there
// is none. etag is the object's ETag, for a conditional write over it.
//
// The client reads an object's body with If-Match on the ETag its first
// answer gave, so an object another node rewrote in between (a racing Add
// or Erase) ends the read in PreconditionFailed; that is a changed object,
// not a failure, and the read starts over.
func (s *S3) read(ctx context.Context, sum string) (r record, etag string, found bool, err error) {
	for range maxWriteAttempts {
		r, etag, found, err = s.readOnce(ctx, sum)
		if !errors.Is(err, errChanged) {
			return r, etag, found, err
		}
	}
	return record{}, "", false, fmt.Errorf("blobkeys: read key of %s: changed %d times while read", sum, maxWriteAttempts)
}

// errChanged is a key object rewritten while it was read.
var errChanged = errors.New("blobkeys: the key object changed while it was read")

// changed reports an answer that says the object changed under the read.
func changed(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && er.Code == "PreconditionFailed"
}

func (s *S3) readOnce(ctx context.Context, sum string) (r record, etag string, found bool, err error) {
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(sum), minio.GetObjectOptions{})
	if err != nil {
		return record{}, "", false, fmt.Errorf("blobkeys: get key of %s: %w", sum, err)
	}
	defer obj.Close()
	info, err := obj.Stat()
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" || code == "NotFound" {
			return record{}, "", false, nil
		}
		if changed(err) {
			return record{}, "", false, errChanged
		}
		return record{}, "", false, fmt.Errorf("blobkeys: get key of %s: %w", sum, err)
	}
	if info.Size > maxRecord {
		return record{}, "", false, fmt.Errorf("%w: key object of %s has %d bytes, limit %d", errBadEntry, sum, info.Size, maxRecord)
	}
	b, err := io.ReadAll(io.LimitReader(obj, maxRecord+1))
	if err != nil {
		if changed(err) {
			return record{}, "", false, errChanged
		}
		return record{}, "", false, fmt.Errorf("blobkeys: read key of %s: %w", sum, err)
	}
	r, err = decodeRecord(sum, b)
	if err != nil {
		return record{}, "", false, err
	}
	return r, info.ETag, true, nil
}

// write stores r conditionally: over the object with etag, or, when etag is
// empty, only where there is no object.
func (s *S3) write(ctx context.Context, r record, etag string) error {
	b, err := r.encode()
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: "application/json"}
	if etag == "" {
		opts.SetMatchETagExcept("*")
	} else {
		opts.SetMatchETag(etag)
	}
	// The body is signed with its SHA-256 and carries Content-MD5, as the
	// blob store's puts are, so the service checks every byte it accepts.
	md := md5.Sum(b)
	sum := sha256.Sum256(b)
	core := minio.Core{Client: s.client}
	_, err = core.PutObject(ctx, s.bucket, s.key(r.SHA256), bytes.NewReader(b), int64(len(b)),
		base64.StdEncoding.EncodeToString(md[:]), hex.EncodeToString(sum[:]), opts)
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "PreconditionFailed" || code == "ConditionalRequestConflict" {
			return fmt.Errorf("%w: %s", errConflict, r.SHA256)
		}
		return fmt.Errorf("blobkeys: put key of %s: %w", r.SHA256, err)
	}
	return nil
}
