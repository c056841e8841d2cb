package auth

import (
	"context"
	"strings"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/usersd/usersd/internal/rpcerr"
)

// Policy maps a full gRPC method name to the roles that may call it. A
// method without an entry may be called by nobody (deny by default).
type Policy map[string][]string

// AuthFunc verifies the bearer token in the call's metadata and puts the
// principal into the context. Plug it into go-grpc-middleware's auth
// interceptors; it answers UNAUTHENTICATED, never PERMISSION_DENIED, so an
// authorization step can sit after other interceptors (analytic events
// record who was refused).
func AuthFunc(v *Verifier) grpcauth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		token, err := bearerToken(ctx)
		if err != nil {
			return nil, err
		}
		p, verr := v.Verify(token)
		if verr != nil {
			return nil, rpcerr.New(codes.Unauthenticated, "Invalid bearer token: "+verr.Error(), rpcerr.ReasonInvalidToken)
		}
		return NewContext(ctx, p), nil
	}
}

// bearerToken reads the one Authorization value of a call. Tokens are
// taken from this header only, never from query strings.
func bearerToken(ctx context.Context) (string, error) {
	missing := func(msg string) error {
		return rpcerr.New(codes.Unauthenticated, msg, rpcerr.ReasonMissingToken)
	}
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	switch {
	case len(vals) == 0:
		return "", missing("Missing bearer token: send Authorization: Bearer <JWT>")
	case len(vals) > 1:
		return "", missing("More than one Authorization header")
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", missing("Authorization must use the Bearer scheme with a token")
	}
	return token, nil
}

// UnaryAuthorize refuses calls whose principal holds none of the roles
// the policy grants for the method.
func UnaryAuthorize(policy Policy) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := authorize(ctx, policy, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamAuthorize is UnaryAuthorize for streaming calls.
func StreamAuthorize(policy Policy) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := authorize(ss.Context(), policy, info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func authorize(ctx context.Context, policy Policy, method string) error {
	p, ok := FromContext(ctx)
	if !ok {
		return rpcerr.New(codes.Unauthenticated, "Missing bearer token", rpcerr.ReasonMissingToken)
	}
	roles, known := policy[method]
	if !known || !p.Has(roles) {
		msg := "This operation is not allowed for this token"
		if known {
			msg = "This operation requires one of the roles: " + strings.Join(roles, ", ")
		}
		return rpcerr.New(codes.PermissionDenied, msg, rpcerr.ReasonRoleRequired)
	}
	return nil
}
