// Package projection maintains read models: tables derived from the log that
// can be dropped and rebuilt by replaying it. A projection keeps its position
// in the same transaction as its tables, so replay after a crash applies every
// event exactly once in effect, even when the log delivers it again.
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
	// projection does not handle are passed too and must be ignored.
	Apply(ctx context.Context, tx *sql.Tx, e *eventstore.Event, p gateway.Payload) error
}

// Runner feeds projections from the log into a SQLite database.
type Runner struct {
	Log      eventstore.Log
	DB       *sql.DB
	Registry *gateway.Registry
	Logger   *slog.Logger
}

const positionsTable = `CREATE TABLE IF NOT EXISTS projection_positions (
	name TEXT NOT NULL, part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY (name, part)) STRICT`

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

// follow feeds p every partition when the log can deliver them all to this
// process: then each gateway's state database is complete, and every node
// answers for every office. A log without Follower has one partition or one
// process, where the group subscription is the same thing.
func (r *Runner) follow(ctx context.Context, p Projection) error {
	if f, ok := r.Log.(eventstore.Follower); ok {
		return f.Follow(ctx, r.startFunc(p), r.handler(p))
	}
	return r.Log.Subscribe(ctx, "projection/"+p.Name(), r.startFunc(p), r.handler(p))
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
	apply := r.handler(p)
	for part := range parts {
		from, err := r.position(ctx, p.Name(), part)
		if err != nil {
			return err
		}
		for {
			evs, err := r.Log.Read(ctx, part, from, 1000)
			if err != nil {
				return fmt.Errorf("projection %s: read partition %d at %d: %w", p.Name(), part, from, err)
			}
			if len(evs) == 0 {
				break
			}
			for i := range evs {
				if err := apply(ctx, evs[i]); err != nil {
					return err
				}
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
	err := r.DB.QueryRowContext(ctx, `SELECT next FROM projection_positions WHERE name = ? AND part = ?`, name, part).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection %s: read position: %w", name, err)
	}
	return next, nil
}

// handler applies one event and advances the position in one transaction.
// An event already behind the position (a redelivery) is skipped.
func (r *Runner) handler(p Projection) eventstore.Handler {
	return func(ctx context.Context, e eventstore.Event) error {
		var payload gateway.Payload
		if r.Registry.Known(e.Type) {
			pl, err := r.Registry.Decode(&e)
			if err != nil {
				return fmt.Errorf("projection %s: %w", p.Name(), err)
			}
			payload = pl
		}
		return r.tx(ctx, func(tx *sql.Tx) error {
			var next int64
			err := tx.QueryRowContext(ctx, `SELECT next FROM projection_positions WHERE name = ? AND part = ?`, p.Name(), e.Position.Partition).Scan(&next)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if e.Position.Offset < next {
				return nil
			}
			if payload != nil {
				if err := p.Apply(ctx, tx, &e, payload); err != nil {
					return fmt.Errorf("projection %s: apply %s %s: %w", p.Name(), e.Type, e.ID, err)
				}
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO projection_positions (name, part, next) VALUES (?, ?, ?)
				ON CONFLICT (name, part) DO UPDATE SET next = excluded.next`, p.Name(), e.Position.Partition, e.Position.Offset+1)
			return err
		})
	}
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

func (r *Runner) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}
