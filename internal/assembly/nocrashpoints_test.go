//go:build !crashpoints

package assembly

import (
	"log/slog"
	"testing"
)

// TestNoCrashpointInDefaultBuild: the default binary has no crash point,
// whatever the environment says.
func TestNoCrashpointInDefaultBuild(t *testing.T) {
	t.Setenv("POSTSTELLE_CRASH_AFTER_RECORDS", "1")
	c := newCrashpoint(slog.New(slog.DiscardHandler))
	if c != nil || c.hook() != nil {
		t.Fatal("a crash point is armed in a build without -tags crashpoints")
	}
}
