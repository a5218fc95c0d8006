package preservation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/projection"
)

// Objects is the read model of the data objects kept under evidence
// records: every received original (MessageReceived.Raw) and every log head
// the job stored (known from its EvidenceRecordSaved), each with its newest
// record. Like every projection it is disposable: the log says everything
// it holds, so a rebuild knows which objects are covered and by what.
type Objects struct{}

// Name implements projection.Projection.
func (Objects) Name() string { return "preservation-objects" }

const objectsTable = `CREATE TABLE IF NOT EXISTS preservation_objects (
	tenant TEXT NOT NULL,
	name TEXT NOT NULL,
	kind TEXT NOT NULL,
	stream TEXT NOT NULL,
	data_sha256 TEXT NOT NULL,
	data_size INTEGER NOT NULL,
	record_sha256 TEXT,
	record_size INTEGER,
	cause TEXT,
	next_due INTEGER,
	PRIMARY KEY (tenant, name)) STRICT`

// The partial indexes serve the job's two questions: which objects have no
// record yet, and which records fall due.
const (
	uncoveredIndex = `CREATE INDEX IF NOT EXISTS preservation_uncovered ON preservation_objects (tenant) WHERE record_sha256 IS NULL`
	dueIndex       = `CREATE INDEX IF NOT EXISTS preservation_due ON preservation_objects (tenant, next_due) WHERE record_sha256 IS NOT NULL`
)

// Setup implements projection.Projection.
func (Objects) Setup(ctx context.Context, tx *sql.Tx) error {
	for _, q := range []string{objectsTable, uncoveredIndex, dueIndex} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("preservation: set up objects: %w", err)
		}
	}
	return nil
}

// Reset implements projection.Projection.
func (Objects) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM preservation_objects`)
	return err
}

const (
	insertOriginal = `INSERT INTO preservation_objects (tenant, name, kind, stream, data_sha256, data_size)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO NOTHING`
	upsertRecord = `INSERT INTO preservation_objects (tenant, name, kind, stream, data_sha256, data_size, record_sha256, record_size, cause, next_due)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO UPDATE SET
		record_sha256 = excluded.record_sha256, record_size = excluded.record_size, cause = excluded.cause, next_due = excluded.next_due`
)

// Apply implements projection.Projection. On a partitioned log a message's
// MessageReceived and the EvidenceRecordSaved over its original are in
// different partitions and may be folded in either order; both statements
// leave the same row.
func (Objects) Apply(ctx context.Context, tx projection.Tx, e *eventstore.Event, p gateway.Payload) error {
	switch m := p.(type) {
	case *gateway.MessageReceived:
		if m.Raw == (blob.Ref{}) {
			return nil
		}
		_, err := tx.ExecContext(ctx, insertOriginal, e.Tenant, ObjectName(gateway.PreservedOriginal, e.Stream, m.Raw),
			gateway.PreservedOriginal, e.Stream, m.Raw.SHA256, m.Raw.Size)
		return err
	case *gateway.EvidenceRecordSaved:
		o := m.Object
		_, err := tx.ExecContext(ctx, upsertRecord, e.Tenant, ObjectName(o.Kind, o.Stream, o.Data), o.Kind, o.Stream,
			o.Data.SHA256, o.Data.Size, m.Record.SHA256, m.Record.Size, m.Cause, dueMillis(m.NextDue))
		return err
	}
	return nil
}

// ObjectName names a data object among the records: "original-<stream>"
// for an original, "log-head-<sha256>" for a head. Names are file names
// too (NAME.ers beside NAME in an export).
func ObjectName(kind, stream string, data blob.Ref) string {
	if kind == gateway.PreservedOriginal {
		return kind + "-" + stream
	}
	return kind + "-" + data.SHA256
}

// dueMillis stores a due time; 0 is "none foreseen".
func dueMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// object is one row.
type object struct {
	name   string
	kind   string
	stream string
	data   blob.Ref
	// record is zero while the object has none.
	record blob.Ref
	cause  string
}

func (o object) preserved() gateway.PreservedObject {
	return gateway.PreservedObject{Kind: o.kind, Stream: o.stream, Data: o.data}
}

const objectColumns = `name, kind, stream, data_sha256, data_size, COALESCE(record_sha256, ''), COALESCE(record_size, 0), COALESCE(cause, '')`

func scanObjects(rows *sql.Rows) ([]object, error) {
	defer rows.Close()
	var out []object
	for rows.Next() {
		var o object
		if err := rows.Scan(&o.name, &o.kind, &o.stream, &o.data.SHA256, &o.data.Size, &o.record.SHA256, &o.record.Size, &o.cause); err != nil {
			return nil, fmt.Errorf("preservation: read objects: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("preservation: read objects: %w", err)
	}
	return out, nil
}

// uncovered returns up to limit objects without a record, oldest first.
func uncovered(ctx context.Context, db *sql.DB, tenant string, limit int) ([]object, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+objectColumns+` FROM preservation_objects
		WHERE tenant = ? AND record_sha256 IS NULL ORDER BY rowid LIMIT ?`, tenant, limit)
	if err != nil {
		return nil, fmt.Errorf("preservation: objects without a record: %w", err)
	}
	return scanObjects(rows)
}

// errUnknownObject is a name the projection does not know.
var errUnknownObject = errors.New("preservation: no such data object")

// lookup returns one object.
func lookup(ctx context.Context, db *sql.DB, tenant, name string) (object, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+objectColumns+` FROM preservation_objects WHERE tenant = ? AND name = ?`, tenant, name)
	if err != nil {
		return object{}, fmt.Errorf("preservation: look up %s: %w", name, err)
	}
	objs, err := scanObjects(rows)
	if err != nil {
		return object{}, err
	}
	if len(objs) == 0 {
		return object{}, fmt.Errorf("%w: %s", errUnknownObject, name)
	}
	return objs[0], nil
}

// recordPage returns up to limit names of objects with a record, in name
// order after the name after: every one when all is set (the run that
// re-decides every record after a start, when the catalogue may have come
// with a new binary), else those due by now.
func recordPage(ctx context.Context, db *sql.DB, tenant string, all bool, now time.Time, after string, limit int) ([]string, error) {
	q := `SELECT name FROM preservation_objects WHERE tenant = ? AND record_sha256 IS NOT NULL AND name > ?`
	args := []any{tenant, after}
	if !all {
		q += ` AND next_due > 0 AND next_due <= ?`
		args = append(args, now.UnixMilli())
	}
	rows, err := db.QueryContext(ctx, q+` ORDER BY name LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("preservation: records to check: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("preservation: records to check: %w", err)
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// nextDue is the earliest foreseen renewal of the tenant's records (zero
// when none is).
func nextDue(ctx context.Context, db *sql.DB, tenant string) (time.Time, error) {
	var ms sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT MIN(next_due) FROM preservation_objects
		WHERE tenant = ? AND record_sha256 IS NOT NULL AND next_due > 0`, tenant).Scan(&ms)
	if err != nil {
		return time.Time{}, fmt.Errorf("preservation: next due: %w", err)
	}
	if !ms.Valid {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms.Int64).UTC(), nil
}

// Records lists the tenant's objects with their newest record, in name
// order, for an export: name, data object and record.
func Records(ctx context.Context, db *sql.DB, tenant string) ([]Record, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+objectColumns+` FROM preservation_objects
		WHERE tenant = ? AND record_sha256 IS NOT NULL ORDER BY name`, tenant)
	if err != nil {
		return nil, fmt.Errorf("preservation: list records: %w", err)
	}
	objs, err := scanObjects(rows)
	if err != nil {
		return nil, err
	}
	out := make([]Record, len(objs))
	for i, o := range objs {
		out[i] = Record{Name: o.name, Object: o.preserved(), Record: o.record, Cause: o.cause}
	}
	return out, nil
}

// Record is an object's newest evidence record.
type Record struct {
	Name   string
	Object gateway.PreservedObject
	Record blob.Ref
	Cause  string
}

// OriginalRecord returns the blob of the current evidence record over a
// message's original, false while it has none. The projection must be
// caught up by the caller (projection.Runner.CatchUp with Objects).
func OriginalRecord(ctx context.Context, db *sql.DB, tenant, stream string) (blob.Ref, bool, error) {
	o, err := lookup(ctx, db, tenant, ObjectName(gateway.PreservedOriginal, stream, blob.Ref{}))
	if errors.Is(err, errUnknownObject) {
		return blob.Ref{}, false, nil
	}
	if err != nil {
		return blob.Ref{}, false, err
	}
	return o.record, o.record != (blob.Ref{}), nil
}
