// Package projection maintains read models: tables derived from the log that
// can be dropped and rebuilt by replaying it. A projection keeps its position
// in the same transaction as its tables, so replay after a crash applies every
// event exactly once in effect, even when the log delivers it again.
//
// The runner folds events in batches: one transaction applies every event
// that is waiting (up to MaxBatch) and stores the positions reached, so the
// cost of a commit and of the statements' set-up is shared by the batch,
// while an event arriving at an idle runner is committed at once.
package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
)

// Projection is one read model.
type Projection interface {
	// Name identifies the projection and its position; it must not change.
	Name() string
	// Setup creates the projection's tables if missing.
	Setup(ctx context.Context, tx *sql.Tx) error
	// Reset drops the projection's contents for a rebuild.
	Reset(ctx context.Context, tx *sql.Tx) error
	// Apply folds one event into the tables. Events whose type the
	// projection does not handle are passed too and must be ignored. The
	// transaction holds a batch of events: Apply must not assume that an
	// earlier event's changes are committed, only that they are visible.
	Apply(ctx context.Context, tx Tx, e *eventstore.Event, p gateway.Payload) error
}

// Tx is the transaction a projection applies events in. *sql.Tx is one;
// the runner's prepares each statement once and reuses it in every batch.
type Tx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Committer is implemented by projections that tell others of a change
// (an inbox waking event streams): Committed is called after each batch
// that applied at least one event is committed, so that a reader woken by
// it sees the batch.
type Committer interface {
	Committed()
}

// DefaultMaxBatch bounds the events one transaction folds: large enough
// that the commit and the statements' set-up vanish per event, small enough
// that readers of the state database (which has one connection) wait for
// one batch only a few milliseconds.
const DefaultMaxBatch = 256

// Runner feeds projections from the log into a SQLite database. Use it by
// pointer; the zero value of the unexported fields is ready.
type Runner struct {
	Log      eventstore.Log
	DB       *sql.DB
	Registry *gateway.Registry
	Logger   *slog.Logger
	// MaxBatch is how many events one transaction folds at most
	// (DefaultMaxBatch when 0).
	MaxBatch int

	stmts statements
}

const positionsTable = `CREATE TABLE IF NOT EXISTS projection_positions (
	name TEXT NOT NULL, part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY (name, part)) STRICT`

const (
	selectPosition = `SELECT next FROM projection_positions WHERE name = ? AND part = ?`
	upsertPosition = `INSERT INTO projection_positions (name, part, next) VALUES (?, ?, ?)
		ON CONFLICT (name, part) DO UPDATE SET next = excluded.next`
)

// Setup prepares the positions table and the projection's tables.
func (r *Runner) Setup(ctx context.Context, p Projection) error {
	return r.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, positionsTable); err != nil {
			return err
		}
		return p.Setup(ctx, tx)
	})
}

// Run applies events to p until ctx ends.
func (r *Runner) Run(ctx context.Context, p Projection) error {
	if err := r.Setup(ctx, p); err != nil {
		return fmt.Errorf("projection %s: setup: %w", p.Name(), err)
	}
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		err := r.follow(ctx, p)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.logger().Error("projection stopped; restarting", "projection", p.Name(), "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// decoded is an event with its payload (nil for a type the registry does
// not know), decoded by the subscription's goroutine while the folder
// commits the previous batch.
type decoded struct {
	e       eventstore.Event
	payload gateway.Payload
}

// follow feeds p every partition when the log can deliver them all to this
// process: then each gateway's state database is complete, and every node
// answers for every office. A log without Follower has one partition or one
// process, where the group subscription is the same thing.
//
// The subscription only queues the events; one folder takes whatever is
// queued as a batch. When the folder fails, the subscription ends, and
// what was queued but not committed is delivered again by the next
// subscription, which starts from the positions committed.
func (r *Runner) follow(ctx context.Context, p Projection) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan decoded, r.maxBatch())
	folded := make(chan error, 1)
	go func() {
		err := r.fold(ctx, p, queue)
		cancel(err)
		folded <- err
	}()
	h := func(ctx context.Context, e eventstore.Event) error {
		d, err := r.decode(p, e)
		if err != nil {
			return err
		}
		select {
		case queue <- d:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	var err error
	if f, ok := r.Log.(eventstore.Follower); ok {
		err = f.Follow(ctx, r.startFunc(p), h)
	} else {
		err = r.Log.Subscribe(ctx, "projection/"+p.Name(), r.startFunc(p), h)
	}
	cancel(err)
	if ferr := <-folded; ferr != nil && !errors.Is(ferr, context.Canceled) {
		return ferr
	}
	return err
}

// fold commits the queued events in batches until ctx ends or a batch fails.
func (r *Runner) fold(ctx context.Context, p Projection, queue <-chan decoded) error {
	batch := make([]decoded, 0, r.maxBatch())
	for {
		select {
		case d := <-queue:
			batch = append(batch[:0], d)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case d := <-queue:
				batch = append(batch, d)
			default:
				break more
			}
		}
		if err := r.applyBatch(ctx, p, batch); err != nil {
			return err
		}
	}
}

// CatchUp applies every event now in the log and returns.
func (r *Runner) CatchUp(ctx context.Context, p Projection) error {
	if err := r.Setup(ctx, p); err != nil {
		return fmt.Errorf("projection %s: setup: %w", p.Name(), err)
	}
	parts, err := r.Log.Partitions(ctx)
	if err != nil {
		return err
	}
	batch := make([]decoded, 0, r.maxBatch())
	for part := range parts {
		from, err := r.position(ctx, p.Name(), part)
		if err != nil {
			return err
		}
		for {
			evs, err := r.Log.Read(ctx, part, from, r.maxBatch())
			if err != nil {
				return fmt.Errorf("projection %s: read partition %d at %d: %w", p.Name(), part, from, err)
			}
			if len(evs) == 0 {
				break
			}
			batch = batch[:0]
			for i := range evs {
				d, err := r.decode(p, evs[i])
				if err != nil {
					return err
				}
				batch = append(batch, d)
			}
			if err := r.applyBatch(ctx, p, batch); err != nil {
				return err
			}
			from = evs[len(evs)-1].Position.Offset + 1
		}
	}
	return nil
}

// Rebuild drops the projection's contents and position; the next Run or
// CatchUp replays the whole log.
func (r *Runner) Rebuild(ctx context.Context, p Projection) error {
	if err := r.Setup(ctx, p); err != nil {
		return err
	}
	return r.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM projection_positions WHERE name = ?`, p.Name()); err != nil {
			return err
		}
		return p.Reset(ctx, tx)
	})
}

func (r *Runner) startFunc(p Projection) eventstore.StartFunc {
	return func(ctx context.Context, part int32) (int64, error) { return r.position(ctx, p.Name(), part) }
}

func (r *Runner) position(ctx context.Context, name string, part int32) (int64, error) {
	var next int64
	err := r.DB.QueryRowContext(ctx, selectPosition, name, part).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection %s: read position: %w", name, err)
	}
	return next, nil
}

func (r *Runner) decode(p Projection, e eventstore.Event) (decoded, error) {
	if !r.Registry.Known(e.Type) {
		return decoded{e: e}, nil
	}
	pl, err := r.Registry.Decode(&e)
	if err != nil {
		return decoded{}, fmt.Errorf("projection %s: %w", p.Name(), err)
	}
	return decoded{e: e, payload: pl}, nil
}

// applyBatch applies a batch and advances the positions in one
// transaction. An event behind its partition's position (a redelivery, or
// one CatchUp folded meanwhile) is skipped. Positions are read inside the
// transaction because CatchUp and Run may fold the same projection.
func (r *Runner) applyBatch(ctx context.Context, p Projection, batch []decoded) error {
	applied := 0
	err := r.tx(ctx, func(sqlTx *sql.Tx) error {
		tx := r.stmts.bind(sqlTx)
		next := map[int32]int64{}
		moved := map[int32]bool{}
		for i := range batch {
			e := &batch[i].e
			part := e.Position.Partition
			pos, ok := next[part]
			if !ok {
				err := tx.QueryRowContext(ctx, selectPosition, p.Name(), part).Scan(&pos)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("projection %s: read position: %w", p.Name(), err)
				}
				next[part] = pos
			}
			if e.Position.Offset < pos {
				continue
			}
			if batch[i].payload != nil {
				if err := p.Apply(ctx, tx, e, batch[i].payload); err != nil {
					return fmt.Errorf("projection %s: apply %s %s: %w", p.Name(), e.Type, e.ID, err)
				}
			}
			next[part], moved[part] = e.Position.Offset+1, true
			applied++
		}
		for part := range moved {
			if _, err := tx.ExecContext(ctx, upsertPosition, p.Name(), part, next[part]); err != nil {
				return fmt.Errorf("projection %s: store position: %w", p.Name(), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.stmts.prepareWanted(ctx, r.DB)
	if c, ok := p.(Committer); ok && applied > 0 {
		c.Committed()
	}
	return nil
}

func (r *Runner) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := r.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (r *Runner) maxBatch() int {
	if r.MaxBatch <= 0 {
		return DefaultMaxBatch
	}
	return r.MaxBatch
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}
