package app

import (
	"context"
	"errors"
	"testing"
	"time"
)

// At most one real probe per interval; the calls in between get its
// result, failures included.
func TestCachedProbe(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	probes := 0
	var fail error
	ready := cachedProbe(func(context.Context) error { probes++; return fail }, time.Second, now)

	for _, step := range []struct {
		advance time.Duration
		fail    error
		probes  int
		wantErr bool
	}{
		{0, nil, 1, false},
		{500 * time.Millisecond, errors.New("disk full"), 1, false}, // cached success
		{500 * time.Millisecond, errors.New("disk full"), 2, true},  // a second later: probed
		{999 * time.Millisecond, nil, 2, true},                      // cached failure
		{time.Millisecond, nil, 3, false},                           // recovered
	} {
		clock = clock.Add(step.advance)
		fail = step.fail
		err := ready(t.Context())
		if probes != step.probes || (err != nil) != step.wantErr {
			t.Fatalf("after %v: %d probes, err %v; want %d probes, error %v", step.advance, probes, err, step.probes, step.wantErr)
		}
	}
}
