//go:build integration

// Package s3 runs `poststelle serve` with its blobs in a real S3 server
// (SeaweedFS, started by run.sh): intake over SMTP acknowledges only once
// the object store has the bytes, which it holds only encrypted at rest,
// the office API serves them from there, and an admin's erasure destroys
// them for good.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/internal/servetest"
)

var bin string

func TestMain(m *testing.M) { servetest.Main(m, &bin) }

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run test/integration/s3/run.sh", name)
	}
	return v
}

// gw is one installation whose blobs live under prefix in the test bucket,
// encrypted at rest under a KEK of its own (serve never makes one for S3),
// with an offices file whose admin may erase contents.
type gw struct {
	dir, config, api, smtp, ops, prefix string
	staff                               servetest.Staff
}

func newGateway(t *testing.T, accessFile, secretFile string) *gw {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	g := &gw{dir: t.TempDir(), api: servetest.FreeAddr(t), smtp: servetest.FreeAddr(t), ops: servetest.FreeAddr(t),
		prefix: "serve-" + hex.EncodeToString(b[:]) + "/"}
	g.config = filepath.Join(g.dir, "poststelle.yaml")
	g.staff = servetest.WriteStaff(t, g.dir)
	kek := filepath.Join(g.dir, "keys", "blob-kek")
	servetest.WriteKEK(t, kek)
	conf := fmt.Sprintf(`data_dir: %s/data
offices: %s
routing: {rules: %s}
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
ops: {listen: %q}
smtp: {listen: %q, accept_all: true}
blobs:
  backend: s3
  kek_file: %s
  s3: {endpoint: %q, bucket: %q, prefix: %q, access_key_file: %s, secret_key_file: %s}
`, g.dir, g.staff.OfficesFile, g.staff.RulesFile, g.api, servetest.FreeAddr(t), servetest.FreeAddr(t), g.ops, g.smtp,
		kek, env(t, "S3_ENDPOINT"), env(t, "S3_BUCKET"), g.prefix, accessFile, secretFile)
	if err := os.WriteFile(g.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

// getRaw asks the office API for a message's bytes as the office's member.
func (g *gw) getRaw(stream string) (int, []byte, error) {
	req, err := http.NewRequest("GET", "http://"+g.api+"/offices/demo/messages/"+stream+"/raw", nil)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(g.staff.Member.User, g.staff.Member.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// raw downloads a message's bytes from the office API as the office's
// member, once the message is in the office.
func (g *gw) raw(t *testing.T, stream string) []byte {
	t.Helper()
	var raw []byte
	servetest.WaitFor(t, "the message in the demo office", func() bool {
		code, b, err := g.getRaw(stream)
		raw = b
		return err == nil && code == http.StatusOK
	})
	return raw
}

func bucketClient(t *testing.T) *minio.Client {
	t.Helper()
	access, err1 := os.ReadFile(env(t, "S3_ACCESS_KEY_FILE"))
	secret, err2 := os.ReadFile(env(t, "S3_SECRET_KEY_FILE"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	c, err := minio.New(env(t, "S3_ENDPOINT"), &minio.Options{Creds: credentials.NewStaticV4(string(access), string(secret), ""),
		BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const citizenMail = "From: buerger@example.org\r\nTo: bauamt@kreis.example\r\nSubject: Bauantrag\r\n" +
	"Message-ID: <s3-serve-1@example.org>\r\n\r\nSehr geehrte Damen und Herren,\r\nanbei mein Antrag fuer " + plainMarker + ".\r\n"

// plainMarker is a phrase of the message body that no object in the bucket
// may hold: the bytes are there only encrypted.
const plainMarker = "Flurstueck-4711-12"

// TestServeWithS3: a message taken in over SMTP is in the bucket only
// encrypted (no object under the gateway's prefix holds a phrase of its
// body, and nothing is in the data directory), the office API serves its
// bytes, `log verify --blobs` re-reads it from S3, and the metrics show the
// puts. An admin then erases it: /raw answers 410 and log verify --blobs
// still passes, counting the erased blob.
func TestServeWithS3(t *testing.T) {
	g := newGateway(t, env(t, "S3_ACCESS_KEY_FILE"), env(t, "S3_SECRET_KEY_FILE"))
	servetest.Start(t, bin, g.config, g.api)
	if err := smtp.SendMail(g.smtp, nil, "buerger@example.org", []string{"bauamt@kreis.example"}, []byte(citizenMail)); err != nil {
		t.Fatalf("SMTP intake: %v", err)
	}
	recs := servetest.Replay(t, bin, g.config, "MessageReceived")
	if len(recs) != 1 {
		t.Fatalf("%d messages recorded, want 1", len(recs))
	}
	m := recs[0].Payload.(*gateway.MessageReceived)
	sum := sha256.Sum256([]byte(citizenMail))
	if m.Raw.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("raw ref %s, want the SHA-256 of the sent bytes", m.Raw.SHA256)
	}
	checkCiphertextOnly(t, g.prefix, len(citizenMail))
	if _, err := os.Stat(filepath.Join(g.dir, "data", "blobs")); !os.IsNotExist(err) {
		t.Errorf("the data directory has a local blob store: %v", err)
	}
	if raw := g.raw(t, recs[0].Stream); string(raw) != citizenMail {
		t.Fatalf("/raw served %q", raw)
	}
	if code, out, errs := servetest.CLI(t, bin, g.config, "log", "verify", "--blobs"); code != 0 {
		t.Fatalf("log verify --blobs: exit %d\n%s\n%s", code, out, errs)
	}
	// The metrics observer reads the log once a second.
	var body string
	servetest.WaitFor(t, "the intake in the metrics", func() bool {
		resp, err := http.Get("http://" + g.ops + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return strings.Contains(body, `poststelle_intake_messages_total{channel="smtp"} 1`)
	})
	if !strings.Contains(body, `poststelle_blob_operation_seconds_count{op="put"}`) {
		t.Error("metrics lack the blob puts")
	}

	g.staff.Erase(t, g.api, recs[0].Stream, "Antrag nach Art. 17 DSGVO")
	if code, b, err := g.getRaw(recs[0].Stream); err != nil || code != http.StatusGone {
		t.Fatalf("/raw after the erasure: %d %v %q, want 410", code, err, b)
	}
	if n := len(servetest.Replay(t, bin, g.config, "ContentErased")); n != 1 {
		t.Fatalf("%d ContentErased events, want 1", n)
	}
	code, out, errs := servetest.CLI(t, bin, g.config, "log", "verify", "--blobs")
	if m := erasedCount.FindStringSubmatch(out); code != 0 || m == nil || m[1] == "0" {
		t.Fatalf("log verify --blobs after the erasure: exit %d\n%s\n%s", code, out, errs)
	}
	checkCiphertextOnly(t, g.prefix, len(citizenMail))
}

// erasedCount finds log verify --blobs's count of erased blobs.
var erasedCount = regexp.MustCompile(`(\d+) blobs erased as ContentErased events record`)

// checkCiphertextOnly lists every object under prefix in the bucket: none
// may hold the message's plaintext marker, and one outside the key store's
// keys/ must be at least as large as the message (its ciphertext), so that
// the scan is not vacuous.
func checkCiphertextOnly(t *testing.T, prefix string, size int) {
	t.Helper()
	ctx := context.Background()
	c, bucket := bucketClient(t), env(t, "S3_BUCKET")
	var objects, ciphertexts int
	for info := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if info.Err != nil {
			t.Fatalf("list the bucket: %v", info.Err)
		}
		obj, err := c.GetObject(ctx, bucket, info.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(io.LimitReader(obj, 16<<20))
		obj.Close()
		if err != nil {
			t.Fatalf("read %s: %v", info.Key, err)
		}
		if bytes.Contains(b, []byte(plainMarker)) || bytes.Contains(b, []byte("Sehr geehrte")) {
			t.Errorf("object %s holds the message's plaintext", info.Key)
		}
		objects++
		if !strings.HasPrefix(info.Key, prefix+"keys/") && len(b) >= size {
			ciphertexts++
		}
	}
	if ciphertexts == 0 {
		t.Fatalf("none of the %d objects under %s is the message's ciphertext", objects, prefix)
	}
}

// TestIntakeRefusedWhenStoreRefuses: with keys that may read but not write
// the bucket, the gateway starts (the bucket answers) but SMTP DATA gets a
// temporary failure, and nothing is recorded: no 250 without the bytes.
func TestIntakeRefusedWhenStoreRefuses(t *testing.T) {
	g := newGateway(t, env(t, "S3_READONLY_ACCESS_KEY_FILE"), env(t, "S3_READONLY_SECRET_KEY_FILE"))
	servetest.Start(t, bin, g.config, g.api)
	err := smtp.SendMail(g.smtp, nil, "buerger@example.org", []string{"bauamt@kreis.example"}, []byte(citizenMail))
	if err == nil || !strings.HasPrefix(err.Error(), "4") {
		t.Fatalf("SMTP intake with a read-only store: %v, want a 4xx reply", err)
	}
	if recs := servetest.Replay(t, bin, g.config, "MessageReceived"); len(recs) != 0 {
		t.Fatalf("%d messages recorded without their bytes stored", len(recs))
	}
}

// TestKilledAfterRecord: a gateway killed (SIGKILL) after recording a
// message and before its 250 has the bytes in the bucket already: after a
// restart the sender's retry is the same message, /raw serves it from S3
// and log verify --blobs passes.
func TestKilledAfterRecord(t *testing.T) {
	g := newGateway(t, env(t, "S3_ACCESS_KEY_FILE"), env(t, "S3_SECRET_KEY_FILE"))
	p := servetest.StartCrashing(t, bin, g.config, 1)
	servetest.WaitFor(t, "the SMTP listener", func() bool {
		c, err := net.Dial("tcp", g.smtp)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err := smtp.SendMail(g.smtp, nil, "buerger@example.org", []string{"bauamt@kreis.example"}, []byte(citizenMail)); err == nil {
		t.Fatal("the delivery got its 250 although the gateway died before answering")
	}
	p.WaitKilled(t, 30*time.Second)
	recs := servetest.Replay(t, bin, g.config, "MessageReceived")
	if len(recs) != 1 {
		t.Fatalf("%d messages recorded at the crash point, want 1", len(recs))
	}
	servetest.Start(t, bin, g.config, g.api)
	if err := smtp.SendMail(g.smtp, nil, "buerger@example.org", []string{"bauamt@kreis.example"}, []byte(citizenMail)); err != nil {
		t.Fatalf("the retry after the restart: %v", err)
	}
	if again := servetest.Replay(t, bin, g.config, "MessageReceived"); len(again) != 1 {
		t.Fatalf("%d messages after the retry, want the one", len(again))
	}
	if raw := g.raw(t, recs[0].Stream); string(raw) != citizenMail {
		t.Fatalf("/raw served %q", raw)
	}
	if code, out, errs := servetest.CLI(t, bin, g.config, "log", "verify", "--blobs"); code != 0 {
		t.Fatalf("log verify --blobs: exit %d\n%s\n%s", code, out, errs)
	}
}
