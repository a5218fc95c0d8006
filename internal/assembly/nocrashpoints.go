//go:build !crashpoints

package assembly

import (
	"log/slog"

	"github.com/poststelle/poststelle/gateway"
)

// crashpoint is empty in the default build: crash points exist only in
// binaries built with -tags crashpoints (see crashpoints.go).
type crashpoint struct{}

func newCrashpoint(*slog.Logger) *crashpoint { return nil }

func (*crashpoint) hook() func(gateway.Receipt) { return nil }
