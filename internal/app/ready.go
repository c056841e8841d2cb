package app

import (
	"context"
	"time"
)

// cachedProbe runs probe at most once per interval and answers the calls
// in between with its last result. /readyz needs no token and probes with
// a database write, so a flood of it must not become a flood of writes.
// One probe runs at a time; callers wait for it as long as their ctx lets
// them.
func cachedProbe(probe func(context.Context) error, interval time.Duration, now func() time.Time) func(context.Context) error {
	turn := make(chan struct{}, 1) // held by the caller that may probe
	var (
		at  time.Time // of the last probe; zero before the first
		err error     // its result
	)
	return func(ctx context.Context) error {
		select {
		case turn <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-turn }()
		if at.IsZero() || now().Sub(at) >= interval {
			err, at = probe(ctx), now()
		}
		return err
	}
}
