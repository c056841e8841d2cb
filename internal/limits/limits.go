// Package limits sheds load cheaply instead of queueing it without bound:
// a cap on calls in flight (503 / UNAVAILABLE) and per-caller token buckets
// (429 / RESOURCE_EXHAUSTED), both as gRPC interceptors that REST reaches
// through the gateway like every other check.
//
// The refusals carry a google.rpc.RetryInfo, from which the gateway sets
// Retry-After. go-grpc-middleware's ratelimit interceptor would replace
// that status with its own text and no details, so these are our own.
package limits

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/usersd/usersd/internal/rpcerr"
)

// ErrorInfo reasons of the refusals.
const (
	ReasonOverloaded  = "OVERLOADED"
	ReasonRateLimited = "RATE_LIMITED"
)

// overloadRetry is the retry delay suggested when the server sheds load:
// calls in flight finish in milliseconds, so a second is plenty.
const overloadRetry = time.Second

// InFlight bounds the calls being served at once, and among them the
// writes, which queue for the database's single writer. Past a bound a
// call is refused at once: a quick 503 the client can retry beats a
// request that waits seconds behind hundreds of others.
type InFlight struct {
	all     chan struct{}
	writes  chan struct{}
	isWrite func(fullMethod string) bool
	shed    *prometheus.CounterVec
}

// NewInFlight allows maxAll calls at once, of which at most maxWrites are
// writes (isWrite tells them apart); a bound of 0 is no bound. Refusals are
// counted in usersd_load_shed_total when reg is non-nil.
func NewInFlight(maxAll, maxWrites int, isWrite func(fullMethod string) bool, reg prometheus.Registerer) *InFlight {
	l := &InFlight{
		isWrite: isWrite,
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersd_load_shed_total",
			Help: "Calls refused because too many were in flight (kind: all or writes).",
		}, []string{"kind"}),
	}
	if maxAll > 0 {
		l.all = make(chan struct{}, maxAll)
	}
	if maxWrites > 0 {
		l.writes = make(chan struct{}, maxWrites)
	}
	if reg != nil {
		reg.MustRegister(l.shed)
	}
	return l
}

// UnaryServerInterceptor admits a call when there is room, else refuses it
// with UNAVAILABLE.
// A nil InFlight bounds nothing: it returns no interceptor.
func (l *InFlight) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	if l == nil {
		return nil
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !acquire(l.all) {
			l.shed.WithLabelValues("all").Inc()
			return nil, overloaded()
		}
		defer release(l.all)
		if l.isWrite != nil && l.isWrite(info.FullMethod) {
			if !acquire(l.writes) {
				l.shed.WithLabelValues("writes").Inc()
				return nil, overloaded()
			}
			defer release(l.writes)
		}
		return handler(ctx, req)
	}
}

// acquire takes a slot without waiting; a nil semaphore has no bound.
func acquire(sem chan struct{}) bool {
	if sem == nil {
		return true
	}
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func release(sem chan struct{}) {
	if sem != nil {
		<-sem
	}
}

func overloaded() error {
	return rpcerr.New(codes.Unavailable, "The server is overloaded; retry later", ReasonOverloaded,
		&errdetails.RetryInfo{RetryDelay: durationpb.New(overloadRetry)})
}
