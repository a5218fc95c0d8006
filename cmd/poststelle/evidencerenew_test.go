package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/ers/erstest"
)

func TestEvidenceRenew(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	ca, err := erstest.NewCA("Test Root", now.Add(-time.Hour), now.Add(20*erstest.Year))
	if err != nil {
		t.Fatal(err)
	}
	tsa, err := ca.NewTSA("Test TSA", now.Add(-time.Hour), now.Add(2*erstest.Year))
	if err != nil {
		t.Fatal(err)
	}
	tsa.Now = time.Now
	srv := httptest.NewServer(tsa)
	defer srv.Close()

	dir := t.TempDir()
	data := []byte("Antrag\n")
	d := sha256.Sum256(data)
	recs, err := ers.Build(ctx, tsa, crypto.SHA256, [][]byte{d[:]})
	if err != nil {
		t.Fatal(err)
	}
	store := ers.DirStore{Records: dir}
	if err := store.Save(ctx, "antrag.eml", recs[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "antrag.eml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"usage", []string{}, exitUsage, ""},
		{"unknown hash", []string{"--dir", dir, "--hash", "MD5", "--tsa", srv.URL}, exitUsage, ""},
		{"nothing due", []string{"--dir", dir, "--tsa", srv.URL}, exitOK, "timestamp renewal renewed: -\n"},
		{"dry run, TSA certificate within a 3-year margin", []string{"--dir", dir, "--dry-run", "--cert-margin", "26280h"}, exitOK, "timestamp renewal due: antrag.eml\n"},
		{"renewal", []string{"--dir", dir, "--tsa", srv.URL, "--cert-margin", "26280h"}, exitOK, "timestamp renewal renewed: antrag.eml\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runEvidence(ctx, append([]string{"renew"}, c.args...), &stdout, &stderr)
			if code != c.code || !strings.Contains(stdout.String(), c.out) {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q", code, c.code, stdout.String(), stderr.String())
			}
		})
	}
	er, err := store.Load(ctx, "antrag.eml")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(er.Chains[0].Stamps); n != 2 {
		t.Fatalf("%d archive timestamps after the renewal, want 2", n)
	}
}
