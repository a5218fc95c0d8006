//go:build !cgo

package pkcs11

import (
	"context"
	"errors"
	"log/slog"
)

// Open fails: the PKCS#11 module is a C library, loaded only by a build with cgo.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Key, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, errors.New("pkcs11: PKCS#11 needs a build with cgo (CGO_ENABLED=1)")
}
