package sqlitelog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/integrity"
)

// writer is the only goroutine that writes. It drains all queued requests into
// one transaction so that their events share one fsync.
//
// Appenders that a commit releases need a moment to append again, and a
// writer that commits at once takes only those that made it: with 64
// appenders commits carried about 31 events, twice the fsyncs and index
// page writes per event of 64-event commits. So when fewer events are
// queued than the last commit carried, the writer waits for that many, but
// at most half as long as the last commit took: a load that has dropped
// costs at most that once.
func (l *Log) writer() {
	defer close(l.done)
	defer close(l.ckpt)
	var last batchStats
	for {
		var first *appendReq
		select {
		case first = <-l.reqs:
		case <-l.stop:
			l.drainClosed()
			return
		}
		batch, n := l.gather(first, last)
		start := time.Now()
		l.commit(batch)
		last = batchStats{events: n, took: time.Since(start)}
	}
}

// batchStats describes the previous commit, which sizes the next batch.
type batchStats struct {
	events int
	took   time.Duration
}

// gather takes the queued requests after first: all that are there, then,
// while fewer events than the last commit's are gathered, those that arrive
// within half the last commit's duration.
func (l *Log) gather(first *appendReq, last batchStats) ([]*appendReq, int) {
	batch, n := []*appendReq{first}, len(first.events)
	take := func(r *appendReq) {
		batch = append(batch, r)
		n += len(r.events)
	}
fill:
	for n < l.cfg.MaxBatch {
		select {
		case r := <-l.reqs:
			take(r)
		default:
			break fill
		}
	}
	target := min(last.events, l.cfg.MaxBatch)
	if n >= target || last.took <= 0 {
		return batch, n
	}
	timer := time.NewTimer(last.took / 2)
	defer timer.Stop()
	for n < target {
		select {
		case r := <-l.reqs:
			take(r)
		case <-timer.C:
			return batch, n
		case <-l.stop:
			return batch, n
		}
	}
	return batch, n
}

// drainClosed fails requests that raced with Close.
func (l *Log) drainClosed() {
	for {
		select {
		case r := <-l.reqs:
			r.err = eventstore.ErrClosed
			close(r.done)
		default:
			return
		}
	}
}

// batchState tracks what the open transaction has written, so that events in
// the same batch see each other (ids, message keys, stream sequence numbers).
type batchState struct {
	tx        *sql.Tx
	next      int64
	prev      [32]byte
	frontier  *integrity.Frontier
	ids       map[string]*eventstore.Event
	keys      map[string]*eventstore.Event
	streamSeq map[string]int64
	now       time.Time
}

func (l *Log) commit(batch []*appendReq) {
	ctx := context.Background()
	err := l.commitTx(ctx, batch)
	if err != nil {
		l.cfg.Logger.Error("event log commit failed", "path", l.cfg.Path, "events", len(batch), "err", err)
		for _, r := range batch {
			r.results, r.err = nil, fmt.Errorf("sqlitelog: commit: %w", err)
		}
	}
	for _, r := range batch {
		close(r.done)
	}
	if err == nil {
		l.signalCommit()
		l.requestCheckpoint(batch)
	}
}

func (l *Log) commitTx(ctx context.Context, batch []*appendReq) error {
	tx, err := l.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	st := &batchState{tx: tx, next: l.next, prev: l.prev, frontier: l.frontier.Clone(),
		ids: map[string]*eventstore.Event{}, keys: map[string]*eventstore.Event{},
		streamSeq: map[string]int64{}, now: l.cfg.Now().UTC()}
	ins := tx.StmtContext(ctx, l.insert)
	defer ins.Close()
	for _, r := range batch {
		r.results, r.err = l.appendRequest(ctx, st, ins, r)
	}
	if st.next != l.next {
		if err := l.writeCheckpoint(ctx, st); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	l.next, l.prev, l.frontier = st.next, st.prev, st.frontier
	l.rememberSeqs(st)
	return nil
}

// appendRequest appends one request's events until the first that fails.
func (l *Log) appendRequest(ctx context.Context, st *batchState, ins *sql.Stmt, r *appendReq) ([]eventstore.Result, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	results := make([]eventstore.Result, 0, len(r.events))
	for i := range r.events {
		res, err := l.appendOne(ctx, st, ins, r.events[i])
		if err != nil {
			return results, fmt.Errorf("event %d (%s): %w", i, r.events[i].ID, err)
		}
		results = append(results, res)
	}
	return results, nil
}

func (l *Log) appendOne(ctx context.Context, st *batchState, ins *sql.Stmt, e eventstore.Event) (eventstore.Result, error) {
	if err := e.Validate(); err != nil {
		return eventstore.Result{}, err
	}
	// Retries within the batch are found here; against the table, the
	// insert's own conflict check finds them without a query per event.
	if old := st.ids[e.ID]; old != nil {
		return existing(old, &e)
	}
	if e.MessageKey != "" {
		if old := st.keys[e.Tenant+"\x00"+e.MessageKey]; old != nil {
			return eventstore.Result{}, &eventstore.DuplicateError{Key: e.MessageKey, Existing: *old}
		}
	}
	seq, err := l.nextStreamSeq(ctx, st, e.Tenant, e.Stream)
	if err != nil {
		return eventstore.Result{}, err
	}
	e.Position = eventstore.Position{Partition: 0, Offset: st.next}
	e.StreamSeq, e.RecordedAt, e.PrevHash = seq, st.now, st.prev
	leaf := integrity.LeafHash(&e)
	res, err := ins.ExecContext(ctx, e.Position.Offset, e.ID, e.Tenant, e.Stream, e.StreamSeq, e.Type, e.Version,
		e.MessageKey, e.CorrelationID, e.CausationID, encodeMetadata(e.Metadata), nonNil(e.Data),
		e.RecordedAt.UnixNano(), e.PrevHash[:], leaf[:])
	if err != nil {
		return eventstore.Result{}, fmt.Errorf("insert at offset %d: %w", e.Position.Offset, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return l.conflict(ctx, st, &e)
	}
	st.frontier.Append(leaf)
	st.prev, st.next = leaf, st.next+1
	stored := e
	st.ids[e.ID] = &stored
	if e.MessageKey != "" {
		st.keys[e.Tenant+"\x00"+e.MessageKey] = &stored
	}
	st.streamSeq[e.Tenant+"\x00"+e.Stream] = seq
	return eventstore.Result{Position: e.Position}, nil
}

// conflict explains an insert the table refused: the id exists (a retry, or
// a reuse with other content) or the message key is taken.
func (l *Log) conflict(ctx context.Context, st *batchState, e *eventstore.Event) (eventstore.Result, error) {
	old, err := l.queryOne(ctx, st.tx, `WHERE id = ?`, e.ID)
	if err != nil {
		return eventstore.Result{}, err
	}
	if old != nil {
		return existing(old, e)
	}
	if e.MessageKey != "" {
		old, err := l.queryOne(ctx, st.tx, `WHERE tenant = ? AND message_key = ?`, e.Tenant, e.MessageKey)
		if err != nil {
			return eventstore.Result{}, err
		}
		if old != nil {
			return eventstore.Result{}, &eventstore.DuplicateError{Key: e.MessageKey, Existing: *old}
		}
	}
	return eventstore.Result{}, fmt.Errorf("insert of %s refused without a known conflict (stream %s sequence %d)", e.ID, e.Stream, e.StreamSeq)
}

func existing(old, e *eventstore.Event) (eventstore.Result, error) {
	if !sameContent(old, e) {
		return eventstore.Result{}, eventstore.ErrConflict
	}
	return eventstore.Result{Position: old.Position, Existing: true}, nil
}

// nextStreamSeq numbers an event within its stream. The writer is the only
// one who appends, so it remembers the newest numbers of recent streams and
// asks the table only for streams it has not seen lately.
func (l *Log) nextStreamSeq(ctx context.Context, st *batchState, tenant, stream string) (int64, error) {
	k := tenant + "\x00" + stream
	if s, ok := st.streamSeq[k]; ok {
		return s + 1, nil
	}
	if s, ok := l.seqCache[k]; ok {
		return s + 1, nil
	}
	var seq sql.NullInt64
	if err := st.tx.QueryRowContext(ctx, `SELECT max(stream_seq) FROM events WHERE tenant = ? AND stream = ?`, tenant, stream).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read stream %s sequence: %w", stream, err)
	}
	return seq.Int64 + 1, nil
}

// rememberSeqs keeps a committed batch's stream numbers; the cache is
// bounded and simply starts over when full.
func (l *Log) rememberSeqs(st *batchState) {
	if len(l.seqCache)+len(st.streamSeq) > maxSeqCache {
		l.seqCache = make(map[string]int64, len(st.streamSeq))
	}
	for k, v := range st.streamSeq {
		l.seqCache[k] = v
	}
}

// maxSeqCache bounds the writer's memory of stream numbers.
const maxSeqCache = 100_000

func (l *Log) writeCheckpoint(ctx context.Context, st *batchState) error {
	c := eventstore.Checkpoint{Partition: 0, Size: st.next, Root: st.frontier.Root(), Time: st.now}
	if err := integrity.Sign(l.cfg.Signer, l.logID, &c); err != nil {
		return err
	}
	if _, err := st.tx.StmtContext(ctx, l.insertCheckpoint).ExecContext(ctx,
		c.Size, c.Root[:], c.Time.UnixNano(), c.KeyID, c.Signature, encodeFrontier(st.frontier)); err != nil {
		return fmt.Errorf("insert checkpoint at size %d: %w", c.Size, err)
	}
	return nil
}

// sameContent decides whether a retried event is the one already stored. The
// log-assigned fields are ignored; everything the appender chose must match.
func sameContent(a, b *eventstore.Event) bool {
	if a.Tenant != b.Tenant || a.Stream != b.Stream || a.Type != b.Type || a.Version != b.Version ||
		a.MessageKey != b.MessageKey || a.CorrelationID != b.CorrelationID || a.CausationID != b.CausationID ||
		!bytes.Equal(a.Data, b.Data) || len(a.Metadata) != len(b.Metadata) {
		return false
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

var errCorruptRow = errors.New("corrupt row")
