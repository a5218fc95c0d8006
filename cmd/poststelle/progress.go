package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a one-line progress bar with rate and time left on a
// terminal, redrawn at most every tenth of a second; on anything else (a
// pipe, a file, a test's buffer) it draws nothing, so logs and scripts see
// only the results.
type progress struct {
	w     io.Writer
	on    bool
	label string
	total int64
	done  int64
	start time.Time
	drawn time.Time
	now   func() time.Time
}

func newProgress(w io.Writer, label string, total int64) *progress {
	return &progress{w: w, on: isTerminal(w), label: label, total: total, now: time.Now, start: time.Now()}
}

// isTerminal reports whether w is a character device, and not a dumb one.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// add counts n more events done.
func (p *progress) add(n int64) {
	p.done += n
	if !p.on {
		return
	}
	if now := p.now(); now.Sub(p.drawn) >= 100*time.Millisecond {
		p.drawn = now
		fmt.Fprint(p.w, "\r"+renderProgress(p.label, p.done, p.total, now.Sub(p.start))+"\x1b[K")
	}
}

// finish clears the bar, so that what follows starts on a clean line.
func (p *progress) finish() {
	if p.on && !p.drawn.IsZero() {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

const barWidth = 30

// renderProgress is the bar's text: label, bar, share, counts, rate, and
// the time left at the rate so far.
func renderProgress(label string, done, total int64, elapsed time.Duration) string {
	rate := float64(done) / max(elapsed.Seconds(), 1e-3)
	if total <= 0 {
		return fmt.Sprintf("%s %d events, %.0f events/s", label, done, rate)
	}
	share := min(float64(done)/float64(total), 1)
	filled := int(share * barWidth)
	eta := "–"
	if rate > 0 && done < total {
		eta = formatETA(time.Duration(float64(total-done) / rate * float64(time.Second)))
	} else if done >= total {
		eta = "0:00"
	}
	return fmt.Sprintf("%s [%s%s] %3.0f%% %d/%d events, %.0f events/s, %s left", label,
		strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled), share*100, done, total, rate, eta)
}

func formatETA(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
