package projection

import (
	"context"
	"database/sql"
	"sync"
)

// statements are the projections' statements prepared on the database, so
// that SQLite parses each one once instead of once per event (parsing was
// a fifth of the office benchmark's CPU time). A statement is first
// prepared in the transaction that meets it; after that transaction, when
// the state database's connection is free again, it is prepared on the
// database, and later transactions bind it (database/sql reuses the
// prepared statement of the connection they hold).
type statements struct {
	mu       sync.Mutex
	prepared map[string]*sql.Stmt
	wanted   map[string]bool
}

// bind returns tx with the statement cache in front of it.
func (s *statements) bind(tx *sql.Tx) *preparedTx {
	return &preparedTx{tx: tx, s: s, local: map[string]*sql.Stmt{}}
}

func (s *statements) lookup(query string) *sql.Stmt {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.prepared[query]
	if !ok {
		if s.wanted == nil {
			s.wanted = map[string]bool{}
		}
		s.wanted[query] = true
	}
	return st
}

// prepareWanted prepares on db the statements met since the last call. One
// that fails to prepare is left to the transactions, which prepare it
// themselves and report its error.
func (s *statements) prepareWanted(ctx context.Context, db *sql.DB) {
	s.mu.Lock()
	wanted := s.wanted
	s.wanted = nil
	s.mu.Unlock()
	for q := range wanted {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		s.mu.Lock()
		if s.prepared == nil {
			s.prepared = map[string]*sql.Stmt{}
		}
		if _, dup := s.prepared[q]; dup {
			st.Close()
		} else {
			s.prepared[q] = st
		}
		s.mu.Unlock()
	}
}

// preparedTx is a Tx whose statements come from the cache; those of the
// transaction are closed with it.
type preparedTx struct {
	tx    *sql.Tx
	s     *statements
	local map[string]*sql.Stmt
}

func (t *preparedTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.local[query]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if shared := t.s.lookup(query); shared != nil {
		st = t.tx.StmtContext(ctx, shared)
	} else {
		var err error
		if st, err = t.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
	}
	t.local[query] = st
	return st, nil
}

// ExecContext implements Tx.
func (t *preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryContext implements Tx.
func (t *preparedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext implements Tx. A statement that does not prepare is run
// unprepared, so that the Row carries its error.
func (t *preparedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return t.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
