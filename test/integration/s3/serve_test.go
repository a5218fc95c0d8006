//go:build integration

// Package s3 runs `poststelle serve` with its blobs in a real S3 server
// (SeaweedFS, started by run.sh): intake over SMTP acknowledges only once
// the object store has the bytes, and the office API serves them from there.
package s3

import (
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

// gw is one installation whose blobs live under prefix in the test bucket.
type gw struct {
	dir, config, api, smtp, ops, prefix string
}

func newGateway(t *testing.T, accessFile, secretFile string) *gw {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	g := &gw{dir: t.TempDir(), api: servetest.FreeAddr(t), smtp: servetest.FreeAddr(t), ops: servetest.FreeAddr(t),
		prefix: "serve-" + hex.EncodeToString(b[:]) + "/"}
	g.config = filepath.Join(g.dir, "poststelle.yaml")
	conf := fmt.Sprintf(`data_dir: %s/data
office_api: {listen: %q}
office_imap: {listen: %q}
smtp_submission: {listen: %q}
ops: {listen: %q}
smtp: {listen: %q, accept_all: true}
blobs:
  backend: s3
  s3: {endpoint: %q, bucket: %q, prefix: %q, access_key_file: %s, secret_key_file: %s}
`, g.dir, g.api, servetest.FreeAddr(t), servetest.FreeAddr(t), g.ops, g.smtp,
		env(t, "S3_ENDPOINT"), env(t, "S3_BUCKET"), g.prefix, accessFile, secretFile)
	if err := os.WriteFile(g.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gw) demoLogin(t *testing.T) (user, password string) {
	t.Helper()
	c := servetest.DemoLogin(t, filepath.Join(g.dir, "data"))
	return c.User, c.Password
}

// raw downloads a message's bytes from the office API as the demo office's
// member, once the message is in the office.
func (g *gw) raw(t *testing.T, stream string) []byte {
	t.Helper()
	user, pw := g.demoLogin(t)
	var raw []byte
	servetest.WaitFor(t, "the message in the demo office", func() bool {
		req, _ := http.NewRequest("GET", "http://"+g.api+"/offices/demo/messages/"+stream+"/raw", nil)
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK
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
	"Message-ID: <s3-serve-1@example.org>\r\n\r\nSehr geehrte Damen und Herren,\r\nanbei mein Antrag.\r\n"

// TestServeWithS3: a message taken in over SMTP is in the bucket under its
// SHA-256 (and not in the data directory), the office API serves its bytes,
// `log verify --blobs` re-reads it from S3, and the metrics show the puts.
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
	obj, err := bucketClient(t).GetObject(context.Background(), env(t, "S3_BUCKET"), g.prefix+"sha256/"+m.Raw.SHA256, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(obj)
	if err != nil || string(stored) != citizenMail {
		t.Fatalf("object in the bucket: %v %q", err, stored)
	}
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
