package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
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
	if err := d.stop(); err != nil {
		t.Fatalf("serve: %v", err)
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
}

func readBlob(t *testing.T, blobs blob.Backend, ref blob.Ref) []byte {
	t.Helper()
	b, err := blobs.ReadAll(context.Background(), ref, ers.MaxRecordSize)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
