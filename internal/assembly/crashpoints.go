//go:build crashpoints

package assembly

import (
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/poststelle/poststelle/gateway"
)

// This file is compiled only with -tags crashpoints, which internal/servetest
// builds the integration tests' binary with; the default binary has none of
// it. It gives the crash tests a deterministic moment to die: with
// POSTSTELLE_CRASH_AFTER_RECORDS=N in the environment, the process SIGKILLs
// itself once the N-th message was recorded and before the channel
// acknowledges it (SMTP 250, IMAP move or flag), exactly the window in which
// a power cut leaves a recorded message unacknowledged.

// envCrashAfterRecords names the variable; unset or 0: no crash.
const envCrashAfterRecords = "POSTSTELLE_CRASH_AFTER_RECORDS"

// crashpoint counts the messages recorded by every channel.
type crashpoint struct {
	after   int64
	records atomic.Int64
	logger  *slog.Logger
}

func newCrashpoint(logger *slog.Logger) *crashpoint {
	n, err := strconv.ParseInt(os.Getenv(envCrashAfterRecords), 10, 64)
	if err != nil || n <= 0 {
		return nil
	}
	logger.Warn("crash point armed: this process kills itself after a record, before its acknowledgement", "after_records", n)
	return &crashpoint{after: n, logger: logger}
}

func (c *crashpoint) recorded() {
	if c.records.Add(1) == c.after {
		c.logger.Warn("crash point reached: SIGKILL", "records", c.after)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never acknowledge
	}
}

func (c *crashpoint) hook() func(gateway.Receipt) {
	if c == nil {
		return nil
	}
	return func(gateway.Receipt) { c.recorded() }
}
