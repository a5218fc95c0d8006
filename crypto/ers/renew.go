package ers

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/sigalg"
)

// Store is where evidence records are kept for renewal: one record per
// name, and the data object of that name (needed only for hash-tree
// renewal, which hashes the object anew).
type Store interface {
	List(ctx context.Context) ([]string, error)
	Load(ctx context.Context, name string) (*EvidenceRecord, error)
	// Save replaces the record atomically: a crash leaves the old or the
	// new one, never a torn file (the new one contains the old).
	Save(ctx context.Context, name string, er *EvidenceRecord) error
	Data(ctx context.Context, name string) (io.ReadCloser, error)
}

// DirStore keeps records as Records/NAME.ers and their data objects as
// Objects/NAME.
type DirStore struct {
	Records string
	// Objects is the data objects' directory; empty: Records.
	Objects string
}

const recordExt = ".ers"

// List implements Store.
func (d DirStore) List(context.Context) ([]string, error) {
	entries, err := os.ReadDir(d.Records)
	if err != nil {
		return nil, fmt.Errorf("ers: list records: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), recordExt) {
			names = append(names, strings.TrimSuffix(e.Name(), recordExt))
		}
	}
	return names, nil
}

// Load implements Store.
func (d DirStore) Load(_ context.Context, name string) (*EvidenceRecord, error) {
	f, err := os.Open(filepath.Join(d.Records, name+recordExt))
	if err != nil {
		return nil, fmt.Errorf("ers: load record %s: %w", name, err)
	}
	defer f.Close()
	der, err := io.ReadAll(io.LimitReader(f, MaxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("ers: load record %s: %w", name, err)
	}
	er, err := Parse(der)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", name, err)
	}
	return er, nil
}

// Save implements Store: write a temporary file, sync, rename.
func (d DirStore) Save(_ context.Context, name string, er *EvidenceRecord) error {
	der, err := er.Marshal()
	if err != nil {
		return err
	}
	target := filepath.Join(d.Records, name+recordExt)
	tmp, err := os.CreateTemp(d.Records, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("ers: save record %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(der); err != nil {
		tmp.Close()
		return fmt.Errorf("ers: save record %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ers: save record %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ers: save record %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("ers: save record %s: %w", name, err)
	}
	return nil
}

// Data implements Store.
func (d DirStore) Data(_ context.Context, name string) (io.ReadCloser, error) {
	dir := d.Objects
	if dir == "" {
		dir = d.Records
	}
	if name != filepath.Base(name) {
		return nil, fmt.Errorf("ers: data object name %q", name)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("ers: data object %s: %w", name, err)
	}
	return f, nil
}

// RenewOptions configure Renew.
type RenewOptions struct {
	Policy  *Policy
	Stamper Stamper
	// NewHash is the algorithm of hash-tree renewals; it must itself be
	// suitable under Policy.
	NewHash crypto.Hash
	// Now is the time of the decision; zero means time.Now().
	Now time.Time
	// DryRun decides and reports without renewing.
	DryRun bool
	Logger *slog.Logger
}

// RenewReport says what Renew did.
type RenewReport struct {
	Checked           int
	TimestampsRenewed []string
	HashTreesRenewed  []string
	Failed            map[string]error
	// NextDue is the earliest time a record falls due, for scheduling the
	// next run (zero when none is foreseen).
	NextDue time.Time
}

// Renew runs the policy over every record of the store and renews what is
// due (TR-ESOR-M.3's periodic preservation run): all records due for a
// hash-tree renewal share one new hash tree and timestamp, all due for a
// timestamp renewal another. A record that cannot be loaded or whose data
// object is missing is reported in Failed and the others go on.
func Renew(ctx context.Context, store Store, opts RenewOptions) (*RenewReport, error) {
	if opts.Policy == nil || (opts.Stamper == nil && !opts.DryRun) {
		return nil, errors.New("ers: renew needs a policy and a stamper")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if ok, why := opts.Policy.hashSuitable(opts.NewHash, now.Add(opts.Policy.AlgorithmMargin)); !ok && !opts.DryRun {
		return nil, fmt.Errorf("ers: renew: new hash algorithm %s: %s", sigalg.HashName(opts.NewHash), why)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names, err := store.List(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	rep := &RenewReport{Failed: map[string]error{}}
	var tsNames, htNames []string
	var tsRecs []*EvidenceRecord
	var htItems []RenewalItem
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		er, err := store.Load(ctx, name)
		if err != nil {
			rep.Failed[name] = err
			continue
		}
		rep.Checked++
		d := opts.Policy.Decide(er, now)
		switch d.Action {
		case NoRenewal:
			if !d.Due.IsZero() && (rep.NextDue.IsZero() || d.Due.Before(rep.NextDue)) {
				rep.NextDue = d.Due
			}
			continue
		case RenewTimestamp:
			log.Info("evidence record due for timestamp renewal", "record", name, "reason", d.Reason)
			tsNames, tsRecs = append(tsNames, name), append(tsRecs, er)
		case RenewHashTree:
			log.Info("evidence record due for hash-tree renewal", "record", name, "reason", d.Reason)
			if opts.DryRun {
				htNames = append(htNames, name)
				continue
			}
			digest, err := dataDigest(ctx, store, name, er, opts.NewHash)
			if err != nil {
				rep.Failed[name] = err
				continue
			}
			htNames, htItems = append(htNames, name), append(htItems, RenewalItem{Record: er, Digest: digest})
		}
	}
	if opts.DryRun {
		rep.TimestampsRenewed, rep.HashTreesRenewed = tsNames, htNames
		return rep, nil
	}
	save := func(names []string, recs []*EvidenceRecord, done *[]string) {
		for i, name := range names {
			if err := store.Save(ctx, name, recs[i]); err != nil {
				rep.Failed[name] = err
				continue
			}
			*done = append(*done, name)
		}
	}
	var errs []error
	if len(tsRecs) > 0 {
		renewed, err := TimestampRenewal(ctx, opts.Stamper, tsRecs...)
		if err != nil {
			errs = append(errs, err)
		} else {
			save(tsNames, renewed, &rep.TimestampsRenewed)
		}
	}
	if len(htItems) > 0 {
		renewed, err := HashTreeRenewal(ctx, opts.Stamper, opts.NewHash, htItems...)
		if err != nil {
			errs = append(errs, err)
		} else {
			save(htNames, renewed, &rep.HashTreesRenewed)
		}
	}
	return rep, errors.Join(errs...)
}

// dataDigest hashes the data object under h and, in the same pass, under
// the record's first algorithm, to refuse rehashing an object that is no
// longer the one the record covers: the new chain would otherwise be built
// over changed data, and the record would fail only when next verified.
func dataDigest(ctx context.Context, store Store, name string, er *EvidenceRecord, h crypto.Hash) ([]byte, error) {
	first := er.Chains[0].Hash()
	if first == 0 || !first.Available() || !h.Available() {
		return nil, fmt.Errorf("%w: digest algorithm of record %s", ErrUnsupported, name)
	}
	r, err := store.Data(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	hNew, hFirst := h.New(), first.New()
	if _, err := io.Copy(io.MultiWriter(hNew, hFirst), r); err != nil {
		return nil, fmt.Errorf("ers: hash data object %s: %w", name, err)
	}
	if !er.Covers(hFirst.Sum(nil)) {
		return nil, fmt.Errorf("ers: data object %s is not the one its record covers", name)
	}
	return hNew.Sum(nil), nil
}
