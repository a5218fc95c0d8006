package pubsub

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// MemoryOffsets keeps positions in memory, for ephemeral subscribers.
type MemoryOffsets struct {
	mu   sync.Mutex
	next map[string]int64
}

func memKey(group string, partition int32) string { return fmt.Sprintf("%s/%d", group, partition) }

// Load implements Offsets.
func (o *MemoryOffsets) Load(_ context.Context, group string, partition int32) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next[memKey(group, partition)], nil
}

// Save implements Offsets.
func (o *MemoryOffsets) Save(_ context.Context, group string, partition int32, next int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.next == nil {
		o.next = map[string]int64{}
	}
	if next > o.next[memKey(group, partition)] {
		o.next[memKey(group, partition)] = next
	}
	return nil
}

// SQLOffsets keeps consumer-group positions in a SQLite database (the
// gateway's state database), in table subscription_offsets.
type SQLOffsets struct {
	db *sql.DB
}

// NewSQLOffsets creates the table when missing.
func NewSQLOffsets(ctx context.Context, db *sql.DB) (*SQLOffsets, error) {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS subscription_offsets (
		grp TEXT NOT NULL, part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY (grp, part)) STRICT`)
	if err != nil {
		return nil, fmt.Errorf("pubsub: create offsets table: %w", err)
	}
	return &SQLOffsets{db: db}, nil
}

// Load implements Offsets; an unknown group starts at 0.
func (o *SQLOffsets) Load(ctx context.Context, group string, partition int32) (int64, error) {
	var next int64
	err := o.db.QueryRowContext(ctx, `SELECT next FROM subscription_offsets WHERE grp = ? AND part = ?`, group, partition).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pubsub: load offset of %s/%d: %w", group, partition, err)
	}
	return next, nil
}

// Save implements Offsets.
func (o *SQLOffsets) Save(ctx context.Context, group string, partition int32, next int64) error {
	_, err := o.db.ExecContext(ctx, `INSERT INTO subscription_offsets (grp, part, next) VALUES (?, ?, ?)
		ON CONFLICT (grp, part) DO UPDATE SET next = excluded.next WHERE excluded.next > next`, group, partition, next)
	if err != nil {
		return fmt.Errorf("pubsub: save offset of %s/%d: %w", group, partition, err)
	}
	return nil
}
