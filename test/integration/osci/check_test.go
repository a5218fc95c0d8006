//go:build integration

package osci_test

import "testing"

func checkCapture(t *testing.T, c peerCase, r runResult) {
	t.Helper()
}
