package app

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"slices"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/accesslog"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/events"
	"github.com/usersd/usersd/internal/gatewayconn"
	"github.com/usersd/usersd/internal/limits"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/internal/unarychain"
	"github.com/usersd/usersd/service"
)

// grpcOptions configure the gRPC server around the Users service.
type grpcOptions struct {
	Logger *slog.Logger
	// Access logs each native call and counts every call (per-RPC
	// counts and latency, by transport).
	Access         *accesslog.Recorder
	MaxRecvMsgSize int // bytes; larger requests get RESOURCE_EXHAUSTED
	// Authenticate verifies the caller of every call except health checks
	// and reflection (auth.AuthFunc of a verifier). Required: the server
	// never runs open.
	Authenticate grpcauth.AuthFunc
	// Events records the analytic events of each call (nil records none:
	// only benchmarks run without).
	Events *events.Recorder
	// InFlight sheds calls beyond the in-flight bounds (nil: no bound).
	InFlight *limits.InFlight
	// CallerRate limits each verified caller's calls (nil: no limit).
	CallerRate *limits.CallerRate
	// Deadline, when set, comes right after the outer recovery: it gives
	// every call a deadline (internal/deadline), bounding every wait in it.
	Deadline grpc.UnaryServerInterceptor
	// Transport bounds every connection (streams, metadata, keepalive,
	// idle and age limits).
	Transport []grpc.ServerOption
}

// publicServices need no token: health checks and server reflection.
var publicServices = map[string]bool{
	healthpb.Health_ServiceDesc.ServiceName:                    true,
	reflectionpb.ServerReflection_ServiceDesc.ServiceName:      true,
	reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName: true,
}

// newGRPCServer returns the one gRPC server of the process, with the users
// service, health and reflection registered, and the in-process channel
// the REST gateway calls the users service through (gatewayconn). Both
// run one chain, so every call, native or REST, passes it:
//
//	recovery → deadline → request id → metrics → access log → in-flight bound →
//	authentication → caller rate limit → analytic events → authorization →
//	gateway rejections → error mapping → recovery → handler
//
// Logging and metrics sit outside the error mapping so they record the
// final status code; the outer recovery only guards the interceptors.
// Authentication and authorization are split so analytic events can record
// callers that hold a valid token but not the role. At debug level, the
// stages from the in-flight bound to the gateway rejections log what they
// decided (see decisions).
func newGRPCServer(users *service.Users, opts grpcOptions) (*grpc.Server, *health.Server, *gatewayconn.Channel, error) {
	if opts.Authenticate == nil {
		return nil, nil, nil, errors.New("gRPC server: no authentication configured")
	}
	log := opts.Logger
	onPanic := recovery.WithRecoveryHandlerContext(panicHandler(log))
	guarded := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return !publicServices[c.Service]
	})
	authenticate := noteSubject(opts.Authenticate)
	d := newDecisions(log)

	// Optional stages (nil when off) are skipped.
	unary := compact(
		recovery.UnaryServerInterceptor(onPanic),
		opts.Deadline, // bounds every wait below, for clients that set no deadline
		requestid.UnaryServerInterceptor(),
		opts.Access.UnaryMetrics(),
		opts.Access.UnaryServerInterceptor(),
		// Before authentication: shedding must cost less than the work.
		guard(d.stage(stageInFlight, opts.InFlight.UnaryServerInterceptor()), guarded),
		selector.UnaryServerInterceptor(d.stage(stageAuthentication, grpcauth.UnaryServerInterceptor(authenticate)), guarded),
		// After authentication (the caller is known), before events: a
		// refused call records nothing, so a flood cannot grow the trail.
		guard(d.stage(stageRateLimit, opts.CallerRate.UnaryServerInterceptor()), guarded),
		d.stage(stageEvents, opts.Events.UnaryServerInterceptor()),
	)
	unary = append(unary,
		selector.UnaryServerInterceptor(d.stage(stageAuthorization, auth.UnaryAuthorize(service.MethodRoles)), guarded),
		d.stage(stageRejections, gatewayRejections()),
		service.ErrorMapping(log),
		recovery.UnaryServerInterceptor(onPanic),
	)
	// The chain of each unary method is built once (unarychain), where
	// grpc.ChainUnaryInterceptor would build it on every call.
	healthSrv := health.NewServer()
	chain := unarychain.New(unary...)
	usersv1.RegisterUserServiceServer(chain, users)
	healthpb.RegisterHealthServer(chain, healthSrv)
	srv := grpc.NewServer(append(slices.Clip(opts.Transport),
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		grpc.UnaryInterceptor(chain.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(onPanic),
			requestid.StreamServerInterceptor(),
			opts.Access.StreamMetrics(),
			opts.Access.StreamServerInterceptor(),
			selector.StreamServerInterceptor(grpcauth.StreamServerInterceptor(authenticate), guarded),
			selector.StreamServerInterceptor(auth.StreamAuthorize(service.MethodRoles), guarded),
		),
	)...)
	usersv1.RegisterUserServiceServer(srv, users)
	healthpb.RegisterHealthServer(srv, healthSrv)
	healthSrv.SetServingStatus(usersv1.UserService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(srv)
	gateway := gatewayconn.NewChannel(unary...)
	usersv1.RegisterUserServiceServer(gateway, users)
	return srv, healthSrv, gateway, nil
}

// gatewayRejections fails the calls the REST gateway refused on HTTP
// grounds (media type, size, JSON, parameters). The gateway still sends
// them, with an empty body, so that such a request is authenticated,
// recorded and authorized like any other before it fails: without a token
// it is 401, with a token it leaves START and FAIL events. The mark is the
// refusal's reason under rpcerr.RejectedMetadata, honoured only on the
// gateway's own channel (gatewayconn): a native client's mark is
// ignored.
func gatewayRejections() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if mark := metadata.ValueFromIncomingContext(ctx, rpcerr.RejectedMetadata); len(mark) > 0 && gatewayconn.FromContext(ctx) {
			return nil, rpcerr.Rejected(mark[0])
		}
		return handler(ctx, req)
	}
}

// panicHandler logs the panic with its stack and request id; the client
// only learns that something went wrong.
func panicHandler(log *slog.Logger) recovery.RecoveryHandlerFuncContext {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic", "request_id", requestid.FromContext(ctx), "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "Internal error")
	}
}

// compact drops the stages that are off (nil).
func compact(stages ...grpc.UnaryServerInterceptor) []grpc.UnaryServerInterceptor {
	return slices.DeleteFunc(stages, func(i grpc.UnaryServerInterceptor) bool { return i == nil })
}

// guard runs a stage on the matched calls only; a stage that is off (nil)
// stays off.
func guard(i grpc.UnaryServerInterceptor, m selector.Matcher) grpc.UnaryServerInterceptor {
	if i == nil {
		return nil
	}
	return selector.UnaryServerInterceptor(i, m)
}
