package events

import (
	"context"
	"log/slog"
	"time"
)

// Retention deletes events older than Keep, every Every, in transactions
// of at most Batch events so writers never wait long for the database.
type Retention struct {
	Store interface {
		DeleteEventsBefore(ctx context.Context, t time.Time, limit int) (int, error)
	}
	Keep   time.Duration
	Every  time.Duration
	Batch  int
	Logger *slog.Logger
}

// Run prunes until ctx ends.
func (r Retention) Run(ctx context.Context) {
	ticker := time.NewTicker(r.Every)
	defer ticker.Stop()
	for {
		r.prune(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// prune deletes batch after batch until no expired event is left.
func (r Retention) prune(ctx context.Context, now time.Time) {
	cutoff := now.Add(-r.Keep)
	total := 0
	for ctx.Err() == nil {
		n, err := r.Store.DeleteEventsBefore(ctx, cutoff, r.Batch)
		if err != nil {
			r.Logger.Warn("deleting expired events failed", "error", err)
			return
		}
		total += n
		if n < r.Batch {
			break
		}
	}
	if total > 0 {
		r.Logger.Info("deleted expired events", "count", total, "older_than", cutoff.UTC().Format(time.RFC3339))
	}
}
