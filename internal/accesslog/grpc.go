package accesslog

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/requestid"
)

// GatewayListener marks the connections of the listener only the REST
// gateway can reach (the in-memory one): calls over them are REST
// requests, already logged as such. The mark is the connection's type,
// which no client can forge.
func GatewayListener(lis net.Listener) net.Listener { return gatewayListener{lis} }

type gatewayListener struct{ net.Listener }

func (l gatewayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return gatewayConn{c}, nil
}

type gatewayConn struct{ net.Conn }

func (gatewayConn) RemoteAddr() net.Addr { return gatewayAddr{} }

type gatewayAddr struct{}

func (gatewayAddr) Network() string { return "gateway" }
func (gatewayAddr) String() string  { return "gateway" }

// viaGateway reports whether the call in ctx came over a GatewayListener.
func viaGateway(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	_, gw := p.Addr.(gatewayAddr)
	return gw
}

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

// endCall writes the line of a native call; a gateway call only sends its
// caller back for the REST line.
func (rc *Recorder) endCall(ctx context.Context, e *entry, fullMethod string, err error) {
	if viaGateway(ctx) {
		if e.subject != "" {
			// Fails only once the status was sent, which cannot have
			// happened before the handler returned.
			_ = grpc.SetTrailer(ctx, metadata.Pairs(subjectTrailer, e.subject))
		}
		return
	}
	took := time.Since(e.start)
	e.transport, e.called = GRPC, true
	e.rpc = trimSlash(fullMethod)
	e.probe = strings.HasPrefix(e.rpc, healthPrefix)
	if err != nil {
		st := status.Convert(err)
		e.code, e.message = st.Code(), st.Message()
	}
	e.requestID = requestid.FromContext(ctx)
	rc.write(ctx, e, took)
}
