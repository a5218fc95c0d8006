package preservation_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/ers/erstest"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/integrity"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/metrics"
	"github.com/poststelle/poststelle/gateway/preservation"
)

const day = 24 * time.Hour

// world is a gateway's stores with a test PKI whose TSAs live a decade
// each: TSA 1 from T0 (expiring at T0+10y+60d, so the timestamp renewal is
// due at T0+10y), TSA 2 from T0+10y, TSA 3 from T0+19y.
type world struct {
	t0      time.Time
	log     *sqlitelog.Log
	signer  ed25519.PrivateKey
	blobs   *erasingBlobs
	db      *sql.DB
	trust   *trust.Store
	tsa     [3]*erstest.TSA
	raw     map[string][]byte // stream → original bytes
	streams []string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	w := &world{t0: time.Now().UTC().Truncate(time.Second), signer: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)),
		trust: trust.NewStore(), raw: map[string][]byte{}}
	var err error
	if w.log, err = sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(dir, "log.db"), Signer: w.signer,
		Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.log.Close() })
	store, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	w.blobs = &erasingBlobs{Backend: store, gone: map[string]bool{}}
	if w.db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "state.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate"); err != nil {
		t.Fatal(err)
	}
	w.db.SetMaxOpenConns(1)
	t.Cleanup(func() { w.db.Close() })
	ca1, err := erstest.NewCA("Root 1", w.t0.Add(-day), w.t0.Add(30*erstest.Year))
	must(t, err)
	ca2, err := erstest.NewCA("Root 2", w.t0.Add(10*erstest.Year-day), w.t0.Add(40*erstest.Year))
	must(t, err)
	w.tsa[0], err = ca1.NewTSA("TSA 1", w.t0.Add(-day), w.t0.Add(10*erstest.Year+60*day))
	must(t, err)
	w.tsa[1], err = ca2.NewTSA("TSA 2", w.t0.Add(10*erstest.Year-day), w.t0.Add(20*erstest.Year))
	must(t, err)
	w.tsa[2], err = ca2.NewTSA("TSA 3", w.t0.Add(19*erstest.Year), w.t0.Add(30*erstest.Year))
	must(t, err)
	for _, ca := range []*erstest.CA{ca1, ca2} {
		c, err := cert.Parse(ca.Cert.Raw)
		must(t, err)
		w.trust.AddCertificate(c, ca.Cert.Subject.CommonName)
	}
	return w
}

// receive records a message as an inbound channel does.
func (w *world) receive(t *testing.T, key, text string) string {
	t.Helper()
	ctx := context.Background()
	ref, err := w.blobs.PutBytes(ctx, []byte(text))
	must(t, err)
	e, err := gateway.NewReceived(gateway.DefaultTenant, gateway.MessageKey(gateway.ChannelSMTP, key),
		&gateway.MessageReceived{Channel: gateway.ChannelSMTP, From: gateway.Address{Address: "buerger@example.org"},
			ReceivedAt: w.t0, Raw: ref})
	must(t, err)
	_, err = w.log.Append(ctx, e)
	must(t, err)
	w.raw[e.Stream] = []byte(text)
	w.streams = append(w.streams, e.Stream)
	return e.Stream
}

func (w *world) head(ctx context.Context) ([]byte, error) {
	heads, err := integrity.CurrentHeads(ctx, w.log, w.signer.Public())
	if err != nil {
		return nil, err
	}
	return integrity.SignHeads(w.signer, heads)
}

// job is a gateway (re)started at now with stamper; a new Job each time,
// as after a restart.
func (w *world) job(t *testing.T, now time.Time, stamper ers.Stamper, policy *ers.Policy, owns func(string, string) bool) *preservation.Job {
	t.Helper()
	j, err := preservation.New(preservation.Config{}, preservation.Deps{Log: w.log, DB: w.db, Blobs: w.blobs,
		Registry: gateway.NewRegistry(), Stamper: stamper, Head: w.head, Owns: owns, Policy: policy,
		Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	must(t, err)
	return j
}

// saved returns the EvidenceRecordSaved events by cause.
func (w *world) saved(t *testing.T) map[string][]*gateway.EvidenceRecordSaved {
	t.Helper()
	evs, err := w.log.ReadStream(context.Background(), gateway.DefaultTenant, gateway.EvidenceRecordsStream)
	must(t, err)
	reg := gateway.NewRegistry()
	out := map[string][]*gateway.EvidenceRecordSaved{}
	for i := range evs {
		p, err := reg.Decode(&evs[i])
		must(t, err)
		s := p.(*gateway.EvidenceRecordSaved)
		out[s.Cause] = append(out[s.Cause], s)
	}
	return out
}

// check verifies every current record against its data object's bytes
// at the time given, and that it covers them; erased objects by digest.
func (w *world) check(t *testing.T, at time.Time, policy *ers.Policy, wantChains int) []preservation.Record {
	t.Helper()
	ctx := context.Background()
	recs, err := preservation.Records(ctx, w.db, gateway.DefaultTenant)
	must(t, err)
	for _, r := range recs {
		der, err := w.blobs.Backend.ReadAll(ctx, r.Record, ers.MaxRecordSize)
		must(t, err)
		er, err := ers.Parse(der)
		must(t, err)
		data, err := w.blobs.Backend.ReadAll(ctx, r.Object.Data, 1<<20)
		must(t, err)
		if r.Object.Kind == gateway.PreservedOriginal && !bytes.Equal(data, w.raw[r.Object.Stream]) {
			t.Fatalf("%s: data object is not the original of %s", r.Name, r.Object.Stream)
		}
		sum := sha256.Sum256(data)
		if !er.Covers(sum[:]) {
			t.Fatalf("%s: record does not cover its data object", r.Name)
		}
		res, err := er.Verify(ers.VerifyOptions{Data: data, Trust: w.trust, Time: at, Policy: policy})
		must(t, err)
		if !res.Valid {
			t.Fatalf("%s at %v: %v", r.Name, at, res.Problems)
		}
		if wantChains > 0 && len(er.Chains) != wantChains && !w.blobs.gone[r.Object.Data.SHA256] {
			t.Fatalf("%s: %d chains, want %d", r.Name, len(er.Chains), wantChains)
		}
	}
	return recs
}

func TestBuildAndRenew(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	for _, k := range []string{"a", "b", "c"} {
		w.receive(t, k, "Subject: Antrag "+k+"\r\n\r\nGuten Tag\r\n")
	}

	// Built: the three originals and the head, in one tree.
	w.tsa[0].Now = func() time.Time { return w.t0 }
	rep, err := w.job(t, w.t0, w.tsa[0], nil, nil).RunOnce(ctx)
	must(t, err)
	if len(rep.Built) != 4 || len(rep.Failed) != 0 {
		t.Fatalf("first run: %+v", rep)
	}
	recs := w.check(t, w.t0.Add(time.Hour), ers.DefaultPolicy(), 1)
	var heads int
	for _, r := range recs {
		if r.Object.Kind == gateway.PreservedLogHead {
			heads++
			note, err := w.blobs.ReadAll(ctx, r.Object.Data, integrity.MaxHeadFile)
			must(t, err)
			if _, err := integrity.ParseHeads(note, w.signer.Public()); err != nil {
				t.Fatalf("the preserved head: %v", err)
			}
		}
	}
	if len(recs) != 4 || heads != 1 {
		t.Fatalf("records: %+v", recs)
	}
	built := w.saved(t)[gateway.RecordBuilt]
	wantDue := w.tsa[0].Cert.NotAfter.Add(-180 * day)
	if len(built) != 4 || built[0].Hash != "SHA-256" || !built[0].GenTime.Equal(w.t0) ||
		!strings.Contains(built[0].TSA, "TSA 1") || !built[0].NextDue.Equal(wantDue) {
		t.Fatalf("built events: %+v, want next due %v", built[0], wantDue)
	}
	if !rep.NextDue.Equal(wantDue) {
		t.Fatalf("next due %v, want %v", rep.NextDue, wantDue)
	}

	// A second run, restarted: nothing new to build, nothing due.
	rep, err = w.job(t, w.t0.Add(time.Hour), w.tsa[0], nil, nil).RunOnce(ctx)
	must(t, err)
	if len(rep.Built)+len(rep.TimestampsRenewed)+len(rep.HashTreesRenewed) != 0 || rep.Checked != 4 {
		t.Fatalf("second run: %+v", rep)
	}
	// A new message: it and a new head get records, the rest stays.
	w.receive(t, "d", "Subject: Nachtrag\r\n\r\nAnlage\r\n")
	w.tsa[0].Now = func() time.Time { return w.t0.Add(day) }
	rep, err = w.job(t, w.t0.Add(day), w.tsa[0], nil, nil).RunOnce(ctx)
	must(t, err)
	if len(rep.Built) != 2 || !slices.Contains(rep.Built, "original-"+w.streams[3]) {
		t.Fatalf("run after a new message: %+v", rep)
	}

	// Ten years on, TSA 1 is about to expire: every record's timestamp is
	// renewed by TSA 2, an erased original's too.
	w.blobs.erase(w.raw, w.streams[0])
	tenYears := w.t0.Add(10 * erstest.Year)
	w.tsa[1].Now = func() time.Time { return tenYears }
	rep, err = w.job(t, tenYears, w.tsa[1], nil, nil).RunOnce(ctx)
	must(t, err)
	if len(rep.TimestampsRenewed) != 6 || len(rep.Failed) != 0 || !slices.Contains(rep.TimestampsRenewed, "original-"+w.streams[0]) {
		t.Fatalf("timestamp renewal: %+v", rep)
	}
	if n := len(w.saved(t)[gateway.RecordTimestampRenewal]); n != 6 {
		t.Fatalf("%d timestamp-renewal events", n)
	}
	w.check(t, tenYears.Add(time.Hour), ers.DefaultPolicy(), 1)

	// SHA-256 is weakening: the hash trees are renewed to SHA-512, except
	// the erased original's, which says why.
	later := tenYears.Add(time.Hour)
	weak := ers.DefaultPolicy()
	weak.Hashes[crypto.SHA256] = ers.Suitability{Until: later.Add(erstest.Year / 2), Source: "test"}
	w.tsa[1].Now = func() time.Time { return later }
	rep, err = w.job(t, later, w.tsa[1], weak, nil).RunOnce(ctx)
	must(t, err)
	erased := "original-" + w.streams[0]
	if len(rep.HashTreesRenewed) != 5 || len(rep.Failed) != 1 || !errors.Is(rep.Failed[erased], preservation.ErrErased) ||
		!strings.Contains(rep.Failed[erased].Error(), "erased: hash-tree renewal impossible, timestamp renewal continues") {
		t.Fatalf("hash-tree renewal: %+v", rep)
	}
	rehashed := w.saved(t)[gateway.RecordHashTreeRenewal]
	if len(rehashed) != 5 || rehashed[0].Hash != "SHA-512" {
		t.Fatalf("hash-tree-renewal events: %+v", rehashed)
	}
	w.check(t, later.Add(time.Hour), nil, 2)

	// Near the end of TSA 2: the renewed records get a new timestamp, and
	// so does the erased original's old chain, on its own schedule.
	end := w.t0.Add(20*erstest.Year - 100*day)
	w.tsa[2].Now = func() time.Time { return end }
	rep, err = w.job(t, end, w.tsa[2], weak, nil).RunOnce(ctx)
	must(t, err)
	if len(rep.TimestampsRenewed) != 6 || !slices.Contains(rep.TimestampsRenewed, erased) {
		t.Fatalf("renewal near the end of TSA 2: %+v", rep)
	}
	w.check(t, end.Add(time.Hour), nil, 2)
}

func TestNotOwnerDoesNothing(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.receive(t, "a", "Subject: x\r\n\r\ny\r\n")
	var asked atomic.Int32
	owns := func(tenant, stream string) bool {
		asked.Add(1)
		return stream != gateway.EvidenceRecordsStream
	}
	rep, err := w.job(t, w.t0, w.tsa[0], nil, owns).RunOnce(ctx)
	must(t, err)
	if !rep.Skipped || asked.Load() != 1 || len(w.saved(t)) != 0 {
		t.Fatalf("not the owner: %+v, asked %d", rep, asked.Load())
	}
}

// TestRecordWithoutEventIsRebuilt: a record stored whose event never
// reached the log is built again, and the object gets one record.
func TestRecordWithoutEventIsRebuilt(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.receive(t, "a", "Subject: x\r\n\r\ny\r\n")
	w.tsa[0].Now = func() time.Time { return w.t0 }
	failing := &failingLog{Log: w.log}
	failing.fail.Store(true)
	reg := prometheus.NewRegistry()
	j, err := preservation.New(preservation.Config{}, preservation.Deps{Log: failing, DB: w.db, Blobs: w.blobs,
		Registry: gateway.NewRegistry(), Stamper: w.tsa[0], Head: w.head, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return w.t0 }, Metrics: metrics.NewPreservation(reg)})
	must(t, err)
	if rep, err := j.RunOnce(ctx); err == nil || len(rep.Built) != 0 {
		t.Fatalf("run with the log refusing: %+v, %v", rep, err)
	}
	if v := gauge(t, reg, "poststelle_evidence_records_last_run_timestamp_seconds"); v != 0 {
		t.Fatalf("an incomplete run counts as a run: %v", v)
	}
	failing.fail.Store(false)
	rep, err := j.RunOnce(ctx)
	must(t, err)
	if len(rep.Built) != 2 {
		t.Fatalf("rerun: %+v", rep)
	}
	if gauge(t, reg, "poststelle_evidence_records_last_run_timestamp_seconds") != float64(w.t0.Unix()) ||
		gauge(t, reg, "poststelle_evidence_records_next_due_timestamp_seconds") != float64(w.tsa[0].Cert.NotAfter.Add(-180*day).Unix()) ||
		gauge(t, reg, `poststelle_evidence_records_total{outcome="built"}`) != 2 {
		t.Fatal("metrics after the rerun do not say what it did")
	}
	rep, err = j.RunOnce(ctx)
	must(t, err)
	if len(rep.Built) != 0 || len(w.saved(t)[gateway.RecordBuilt]) != 2 {
		t.Fatalf("third run: %+v", rep)
	}
	w.check(t, w.t0.Add(time.Hour), nil, 1)
}

// failingLog refuses EvidenceRecordSaved while fail is set, as a crash
// between the blob put and the append leaves things.
type failingLog struct {
	eventstore.Log
	fail atomic.Bool
}

func (f *failingLog) Append(ctx context.Context, events ...eventstore.Event) ([]eventstore.Result, error) {
	if f.fail.Load() && slices.ContainsFunc(events, func(e eventstore.Event) bool { return e.Type == "EvidenceRecordSaved" }) {
		return nil, errors.New("log unavailable")
	}
	return f.Log.Append(ctx, events...)
}

// erasingBlobs reads erased blobs as crypto-shredding leaves them.
type erasingBlobs struct {
	blob.Backend
	gone map[string]bool
}

func (e *erasingBlobs) erase(raw map[string][]byte, stream string) {
	sum := sha256.Sum256(raw[stream])
	e.gone[hexOf(sum[:])] = true
}

func (e *erasingBlobs) Open(ctx context.Context, ref blob.Ref) (io.ReadCloser, error) {
	if e.gone[ref.SHA256] {
		return nil, blob.ErrErased
	}
	return e.Backend.Open(ctx, ref)
}

func (e *erasingBlobs) ReadAll(ctx context.Context, ref blob.Ref, max int64) ([]byte, error) {
	if e.gone[ref.SHA256] {
		return nil, blob.ErrErased
	}
	return e.Backend.ReadAll(ctx, ref, max)
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// gauge reads one sample: "name" or "name{label="value"}".
func gauge(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	name, label, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	fams, err := reg.Gather()
	must(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if strings.Join(ls, ",") != label {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunSchedules: Run's first run comes an interval (here the shortest,
// a second) after start, and a node that becomes the owner runs at once
// rather than a whole interval later.
func TestRunSchedules(t *testing.T) {
	w := newWorld(t)
	w.receive(t, "a", "Subject: x\r\n\r\ny\r\n")
	w.tsa[0].Now = func() time.Time { return w.t0 }
	var owner atomic.Bool
	j, err := preservation.New(preservation.Config{Interval: time.Second}, preservation.Deps{Log: w.log, DB: w.db, Blobs: w.blobs,
		Registry: gateway.NewRegistry(), Stamper: w.tsa[0], Head: w.head, Logger: slog.New(slog.DiscardHandler),
		Owns: func(string, string) bool { return owner.Load() }})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	time.Sleep(1500 * time.Millisecond)
	if n := len(w.saved(t)); n != 0 {
		t.Fatalf("a node that does not own the stream built records (%d causes)", n)
	}
	owner.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for len(w.saved(t)[gateway.RecordBuilt]) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the new owner did not run")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run ended with %v", err)
	}
}
