package webui

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/poststelle/poststelle/gateway"
)

// countRow is a labelled count.
type countRow struct {
	Key string
	N   int64
}

// perDay counts messages per day and channel (or office) from since on.
func perDay(ctx context.Context, db *sql.DB, byOffice bool, since time.Time) ([]dayCount, error) {
	q := `SELECT substr(received_at, 1, 10), channel, count(*) FROM ui_messages WHERE received_at >= ? GROUP BY 1, 2`
	if byOffice {
		q = `SELECT substr(received_at, 1, 10), office, count(*) FROM ui_message_offices WHERE received_at >= ? GROUP BY 1, 2`
	}
	rows, err := db.QueryContext(ctx, q, timeKey(since))
	if err != nil {
		return nil, fmt.Errorf("webui: counts per day: %w", err)
	}
	defer rows.Close()
	var out []dayCount
	for rows.Next() {
		var dc dayCount
		if err := rows.Scan(&dc.Day, &dc.Series, &dc.N); err != nil {
			return nil, fmt.Errorf("webui: counts per day: %w", err)
		}
		out = append(out, dc)
	}
	return out, rows.Err()
}

func counts(ctx context.Context, db *sql.DB, q string, args ...any) ([]countRow, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("webui: counts: %w", err)
	}
	defer rows.Close()
	var out []countRow
	for rows.Next() {
		var c countRow
		if err := rows.Scan(&c.Key, &c.N); err != nil {
			return nil, fmt.Errorf("webui: counts: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// overviewStats is what the overview shows besides the charts.
type overviewStats struct {
	Queues       []countRow
	Answers      []countRow
	Verification []countRow
	TriageOpen   int64
	Head         *witnessedHead
}

type witnessedHead struct {
	RecordedAt time.Time
	gateway.HeadPublished
}

func loadStats(ctx context.Context, db *sql.DB) (overviewStats, error) {
	var st overviewStats
	var err error
	if st.Queues, err = counts(ctx, db, `SELECT office, count(*) FROM office_messages WHERE state != 'acknowledged' GROUP BY office ORDER BY office`); err != nil {
		return st, err
	}
	if st.Answers, err = counts(ctx, db, `SELECT state, count(*) FROM office_replies GROUP BY state ORDER BY state`); err != nil {
		return st, err
	}
	if st.Verification, err = counts(ctx, db, `SELECT verification, count(*) FROM ui_messages WHERE received_at != '' GROUP BY verification ORDER BY verification`); err != nil {
		return st, err
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM triage_items WHERE state = 'open'`).Scan(&st.TriageOpen); err != nil {
		return st, fmt.Errorf("webui: triage count: %w", err)
	}
	st.Head, err = lastHead(ctx, db)
	return st, err
}

func lastHead(ctx context.Context, db *sql.DB) (*witnessedHead, error) {
	var at, j string
	err := db.QueryRowContext(ctx, `SELECT recorded_at, head FROM ui_heads WHERE k = 1`).Scan(&at, &j)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("webui: last head: %w", err)
	}
	h := &witnessedHead{}
	h.RecordedAt, _ = time.Parse(time.RFC3339Nano, at)
	if err := json.Unmarshal([]byte(j), &h.HeadPublished); err != nil {
		return nil, fmt.Errorf("webui: decode last head: %w", err)
	}
	return h, nil
}
