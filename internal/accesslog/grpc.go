package accesslog

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/usersd/usersd/internal/gatewayconn"
	"github.com/usersd/usersd/internal/requestid"
)

const transportLabel = "transport"

// restLabels are the constant labels of the HTTP metrics.
var restLabels = prometheus.Labels{transportLabel: REST}

// UnaryMetrics counts calls in grpc_server_* (as go-grpc-middleware's
// provider does) with a transport label: "rest" for the gateway's calls.
func (rc *Recorder) UnaryMetrics() grpc.UnaryServerInterceptor {
	return rc.rpcMetrics.unaryInterceptor()
}

// StreamMetrics is UnaryMetrics for streaming calls.
func (rc *Recorder) StreamMetrics() grpc.StreamServerInterceptor {
	return rc.rpcMetrics.streamInterceptor()
}

// UnaryServerInterceptor logs each native call once it has ended. It
// belongs inside the request id interceptor and outside authentication,
// which notes the caller (SetSubject).
func (rc *Recorder) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		// A gateway call runs in its REST request's context, whose entry
		// takes the caller (SetSubject) and whose line the HTTP
		// middleware writes.
		if gatewayconn.FromContext(ctx) {
			return handler(ctx, req)
		}
		e := &entry{start: time.Now()}
		resp, err := handler(context.WithValue(ctx, entryKey{}, e), req)
		rc.endCall(ctx, e, info.FullMethod, err)
		return resp, err
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming calls.
func (rc *Recorder) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		e := &entry{start: time.Now()}
		ctx := ss.Context()
		err := handler(srv, &stream{ServerStream: ss, ctx: context.WithValue(ctx, entryKey{}, e)})
		rc.endCall(ctx, e, info.FullMethod, err)
		return err
	}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

var healthPrefix = healthpb.Health_ServiceDesc.ServiceName + "/"

// endCall writes the line of a native call.
func (rc *Recorder) endCall(ctx context.Context, e *entry, fullMethod string, err error) {
	took := time.Since(e.start)
	e.transport = GRPC
	e.noteCall(fullMethod, err)
	e.probe = strings.HasPrefix(e.rpc, healthPrefix)
	e.requestID = requestid.FromContext(ctx)
	rc.write(ctx, e, took)
}
