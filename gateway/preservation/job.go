// Package preservation keeps the gateway's long-term evidence
// ("Beweiswerterhaltung" in BSI TR-03125, TR-ESOR): RFC 4998 evidence
// records over every received original and over the log's signed heads,
// built once a day in one hash tree per run and renewed as the renewal
// policy (ers.Policy, TR-ESOR-M.3) asks. The records are blobs; the log
// says which is current (gateway.EvidenceRecordSaved) and Objects is the
// read model over it.
package preservation

import (
	"context"
	"crypto"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/metrics"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Deps are the job's collaborators.
type Deps struct {
	Log      eventstore.Log
	DB       *sql.DB
	Blobs    blob.Backend
	Registry *gateway.Registry
	Tenant   string
	// Stamper stamps new records and renewals.
	Stamper ers.Stamper
	// Head returns the log's current signed head note
	// (integrity.SignHeads); nil: originals only.
	Head func(ctx context.Context) ([]byte, error)
	// Owns says whether this process runs the stream's schedule now
	// (kafkalog.Ownership.Owns); nil owns everything.
	Owns func(tenant, stream string) bool
	// Policy is the renewal policy (default ers.DefaultPolicy()).
	Policy *ers.Policy
	// Now is the clock (default time.Now).
	Now     func() time.Time
	Metrics *metrics.Preservation
	Logger  *slog.Logger
}

// Job builds and renews the records.
type Job struct {
	cfg       Config
	deps      Deps
	policy    *ers.Policy
	hash      crypto.Hash
	renewHash crypto.Hash
	runner    *projection.Runner
	// checkedAll is set once a run re-decided every record: later runs
	// check only the records due.
	checkedAll bool
}

// renewPage is how many records one ers.Renew holds: each is a few KiB
// parsed, and all of a page share one renewal timestamp.
const renewPage = 10_000

// saveChunk is how many new records go to the log in one append.
const saveChunk = 256

// putWorkers store a chunk's records concurrently, so that the blob
// store's group commit shares its syncs among them.
const putWorkers = 8

// New checks the configuration and the collaborators.
func New(cfg Config, deps Deps) (*Job, error) {
	if err := cfg.Validate("evidence.records"); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if deps.Log == nil || deps.DB == nil || deps.Blobs == nil || deps.Registry == nil || deps.Stamper == nil {
		return nil, errors.New("preservation: Log, DB, Blobs, Registry and Stamper are required")
	}
	if deps.Tenant == "" {
		deps.Tenant = gateway.DefaultTenant
	}
	if deps.Policy == nil {
		deps.Policy = ers.DefaultPolicy()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	j := &Job{cfg: cfg, deps: deps, policy: deps.Policy}
	j.hash, _ = ParseHash(cfg.Hash) // validated above
	j.renewHash, _ = ParseHash(cfg.RenewHash)
	j.runner = &projection.Runner{Log: deps.Log, DB: deps.DB, Registry: deps.Registry, Logger: deps.Logger}
	return j, nil
}

// Setup creates the projection's tables.
func (j *Job) Setup(ctx context.Context) error { return j.runner.Setup(ctx, Objects{}) }

// Run runs the job every Interval, the first time shortly after start,
// until ctx ends. A failed run is logged and retried at the next. A
// process that does not own the stream asks again shortly, so that a node
// taking over from a lost owner does not wait a whole interval.
func (j *Job) Run(ctx context.Context) error {
	soon := min(firstRunAfter, j.cfg.Interval)
	t := time.NewTimer(soon)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		rep, err := j.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			j.deps.Logger.Error("evidence records: run failed; retried at the next run", "err", err, "next_run", j.cfg.Interval)
		}
		if rep != nil && rep.Skipped {
			t.Reset(soon)
			continue
		}
		t.Reset(j.cfg.Interval)
	}
}

// Report says what a run did.
type Report struct {
	// Skipped: another process owns the stream evidence-records.
	Skipped bool
	// Built names the objects that got their first record.
	Built []string
	// Checked, TimestampsRenewed, HashTreesRenewed and Failed are as in
	// ers.RenewReport, over all pages; Failed also has objects whose
	// record could not be built.
	Checked           int
	TimestampsRenewed []string
	HashTreesRenewed  []string
	Failed            map[string]error
	// NextDue is the earliest foreseen renewal of any record.
	NextDue time.Time
}

// RunOnce is one run: (a) when originals arrived without a record, the
// log's current signed head is stored as a blob, (b) one hash tree and
// timestamp cover it and those originals (up to MaxBatch), (c) the renewal policy runs over the records
// due (every record on the first run of this process), (d) the outcome
// goes to the metrics and each failure to the log at error level.
func (j *Job) RunOnce(ctx context.Context) (*Report, error) {
	if j.deps.Owns != nil && !j.deps.Owns(j.deps.Tenant, gateway.EvidenceRecordsStream) {
		return &Report{Skipped: true}, nil
	}
	now := j.deps.Now()
	if err := j.runner.CatchUp(ctx, Objects{}); err != nil {
		return nil, fmt.Errorf("preservation: catch up: %w", err)
	}
	rep := &Report{Failed: map[string]error{}}
	st := newStore(j, now, newStampCache())
	buildErr := j.build(ctx, st, rep)
	renewErr := j.renew(ctx, st, rep, now)
	err := errors.Join(buildErr, renewErr)
	if cerr := j.runner.CatchUp(ctx, Objects{}); cerr != nil {
		return rep, errors.Join(err, fmt.Errorf("preservation: catch up: %w", cerr))
	}
	due, derr := nextDue(ctx, j.deps.DB, j.deps.Tenant)
	if derr != nil {
		return rep, errors.Join(err, derr)
	}
	rep.NextDue = due
	j.account(rep, now, err == nil)
	return rep, err
}

// account reports the run to the metrics and the log. Only a complete run
// moves the last-run gauge, so that a TSA out of reach for days shows.
func (j *Job) account(rep *Report, now time.Time, complete bool) {
	m := j.deps.Metrics
	m.Outcome(gateway.RecordBuilt, len(rep.Built))
	m.Outcome(gateway.RecordTimestampRenewal, len(rep.TimestampsRenewed))
	m.Outcome(gateway.RecordHashTreeRenewal, len(rep.HashTreesRenewed))
	m.Outcome("failed", len(rep.Failed))
	if complete {
		m.Ran(now, rep.NextDue)
	}
	// An alert each: a record not renewed before its TSA certificate
	// expires or its hash algorithm weakens loses its proof.
	for _, name := range slices.Sorted(maps.Keys(rep.Failed)) {
		j.deps.Logger.Error("evidence record not renewed", "record", name, "err", rep.Failed[name], "erased", errors.Is(rep.Failed[name], ErrErased))
	}
	j.deps.Logger.Info("evidence records: run done", "built", len(rep.Built), "checked", rep.Checked,
		"timestamps_renewed", len(rep.TimestampsRenewed), "hash_trees_renewed", len(rep.HashTreesRenewed),
		"failed", len(rep.Failed), "next_due", rep.NextDue)
}

// build covers the objects without a record and the current head with
// one hash tree.
func (j *Job) build(ctx context.Context, st *Store, rep *Report) error {
	limit := j.cfg.MaxBatch
	if j.deps.Head != nil {
		limit--
	}
	objs, err := uncovered(ctx, j.deps.DB, j.deps.Tenant, max(limit, 0))
	if err != nil {
		return err
	}
	// The head comes with new originals: it anchors every event up to
	// theirs. A run with nothing new adds no head, or each run's own
	// events would call for another one.
	if j.deps.Head != nil && len(objs) > 0 {
		head, fresh, err := j.storeHead(ctx)
		if err != nil {
			return err
		}
		if fresh {
			objs = append(objs, head)
		}
	}
	var digests [][]byte
	var covered []object
	for _, o := range objs {
		d, err := j.digest(ctx, o)
		if err != nil {
			rep.Failed[o.name] = err
			continue
		}
		digests, covered = append(digests, d), append(covered, o)
	}
	if len(covered) == 0 {
		return nil
	}
	records, err := ers.Build(ctx, j.deps.Stamper, j.hash, digests)
	if err != nil {
		return fmt.Errorf("preservation: build %d records: %w", len(covered), err)
	}
	for i := 0; i < len(covered); i += saveChunk {
		end := min(i+saveChunk, len(covered))
		done, err := j.saveBuilt(ctx, st, covered[i:end], records[i:end])
		rep.Built = append(rep.Built, done...)
		if err != nil {
			return err
		}
	}
	return nil
}

// storeHead stores the current signed head note as a blob. fresh is false
// when that head has a record already (nothing was appended since).
func (j *Job) storeHead(ctx context.Context) (object, bool, error) {
	note, err := j.deps.Head(ctx)
	if err != nil {
		return object{}, false, fmt.Errorf("preservation: the log's signed head: %w", err)
	}
	ref, err := j.deps.Blobs.PutBytes(ctx, note)
	if err != nil {
		return object{}, false, fmt.Errorf("preservation: store the log's head: %w", err)
	}
	o := object{name: ObjectName(gateway.PreservedLogHead, "", ref), kind: gateway.PreservedLogHead, data: ref}
	known, err := lookup(ctx, j.deps.DB, j.deps.Tenant, o.name)
	switch {
	case errors.Is(err, errUnknownObject):
		return o, true, nil
	case err != nil:
		return object{}, false, err
	}
	return known, known.record == (blob.Ref{}), nil
}

// digest is the object's hash under the build algorithm. A blob's name is
// its SHA-256, and every read of it checks that, so under SHA-256 the name
// is the digest and the bytes are not read again.
func (j *Job) digest(ctx context.Context, o object) ([]byte, error) {
	if err := blob.ValidRef(o.data); err != nil {
		return nil, fmt.Errorf("preservation: data object %s: %w", o.name, err)
	}
	if j.hash == crypto.SHA256 {
		return hex.DecodeString(o.data.SHA256)
	}
	rc, err := j.deps.Blobs.Open(ctx, o.data)
	if errors.Is(err, blob.ErrErased) {
		return nil, fmt.Errorf("preservation: data object %s erased before its record was built: %w", o.name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("preservation: data object %s: %w", o.name, err)
	}
	defer rc.Close()
	return ers.Digest(j.hash, rc)
}

// saveBuilt stores a chunk of new records and appends their events in one
// batch. A record stored whose event did not land is built again next run,
// under the same event id.
func (j *Job) saveBuilt(ctx context.Context, st *Store, objs []object, records []*ers.EvidenceRecord) ([]string, error) {
	events := make([]eventstore.Event, len(objs))
	errs := make([]error, len(objs))
	sem := make(chan struct{}, putWorkers)
	var wg sync.WaitGroup
	for i := range objs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			events[i], errs[i] = st.saveRecord(ctx, objs[i], records[i], gateway.RecordBuilt)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	_, err := j.deps.Log.Append(ctx, events...)
	if errors.Is(err, eventstore.ErrConflict) {
		return j.appendEach(ctx, objs, events)
	}
	if err != nil {
		return nil, fmt.Errorf("preservation: record %d new records: %w", len(events), err)
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.name
	}
	return names, nil
}

// appendEach appends events one by one, passing over those another process
// recorded first (the same step under the same id, with its own record).
func (j *Job) appendEach(ctx context.Context, objs []object, events []eventstore.Event) ([]string, error) {
	var names []string
	for i := range events {
		_, err := j.deps.Log.Append(ctx, events[i])
		switch {
		case errors.Is(err, eventstore.ErrConflict):
			j.deps.Logger.Warn("evidence records: another process recorded this record first", "record", objs[i].name)
		case err != nil:
			return names, fmt.Errorf("preservation: record the record of %s: %w", objs[i].name, err)
		default:
			names = append(names, objs[i].name)
		}
	}
	return names, nil
}

// renew runs the renewal policy page by page.
func (j *Job) renew(ctx context.Context, st *Store, rep *Report, now time.Time) error {
	opts := ers.RenewOptions{Policy: j.policy, Stamper: j.deps.Stamper, NewHash: j.renewHash, Now: now, Logger: j.deps.Logger}
	all := !j.checkedAll
	for after := ""; ; {
		page, err := recordPage(ctx, j.deps.DB, j.deps.Tenant, all, now, after, renewPage)
		if err != nil || len(page) == 0 {
			j.checkedAll = j.checkedAll || (err == nil && all)
			return err
		}
		st.page = page
		r, err := ers.Renew(ctx, st, opts)
		if r != nil {
			rep.Checked += r.Checked
			rep.TimestampsRenewed = append(rep.TimestampsRenewed, r.TimestampsRenewed...)
			rep.HashTreesRenewed = append(rep.HashTreesRenewed, r.HashTreesRenewed...)
			maps.Copy(rep.Failed, r.Failed)
			if terr := j.renewErased(ctx, st, rep, r.Failed, now); terr != nil {
				err = errors.Join(err, terr)
			}
		}
		if err != nil {
			return fmt.Errorf("preservation: renew: %w", err)
		}
		if len(page) < renewPage {
			j.checkedAll = j.checkedAll || all
			return nil
		}
		after = page[len(page)-1]
	}
}

// renewErased keeps the timestamps of erased objects' records current when
// their hash tree could not be renewed: the old hash algorithm is weakening,
// but a current timestamp still proves the record existed while it was
// suitable, which is more than an expired one proves. They are renewed on
// the timestamps' own schedule (as if the hash were still suitable), not
// on every run.
func (j *Job) renewErased(ctx context.Context, st *Store, rep *Report, failed map[string]error, now time.Time) error {
	var names []string
	var recs []*ers.EvidenceRecord
	for _, name := range slices.Sorted(maps.Keys(failed)) {
		if !errors.Is(failed[name], ErrErased) {
			continue
		}
		er, err := st.Load(ctx, name)
		if err != nil {
			continue // reported in Failed already
		}
		if d := j.hashTolerant(er).Decide(er, now); d.Action == ers.RenewTimestamp {
			names, recs = append(names, name), append(recs, er)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	renewed, err := ers.TimestampRenewal(ctx, j.deps.Stamper, recs...)
	if err != nil {
		return fmt.Errorf("preservation: timestamp renewal of erased objects' records: %w", err)
	}
	for i, name := range names {
		if err := st.Save(ctx, name, renewed[i]); err != nil {
			rep.Failed[name] = errors.Join(rep.Failed[name], err)
			continue
		}
		rep.TimestampsRenewed = append(rep.TimestampsRenewed, name)
	}
	return nil
}

// hashTolerant is the policy with the record's newest chain algorithm
// taken as suitable.
func (j *Job) hashTolerant(er *ers.EvidenceRecord) *ers.Policy {
	p := *j.policy
	p.Hashes = maps.Clone(j.policy.Hashes)
	p.Hashes[er.Chains[len(er.Chains)-1].Hash()] = ers.Suitability{Source: "hash-tree renewal impossible (data object erased)"}
	return &p
}
