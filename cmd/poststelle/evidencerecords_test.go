package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/gateway/preservation"
	"github.com/poststelle/poststelle/internal/assembly"
)

// TestDemoEvidenceRecords: on the demo set-up serve builds RFC 4998
// evidence records over a newcomer's message and the log's head with the
// local TSA; each record verifies against its data object with the demo CA
// as the only trust anchor, and log verify --blobs checks the records.
func TestDemoEvidenceRecords(t *testing.T) {
	t.Chdir(t.TempDir())
	d := startDemoWith(t, func(cfg *assembly.Config) { cfg.Evidence.Records.Interval = time.Second })
	sendMail(t, d.smtp, "buerger@example.org", "poststelle@kreis.example",
		"From: buerger@example.org\r\nTo: poststelle@kreis.example\r\nSubject: Akte\r\nMessage-ID: <ers@example.org>\r\n\r\nGuten Tag\r\n")
	type saved struct {
		Payload gateway.EvidenceRecordSaved `json:"data"`
	}
	var records []gateway.EvidenceRecordSaved
	eventually(t, "EvidenceRecordSaved over the original and a head", func() bool {
		_, out, _ := cli(t, "data", "log", "replay", "--type", "EvidenceRecordSaved")
		records = records[:0]
		kinds := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var s saved
			if json.Unmarshal([]byte(line), &s) == nil && s.Payload.Record.SHA256 != "" {
				records = append(records, s.Payload)
				kinds[s.Payload.Object.Kind] = true
			}
		}
		return kinds[gateway.PreservedOriginal] && kinds[gateway.PreservedLogHead]
	})
	// The message's evidence bundle carries its original's record.
	var stream string
	for _, r := range records {
		if r.Object.Kind == gateway.PreservedOriginal {
			stream = r.Object.Stream
		}
	}
	creds, err := readDemoCredentials(t)
	if err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	eventually(t, "the bundle download", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+d.api+"/offices/"+offices.DemoOffice+"/messages/"+stream+"/bundle", nil)
		req.SetBasicAuth(creds.User, creds.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		bundle, _ = io.ReadAll(resp.Body)
		return true
	})
	if err := d.stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	os.WriteFile("bundle.asice", bundle, 0o600)
	code, out, errs := cli(t, "data", "evidence", "verify", "bundle.asice",
		"--key", filepath.Join("data", "keys", "gateway.pub"), "--trust", filepath.Join("data", "demo-ca", "ca.pem"))
	if code != exitOK || !strings.Contains(out, "evidence-record") || !strings.Contains(out, "records/original.ers covers the original bytes") {
		t.Fatalf("evidence verify: exit %d\n%s%s", code, out, errs)
	}
	// The command's bundle, made offline from the log, carries it too.
	if code, out, errs := cli(t, "data", "evidence", stream, "--out", "cli.asice"); code != exitOK {
		t.Fatalf("evidence %s --out: exit %d\n%s%s", stream, code, out, errs)
	}
	code, out, errs = cli(t, "data", "evidence", "verify", "cli.asice",
		"--key", filepath.Join("data", "keys", "gateway.pub"), "--trust", filepath.Join("data", "demo-ca", "ca.pem"))
	if code != exitOK || !strings.Contains(out, "records/original.ers covers the original bytes") {
		t.Fatalf("evidence verify of the command's bundle: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(d.log.String(), "evidence records: run done") {
		t.Errorf("no run logged:\n%s", d.log.String())
	}

	ctx := context.Background()
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := assembly.OpenBlobs(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	anchors := trust.NewStore()
	if err := anchors.LoadAnchors(ctx, filepath.Join("data", "demo-ca", "ca.pem")); err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if r.Cause != gateway.RecordBuilt || r.Hash != "SHA-256" || !strings.Contains(r.TSA, "Poststelle Demo TSA") {
			t.Errorf("event %+v", r)
		}
		der := readBlob(t, blobs, r.Record)
		data := readBlob(t, blobs, r.Object.Data)
		er, err := ers.Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if !er.Covers(sum[:]) {
			t.Fatalf("%s record does not cover its data object", r.Object.Kind)
		}
		res, err := er.Verify(ers.VerifyOptions{Data: data, Trust: anchors, Policy: ers.DefaultPolicy()})
		if err != nil || !res.Valid {
			t.Fatalf("%s record: %v %+v", r.Object.Kind, err, res)
		}
		if r.Object.Kind == gateway.PreservedOriginal && !strings.Contains(string(data), "Subject: Akte") {
			t.Fatalf("the original's data object is not the message:\n%s", data)
		}
	}
	if c, ok := blobs.(io.Closer); ok {
		c.Close()
	}
	if code, out, errs := cli(t, "data", "log", "verify", "--blobs"); code != exitOK {
		t.Fatalf("log verify --blobs: exit %d\n%s%s", code, out, errs)
	}

	// The auditor's export: NAME.ers beside NAME, which evidence renew
	// reads as it reads any directory of records.
	code, out, errs = cli(t, "data", "evidence", "records", "--out", "records")
	if code != exitOK {
		t.Fatalf("evidence records: exit %d\n%s%s", code, out, errs)
	}
	var names []string
	for _, r := range records {
		name := preservation.ObjectName(r.Object.Kind, r.Object.Stream, r.Object.Data)
		names = append(names, name)
		der, err := os.ReadFile(filepath.Join("records", name+".ers"))
		if err != nil || !bytes.Equal(der, readBlobFile(t, cfg, r.Record)) {
			t.Fatalf("exported record %s: %v", name, err)
		}
		if _, err := os.Stat(filepath.Join("records", name)); err != nil {
			t.Fatalf("exported data object: %v", err)
		}
	}
	code, out, errs = cli(t, "data", "evidence", "renew", "--dir", "records", "--dry-run")
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("checked %d evidence records", len(names))) ||
		!strings.Contains(out, "timestamp renewal due: -") {
		t.Fatalf("evidence renew --dry-run over the export: exit %d\n%s%s", code, out, errs)
	}
}

// readBlobFile reads a blob with a store of its own.
func readBlobFile(t *testing.T, cfg *assembly.Config, ref blob.Ref) []byte {
	t.Helper()
	blobs, err := assembly.OpenBlobs(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.(io.Closer).Close()
	return readBlob(t, blobs, ref)
}

func readBlob(t *testing.T, blobs blob.Backend, ref blob.Ref) []byte {
	t.Helper()
	b, err := blobs.ReadAll(context.Background(), ref, ers.MaxRecordSize)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
