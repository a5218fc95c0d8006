package evidencebundle_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/ers/erstest"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway/evidencebundle"
)

// withRecord gives the fixture's builder an evidence record over data
// (the original, or something else), its TSA's root among the anchors.
func withRecord(t *testing.T, f *fixture, data []byte) {
	t.Helper()
	now := time.Now().UTC()
	ca, err := erstest.NewCA("Records Root", now.Add(-time.Hour), now.Add(10*erstest.Year))
	if err != nil {
		t.Fatal(err)
	}
	tsa, err := ca.NewTSA("Records TSA", now.Add(-time.Hour), now.Add(5*erstest.Year))
	if err != nil {
		t.Fatal(err)
	}
	tsa.Now = func() time.Time { return now.Add(-time.Minute) }
	c, err := cert.Parse(ca.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	f.anchor.AddCertificate(c, "Records Root")
	sum := sha256.Sum256(data)
	other := sha256.Sum256([]byte("another message"))
	recs, err := ers.Build(context.Background(), tsa, crypto.SHA256, [][]byte{sum[:], other[:]})
	if err != nil {
		t.Fatal(err)
	}
	der, err := recs[0].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mem := &blob.Memory{}
	ref, err := mem.Put(context.Background(), bytes.NewReader(der), 0)
	if err != nil {
		t.Fatal(err)
	}
	f.b.Blobs = &firstOf{mem, f.b.Blobs}
	f.b.OriginalRecord = func(_ context.Context, _, stream string) (blob.Ref, bool, error) {
		return ref, stream == f.stream, nil
	}
}

// firstOf opens from a, then from b.
type firstOf struct{ a, b blob.Opener }

func (o *firstOf) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	rc, err := o.a.Open(ctx, ref)
	if errors.Is(err, blob.ErrNotFound) {
		return o.b.Open(ctx, ref)
	}
	return rc, err
}

func finding(res *evidencebundle.Result, check string) (evidencebundle.Finding, bool) {
	for _, f := range res.Findings {
		if f.Check == check {
			return f, true
		}
	}
	return evidencebundle.Finding{}, false
}

func TestBundleEvidenceRecord(t *testing.T) {
	tests := []struct {
		name   string
		erased bool
		over   string
		ok     bool
		detail string
	}{
		{"over the original", false, raw, true, "covers the original bytes; 1 archive timestamps in 1 chains, chained to a trust anchor"},
		{"original erased", true, raw, true, "covers the SHA-256 the receipt event records (the bytes are erased)"},
		{"over another object", false, "not the message", false, "does not cover the original bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.erased)
			withRecord(t, f, []byte(tt.over))
			data := f.build(t)
			if der, ok := fileOf(t, data, evidencebundle.RecordName); !ok || len(der) == 0 {
				t.Fatal("no evidence record in the bundle")
			}
			res := check(t, data, evidencebundle.VerifyOptions{Key: f.key, Trust: f.anchor})
			fd, ok := finding(res, "evidence-record")
			if !ok || fd.OK != tt.ok || !strings.Contains(fd.Detail, tt.detail) {
				t.Fatalf("evidence-record finding %+v, want ok=%v %q", fd, tt.ok, tt.detail)
			}
			if res.OK() != tt.ok {
				t.Fatalf("bundle ok=%v: %+v", res.OK(), res.Failed())
			}
		})
	}
}

// TestBundleWithoutRecord: a message the gateway has no record of yet
// gets a bundle without one, and verification says nothing about it.
func TestBundleWithoutRecord(t *testing.T) {
	f := newFixture(t, false)
	f.b.OriginalRecord = func(context.Context, string, string) (blob.Ref, bool, error) { return blob.Ref{}, false, nil }
	data := f.build(t)
	if _, ok := fileOf(t, data, evidencebundle.RecordName); ok {
		t.Fatal("a record in the bundle of a message without one")
	}
	res := check(t, data, evidencebundle.VerifyOptions{Key: f.key, Trust: f.anchor})
	if _, ok := finding(res, "evidence-record"); ok || !res.OK() {
		t.Fatalf("%+v", res.Findings)
	}
}
