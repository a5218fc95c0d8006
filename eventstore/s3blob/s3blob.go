// Package s3blob keeps the gateway's blobs in S3-compatible object storage,
// so that every node of a cluster serves every message's bytes. It is a
// blob.Backend and passes the same suite as the local directory.
//
// Objects are named by content, "<prefix>sha256/<hex>". A blob up to one
// part (PartSize) is hashed in memory first and sent with one PUT under its
// final name; a larger one streams as a multipart upload to a temporary name,
// part by part, and is copied under its final name once the stream's hash is
// known. Every request body is signed with its SHA-256 (SigV4) and carries
// Content-MD5, so the server checks each byte it accepts; the whole-object
// SHA-256 travels as x-amz-checksum-sha256 and, where the server reports one
// back, is compared. The server's ETag is never taken as proof of content.
// Reads verify the hash as the bytes stream past, as the directory does.
package s3blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Config configures the store. The credentials are read from files so that
// they stay out of configuration files, process listings and logs.
type Config struct {
	// Endpoint is host:port of the S3 service.
	Endpoint string
	// Bucket holds the blobs; it must exist.
	Bucket string
	// Prefix is put before every object name (e.g. "poststelle/"), so that
	// several installations or tests can share a bucket.
	Prefix string
	// Region is the bucket's region (default "us-east-1").
	Region string
	// AccessKeyFile and SecretKeyFile hold the credentials, one line each.
	AccessKeyFile, SecretKeyFile string
	// TLS selects https; CAFile, when set, is the PEM bundle that verifies
	// the server instead of the system roots.
	TLS    bool
	CAFile string
	// PartSize is the multipart part size and the most a Put holds in memory
	// (default 8 MiB, at least 5 MiB as S3 requires).
	PartSize int64
	// MaxRetries bounds the client's retries of one request (default 3).
	MaxRetries int
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
}

// Store is a blob.Backend over one S3 bucket.
type Store struct {
	client *minio.Client
	core   minio.Core
	bucket string
	prefix string
	part   int64
	logger *slog.Logger
}

var _ blob.Backend = (*Store)(nil)

const (
	defaultPartSize = 8 << 20
	minPartSize     = 5 << 20
	// maxKeyFile caps a credentials file before it is read.
	maxKeyFile = 4 << 10
)

// Open connects to the bucket and checks that it exists.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// New builds the store without contacting the service.
func New(cfg Config) (*Store, error) {
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	part := cfg.PartSize
	if part == 0 {
		part = defaultPartSize
	}
	if part < minPartSize {
		return nil, fmt.Errorf("s3blob: part size %d is below S3's minimum of %d", part, minPartSize)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Store{client: client, core: minio.Core{Client: client}, bucket: cfg.Bucket,
		prefix: cfg.Prefix, part: part, logger: logger}, nil
}

// NewClient builds the S3 client the store uses from cfg (endpoint, bucket,
// credentials, TLS, retries), without contacting the service, so that
// other stores in the same bucket (the cluster's key store,
// eventstore/blobkeys) connect exactly as the blob store does.
func NewClient(cfg Config) (*minio.Client, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3blob: endpoint and bucket are required")
	}
	access, err := readKey(cfg.AccessKeyFile)
	if err != nil {
		return nil, fmt.Errorf("s3blob: read access key: %w", err)
	}
	secret, err := readKey(cfg.SecretKeyFile)
	if err != nil {
		return nil, fmt.Errorf("s3blob: read secret key: %w", err)
	}
	transport, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	retries := cfg.MaxRetries
	if retries <= 0 {
		retries = 3
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, ""),
		Secure:       cfg.TLS,
		Transport:    transport,
		Region:       region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   retries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3blob: client for %s: %w", cfg.Endpoint, err)
	}
	return client, nil
}

func readKey(path string) (string, error) {
	if path == "" {
		return "", errors.New("no file configured")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxKeyFile)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return key, nil
}

// newTransport bounds every phase of a request that the context does not:
// a dead peer fails the dial or the response header, not the caller's patience.
func newTransport(cfg Config) (*http.Transport, error) {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if !cfg.TLS {
		return t, nil
	}
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("s3blob: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3blob: no certificate in CA file %s", cfg.CAFile)
		}
		t.TLSClientConfig.RootCAs = pool
	}
	return t, nil
}

func (s *Store) key(sum string) string { return s.prefix + "sha256/" + sum }

// Ping checks that the bucket exists and the credentials open it.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3blob: check bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3blob: bucket %s does not exist", s.bucket)
	}
	return nil
}

// Put streams r into the bucket. It returns only when the service has
// acknowledged the whole object under its content name.
func (s *Store) Put(ctx context.Context, r io.Reader, maxSize int64) (blob.Ref, error) {
	if err := ctx.Err(); err != nil {
		return blob.Ref{}, err
	}
	src := r
	if maxSize > 0 {
		src = io.LimitReader(r, maxSize+1)
	}
	whole := sha256.New()
	var first bytes.Buffer
	n, err := io.CopyN(io.MultiWriter(&first, whole), &ctxReader{ctx: ctx, r: src}, s.part)
	if err != nil && err != io.EOF {
		return blob.Ref{}, fmt.Errorf("s3blob: read content: %w", err)
	}
	if maxSize > 0 && n > maxSize {
		return blob.Ref{}, fmt.Errorf("%w (%d bytes)", blob.ErrTooLarge, maxSize)
	}
	if err == io.EOF {
		ref := blob.Ref{SHA256: hex.EncodeToString(whole.Sum(nil)), Size: n}
		return ref, s.putSmall(ctx, ref, first.Bytes())
	}
	return s.putLarge(ctx, src, &first, whole, maxSize)
}

// putSmall stores content of one part under its final name. It does not
// look first: most puts are of new content, and writing equal bytes over
// equal bytes is harmless, so a HEAD would only add a round trip to every
// intake.
func (s *Store) putSmall(ctx context.Context, ref blob.Ref, content []byte) error {
	sum, _ := hex.DecodeString(ref.SHA256)
	md := md5.Sum(content)
	opts := minio.PutObjectOptions{
		ContentType:  "application/octet-stream",
		UserMetadata: map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum)},
	}
	info, err := s.core.PutObject(ctx, s.bucket, s.key(ref.SHA256), bytes.NewReader(content), ref.Size,
		base64.StdEncoding.EncodeToString(md[:]), ref.SHA256, opts)
	if err != nil {
		return fmt.Errorf("s3blob: put %s: %w", ref.SHA256, err)
	}
	if got := info.ChecksumSHA256; got != "" && got != opts.UserMetadata["x-amz-checksum-sha256"] {
		return fmt.Errorf("s3blob: put %s: the service stored content with SHA-256 %s", ref.SHA256, got)
	}
	return nil
}

// present reports whether the blob is already stored with its size, so that
// a repeated large upload is not copied again.
func (s *Store) present(ctx context.Context, ref blob.Ref) (bool, error) {
	st, err := s.Stat(ctx, ref)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return st.Size == ref.Size, nil
}

// putLarge streams the rest of src as a multipart upload to a temporary
// name and copies it under its content name, which only the end of the
// stream reveals.
func (s *Store) putLarge(ctx context.Context, src io.Reader, first *bytes.Buffer, whole hash.Hash, maxSize int64) (blob.Ref, error) {
	tmp, err := s.tempKey()
	if err != nil {
		return blob.Ref{}, err
	}
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, tmp, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return blob.Ref{}, fmt.Errorf("s3blob: start upload: %w", err)
	}
	completed := false
	defer func() {
		if !completed {
			s.abort(tmp, id)
		}
	}()
	parts, n, err := s.uploadParts(ctx, tmp, id, src, first, whole, maxSize)
	if err != nil {
		return blob.Ref{}, err
	}
	if _, err := s.core.CompleteMultipartUpload(ctx, s.bucket, tmp, id, parts, minio.PutObjectOptions{}); err != nil {
		return blob.Ref{}, fmt.Errorf("s3blob: complete upload: %w", err)
	}
	completed = true
	defer s.remove(tmp)
	ref := blob.Ref{SHA256: hex.EncodeToString(whole.Sum(nil)), Size: n}
	return ref, s.promote(ctx, tmp, ref)
}

func (s *Store) uploadParts(ctx context.Context, tmp, id string, src io.Reader, buf *bytes.Buffer, whole hash.Hash, maxSize int64) ([]minio.CompletePart, int64, error) {
	var parts []minio.CompletePart
	var total int64
	for num := 1; ; num++ {
		if buf.Len() > 0 {
			p, err := s.uploadPart(ctx, tmp, id, num, buf.Bytes())
			if err != nil {
				return nil, 0, err
			}
			parts = append(parts, p)
			total += int64(buf.Len())
		}
		buf.Reset()
		n, err := io.CopyN(io.MultiWriter(buf, whole), &ctxReader{ctx: ctx, r: src}, s.part)
		if err != nil && err != io.EOF {
			return nil, 0, fmt.Errorf("s3blob: read content: %w", err)
		}
		if maxSize > 0 && total+n > maxSize {
			return nil, 0, fmt.Errorf("%w (%d bytes)", blob.ErrTooLarge, maxSize)
		}
		if err == io.EOF {
			if n > 0 {
				p, err := s.uploadPart(ctx, tmp, id, num+1, buf.Bytes())
				if err != nil {
					return nil, 0, err
				}
				parts = append(parts, p)
				total += n
			}
			return parts, total, nil
		}
	}
}

func (s *Store) uploadPart(ctx context.Context, tmp, id string, num int, content []byte) (minio.CompletePart, error) {
	md := md5.Sum(content)
	sum := sha256.Sum256(content)
	p, err := s.core.PutObjectPart(ctx, s.bucket, tmp, id, num, bytes.NewReader(content), int64(len(content)),
		minio.PutObjectPartOptions{Md5Base64: base64.StdEncoding.EncodeToString(md[:]), Sha256Hex: hex.EncodeToString(sum[:])})
	if err != nil {
		return minio.CompletePart{}, fmt.Errorf("s3blob: upload part %d: %w", num, err)
	}
	return minio.CompletePart{PartNumber: num, ETag: p.ETag}, nil
}

// promote copies the completed upload under its content name, unless an
// equal blob is there already, and checks the size the service reports.
func (s *Store) promote(ctx context.Context, tmp string, ref blob.Ref) error {
	if ok, err := s.present(ctx, ref); err != nil || ok {
		return err
	}
	src := minio.CopySrcOptions{Bucket: s.bucket, Object: tmp}
	dst := minio.CopyDestOptions{Bucket: s.bucket, Object: s.key(ref.SHA256)}
	if _, err := s.client.ComposeObject(ctx, dst, src); err != nil {
		return fmt.Errorf("s3blob: copy %s into place: %w", ref.SHA256, err)
	}
	st, err := s.Stat(ctx, ref)
	if err != nil {
		return fmt.Errorf("s3blob: check %s after copy: %w", ref.SHA256, err)
	}
	if st.Size != ref.Size {
		return fmt.Errorf("s3blob: %s stored with %d bytes, sent %d", ref.SHA256, st.Size, ref.Size)
	}
	return nil
}

func (s *Store) tempKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("s3blob: temporary name: %w", err)
	}
	return s.prefix + "tmp/" + hex.EncodeToString(b[:]), nil
}

// cleanupTimeout bounds the clean-up after a failed or finished upload; it
// runs on its own context because the caller's may be what ended the upload.
const cleanupTimeout = 30 * time.Second

func (s *Store) abort(tmp, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := s.core.AbortMultipartUpload(ctx, s.bucket, tmp, id); err != nil {
		s.logger.Warn("s3blob: abort of a failed upload failed; a bucket lifecycle rule removes it", "object", tmp, "err", err)
	}
}

func (s *Store) remove(tmp string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.bucket, tmp, minio.RemoveObjectOptions{}); err != nil {
		s.logger.Warn("s3blob: removing a temporary object failed; a bucket lifecycle rule removes it", "object", tmp, "err", err)
	}
}

// PutBytes stores a byte slice.
func (s *Store) PutBytes(ctx context.Context, b []byte) (blob.Ref, error) {
	return s.Put(ctx, bytes.NewReader(b), 0)
}

// Open returns a verifying reader of the blob.
func (s *Store) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	if err := blob.ValidRef(ref); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(ref.SHA256), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3blob: get %s: %w", ref.SHA256, err)
	}
	// Stat issues the GET, so a missing object fails here, not mid-read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, s.notFound(ref, "get", err)
	}
	return blob.NewVerifyingReader(ctx, obj, ref), nil
}

func (s *Store) notFound(ref blob.Ref, op string, err error) error {
	if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" || code == "NotFound" {
		return fmt.Errorf("%w: %s", blob.ErrNotFound, ref.SHA256)
	}
	return fmt.Errorf("s3blob: %s %s: %w", op, ref.SHA256, err)
}

// ReadAll reads a whole blob, verified, refusing blobs above max.
func (s *Store) ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error) {
	return blob.ReadAllFrom(ctx, s, ref, max)
}

// Verify re-reads a blob and checks its hash and size.
func (s *Store) Verify(ctx context.Context, ref blob.Ref) error {
	return blob.VerifyFrom(ctx, s, ref)
}

// Stat reports the stored size of a blob, or blob.ErrNotFound.
func (s *Store) Stat(ctx context.Context, ref blob.Ref) (blob.Ref, error) {
	if err := blob.ValidRef(ref); err != nil {
		return blob.Ref{}, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, s.key(ref.SHA256), minio.StatObjectOptions{})
	if err != nil {
		return blob.Ref{}, s.notFound(ref, "stat", err)
	}
	return blob.Ref{SHA256: ref.SHA256, Size: info.Size}, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
