package ers_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/ers/erstest"
	"github.com/poststelle/poststelle/crypto/trust"
)

const year = erstest.Year

// lifecycle is erstest's simulated life of three records.
type lifecycle struct {
	*erstest.Life
	data                     [][]byte
	store                    *trust.Store
	built, renewed, rehashed []*ers.EvidenceRecord
}

func newLifecycle(t *testing.T, t0 time.Time) *lifecycle {
	t.Helper()
	data := [][]byte{[]byte("Antrag auf Akteneinsicht\n"), []byte("Bescheid vom 3. Dezember\n"), []byte("Widerspruch\n")}
	l, err := erstest.NewLife(context.Background(), t0, data)
	must(t, err)
	return &lifecycle{Life: l, data: data, store: l.Store, built: l.Built, renewed: l.Renewed, rehashed: l.Rehashed}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// roundTrip encodes and re-parses a record, as storing it would.
func roundTrip(t *testing.T, er *ers.EvidenceRecord) *ers.EvidenceRecord {
	t.Helper()
	der, err := er.Marshal()
	must(t, err)
	back, err := ers.Parse(der)
	must(t, err)
	again, err := back.Marshal()
	must(t, err)
	if !bytes.Equal(der, again) {
		t.Fatal("Marshal(Parse(der)) differs from der")
	}
	return back
}

func problems(r *ers.Result) string {
	var b strings.Builder
	b.WriteString(strings.Join(r.Problems, "; "))
	for _, s := range r.Stamps {
		for _, p := range s.Problems {
			b.WriteString("; chain ")
			b.WriteString(string(rune('0' + s.Chain)))
			b.WriteString(": ")
			b.WriteString(p)
		}
	}
	return b.String()
}

func TestLifecycle(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	l := newLifecycle(t, t0)
	tenYears := t0.Add(10*year + 2*time.Hour)
	cases := []struct {
		name    string
		records []*ers.EvidenceRecord
		at      time.Time
		policy  *ers.Policy
		stamps  int
		valid   bool
		want    string // a substring of the problems when invalid
	}{
		{"built, verified today", l.built, t0.Add(time.Hour), ers.DefaultPolicy(), 1, true, ""},
		{"built, after TSA 1 expired, not renewed", l.built, t0.Add(11 * year), nil, 1, false, "TSA certificate chain"},
		{"timestamp renewed, ten years on", l.renewed, tenYears, ers.DefaultPolicy(), 2, true, ""},
		{"timestamp renewed, after TSA 1 expired", l.renewed, t0.Add(15 * year), nil, 2, true, ""},
		{"hash tree renewed to SHA-512, ten years on", l.rehashed, tenYears, ers.DefaultPolicy(), 3, true, ""},
		{"hash tree renewed, SHA-256 chain outlived its catalogue entry", l.rehashed, tenYears,
			withHash(ers.DefaultPolicy(), crypto.SHA256, t0.Add(5*year)), 3, false, "suitable only until"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i, er := range c.records {
				er = roundTrip(t, er)
				r, err := er.Verify(ers.VerifyOptions{Data: l.data[i], Trust: l.store, Time: c.at, Policy: c.policy})
				must(t, err)
				if len(r.Stamps) != c.stamps {
					t.Fatalf("record %d: %d archive timestamps, want %d", i, len(r.Stamps), c.stamps)
				}
				if r.Valid != c.valid {
					t.Fatalf("record %d: valid=%v, want %v: %s", i, r.Valid, c.valid, problems(r))
				}
				if !c.valid && !strings.Contains(problems(r), c.want) {
					t.Fatalf("record %d: problems %q lack %q", i, problems(r), c.want)
				}
			}
		})
	}
}

func withHash(p *ers.Policy, h crypto.Hash, until time.Time) *ers.Policy {
	p.Hashes[h] = ers.Suitability{Until: until, Source: "test"}
	return p
}

func TestTampering(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	l := newLifecycle(t, t0)
	at := t0.Add(10*year + 2*time.Hour)
	der, err := l.rehashed[1].Marshal()
	must(t, err)
	sib := sha256.Sum256(l.data[0]) // in record 1's first PartialHashtree
	off := bytes.Index(der, sib[:])
	if off < 0 {
		t.Fatal("sibling hash not found in the record")
	}
	flipped := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	changedData := flipped(l.data[1], 3)
	cases := []struct {
		name string
		der  []byte
		data []byte
		want string
	}{
		{"a changed data byte", der, changedData, "not in the first PartialHashtree"},
		{"another data object", der, l.data[2], "not in the first PartialHashtree"},
		{"a changed hash in the reduced hash tree", flipped(der, off+5), l.data[1], "imprint"},
		{"a changed byte in the newest timestamp's signature", flipped(der, len(der)-10), l.data[1], ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			er, err := ers.Parse(c.der)
			if err != nil {
				return // refusing to parse is failing too
			}
			r, err := er.Verify(ers.VerifyOptions{Data: c.data, Trust: l.store, Time: at})
			must(t, err)
			if r.Valid {
				t.Fatal("tampered record verifies")
			}
			if !strings.Contains(problems(r), c.want) {
				t.Fatalf("problems %q lack %q", problems(r), c.want)
			}
		})
	}
}

func TestVerifyByDigests(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	l := newLifecycle(t, t0)
	s256, s512 := sha256.Sum256(l.data[2]), sha512.Sum512(l.data[2])
	at := t0.Add(10*year + 2*time.Hour)
	r, err := l.rehashed[2].Verify(ers.VerifyOptions{Digests: map[crypto.Hash][]byte{crypto.SHA256: s256[:], crypto.SHA512: s512[:]}, Trust: l.store, Time: at})
	must(t, err)
	if !r.Valid {
		t.Fatalf("invalid by digests: %s", problems(r))
	}
	r, err = l.rehashed[2].Verify(ers.VerifyOptions{Digests: map[crypto.Hash][]byte{crypto.SHA256: s256[:]}, Trust: l.store, Time: at})
	must(t, err)
	if r.Valid || !strings.Contains(problems(r), "no SHA-512 digest") {
		t.Fatalf("missing SHA-512 digest not reported: valid=%v %s", r.Valid, problems(r))
	}
	if !l.built[2].Covers(s256[:]) || l.built[2].Covers(s512[:32]) {
		t.Fatal("Covers")
	}
}

func TestUntrustedTSA(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	l := newLifecycle(t, t0)
	r, err := l.built[0].Verify(ers.VerifyOptions{Data: l.data[0], Trust: trust.NewStore(), Time: t0.Add(time.Hour)})
	must(t, err)
	if r.Valid || !strings.Contains(problems(r), "TSA certificate chain") {
		t.Fatalf("untrusted TSA accepted: %s", problems(r))
	}
}

func TestPolicyDecide(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	l := newLifecycle(t, t0)
	p := ers.DefaultPolicy()
	cases := []struct {
		name   string
		er     *ers.EvidenceRecord
		p      *ers.Policy
		at     time.Time
		action ers.Action
		reason string
	}{
		{"fresh record", l.built[0], p, t0.Add(time.Hour), ers.NoRenewal, ""},
		{"TSA 1 certificate within the margin", l.built[0], p, t0.Add(10 * year), ers.RenewTimestamp, "expires"},
		{"renewed record", l.renewed[0], p, t0.Add(10*year + time.Hour), ers.NoRenewal, ""},
		{"SHA-256 near its end", l.renewed[0], withHash(ers.DefaultPolicy(), crypto.SHA256, t0.Add(11*year)), t0.Add(10*year + time.Hour), ers.RenewHashTree, "SHA-256"},
		{"SHA-512 chain", l.rehashed[0], withHash(ers.DefaultPolicy(), crypto.SHA256, t0.Add(11*year)), t0.Add(10*year + 2*time.Hour), ers.NoRenewal, ""},
		{"hash not in the catalogue", l.built[0], &ers.Policy{}, t0, ers.RenewHashTree, "not in the catalogue"},
		{"TSA key not in the catalogue", l.built[0], &ers.Policy{Hashes: p.Hashes}, t0, ers.RenewTimestamp, "ECDSA-256"},
		{"TSA key's end near", l.built[0], &ers.Policy{Hashes: p.Hashes, AlgorithmMargin: year,
			Keys: []ers.KeyRule{{Kind: "ECDSA", MinBits: 250, Suitability: ers.Suitability{Until: t0.Add(year / 2)}}}}, t0, ers.RenewTimestamp, "ECDSA-256 suitable until"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.p.Decide(c.er, c.at)
			if d.Action != c.action || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("got %v (%s), want %v (%s)", d.Action, d.Reason, c.action, c.reason)
			}
			if d.Action == ers.NoRenewal && (d.Due.IsZero() || !d.Due.After(c.at)) {
				t.Fatalf("no renewal, but due %v", d.Due)
			}
		})
	}
}

func TestHTTPStamper(t *testing.T) {
	ca, err := erstest.NewCA("Test Root", time.Now().Add(-time.Hour), time.Now().Add(year))
	must(t, err)
	tsa, err := ca.NewTSA("Test TSA", time.Now().Add(-time.Hour), time.Now().Add(year))
	must(t, err)
	srv := httptest.NewServer(tsa)
	defer srv.Close()
	d := sha512.Sum512([]byte("x"))
	recs, err := ers.Build(context.Background(), &ers.HTTPStamper{URL: srv.URL}, crypto.SHA512, [][]byte{d[:]})
	must(t, err)
	if got := recs[0].Chains[0].Stamps[0].Token.Info.Hash; got != crypto.SHA512 {
		t.Fatalf("imprint %v", got)
	}
	if recs[0].Chains[0].Stamps[0].ReducedHashtree != nil {
		t.Fatal("a single data object needs no reduced hash tree")
	}
	_, err = ers.Build(context.Background(), &ers.HTTPStamper{URL: srv.URL + "/nowhere", HTTP: srv.Client()}, crypto.SHA256, [][]byte{d[:]})
	if err == nil {
		t.Fatal("digest of the wrong size accepted")
	}
}

// TestRevokedTSA: TSA 1's key is compromised a day after the record was
// built; its renewal a day later (by the same TSA, whose token carries the
// CRL) cannot save it, and the CRL in the token is what tells.
func TestRevokedTSA(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second)
	l := newLifecycle(t, t0)
	day := 24 * time.Hour
	l.CA1.Revoke(l.TSA1, t0.Add(day))
	l.TSA1.Now = func() time.Time { return t0.Add(2 * day) }
	renewed, err := ers.TimestampRenewal(ctx, l.TSA1, l.built[0])
	must(t, err)
	r, err := roundTrip(t, renewed[0]).Verify(ers.VerifyOptions{Data: l.data[0], Trust: l.store, Time: t0.Add(3 * day)})
	must(t, err)
	if r.Valid || !strings.Contains(problems(r), "revoked at") {
		t.Fatalf("revoked TSA accepted: %s", problems(r))
	}
	t.Log(problems(r))
	// The records renewed by TSA 2 carry no CRL with the revocation (their
	// tokens predate it): they still verify, as DSS would find too.
	r, err = l.renewed[0].Verify(ers.VerifyOptions{Data: l.data[0], Trust: l.store, Time: t0.Add(10*year + time.Hour)})
	must(t, err)
	if !r.Valid {
		t.Fatalf("renewed record: %s", problems(r))
	}
}
