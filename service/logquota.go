package service

import (
	"context"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
)

// Calls that end UNAUTHENTICATED cost their sender nothing, so one line
// each would let anyone fill the disk and bury the other lines (a rapid
// reset flood wrote 100 000 lines in 5 s). They are logged at most this
// often; the rest are counted, and the count is logged once per
// unauthenticatedReport while calls are being dropped.
const (
	unauthenticatedPerSecond = 5
	unauthenticatedBurst     = 10
	unauthenticatedReport    = time.Second
)

// logQuota passes log lines on to next, except the lines of calls that
// ended UNAUTHENTICATED beyond a token bucket.
type logQuota struct {
	next   logging.Logger
	bucket *rate.Limiter
	now    func() time.Time
	// after runs f once, d from now (time.AfterFunc), to report what was
	// dropped meanwhile.
	after func(d time.Duration, f func())

	mu        sync.Mutex
	dropped   int
	reporting bool // a report is scheduled
}

func newLogQuota(next logging.Logger) *logQuota {
	return &logQuota{
		next:   next,
		bucket: rate.NewLimiter(unauthenticatedPerSecond, unauthenticatedBurst),
		now:    time.Now,
		after:  func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}
}

func (q *logQuota) Log(ctx context.Context, level logging.Level, msg string, fields ...any) {
	if !endedUnauthenticated(fields) || q.bucket.AllowN(q.now(), 1) {
		q.next.Log(ctx, level, msg, fields...)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropped++
	if !q.reporting {
		q.reporting = true
		q.after(unauthenticatedReport, q.report)
	}
}

// report logs how many lines were dropped since the last report.
func (q *logQuota) report() {
	q.mu.Lock()
	n := q.dropped
	q.dropped, q.reporting = 0, false
	q.mu.Unlock()
	q.next.Log(context.Background(), logging.LevelWarn, "unauthenticated calls not logged (rate limit)",
		"suppressed", n, "interval", unauthenticatedReport.String())
}

// endedUnauthenticated reports whether fields (key, value pairs from the
// logging interceptor) carry the code UNAUTHENTICATED.
func endedUnauthenticated(fields []any) bool {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "grpc.code" {
			return fields[i+1] == codes.Unauthenticated.String()
		}
	}
	return false
}
