package sqlitelog

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststelle/poststelle/eventstore"
)

// TestOpenRefusesAlteredHead edits what Open resumes the chain from and
// expects Open to refuse, pointing at log verify, instead of extending the
// log from it.
func TestOpenRefusesAlteredHead(t *testing.T) {
	cases := []struct {
		name string
		sql  string
		want string
	}{
		{"newest leaf_hash changed", `UPDATE events SET leaf_hash = zeroblob(32) WHERE off = 4`, "stored leaf hash of the newest event"},
		{"newest frontier changed", `UPDATE checkpoints SET frontier = zeroblob(64) WHERE size = 5`, "frontier"},
		{"newest frontier malformed", `UPDATE checkpoints SET frontier = zeroblob(5) WHERE size = 5`, "frontier"},
		{"newest checkpoint root changed", `UPDATE checkpoints SET root = zeroblob(32) WHERE size = 5`, "not signed by this gateway's key"},
		{"newest checkpoint key id changed", `UPDATE checkpoints SET key_id = 'x' WHERE size = 5`, "not signed by this gateway's key"},
		{"newest checkpoint removed", `DELETE FROM checkpoints WHERE size = 5`, "5 events (last offset 4) but the newest checkpoint covers 4"},
		{"newest event moved", `UPDATE events SET off = 7 WHERE off = 4`, "last offset 7"},
		{"format changed", `UPDATE meta SET value = 'other' WHERE key = 'format'`, `format "other"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log.db")
			ctx := context.Background()
			l, err := Open(ctx, Config{Path: path, Signer: testKey})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := l.Append(ctx, eventstore.Event{ID: fmt.Sprint(i), Tenant: "t", Stream: "s", Type: "T", Version: 1, Data: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			db, err := sql.Open("sqlite", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			db.Close()
			l, err = Open(ctx, Config{Path: path, Signer: testKey})
			if err == nil {
				l.Close()
				t.Fatal("opened an altered log")
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.name != "format changed" && !strings.Contains(err.Error(), "poststelle log verify")) {
				t.Fatalf("error %q, want it to name %q and point to log verify", err, tc.want)
			}
		})
	}
	t.Run("another key", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "log.db")
		ctx := context.Background()
		l, _ := Open(ctx, Config{Path: path, Signer: testKey})
		l.Append(ctx, eventstore.Event{ID: "a", Tenant: "t", Stream: "s", Type: "T", Version: 1})
		l.Close()
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = 1
		l, err := Open(ctx, Config{Path: path, Signer: ed25519.NewKeyFromSeed(seed)})
		if err == nil {
			l.Close()
			t.Fatal("resumed a log signed by another key")
		}
		if !strings.Contains(err.Error(), "not signed by this gateway's key") {
			t.Fatalf("error %q", err)
		}
	})
}
