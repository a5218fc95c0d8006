package main

import (
	"bytes"
	"testing"
	"time"
)

func TestRenderProgress(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 1000, time.Second, "verify [                              ]   0% 0/1000 events, 0 events/s, – left"},
		{250, 1000, 5 * time.Second, "verify [=======                       ]  25% 250/1000 events, 50 events/s, 0:15 left"},
		{1000, 1000, 10 * time.Second, "verify [==============================] 100% 1000/1000 events, 100 events/s, 0:00 left"},
		{10, 400000, 10 * time.Second, "verify [                              ]   0% 10/400000 events, 1 events/s, 111:06:30 left"},
		{42, 0, 2 * time.Second, "verify 42 events, 21 events/s"},
	} {
		if got := renderProgress("verify", c.done, c.total, c.elapsed); got != c.want {
			t.Errorf("%d/%d in %s:\n got %q\nwant %q", c.done, c.total, c.elapsed, got, c.want)
		}
	}
}

// Piped or captured, the bar draws nothing at all.
func TestProgressQuietWhenPiped(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "replay", 10)
	for range 10 {
		p.add(1)
	}
	p.finish()
	if buf.Len() != 0 {
		t.Fatalf("wrote %q to a non-terminal", buf.String())
	}
}

// On a terminal it redraws in place and clears the line when done.
func TestProgressOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	p := &progress{w: &buf, on: true, label: "verify", total: 4, start: now, now: func() time.Time { return now }}
	for range 4 {
		now = now.Add(200 * time.Millisecond)
		p.add(1)
	}
	p.finish()
	out := buf.String()
	if bytes.Count(buf.Bytes(), []byte("\r")) != 5 || !bytes.HasSuffix(buf.Bytes(), []byte("\r\x1b[K")) {
		t.Fatalf("want four redraws and a clear, got %q", out)
	}
	if !bytes.Contains(buf.Bytes(), []byte("100% 4/4 events, 5 events/s, 0:00 left")) {
		t.Fatalf("last redraw missing: %q", out)
	}
}
