package blobkeys_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/blobkeys"
	"github.com/poststelle/poststelle/eventstore/blobkeys/keystest"
	"github.com/poststelle/poststelle/eventstore/s3blob"
)

// fakeS3 answers the few S3 requests the key store makes, with the
// conditional writes (If-Match, If-None-Match) of AWS S3 since 2024. It
// lets the suite run on every `go test`; the integration test runs it
// against a real server.
type fakeS3 struct {
	mu         sync.Mutex
	objects    map[string][]byte
	versioning string // "", "Enabled", "Suspended"
	noVersAPI  bool   // answer the versioning request NotImplemented
	ignoreCond bool   // ignore If-Match and If-None-Match, as an older server would
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != "keys-bucket" {
		s3Error(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	switch {
	case key == "" && r.Method == http.MethodGet && r.URL.Query().Has("versioning"):
		if f.noVersAPI {
			s3Error(w, http.StatusNotImplemented, "NotImplemented")
			return
		}
		status := ""
		if f.versioning != "" {
			status = "<Status>" + f.versioning + "</Status>"
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">%s</VersioningConfiguration>`, status)
	case key == "" && r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		b, ok := f.objects[key]
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		w.Header().Set("ETag", etag(b))
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		if r.Method == http.MethodGet {
			w.Write(b)
		}
	case r.Method == http.MethodPut:
		b, err := io.ReadAll(r.Body)
		if err == nil && strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			b, err = unchunk(b)
		}
		if err != nil {
			s3Error(w, http.StatusBadRequest, "IncompleteBody")
			return
		}
		old, exists := f.objects[key]
		if !f.ignoreCond {
			if m := r.Header.Get("If-None-Match"); m == "*" && exists {
				s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
				return
			}
			if m := r.Header.Get("If-Match"); m != "" && (!exists || m != etag(old)) {
				s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
				return
			}
		}
		f.objects[key] = b
		w.Header().Set("ETag", etag(b))
		w.WriteHeader(http.StatusOK)
	default:
		s3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed")
	}
}

// unchunk decodes an aws-chunked body ("<hex size>;chunk-signature=...\r\n
// <data>\r\n", ending with a chunk of size 0), which minio-go sends over
// plain HTTP; the signatures are not checked.
func unchunk(b []byte) ([]byte, error) {
	var out []byte
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return nil, errors.New("aws-chunked: no chunk header")
		}
		sizeHex, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(sizeHex), 16, 32)
		if err != nil || int64(len(rest)) < n+2 {
			return nil, fmt.Errorf("aws-chunked: bad chunk header %q", line)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, rest[:n]...)
		b = rest[n+2:]
	}
}

func etag(b []byte) string {
	s := md5.Sum(b)
	return `"` + hex.EncodeToString(s[:]) + `"`
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, code)
}

func fakeConfig(t *testing.T, srv *httptest.Server) blobkeys.S3Config {
	t.Helper()
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("poststelle-test"), 0o600); err != nil {
		t.Fatal(err)
	}
	return blobkeys.S3Config{Conn: s3blob.Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "keys-bucket",
		Prefix: "p/", AccessKeyFile: key, SecretKeyFile: key, MaxRetries: 1}}
}

func openFake(t *testing.T, cfg blobkeys.S3Config) blobkeys.Store {
	t.Helper()
	s, err := blobkeys.OpenS3(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open S3 key store: %v", err)
	}
	return s
}

// TestConformanceS3Fake runs the suite against the S3 store over the fake
// server, with conditional writes honoured and ignored: both must keep
// the suite's promises.
func TestConformanceS3Fake(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignore_conditions=%v", ignore), func(t *testing.T) {
			if ignore {
				// Without conditions, concurrent adds can disagree on
				// which entry they were told is live; that case is the
				// documented last-writer-wins and is checked below.
				t.Run("LastWriterWins", func(t *testing.T) { testLastWriterWins(t) })
				return
			}
			keystest.Run(t, func(t *testing.T) keystest.Open {
				f := &fakeS3{objects: map[string][]byte{}}
				srv := httptest.NewServer(f)
				t.Cleanup(srv.Close)
				cfg := fakeConfig(t, srv)
				return func(t *testing.T) blobkeys.Store { return openFake(t, cfg) }
			})
		})
	}
}

// testLastWriterWins: on a server that ignores the conditions, racing adds
// all succeed and one of the added entries ends up live for everyone.
func testLastWriterWins(t *testing.T) {
	f := &fakeS3{objects: map[string][]byte{}, ignoreCond: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := openFake(t, fakeConfig(t, srv))
	plain := keystest.Ref()
	added := make([]blobkeys.Entry, 8)
	var wg sync.WaitGroup
	for i := range added {
		added[i] = keystest.Entry()
		wg.Go(func() {
			if _, err := s.Add(context.Background(), plain, added[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := s.Get(context.Background(), plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range added {
		if e.Equal(got) {
			return
		}
	}
	t.Fatal("the live entry is none of those added")
}

func TestOpenS3RefusesVersionedBucket(t *testing.T) {
	tests := []struct {
		name       string
		versioning string
		noAPI      bool
		allow      bool
		wantErr    string
	}{
		{"never versioned", "", false, false, ""},
		{"enabled", "Enabled", false, false, "versioning Enabled"},
		{"suspended", "Suspended", false, false, "versioning Suspended"},
		{"enabled but allowed", "Enabled", false, true, ""},
		{"no versioning API", "", true, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeS3{objects: map[string][]byte{}, versioning: tc.versioning, noVersAPI: tc.noAPI})
			defer srv.Close()
			cfg := fakeConfig(t, srv)
			cfg.AllowVersioning = tc.allow
			_, err := blobkeys.OpenS3(context.Background(), cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("open: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	srv := httptest.NewServer(&fakeS3{objects: map[string][]byte{}})
	defer srv.Close()
	cfg := fakeConfig(t, srv)
	cfg.Conn.Bucket = "no-such-bucket"
	if _, err := blobkeys.OpenS3(context.Background(), cfg); err == nil {
		t.Fatal("open of a missing bucket succeeded")
	}
}

// TestS3EraseOverwritesKeyObject: the erased key's object holds a
// tombstone, with none of the wrapped key's bytes.
func TestS3EraseOverwritesKeyObject(t *testing.T) {
	f := &fakeS3{objects: map[string][]byte{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := openFake(t, fakeConfig(t, srv))
	plain, e := keystest.Ref(), keystest.Entry()
	if _, err := s.Add(context.Background(), plain, e); err != nil {
		t.Fatal(err)
	}
	if err := s.Erase(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	obj, ok := f.objects["p/keys/"+plain.SHA256]
	f.mu.Unlock()
	if !ok || !strings.Contains(string(obj), `"erasedAt"`) || strings.Contains(string(obj), "wrappedKey") || strings.Contains(string(obj), e.KEK) {
		t.Fatalf("key object after erase: %s", obj)
	}
}

// TestS3RefusesTamperedObjects: key objects that are not what the store
// writes are errors, never entries.
func TestS3RefusesTamperedObjects(t *testing.T) {
	f := &fakeS3{objects: map[string][]byte{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := openFake(t, fakeConfig(t, srv))
	plain := keystest.Ref()
	other := keystest.Ref()
	for name, body := range map[string]string{
		"not JSON":       "garbage",
		"other ref":      `{"format":"poststelle-blobkey-1","sha256":"` + other.SHA256 + `","size":1,"erasedAt":"2026-01-01T00:00:00Z"}`,
		"huge":           strings.Repeat(" ", 5000) + "{}",
		"no key, no era": `{"format":"poststelle-blobkey-1","sha256":"` + plain.SHA256 + `","size":1}`,
	} {
		f.mu.Lock()
		f.objects["p/keys/"+plain.SHA256] = []byte(body)
		f.mu.Unlock()
		_, err := s.Get(context.Background(), plain)
		if err == nil || errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrErased) {
			t.Errorf("%s: get %v, want a plain error", name, err)
		}
	}
}
