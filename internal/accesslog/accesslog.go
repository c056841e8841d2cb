// Package accesslog writes one log line per request and counts it, on both
// transports: REST through an HTTP middleware, native gRPC through server
// interceptors.
//
// A REST call reaches the users service over the gateway's in-process
// channel (internal/gatewayconn), in the REST request's context. That hop
// is not a request of its own: the gRPC side writes no line for it,
// authentication notes the verified caller on the REST line's entry, and
// the gateway notes the RPC and its code, so the REST line carries them.
// The gRPC metrics count the hop under transport="rest".
package accesslog

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Transports, as the log field and the metric label name them.
const (
	REST = "rest"
	GRPC = "grpc"
)

// Unmatched is the route of a REST request no route template matched
// (404, or refused before routing), keeping the route label bounded.
const Unmatched = "unmatched"

// Options configure a Recorder.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the request metrics (nil: not registered).
	Registerer prometheus.Registerer
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies TrustedProxies
}

// Recorder logs and counts requests.
type Recorder struct {
	log     *slog.Logger
	quota   *quota
	proxies TrustedProxies

	rpcMetrics   *rpcMetrics
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

// New returns a Recorder writing to opts.Logger.
func New(opts Options) *Recorder {
	rc := &Recorder{
		log:        opts.Logger,
		quota:      newQuota(opts.Logger),
		proxies:    opts.TrustedProxies,
		rpcMetrics: newRPCMetrics(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "usersd_http_requests_total",
			Help:        "HTTP requests served, by method, route template (unmatched: none) and status code.",
			ConstLabels: restLabels,
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "usersd_http_request_duration_seconds",
			Help:        "Time to serve an HTTP request, by method and route template.",
			ConstLabels: restLabels,
			Buckets:     prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	// The gRPC series appear with their first call.
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(append(rc.rpcMetrics.collectors(), rc.httpRequests, rc.httpDuration)...)
	}
	return rc
}

// entry is what one request's line says, filled in as the request goes.
type entry struct {
	start     time.Time
	transport string
	method    string // REST: the request method
	route     string // REST: the route template
	probe     bool   // a health, readiness or metrics request
	status    int    // REST: the HTTP status
	called    bool   // a gRPC call was made: rpc, code and message are set
	rpc       string // full method without the leading "/"
	code      codes.Code
	message   string // status message of a failed call
	subject   string // the verified caller
	requestID string
	// REST: the TCP peer and X-Forwarded-For (gRPC reads both from the
	// call's context, only when the line is written).
	peer      string
	forwarded []string
}

type entryKey struct{}

func entryFrom(ctx context.Context) *entry {
	e, _ := ctx.Value(entryKey{}).(*entry)
	return e
}

// SetSubject notes the verified caller of the request in ctx.
func SetSubject(ctx context.Context, subject string) {
	if e := entryFrom(ctx); e != nil {
		e.subject = subject
	}
}

// NoteRoute notes the route template a REST request matched.
func NoteRoute(ctx context.Context, route string) {
	if e := entryFrom(ctx); e != nil {
		e.route = route
	}
}

// NoteProbe notes an operational endpoint polled by machines (health,
// readiness, metrics): it is logged at debug level when it succeeds.
func NoteProbe(ctx context.Context, route string) {
	if e := entryFrom(ctx); e != nil {
		e.route, e.probe = route, true
	}
}

// NoteCall notes the gRPC call the gateway made for a REST request: the
// full method and its error (nil: OK).
func NoteCall(ctx context.Context, fullMethod string, err error) {
	if e := entryFrom(ctx); e != nil {
		e.noteCall(fullMethod, err)
	}
}

// noteCall records the gRPC call of the line: its method and outcome.
func (e *entry) noteCall(fullMethod string, err error) {
	e.called = true
	e.rpc = trimSlash(fullMethod)
	if err != nil {
		st := status.Convert(err)
		e.code, e.message = st.Code(), st.Message()
	}
}

func trimSlash(fullMethod string) string {
	if len(fullMethod) > 0 && fullMethod[0] == '/' {
		return fullMethod[1:]
	}
	return fullMethod
}

// level: server faults are errors, overload and timeouts warnings,
// successful probes debug (they come every few seconds), the rest info.
func (e *entry) level() slog.Level {
	if e.called {
		switch e.code {
		case codes.Internal, codes.Unknown, codes.DataLoss:
			return slog.LevelError
		case codes.Unavailable, codes.DeadlineExceeded:
			return slog.LevelWarn
		case codes.OK:
			if e.probe {
				return slog.LevelDebug
			}
		}
		return slog.LevelInfo
	}
	switch {
	case e.status >= 500:
		return slog.LevelError
	case e.probe && e.status < 400:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// refused reports whether the request was refused before any work, for
// lack of a valid token or by the caller's rate limit: those lines are
// logged at a bounded rate.
func (e *entry) refused() bool {
	if e.called {
		return e.code == codes.Unauthenticated || e.code == codes.ResourceExhausted
	}
	return e.status == http.StatusUnauthorized || e.status == http.StatusTooManyRequests
}

// write logs the line of a finished request.
func (rc *Recorder) write(ctx context.Context, e *entry, took time.Duration) {
	level := e.level()
	if !rc.log.Enabled(ctx, level) || e.refused() && !rc.quota.allow() {
		return
	}
	var buf [13]slog.Attr
	a := append(buf[:0], slog.String("transport", e.transport))
	if e.transport == REST {
		a = append(a, slog.String("method", e.method), slog.String("route", e.route), slog.Int("status", e.status))
	}
	if e.called {
		a = append(a, slog.String("rpc", e.rpc), slog.String("code", e.code.String()))
		if e.message != "" {
			a = append(a, slog.String("error", e.message))
		}
	}
	a = append(a, slog.Float64("duration_ms", float64(took.Microseconds())/1000))
	if e.requestID != "" {
		a = append(a, slog.String("request_id", e.requestID))
	}
	if e.subject != "" {
		a = append(a, slog.String("subject", e.subject))
	}
	peer, client := rc.addresses(ctx, e)
	a = append(a, slog.String("client", client), slog.String("peer", peer))
	// Straight to the handler: Logger.LogAttrs would also look up the
	// caller's program counter (a fifth of the line's cost), which the
	// line does not print.
	r := slog.NewRecord(time.Now(), level, "request", 0)
	r.AddAttrs(a...)
	_ = rc.log.Handler().Handle(ctx, r) // as Logger does, errors are dropped
}
