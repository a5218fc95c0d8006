//go:build !cgo

package pkcs11

import (
	"context"
	"strings"
	"testing"
)

func TestOpenWithoutCgo(t *testing.T) {
	_, err := Open(context.Background(), Config{Module: "/m.so", Token: "t", PINFile: "/p", Label: "k"}, nil)
	if err == nil || !strings.Contains(err.Error(), "needs a build with cgo") {
		t.Fatalf("got %v", err)
	}
}
