package main

import "testing"

func TestTranslate(t *testing.T) {
	tests := []struct{ in, want string }{
		{`SELECT next FROM projection_positions WHERE name = ? AND part = ?`,
			`SELECT next FROM projection_positions WHERE name = $1 AND part = $2`},
		// SQLite numbers a bare ? one above the largest number so far.
		{`VALUES (?1, ?2, (SELECT seq FROM q WHERE office = ?1), ?3, ?)`,
			`VALUES ($1, $2, (SELECT seq FROM q WHERE office = $1), $3, $4)`},
		{`UPDATE t SET seq = ?1 WHERE a = ?2 AND (seq IS NULL OR seq > ?1)`,
			`UPDATE t SET seq = $1 WHERE a = $2 AND (seq IS NULL OR seq > $1)`},
		{`SELECT '?' FROM t WHERE a = ?`, `SELECT '?' FROM t WHERE a = $1`},
		{"CREATE TABLE IF NOT EXISTS p (\n\tname TEXT NOT NULL, part INTEGER NOT NULL, PRIMARY KEY (name, part)) STRICT",
			"CREATE TABLE IF NOT EXISTS p (\n\tname TEXT NOT NULL, part BIGINT NOT NULL, PRIMARY KEY (name, part))"},
		{`SELECT "notnull" FROM pragma_table_info(?) WHERE name = 'seq'`, tableInfoQuery("seq")},
		{`SELECT "notnull" FROM pragma_table_info(?) WHERE name = 'due'`, tableInfoQuery("due")},
		{`SELECT COUNT(*) FROM pragma_table_info('office_eeb') WHERE name = 'overdue_at'`,
			columnCountQuery("office_eeb", "overdue_at")},
		{`SELECT 1 WHERE ?12 = ?`, `SELECT 1 WHERE $12 = $13`},
	}
	for _, tt := range tests {
		if got := translate(tt.in); got != tt.want {
			t.Errorf("translate(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}
