package ers_test

import (
	"context"
	"crypto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
)

func TestRenewStore(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second)
	l := newLifecycle(t, t0)
	dir := t.TempDir()
	store := ers.DirStore{Records: dir}
	names := []string{"a.eml", "b.eml", "c.eml"}
	for i, n := range names {
		must(t, os.WriteFile(filepath.Join(dir, n), l.data[i], 0o644))
		must(t, store.Save(ctx, n, l.built[i]))
	}
	must(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a record"), 0o644))

	// Fresh: nothing due; the next run falls due 180 days before TSA 1 expires.
	rep, err := ers.Renew(ctx, store, ers.RenewOptions{Policy: ers.DefaultPolicy(), Stamper: l.TSA2, NewHash: crypto.SHA512, Now: t0.Add(time.Hour)})
	must(t, err)
	wantDue := l.TSA1.Cert.NotAfter.Add(-180 * 24 * time.Hour)
	if rep.Checked != 3 || len(rep.TimestampsRenewed)+len(rep.HashTreesRenewed) != 0 || !rep.NextDue.Equal(wantDue) {
		t.Fatalf("fresh store: %+v, want next due %v", rep, wantDue)
	}

	// Ten years on, TSA 1 is about to expire: a dry run says so and changes nothing.
	tenYears := t0.Add(10 * year)
	l.TSA2.Now = func() time.Time { return tenYears }
	rep, err = ers.Renew(ctx, store, ers.RenewOptions{Policy: ers.DefaultPolicy(), NewHash: crypto.SHA512, Now: tenYears, DryRun: true})
	must(t, err)
	if !slices.Equal(rep.TimestampsRenewed, names) {
		t.Fatalf("dry run: %+v", rep)
	}
	if er, _ := store.Load(ctx, "a.eml"); len(er.Chains[0].Stamps) != 1 {
		t.Fatal("dry run changed a record")
	}
	rep, err = ers.Renew(ctx, store, ers.RenewOptions{Policy: ers.DefaultPolicy(), Stamper: l.TSA2, NewHash: crypto.SHA512, Now: tenYears})
	must(t, err)
	if !slices.Equal(rep.TimestampsRenewed, names) || len(rep.Failed) != 0 {
		t.Fatalf("timestamp renewal: %+v", rep)
	}

	// SHA-256 is near its end: hash-tree renewal; c.eml was changed and is refused.
	must(t, os.WriteFile(filepath.Join(dir, "c.eml"), []byte("changed"), 0o644))
	later := tenYears.Add(time.Hour)
	l.TSA2.Now = func() time.Time { return later }
	p := withHash(ers.DefaultPolicy(), crypto.SHA256, later.Add(year/2))
	rep, err = ers.Renew(ctx, store, ers.RenewOptions{Policy: p, Stamper: l.TSA2, NewHash: crypto.SHA512, Now: later})
	must(t, err)
	if !slices.Equal(rep.HashTreesRenewed, names[:2]) || rep.Failed["c.eml"] == nil || !strings.Contains(rep.Failed["c.eml"].Error(), "not the one its record covers") {
		t.Fatalf("hash-tree renewal: %+v", rep)
	}
	for i, n := range names[:2] {
		er, err := store.Load(ctx, n)
		must(t, err)
		if len(er.Chains) != 2 || len(er.Chains[0].Stamps) != 2 {
			t.Fatalf("%s: %d chains", n, len(er.Chains))
		}
		r, err := er.Verify(ers.VerifyOptions{Data: l.data[i], Trust: l.store, Time: later.Add(time.Hour), Policy: p})
		must(t, err)
		if !r.Valid {
			t.Fatalf("%s after renewals: %s", n, problems(r))
		}
	}

	// A renewal to an algorithm the policy does not accept is refused.
	if _, err := ers.Renew(ctx, store, ers.RenewOptions{Policy: p, Stamper: l.TSA2, NewHash: crypto.SHA1, Now: later}); err == nil {
		t.Fatal("renewal to SHA-1 accepted")
	}
}
