//go:build crashpoints

package assembly

import (
	"log/slog"
	"testing"
)

// TestCrashpointArming: the crash point is armed only by a positive count.
func TestCrashpointArming(t *testing.T) {
	for _, tc := range []struct {
		env   string
		armed bool
	}{{"", false}, {"0", false}, {"-3", false}, {"drei", false}, {"3", true}} {
		t.Setenv(envCrashAfterRecords, tc.env)
		c := newCrashpoint(slog.New(slog.DiscardHandler))
		if (c != nil) != tc.armed || (c.hook() != nil) != tc.armed {
			t.Errorf("%s=%q: armed %v, want %v", envCrashAfterRecords, tc.env, c != nil, tc.armed)
		}
	}
	// Below the count a record does not kill (the test would die).
	t.Setenv(envCrashAfterRecords, "3")
	c := newCrashpoint(slog.New(slog.DiscardHandler))
	c.recorded()
	c.recorded()
	if n := c.records.Load(); n != 2 {
		t.Fatalf("%d records counted, want 2", n)
	}
}
