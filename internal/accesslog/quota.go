package accesslog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Requests refused before any work, UNAUTHENTICATED (no valid token) and
// RESOURCE_EXHAUSTED (the caller's rate limit), on REST 401 and 429, cost
// their sender nothing, so one line each would let anyone fill the disk
// and bury the other lines (a rapid reset flood wrote 100 000 lines in
// 5 s). They are logged at most this often; the rest are counted, and the
// count is logged once per refusedReport while lines are being dropped.
const (
	refusedPerSecond = 5
	refusedBurst     = 10
	refusedReport    = time.Second
)

// quota is a token bucket for the lines of refused requests.
type quota struct {
	log    *slog.Logger
	bucket *rate.Limiter
	now    func() time.Time
	// after runs f once, d from now (time.AfterFunc), to report what was
	// dropped meanwhile.
	after func(d time.Duration, f func())

	mu        sync.Mutex
	dropped   int
	reporting bool // a report is scheduled
}

func newQuota(log *slog.Logger) *quota {
	return &quota{
		log:    log,
		bucket: rate.NewLimiter(refusedPerSecond, refusedBurst),
		now:    time.Now,
		after:  func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}
}

// allow reports whether one more refused request may be logged; if not,
// it is counted for the next report.
func (q *quota) allow() bool {
	if q.bucket.AllowN(q.now(), 1) {
		return true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropped++
	if !q.reporting {
		q.reporting = true
		q.after(refusedReport, q.report)
	}
	return false
}

// report logs how many lines were dropped since the last report.
func (q *quota) report() {
	q.mu.Lock()
	n := q.dropped
	q.dropped, q.reporting = 0, false
	q.mu.Unlock()
	q.log.LogAttrs(context.Background(), slog.LevelWarn, "unauthenticated or rate-limited calls not logged (log rate limit)",
		slog.Int("suppressed", n), slog.String("interval", refusedReport.String()))
}
