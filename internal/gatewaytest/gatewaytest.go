// Package gatewaytest sets up what the gateway's packages need in their
// tests: an embedded log, a state database, subscription offsets and a blob
// store in a temporary directory, closed when the test ends.
package gatewaytest

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/eventstore/pubsub"
	"github.com/poststelle/poststelle/eventstore/sqlitelog"
)

// Key is the fixed test signing key, so that child processes sign alike.
var Key = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

// Env is one test's gateway storage.
type Env struct {
	Dir     string
	Log     *sqlitelog.Log
	State   *sql.DB
	Offsets *pubsub.SQLOffsets
	Blobs   *blob.Store
}

// New opens a fresh environment in t.TempDir().
func New(t testing.TB) *Env {
	t.Helper()
	e := &Env{Dir: t.TempDir()}
	ctx := context.Background()
	var err error
	if e.Log, err = sqlitelog.Open(ctx, sqlitelog.Config{Path: filepath.Join(e.Dir, "log.db"), Signer: Key}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Log.Close() })
	e.State = OpenState(t, filepath.Join(e.Dir, "state.db"))
	if e.Offsets, err = pubsub.NewSQLOffsets(ctx, e.State); err != nil {
		t.Fatal(err)
	}
	if e.Blobs, err = blob.Open(filepath.Join(e.Dir, "blobs")); err != nil {
		t.Fatal(err)
	}
	return e
}

// OpenState opens a state database as serve does (one connection, WAL).
func OpenState(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}
