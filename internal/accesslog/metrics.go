package accesslog

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/gatewayconn"
)

// rpcMetrics counts gRPC calls in the grpc_server_* series that
// go-grpc-middleware's prometheus provider defines (same names, help,
// labels, buckets and counting rules; a test holds them to it), with the
// transport label. The provider built a reporter and five label slices
// per call (eight allocations) and hashed the label values four times;
// here a method's series are looked up by its name, then kept.
type rpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	handling                         *prometheus.HistogramVec
	unary                            sync.Map // full method → *[2]series, by transport
}

// numCodes is the canonical gRPC codes, 0 to 16: the handled series of
// other codes are not kept.
const numCodes = int(codes.Unauthenticated) + 1

// series are those of one method and transport, each made on first use:
// a series appears in /metrics only once it has counted something.
type series struct {
	lvs                     []string // grpc_type, grpc_service, grpc_method, transport
	started, received, sent lazy[prometheus.Counter]
	handling                lazy[prometheus.Observer]
	handled                 [numCodes]lazy[prometheus.Counter]
}

type lazy[T any] struct{ p atomic.Pointer[T] }

// get returns the value, made by create the first time. Callers racing
// on the first time all get the vector's one child for the labels.
func (l *lazy[T]) get(create func() T) T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	v := create()
	l.p.Store(&v)
	return v
}

func newRPCMetrics() *rpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method", transportLabel}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	return &rpcMetrics{
		started: counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels),
		handled: counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.",
			[]string{"grpc_type", "grpc_service", "grpc_method", "grpc_code", transportLabel}),
		received: counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels),
		sent:     counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets,
		}, labels),
	}
}

func (m *rpcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.started, m.handled, m.received, m.sent, m.handling}
}

// transport is the transport label of a call: "rest" for the gateway's.
func transport(ctx context.Context) string {
	if gatewayconn.FromContext(ctx) {
		return REST
	}
	return GRPC
}

// labelValues are grpc_type, grpc_service, grpc_method and transport.
func labelValues(typ, fullMethod, transport string) []string {
	service, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		service, method = "unknown", "unknown"
	}
	return []string{typ, service, method, transport}
}

// withCode inserts grpc_code into label values, where handled has it.
func withCode(lvs []string, code codes.Code) []string {
	return []string{lvs[0], lvs[1], lvs[2], code.String(), lvs[3]}
}

// codeOf is the code a call ended with, as the provider reads it: a
// context error counts as gRPC would send it.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err)
	}
	return s.Code()
}

func (m *rpcMetrics) unarySeries(ctx context.Context, fullMethod string) *series {
	t := 0
	if gatewayconn.FromContext(ctx) {
		t = 1
	}
	if s, ok := m.unary.Load(fullMethod); ok {
		return &s.(*[2]series)[t]
	}
	var both [2]series
	for i, tr := range []string{GRPC, REST} {
		both[i].lvs = labelValues("unary", fullMethod, tr)
	}
	s, _ := m.unary.LoadOrStore(fullMethod, &both)
	return &s.(*[2]series)[t]
}

// unaryInterceptor counts as the provider does: started and the request
// received before the handler; the response sent when it succeeded; then
// handled, by code, and the handling time.
func (m *rpcMetrics) unaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		s := m.unarySeries(ctx, info.FullMethod)
		s.started.get(func() prometheus.Counter { return m.started.WithLabelValues(s.lvs...) }).Inc()
		s.received.get(func() prometheus.Counter { return m.received.WithLabelValues(s.lvs...) }).Inc()
		resp, err := handler(ctx, req)
		if err == nil {
			s.sent.get(func() prometheus.Counter { return m.sent.WithLabelValues(s.lvs...) }).Inc()
		}
		if code := codeOf(err); int(code) < numCodes {
			s.handled[code].get(func() prometheus.Counter { return m.handled.WithLabelValues(withCode(s.lvs, code)...) }).Inc()
		} else {
			m.handled.WithLabelValues(withCode(s.lvs, code)...).Inc()
		}
		s.handling.get(func() prometheus.Observer { return m.handling.WithLabelValues(s.lvs...) }).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// streamInterceptor counts streaming calls (health Watch and reflection
// only: not worth keeping their series): every message received and sent.
func (m *rpcMetrics) streamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		typ := "bidi_stream"
		switch {
		case info.IsClientStream && !info.IsServerStream:
			typ = "client_stream"
		case !info.IsClientStream && info.IsServerStream:
			typ = "server_stream"
		}
		lvs := labelValues(typ, info.FullMethod, transport(ss.Context()))
		m.started.WithLabelValues(lvs...).Inc()
		err := handler(srv, &countedStream{ServerStream: ss, m: m, lvs: lvs})
		m.handled.WithLabelValues(withCode(lvs, codeOf(err))...).Inc()
		m.handling.WithLabelValues(lvs...).Observe(time.Since(start).Seconds())
		return err
	}
}

type countedStream struct {
	grpc.ServerStream
	m   *rpcMetrics
	lvs []string
}

func (s *countedStream) SendMsg(msg any) error {
	err := s.ServerStream.SendMsg(msg)
	if err == nil {
		s.m.sent.WithLabelValues(s.lvs...).Inc()
	}
	return err
}

func (s *countedStream) RecvMsg(msg any) error {
	err := s.ServerStream.RecvMsg(msg)
	if err == nil {
		s.m.received.WithLabelValues(s.lvs...).Inc()
	}
	return err
}
