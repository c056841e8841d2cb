package app

import (
	"context"
	"log/slog"
	"strings"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/accesslog"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/service"
)

// noteSubject gives the access log the caller authenticate verified, so
// the request's line names it.
func noteSubject(authenticate grpcauth.AuthFunc) grpcauth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		authed, err := authenticate(ctx)
		if err != nil {
			return authed, err
		}
		if p, ok := auth.FromContext(authed); ok {
			accesslog.SetSubject(ctx, p.Subject)
		}
		return authed, nil
	}
}

// Stages of the chain whose decisions are logged at debug level.
const (
	stageInFlight       = "in_flight"
	stageAuthentication = "authentication"
	stageRateLimit      = "rate_limit"
	stageEvents         = "events"
	stageAuthorization  = "authorization"
	stageRejections     = "gateway_rejection"
)

// decisions logs, at debug level, one line per decision a stage of the
// chain takes about a call: admitted or refused by the in-flight bound and
// the rate limit, authenticated as whom, which START event was recorded,
// which roles authorized it, and every refusal with its code and reason.
// These say why a request ended as it did, which the access log line
// alone does not. Never a token or a claim: the subject, the roles the
// method requires (not those the token holds) and our own status messages.
type decisions struct{ log *slog.Logger }

// newDecisions returns decisions that log only when log is enabled for
// debug; otherwise stage adds nothing to the chain.
func newDecisions(log *slog.Logger) decisions {
	if log == nil || !log.Enabled(context.Background(), slog.LevelDebug) {
		return decisions{}
	}
	return decisions{log}
}

// stage wraps one stage of the chain: if it calls on, it passed; if it
// returns without calling on, it refused. A stage that is off (nil) stays
// off.
func (d decisions) stage(name string, i grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	if d.log == nil || i == nil {
		return i
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		passed := false
		resp, err := i(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			passed = true
			d.passed(ctx, name, info.FullMethod)
			return handler(ctx, req)
		})
		if !passed && err != nil {
			d.refused(ctx, name, info.FullMethod, err)
		}
		return resp, err
	}
}

func (d decisions) passed(ctx context.Context, stage, method string) {
	a := make([]slog.Attr, 0, 6)
	a = append(a, slog.String("stage", stage))
	switch stage {
	case stageRejections:
		return // not refused by the gateway: nothing was decided
	case stageAuthentication:
		p, _ := auth.FromContext(ctx)
		a = append(a, slog.String("decision", "authenticated"), slog.String("subject", p.Subject))
	case stageEvents:
		if op := service.EventOps[method]; op != "" {
			a = append(a, slog.String("decision", "recorded"), slog.String("event", op+"_START"))
		} else {
			a = append(a, slog.String("decision", "not recorded"))
		}
	case stageAuthorization:
		a = append(a, slog.String("decision", "allowed"), slog.String("roles", strings.Join(service.MethodRoles[method], ",")))
	default:
		a = append(a, slog.String("decision", "admitted"))
	}
	d.write(ctx, method, a)
}

func (d decisions) refused(ctx context.Context, stage, method string, err error) {
	st := status.Convert(err)
	a := make([]slog.Attr, 0, 8)
	a = append(a, slog.String("stage", stage), slog.String("decision", "refused"), slog.String("code", st.Code().String()))
	if info := rpcerr.Info(st); info != nil {
		a = append(a, slog.String("reason", info.GetReason()))
	}
	d.write(ctx, method, append(a, slog.String("error", st.Message())))
}

func (d decisions) write(ctx context.Context, method string, a []slog.Attr) {
	a = append(a, slog.String("rpc", strings.TrimPrefix(method, "/")), slog.String("request_id", requestid.FromContext(ctx)))
	d.log.LogAttrs(ctx, slog.LevelDebug, "decision", a...)
}
