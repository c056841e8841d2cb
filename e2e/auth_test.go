package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/service"
)

// Who gets in: rejected tokens on both transports, the role matrix, the
// open endpoints, and a rejected request never reaching the store.

// ---------------------------------------------------------------------
// Rejections on both transports

func TestAuthRejections(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	conn := bareConn(t, s)
	c := usersv1.NewUserServiceClient(conn)
	now := time.Now()
	otherSecret := []byte("a-different-secret-of-enough-length-0123456789")

	cases := []struct {
		name  string
		authz []string // Authorization values sent
		p     presence
		grpcR string // ErrorInfo reason over gRPC ("" not asserted)
	}{
		{"missing header", nil, notPresented, rpcerr.ReasonMissingToken},
		{"empty header", []string{""}, notPresented, rpcerr.ReasonMissingToken},
		{"Bearer without token", []string{"Bearer"}, notPresented, rpcerr.ReasonMissingToken},
		{"Bearer and a space", []string{"Bearer "}, notPresented, rpcerr.ReasonMissingToken},
		{"Basic scheme", []string{"Basic ZTJlOnNlY3JldA=="}, notPresented, rpcerr.ReasonMissingToken},
		{"token without scheme", []string{adminToken}, notPresented, rpcerr.ReasonMissingToken},
		{"two Authorization headers", []string{"Bearer " + adminToken, "Bearer " + adminToken}, eitherWay, ""},
		{"garbage token", []string{"Bearer garbage"}, presented, rpcerr.ReasonInvalidToken},
		{"three dots", []string{"Bearer ..."}, presented, rpcerr.ReasonInvalidToken},
		{"expired", []string{"Bearer " + hs256(t, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})}, presented, rpcerr.ReasonInvalidToken},
		{"not yet valid (nbf)", []string{"Bearer " + hs256(t, map[string]any{"nbf": now.Add(10 * time.Minute).Unix()})}, presented, rpcerr.ReasonInvalidToken},
		{"issued in the future (iat)", []string{"Bearer " + hs256(t, map[string]any{"iat": now.Add(10 * time.Minute).Unix()})}, presented, rpcerr.ReasonInvalidToken},
		{"no exp", []string{"Bearer " + hs256(t, map[string]any{"exp": nil})}, presented, rpcerr.ReasonInvalidToken},
		{"other secret", []string{"Bearer " + authtest.Sign(t, jwt.SigningMethodHS256, otherSecret, "", jwtClaims(nil))}, presented, rpcerr.ReasonInvalidToken},
		{"HS384", []string{"Bearer " + authtest.Sign(t, jwt.SigningMethodHS384, testSecret, "", jwtClaims(nil))}, presented, rpcerr.ReasonInvalidToken},
		{"HS512", []string{"Bearer " + authtest.Sign(t, jwt.SigningMethodHS512, testSecret, "", jwtClaims(nil))}, presented, rpcerr.ReasonInvalidToken},
		{"alg none", []string{"Bearer " + authtest.Unsigned(t, "none", "", jwtClaims(nil))}, presented, rpcerr.ReasonInvalidToken},
		{"signature stripped", []string{"Bearer " + adminToken[:strings.LastIndex(adminToken, ".")+1]}, presented, rpcerr.ReasonInvalidToken},
		{"payload tampered", []string{"Bearer " + tamper(t, adminToken)}, presented, rpcerr.ReasonInvalidToken},
		{"names no caller", []string{"Bearer " + hs256(t, map[string]any{"sub": nil})}, presented, rpcerr.ReasonInvalidToken},
		{"crit header", []string{"Bearer " + critToken(t)}, presented, rpcerr.ReasonInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, rt := range []struct{ method, path, body string }{
				{"GET", "/v1/users", ""},
				{"POST", "/v1/users", `{}`},
				{"DELETE", "/v1/users/" + missingID, ""},
			} {
				r := authREST(t, s, rt.method, rt.path, rt.body, tc.authz...)
				wantUnauthorized(t, r, tc.p)
			}
			ctx := withAuthz(t.Context(), tc.authz...)
			_, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{})
			wantStatusReason(t, err, codes.Unauthenticated, tc.grpcR)
			_, err = c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{}})
			wantStatusReason(t, err, codes.Unauthenticated, tc.grpcR)
		})
	}

	t.Run("token in the query string", func(t *testing.T) {
		for _, q := range []string{"access_token", "token", "authorization", "bearer"} {
			r := authREST(t, s, "GET", "/v1/users?"+q+"="+adminToken, "")
			wantUnauthorized(t, r, notPresented)
			r = authREST(t, s, "POST", "/v1/users?"+q+"="+adminToken, `{}`)
			wantUnauthorized(t, r, notPresented)
		}
	})

	t.Run("token in another header", func(t *testing.T) {
		// The gateway forwards Authorization only; gRPC-style metadata
		// headers and proxies' headers do not carry a token.
		for _, h := range []string{"Grpc-Metadata-Authorization", "X-Authorization", "X-Forwarded-Authorization", "Proxy-Authorization"} {
			r := authRESTHeader(t, s, "GET", "/v1/users", "", http.Header{h: {"Bearer " + adminToken}})
			wantUnauthorized(t, r, notPresented)
		}
	})

	t.Run("scheme is case-insensitive", func(t *testing.T) {
		for _, scheme := range []string{"bearer", "BEARER", "Bearer", "bEaReR"} {
			if r := authREST(t, s, "GET", "/v1/users", "", scheme+" "+adminToken); r.Status != http.StatusOK {
				t.Fatalf("REST %q: %d %s", scheme, r.Status, r.Body)
			}
			if _, err := c.ListUsers(withAuthz(t.Context(), scheme+" "+adminToken), &usersv1.ListUsersRequest{}); err != nil {
				t.Fatalf("gRPC %q: %v", scheme, err)
			}
		}
	})

	t.Run("expired within leeway", func(t *testing.T) {
		tok := hs256(t, map[string]any{"iat": now.Add(-time.Hour).Unix(), "exp": time.Now().Add(-20 * time.Second).Unix()})
		if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tok); r.Status != http.StatusOK {
			t.Fatalf("REST: %d %s", r.Status, r.Body)
		}
		if _, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tok), &usersv1.ListUsersRequest{}); err != nil {
			t.Fatalf("gRPC: %v", err)
		}
	})

	// Nothing refused above was created.
	r := s.do(t, "GET", "/v1/users", "")
	if r.Status != http.StatusOK || len(r.JSON(t)["data"].([]any)) != 0 {
		t.Fatalf("users after refused requests: %d %s", r.Status, r.Body)
	}
}

// ---------------------------------------------------------------------
// Role matrix

// roleCases are the tokens of the matrix: granted roles (nil: none).
var roleCases = []struct {
	name  string
	roles any // value of the roles claim; nil: claim absent
	grant []string
}{
	{"admin", []string{auth.RoleAdmin}, []string{auth.RoleAdmin}},
	{"issuer", []string{auth.RoleIssuer}, []string{auth.RoleIssuer}},
	{"auditor", []string{auth.RoleAuditor}, []string{auth.RoleAuditor}},
	{"none", nil, nil},
	{"empty array", []string{}, nil},
	{"roles as string", auth.RoleAdmin, nil},
	{"array with a number", []any{auth.RoleAdmin, 1}, nil},
	{"role name in upper case", []string{"ADMIN"}, nil},
}

func TestAuthRoleMatrix(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	admin := s.grpc()
	conn := bareConn(t, s)
	c := usersv1.NewUserServiceClient(conn)
	methods := methodsInPolicy(t)

	newUser := func(t *testing.T) string {
		t.Helper()
		resp, err := admin.CreateUser(t.Context(), &usersv1.CreateUserRequest{User: &usersv1.User{}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetUser().GetId()
	}

	for _, rc := range roleCases {
		tok := hs256(t, map[string]any{"roles": rc.roles})
		for _, m := range methods {
			call := rpcCalls[m]
			allowed := slices.ContainsFunc(rc.grant, func(r string) bool { return slices.Contains(service.MethodRoles[m], r) })
			t.Run(rc.name+"/"+m, func(t *testing.T) {
				t.Parallel()
				// gRPC
				err := call.grpc(withAuthz(t.Context(), "Bearer "+tok), c, newUser(t))
				if allowed && err != nil {
					t.Errorf("gRPC: %v, want success", err)
				}
				if !allowed {
					if status.Code(err) != codes.PermissionDenied {
						t.Errorf("gRPC: %v, want PERMISSION_DENIED", err)
					} else {
						wantStatusReason(t, err, codes.PermissionDenied, rpcerr.ReasonRoleRequired)
					}
				}
				// REST
				r := authREST(t, s, call.rest, call.restPathOf(newUser(t)), call.body, "Bearer "+tok)
				switch {
				case allowed && (r.Status < 200 || r.Status > 299):
					t.Errorf("REST %s %s: %d %s, want success", call.rest, call.path, r.Status, r.Body)
				case !allowed:
					wantError(t, r, http.StatusForbidden, "Forbidden")
					if r.Header.Get("WWW-Authenticate") != "" {
						t.Errorf("403 with WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
					}
				}
			})
		}
	}
}

// ---------------------------------------------------------------------
// Open endpoints

func TestAuthOpenEndpoints(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		for _, authz := range [][]string{nil, {"Bearer garbage"}} {
			r := authREST(t, s, "GET", path, "", authz...)
			if r.Status != http.StatusOK || len(r.Body) == 0 {
				t.Errorf("GET %s with Authorization %q: %d %.200s", path, authz, r.Status, r.Body)
			}
		}
	}

	conn := bareConn(t, s)
	for _, authz := range [][]string{nil, {"Bearer garbage"}} {
		ctx := withAuthz(t.Context(), authz...)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health Check with %q: %v %v", authz, resp, err)
		}
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
		}); err != nil {
			t.Fatal(err)
		}
		lr, err := stream.Recv()
		if err != nil {
			t.Fatalf("reflection with %q: %v", authz, err)
		}
		var names []string
		for _, svc := range lr.GetListServicesResponse().GetService() {
			names = append(names, svc.GetName())
		}
		if !slices.Contains(names, "users.v1.UserService") {
			t.Fatalf("reflection lists %v", names)
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
	}
	// The same connection is refused the users service.
	_, err := usersv1.NewUserServiceClient(conn).ListUsers(t.Context(), &usersv1.ListUsersRequest{})
	wantStatusReason(t, err, codes.Unauthenticated, rpcerr.ReasonMissingToken)
}

// ---------------------------------------------------------------------
// A rejected request never reaches the store

func TestAuthRejectedRequestsNeverReachStore(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	id := createUser(t, s, `{"claims":{"a":1}}`)["id"].(string)
	c := usersv1.NewUserServiceClient(bareConn(t, s))
	const storeOps = "usersd_store_operation_duration_seconds_count"
	const handled = "grpc_server_handled_total"

	before := string(s.do(t, "GET", "/metrics", "").Body)
	if metricSum(t, before, storeOps, "") == 0 {
		t.Fatalf("no %s in /metrics after a create", storeOps)
	}

	now := time.Now()
	unauthenticated := [][]string{
		nil,
		{"Bearer garbage"},
		{"Bearer " + hs256(t, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})},
		{"Bearer " + authtest.Unsigned(t, "none", "", jwtClaims(nil))},
		{"Bearer " + adminToken, "Bearer " + adminToken},
	}
	forbidden := [][]string{
		{"Bearer " + hs256(t, map[string]any{"roles": []string{auth.RoleAuditor}})},
		{"Bearer " + hs256(t, map[string]any{"roles": nil})},
		{"Bearer " + hs256(t, map[string]any{"roles": auth.RoleAdmin})},
	}
	var n401, n403 int
	for _, m := range methodsInPolicy(t) {
		call := rpcCalls[m]
		for _, authz := range unauthenticated {
			wantUnauthorized(t, authREST(t, s, call.rest, call.restPathOf(id), call.body, authz...), eitherWay)
			wantStatusReason(t, call.grpc(withAuthz(t.Context(), authz...), c, id), codes.Unauthenticated, "")
			n401 += 2
		}
		for i, authz := range forbidden {
			if i == 0 && slices.Contains(service.MethodRoles[m], auth.RoleAuditor) {
				continue // the auditor token is allowed here
			}
			wantError(t, authREST(t, s, call.rest, call.restPathOf(id), call.body, authz...), http.StatusForbidden, "Forbidden")
			wantStatusReason(t, call.grpc(withAuthz(t.Context(), authz...), c, id), codes.PermissionDenied, rpcerr.ReasonRoleRequired)
			n403 += 2
		}
	}

	after := string(s.do(t, "GET", "/metrics", "").Body)
	// User data operations only: a 403 is recorded as analytic events
	// (START, FAIL), which the store writes too.
	userOps := func(text string) (sum float64) {
		for _, op := range []string{"create_user", "get_user", "update_user", "delete_user", "list_users"} {
			sum += metricSum(t, text, storeOps, `operation="`+op+`"`)
		}
		return sum
	}
	if b, a := userOps(before), userOps(after); a != b {
		t.Fatalf("user store operations rose from %v to %v during %d refused requests", b, a, n401+n403)
	}
	// The requests did reach the gRPC server (REST through the same
	// interceptors): each one is counted there with its code, half of
	// them under each transport.
	for code, n := range map[string]int{"Unauthenticated": n401, "PermissionDenied": n403} {
		for _, transport := range []string{"rest", "grpc"} {
			labels := []string{`grpc_code="` + code + `"`, `transport="` + transport + `"`}
			if got := metricSum(t, after, handled, labels...) - metricSum(t, before, handled, labels...); got != float64(n/2) {
				t.Errorf("%s %v rose by %v, want %d", handled, labels, got, n/2)
			}
		}
	}
	// And the user is untouched.
	got, err := s.grpc().GetUser(t.Context(), &usersv1.GetUserRequest{Id: id})
	if err != nil || got.GetUser().GetClaims().GetFields()["a"].GetNumberValue() != 1 {
		t.Fatalf("user after refused requests: %v %v", got, err)
	}
}

// ---------------------------------------------------------------------
// Authentication comes before REST input checks

// An unauthenticated REST request is 401 whatever its body or query: the
// contract asks for a token on every users operation, and a caller
// without one should learn nothing about input validation.
func TestAuthBeforeRESTValidation(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/users", `{"unknown":1}`},
		{"POST", "/v1/users", `not json`},
		{"PUT", "/v1/users/" + missingID, `{"claims":[]}`},
		{"GET", "/v1/users?limit=abc", ""},
		{"POST", "/v1/users", strings.Repeat(" ", 70<<10)},
	} {
		for _, authz := range [][]string{nil, {"Bearer garbage"}} {
			r := authREST(t, s, tc.method, tc.path, tc.body, authz...)
			if r.Status != http.StatusUnauthorized {
				t.Errorf("%s %s %s with Authorization %q: %d %s, want 401", tc.method, tc.path, tc.body, authz, r.Status, r.Body)
			}
		}
	}
}
