package auth

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/rpcerr"

	"github.com/usersd/usersd/internal/auth/authtest"
)

// incoming returns a context whose incoming metadata carries the given
// authorization values (none when empty).
func incoming(values ...string) context.Context {
	md := metadata.MD{}
	for _, v := range values {
		md.Append("authorization", v)
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

// wantStatus asserts a status error with the code and our ErrorInfo
// reason.
func wantStatus(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	if st.Message() == "" {
		t.Fatal("status without a message")
	}
	info := rpcerr.Info(st)
	if info == nil || info.GetReason() != reason {
		t.Fatalf("ErrorInfo %v, want reason %s", info, reason)
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name, header, want string
	}{
		{"Bearer", "Bearer abc.def.ghi", "abc.def.ghi"},
		{"lower case", "bearer abc.def.ghi", "abc.def.ghi"},
		{"upper case", "BEARER abc.def.ghi", "abc.def.ghi"},
		{"mixed case", "bEaReR abc.def.ghi", "abc.def.ghi"},
		{"surrounding spaces", "  Bearer   abc.def.ghi  ", "abc.def.ghi"},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bearerToken(incoming(tc.header))
			if err != nil || got != tc.want {
				t.Fatalf("bearerToken(%q) = %q, %v; want %q", tc.header, got, err, tc.want)
			}
		})
	}

	bad := []struct {
		name string
		ctx  context.Context
	}{
		{"no metadata", context.Background()},
		{"no authorization", incoming()},
		{"two values", incoming("Bearer a.b.c", "Bearer a.b.c")},
		{"two values, one empty", incoming("Bearer a.b.c", "")},
		{"Basic", incoming("Basic dXNlcjpwYXNz")},
		{"Bearer without token", incoming("Bearer")},
		{"Bearer and spaces", incoming("Bearer   ")},
		{"empty", incoming("")},
		{"token only", incoming("abc.def.ghi")},
		{"Bearer glued to token", incoming("Bearerabc.def.ghi")},
		{"Token scheme", incoming("Token abc.def.ghi")},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bearerToken(tc.ctx)
			if err == nil {
				t.Fatalf("bearerToken accepted %q", got)
			}
			wantStatus(t, err, codes.Unauthenticated, rpcerr.ReasonMissingToken)
		})
	}
}

func TestAuthFunc(t *testing.T) {
	t.Parallel()
	v := hmacVerifier(t, Options{})
	af := AuthFunc(v)
	good := authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", testClaims(map[string]any{"roles": []string{RoleIssuer}}))

	for _, scheme := range []string{"Bearer ", "bearer ", "BEARER "} {
		ctx, err := af(incoming(scheme + good))
		if err != nil {
			t.Fatalf("%q: %v", scheme, err)
		}
		p, ok := FromContext(ctx)
		if !ok || p.Subject != "alice" || !slices.Equal(p.Roles, []string{RoleIssuer}) {
			t.Fatalf("%q: principal %+v %v", scheme, p, ok)
		}
	}

	// No usable token presented: MISSING_TOKEN.
	for name, ctx := range map[string]context.Context{
		"none":         incoming(),
		"two values":   incoming("Bearer "+good, "Bearer "+good),
		"wrong scheme": incoming("Basic " + good),
		"empty token":  incoming("Bearer "),
	} {
		t.Run("missing/"+name, func(t *testing.T) {
			ctx, err := af(ctx)
			if ctx != nil {
				if _, ok := FromContext(ctx); ok {
					t.Fatal("a principal was set")
				}
			}
			wantStatus(t, err, codes.Unauthenticated, rpcerr.ReasonMissingToken)
		})
	}

	// A token presented and refused: INVALID_TOKEN.
	for name, tok := range map[string]string{
		"garbage": "garbage",
		"expired": authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", testClaims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()})),
		"HS512":   authtest.Sign(t, jwt.SigningMethodHS512, testSecret, "", testClaims(nil)),
		"none":    authtest.Unsigned(t, "none", "", testClaims(nil)),
		"other":   authtest.Sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), "", testClaims(nil)),
	} {
		t.Run("invalid/"+name, func(t *testing.T) {
			_, err := af(incoming("Bearer " + tok))
			wantStatus(t, err, codes.Unauthenticated, rpcerr.ReasonInvalidToken)
		})
	}
}

func TestUnaryAuthorize(t *testing.T) {
	t.Parallel()
	const (
		create = "/users.v1.UserService/CreateUser"
		events = "/users.v1.UserService/ListEvents"
		other  = "/users.v1.UserService/NotInPolicy"
	)
	policy := Policy{
		create: {RoleAdmin, RoleIssuer},
		events: {RoleAdmin, RoleAuditor},
	}
	interceptor := UnaryAuthorize(policy)
	call := func(ctx context.Context, method string) (bool, error) {
		reached := false
		resp, err := interceptor(ctx, "req", &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
			reached = true
			return "resp", nil
		})
		if err == nil && resp != "resp" {
			t.Fatalf("response %v", resp)
		}
		return reached, err
	}
	as := func(roles ...string) context.Context {
		return NewContext(context.Background(), Principal{Subject: "s", Roles: roles})
	}

	allowed := []struct {
		ctx    context.Context
		method string
	}{
		{as(RoleAdmin), create},
		{as(RoleIssuer), create},
		{as(RoleAuditor, RoleIssuer), create},
		{as(RoleAuditor), events},
		{as(RoleAdmin), events},
	}
	for _, tc := range allowed {
		if reached, err := call(tc.ctx, tc.method); err != nil || !reached {
			t.Errorf("%s: %v (handler reached: %v)", tc.method, err, reached)
		}
	}

	denied := []struct {
		name   string
		ctx    context.Context
		method string
	}{
		{"auditor creates", as(RoleAuditor), create},
		{"issuer reads events", as(RoleIssuer), events},
		{"no roles", as(), create},
		{"unknown role", as("superuser"), create},
		{"role case differs", as("Admin"), create},
		{"admin, method not in policy", as(RoleAdmin), other},
		{"all roles, method not in policy", as(RoleAdmin, RoleIssuer, RoleAuditor), other},
	}
	for _, tc := range denied {
		t.Run("denied/"+tc.name, func(t *testing.T) {
			reached, err := call(tc.ctx, tc.method)
			if reached {
				t.Fatal("the handler was reached")
			}
			wantStatus(t, err, codes.PermissionDenied, rpcerr.ReasonRoleRequired)
		})
	}

	t.Run("no principal", func(t *testing.T) {
		reached, err := call(context.Background(), create)
		if reached {
			t.Fatal("the handler was reached")
		}
		wantStatus(t, err, codes.Unauthenticated, rpcerr.ReasonMissingToken)
	})

	t.Run("empty policy denies everything", func(t *testing.T) {
		_, err := UnaryAuthorize(Policy{})(as(RoleAdmin), nil, &grpc.UnaryServerInfo{FullMethod: create}, func(context.Context, any) (any, error) {
			t.Fatal("the handler was reached")
			return nil, nil
		})
		wantStatus(t, err, codes.PermissionDenied, rpcerr.ReasonRoleRequired)
	})
}

// stream is a ServerStream carrying a context, for StreamAuthorize.
type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s stream) Context() context.Context { return s.ctx }

func TestStreamAuthorize(t *testing.T) {
	t.Parallel()
	const method = "/users.v1.UserService/Watch"
	interceptor := StreamAuthorize(Policy{method: {RoleAdmin}})
	run := func(ctx context.Context, m string) (bool, error) {
		reached := false
		err := interceptor(nil, stream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: m}, func(any, grpc.ServerStream) error {
			reached = true
			return nil
		})
		return reached, err
	}
	if reached, err := run(NewContext(context.Background(), Principal{Roles: []string{RoleAdmin}}), method); err != nil || !reached {
		t.Fatalf("admin: %v %v", reached, err)
	}
	reached, err := run(NewContext(context.Background(), Principal{Roles: []string{RoleIssuer}}), method)
	if reached {
		t.Fatal("issuer reached the handler")
	}
	wantStatus(t, err, codes.PermissionDenied, rpcerr.ReasonRoleRequired)
	reached, err = run(NewContext(context.Background(), Principal{Roles: []string{RoleAdmin}}), "/x.Y/Other")
	if reached {
		t.Fatal("a method outside the policy reached the handler")
	}
	wantStatus(t, err, codes.PermissionDenied, rpcerr.ReasonRoleRequired)
	_, err = run(context.Background(), method)
	wantStatus(t, err, codes.Unauthenticated, rpcerr.ReasonMissingToken)
}
