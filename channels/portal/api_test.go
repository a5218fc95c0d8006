package portal

import (
	"errors"
	"fmt"
	"testing"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/fitconnect"
)

// TestMapErr: package fitconnect's errors become the ones the collector
// tells apart, and keep what they wrap.
func TestMapErr(t *testing.T) {
	other := errors.New("connection reset")
	for _, tc := range []struct {
		in   error
		want error
	}{
		{fmt.Errorf("fetching: %w", fitconnect.ErrGone), errNotFound},
		{fmt.Errorf("fetching: %w", fitconnect.ErrUnauthorized), errUnauthorized},
		{fmt.Errorf("fetching: %w", fitconnect.ErrResponseTooLarge), blob.ErrTooLarge},
		{other, other},
	} {
		got := mapErr(tc.in)
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.in) {
			t.Errorf("mapErr(%v) = %v, want it to be %v and keep the cause", tc.in, got, tc.want)
		}
	}
	if mapErr(nil) != nil {
		t.Error("mapErr(nil) is not nil")
	}
}
