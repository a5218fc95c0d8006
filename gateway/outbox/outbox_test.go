package outbox

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	p := Policy{FirstBackoff: time.Minute, MaxBackoff: 10 * time.Minute}
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 4: 8 * time.Minute, 5: 10 * time.Minute, 40: 10 * time.Minute} {
		if got := p.Backoff(n); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	p := Policy{MaxAttempts: 3, FirstBackoff: time.Minute, MaxBackoff: time.Hour}
	temp := errors.New("503")
	tests := []struct {
		name      string
		n         int
		err       error
		permanent bool
		retryAt   time.Time
		errText   string
	}{
		{"first failure", 1, temp, false, now.Add(time.Minute).UTC(), "503"},
		{"second failure", 2, temp, false, now.Add(2 * time.Minute).UTC(), "503"},
		{"attempts spent", 3, temp, true, time.Time{}, "giving up after 3 attempts: 503"},
		{"permanent at once", 1, Permanent(errors.New("550")), true, time.Time{}, "550"},
		{"wrapped permanent", 1, fmt.Errorf("send: %w", Permanent(errors.New("550"))), true, time.Time{}, "send: 550"},
		{"long error clipped", 1, errors.New(strings.Repeat("x", 5000)), false, now.Add(time.Minute).UTC(), strings.Repeat("x", maxErrorLen) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := p.decide(tt.n, tt.err, now)
			if f.Permanent != tt.permanent || !f.RetryAt.Equal(tt.retryAt) || f.Error != tt.errText || f.Err != tt.err {
				t.Fatalf("decide = %+v, want permanent %v retry %v error %.40q", f, tt.permanent, tt.retryAt, tt.errText)
			}
			if !tt.permanent && f.RetryAt.Location() != time.UTC {
				t.Fatalf("retry time not in UTC: %v", f.RetryAt)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	d := Policy{MaxAttempts: 8, FirstBackoff: time.Minute, MaxBackoff: time.Hour, PollInterval: 5 * time.Second, AttemptTimeout: time.Minute}
	got := Policy{MaxAttempts: 2, MaxBackoff: -time.Second}.WithDefaults(d)
	want := Policy{MaxAttempts: 2, FirstBackoff: time.Minute, MaxBackoff: time.Hour, PollInterval: 5 * time.Second, AttemptTimeout: time.Minute}
	if got != want {
		t.Fatalf("WithDefaults = %+v, want %+v", got, want)
	}
	if err := (Policy{MaxAttempts: 1}).check(); err == nil {
		t.Fatal("a policy with unset fields passed the check")
	}
	if err := got.check(); err != nil {
		t.Fatal(err)
	}
}
