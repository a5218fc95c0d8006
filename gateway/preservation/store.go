package preservation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/poststelle/poststelle/crypto/ers"
	"github.com/poststelle/poststelle/crypto/sigalg"
	"github.com/poststelle/poststelle/crypto/tsp"
	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
)

// ErrErased marks a data object whose bytes were erased at the end of their
// retention: its record can no longer be rehashed, but its timestamps are
// still renewed, which needs only the record.
var ErrErased = errors.New("erased: hash-tree renewal impossible, timestamp renewal continues")

// Store is the ers.Store of the gateway's records: the names and record
// references come from the Objects projection, the record and data bytes
// from the blob store, and Save stores the new record as a blob and appends
// its EvidenceRecordSaved. List returns one page (see recordPage), so that
// ers.Renew holds a bounded number of records at a time.
type Store struct {
	db     *sql.DB
	blobs  blob.Backend
	log    eventstore.Log
	tenant string
	policy *ers.Policy
	now    time.Time
	stamps *stampCache

	// page is what List returns.
	page []string
	// chains counts the chains of each record as loaded, to tell a
	// timestamp renewal from a hash-tree renewal when it is saved.
	chains map[string]int
}

func newStore(j *Job, now time.Time, stamps *stampCache) *Store {
	return &Store{db: j.deps.DB, blobs: j.deps.Blobs, log: j.deps.Log, tenant: j.deps.Tenant, policy: j.policy,
		now: now, stamps: stamps, chains: map[string]int{}}
}

// List implements ers.Store.
func (s *Store) List(context.Context) ([]string, error) { return s.page, nil }

// Load implements ers.Store.
func (s *Store) Load(ctx context.Context, name string) (*ers.EvidenceRecord, error) {
	o, err := lookup(ctx, s.db, s.tenant, name)
	if err != nil {
		return nil, err
	}
	if o.record == (blob.Ref{}) {
		return nil, fmt.Errorf("preservation: %s has no record yet", name)
	}
	der, err := s.blobs.ReadAll(ctx, o.record, ers.MaxRecordSize)
	if err != nil {
		return nil, fmt.Errorf("preservation: read record of %s: %w", name, err)
	}
	er, err := ers.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("preservation: record of %s: %w", name, err)
	}
	s.chains[name] = len(er.Chains)
	return er, nil
}

// Save implements ers.Store: the record is a new blob (the old one stays,
// as blobs do), and the event makes it the object's current record.
func (s *Store) Save(ctx context.Context, name string, er *ers.EvidenceRecord) error {
	o, err := lookup(ctx, s.db, s.tenant, name)
	if err != nil {
		return err
	}
	cause := gateway.RecordTimestampRenewal
	if n, ok := s.chains[name]; !ok || len(er.Chains) > n {
		cause = gateway.RecordHashTreeRenewal
	}
	ev, err := s.saveRecord(ctx, o, er, cause)
	if err != nil {
		return err
	}
	if _, err := s.log.Append(ctx, ev); err != nil {
		return fmt.Errorf("preservation: record the renewed record of %s: %w", name, err)
	}
	return nil
}

// saveRecord stores the record's DER and returns its EvidenceRecordSaved.
// The event's id follows from the object, the cause and the record it
// replaces: a blob put whose event was lost is simply redone, and a second
// node doing the same step conflicts instead of forking the object's
// history.
func (s *Store) saveRecord(ctx context.Context, o object, er *ers.EvidenceRecord, cause string) (eventstore.Event, error) {
	der, err := er.Marshal()
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("preservation: encode record of %s: %w", o.name, err)
	}
	ref, err := s.blobs.PutBytes(ctx, der)
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("preservation: store record of %s: %w", o.name, err)
	}
	last := er.Chains[len(er.Chains)-1]
	newest := last.Stamps[len(last.Stamps)-1].Token
	p := &gateway.EvidenceRecordSaved{Object: o.preserved(), Record: ref, Cause: cause, Hash: sigalg.HashName(last.Hash()),
		GenTime: newest.Info.GenTime.UTC(), TSA: s.stamps.tsa(newest), NextDue: s.stamps.decide(s.policy, er, s.now).Due}
	return gateway.Encode(gateway.Meta{ID: gateway.EvidenceRecordEventID(s.tenant, o.name, cause, o.record.SHA256),
		Tenant: s.tenant, Stream: gateway.EvidenceRecordsStream}, p)
}

// Data implements ers.Store. An erased original is ErrErased, so that the
// report says what it means.
func (s *Store) Data(ctx context.Context, name string) (io.ReadCloser, error) {
	o, err := lookup(ctx, s.db, s.tenant, name)
	if err != nil {
		return nil, err
	}
	rc, err := s.blobs.Open(ctx, o.data)
	if errors.Is(err, blob.ErrErased) {
		return nil, fmt.Errorf("%w (%w)", ErrErased, err)
	}
	if err != nil {
		return nil, fmt.Errorf("preservation: data object %s: %w", name, err)
	}
	return &erasedReader{rc}, nil
}

// erasedReader maps an erasure seen while reading (a store that finds out
// only then) to ErrErased too.
type erasedReader struct{ io.ReadCloser }

func (r *erasedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if errors.Is(err, blob.ErrErased) {
		return n, fmt.Errorf("%w (%w)", ErrErased, err)
	}
	return n, err
}

// stampCache remembers, per timestamp token, what the records sharing it
// have in common: the records of one batch share their newest timestamp, so
// the policy's decision (which verifies the token) and the TSA's name are
// worked out once per batch, not once per record. Records are saved
// concurrently, so it locks.
type stampCache struct {
	mu        sync.Mutex
	names     map[*tsp.Token]string
	decisions map[decisionKey]ers.Decision
}

type decisionKey struct {
	tok  *tsp.Token
	hash string
}

func newStampCache() *stampCache {
	return &stampCache{names: map[*tsp.Token]string{}, decisions: map[decisionKey]ers.Decision{}}
}

// tsa is the subject of the certificate that signed tok.
func (c *stampCache) tsa(tok *tsp.Token) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.names[tok]; ok {
		return n
	}
	n := "unknown"
	if cert := tok.Verify(tsp.VerifyOptions{}).TSACertificate; cert != nil {
		n = cert.Subject.String()
	}
	c.names[tok] = n
	return n
}

// decide is policy.Decide, once per newest timestamp and chain algorithm:
// those are all Decide looks at.
func (c *stampCache) decide(policy *ers.Policy, er *ers.EvidenceRecord, now time.Time) ers.Decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := er.Chains[len(er.Chains)-1]
	k := decisionKey{tok: last.Stamps[len(last.Stamps)-1].Token, hash: sigalg.HashName(last.Hash())}
	if d, ok := c.decisions[k]; ok {
		return d
	}
	d := policy.Decide(er, now)
	c.decisions[k] = d
	return d
}
