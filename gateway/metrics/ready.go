package metrics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
)

// Readiness decides /readyz: a node is ready once its projections have
// caught up with the log as it stood when the node started (so a
// restarted node is not sent traffic while its read models are stale), and
// for as long as the log, the state database and the blob store answer.
type Readiness struct {
	Log   eventstore.Log
	DB    *sql.DB
	Blobs blob.Backend
	// Projections are the names whose positions must reach the start ends.
	Projections []string

	startEnds []int64
	caughtUp  atomic.Bool
}

// checkTimeout bounds one readiness check, so that a hung store makes the
// node unready rather than the probe hang.
const checkTimeout = 2 * time.Second

// Start records the log's ends that the projections must reach.
func (r *Readiness) Start(ctx context.Context) error {
	ends, err := Ends(ctx, r.Log)
	if err != nil {
		return fmt.Errorf("readiness: read the log's end: %w", err)
	}
	r.startEnds = ends
	return nil
}

// Check returns nil when the node is ready, otherwise why not.
func (r *Readiness) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if r.startEnds == nil {
		return errors.New("starting")
	}
	if _, err := Ends(ctx, r.Log); err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	if err := r.DB.PingContext(ctx); err != nil {
		return fmt.Errorf("state database: %w", err)
	}
	if err := r.Blobs.Ping(ctx); err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	if r.caughtUp.Load() {
		return nil
	}
	if err := r.projectionsCaughtUp(ctx); err != nil {
		return err
	}
	r.caughtUp.Store(true)
	return nil
}

func (r *Readiness) projectionsCaughtUp(ctx context.Context) error {
	for _, name := range r.Projections {
		for part, end := range r.startEnds {
			if end == 0 {
				continue
			}
			var next int64
			err := r.DB.QueryRowContext(ctx, `SELECT next FROM projection_positions WHERE name = ? AND part = ?`, name, part).Scan(&next)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("projection %s: read position: %w", name, err)
			}
			if next < end {
				return fmt.Errorf("projection %s: partition %d at %d of %d", name, part, next, end)
			}
		}
	}
	return nil
}
