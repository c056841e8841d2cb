package limits

import (
	"context"
	"fmt"
	"math"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/usersd/usersd/internal/rpcerr"
)

// maxTrackedCallers bounds the buckets kept in memory. Only callers with a
// valid token get one, so this is the number of distinct active clients;
// past it the least recently seen caller's bucket is forgotten (and starts
// full when that caller returns).
const maxTrackedCallers = 10_000

// CallerRate gives each caller a token bucket: rate calls per second on
// average, bursts of up to burst calls.
type CallerRate struct {
	rate    rate.Limit
	burst   int
	caller  func(context.Context) string
	buckets *lru.Cache[string, *rate.Limiter]
}

// NewCallerRate limits each caller, named by caller(ctx), to perSecond
// calls a second with bursts of burst. It belongs after authentication, so
// only verified callers are counted, and before analytic events, so a
// refused call records none and a flood cannot grow the database.
func NewCallerRate(perSecond float64, burst int, caller func(context.Context) string) (*CallerRate, error) {
	if perSecond <= 0 || burst < 1 {
		return nil, fmt.Errorf("rate limit: %v/s with burst %d: both must be positive", perSecond, burst)
	}
	buckets, err := lru.New[string, *rate.Limiter](maxTrackedCallers)
	if err != nil {
		return nil, fmt.Errorf("rate limit: %w", err)
	}
	return &CallerRate{rate: rate.Limit(perSecond), burst: burst, caller: caller, buckets: buckets}, nil
}

// UnaryServerInterceptor refuses a call with RESOURCE_EXHAUSTED when its
// caller's bucket is empty, saying when the next call would be admitted.
// A nil CallerRate limits nothing: it returns no interceptor.
func (c *CallerRate) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	if c == nil {
		return nil
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if wait := c.take(c.caller(ctx), time.Now()); wait > 0 {
			return nil, rpcerr.New(codes.ResourceExhausted, "Too many requests from this client; retry later", ReasonRateLimited,
				&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
		}
		return handler(ctx, req)
	}
}

// take spends one token of caller's bucket and returns 0, or, when the
// bucket is empty, spends nothing and returns how long until a token.
func (c *CallerRate) take(caller string, now time.Time) time.Duration {
	bucket, ok := c.buckets.Get(caller)
	if !ok {
		bucket = rate.NewLimiter(c.rate, c.burst)
		// Two first calls of one caller at once must share a bucket.
		if prev, found, _ := c.buckets.PeekOrAdd(caller, bucket); found {
			bucket = prev
		}
	}
	r := bucket.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		// Whole seconds: Retry-After has no finer unit, and rounding down
		// would invite a retry that is refused again.
		return time.Duration(math.Ceil(wait.Seconds())) * time.Second
	}
	return 0
}
