package sqlitelog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore"
)

// NewestCheckpoint returns the partition's newest checkpoint without reading
// the others: the log signs one per commit, so a head published every hour
// would otherwise read them all. found is false for an empty log.
func (l *Log) NewestCheckpoint(ctx context.Context, partition int32) (c eventstore.Checkpoint, found bool, err error) {
	if partition != 0 {
		return c, false, fmt.Errorf("sqlitelog: no partition %d", partition)
	}
	var root []byte
	var t int64
	err = l.rdb.QueryRowContext(ctx, `SELECT size, root, time, key_id, signature FROM checkpoints ORDER BY size DESC LIMIT 1`).
		Scan(&c.Size, &root, &t, &c.KeyID, &c.Signature)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return c, false, nil
	case err != nil:
		return c, false, fmt.Errorf("sqlitelog: read newest checkpoint: %w", err)
	case len(root) != 32:
		return c, false, fmt.Errorf("sqlitelog: checkpoint at size %d has a %d-byte root", c.Size, len(root))
	}
	copy(c.Root[:], root)
	c.Time = time.Unix(0, t).UTC()
	return c, true, nil
}
