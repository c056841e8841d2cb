package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/service"
)

// ---------------------------------------------------------------------
// Tokens

// jwtClaims is a valid claim set for the test servers (authtest.Claims).
func jwtClaims(over map[string]any) jwt.MapClaims { return authtest.Claims("e2e-auth", over) }

// hs256 signs claims with the servers' test secret.
func hs256(t *testing.T, over map[string]any) string {
	t.Helper()
	return authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "", jwtClaims(over))
}

// critToken is an admin token whose header marks an extension critical
// (RFC 7515 §4.1.11): the server understands none, so it must refuse it.
func critToken(t *testing.T) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims(nil))
	tok.Header["crit"] = []string{"exp"}
	signed, err := tok.SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// tokenPayload decodes a token's claims without verifying it.
func tokenPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a JWS", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// ---------------------------------------------------------------------
// Transports

// authREST sends a REST request with exactly the given Authorization
// values (none when there are none), and the body as application/json.
func authREST(t *testing.T, s *server, method, path, body string, authz ...string) response {
	t.Helper()
	return authRESTHeader(t, s, method, path, body, http.Header{"Authorization": authz})
}

// authRESTHeader sends a REST request with the given headers, and the
// body as application/json.
func authRESTHeader(t *testing.T, s *server, method, path, body string, h http.Header) response {
	t.Helper()
	h = h.Clone()
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	return s.send(t, method, path, body, h)
}

// bareConn is a gRPC connection that sends no credentials of its own.
func bareConn(t *testing.T, s *server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// withAuthz returns ctx carrying the given authorization metadata values.
func withAuthz(ctx context.Context, authz ...string) context.Context {
	for _, v := range authz {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
	}
	return ctx
}

// Presence of a token in a refused request, for the REST challenge.
type presence int

const (
	notPresented presence = iota // no error="invalid_token"
	presented                    // error="invalid_token"
	eitherWay                    // not asserted
)

// wantUnauthorized asserts a REST 401 with the contract's body and a
// Bearer challenge.
func wantUnauthorized(t *testing.T, r response, p presence) {
	t.Helper()
	wantError(t, r, http.StatusUnauthorized, "Unauthorized")
	challenge := r.Header.Values("WWW-Authenticate")
	if len(challenge) != 1 || !strings.HasPrefix(challenge[0], "Bearer") {
		t.Fatalf("WWW-Authenticate %q, want one Bearer challenge", challenge)
	}
	invalid := strings.Contains(challenge[0], `error="invalid_token"`)
	switch {
	case p == presented && !invalid:
		t.Fatalf("WWW-Authenticate %q lacks error=\"invalid_token\" for a refused token", challenge[0])
	case p == notPresented && invalid:
		t.Fatalf("WWW-Authenticate %q says invalid_token though no token was presented", challenge[0])
	}
}

// wantStatusReason asserts a gRPC status code and (when not "") the
// ErrorInfo reason of our domain.
func wantStatusReason(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	if reason == "" {
		return
	}
	if info := rpcerr.Info(st); info == nil || info.GetReason() != reason {
		t.Fatalf("ErrorInfo %v, want reason %s (%v)", info, reason, err)
	}
}

// ---------------------------------------------------------------------
// Calls of every RPC, for the role matrix and the store check

// rpcCall knows how to call one RPC validly over gRPC and over REST,
// given the id of an existing user it may consume (deleted).
type rpcCall struct {
	rest, path, body string // path has {id} for the user id
	grpc             func(ctx context.Context, c usersv1.UserServiceClient, id string) error
}

var rpcCalls = map[string]rpcCall{
	usersv1.UserService_CreateUser_FullMethodName: {"POST", "/v1/users", `{"claims":{"k":"v"}}`,
		func(ctx context.Context, c usersv1.UserServiceClient, _ string) error {
			_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{}})
			return err
		}},
	usersv1.UserService_GetUser_FullMethodName: {"GET", "/v1/users/{id}", "",
		func(ctx context.Context, c usersv1.UserServiceClient, id string) error {
			_, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: id})
			return err
		}},
	usersv1.UserService_UpdateUser_FullMethodName: {"PUT", "/v1/users/{id}", `{"claims":{"k":"w"}}`,
		func(ctx context.Context, c usersv1.UserServiceClient, id string) error {
			claims, err := structpb.NewStruct(map[string]any{"k": "x"})
			if err != nil {
				return err
			}
			_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: claims}})
			return err
		}},
	usersv1.UserService_DeleteUser_FullMethodName: {"DELETE", "/v1/users/{id}", "",
		func(ctx context.Context, c usersv1.UserServiceClient, id string) error {
			_, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: id})
			return err
		}},
	usersv1.UserService_ListUsers_FullMethodName: {"GET", "/v1/users?limit=1", "",
		func(ctx context.Context, c usersv1.UserServiceClient, _ string) error {
			limit := int32(1)
			_, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{Limit: &limit})
			return err
		}},
	usersv1.UserService_ListEvents_FullMethodName: {"GET", "/v1/events?limit=1", "",
		func(ctx context.Context, c usersv1.UserServiceClient, _ string) error {
			limit := int32(1)
			_, err := c.ListEvents(ctx, &usersv1.ListEventsRequest{Limit: &limit})
			return err
		}},
}

// restPathOf fills in the user id.
func (c rpcCall) restPathOf(id string) string { return strings.ReplaceAll(c.path, "{id}", id) }

// methodsInPolicy lists service.MethodRoles, sorted, failing when the
// tables here lack one or disagree with the proto's HTTP bindings.
func methodsInPolicy(t *testing.T) []string {
	t.Helper()
	sd := usersv1.File_users_v1_users_proto.Services().ByName("UserService")
	var out []string
	for m := range service.MethodRoles {
		c, ok := rpcCalls[m]
		if !ok {
			t.Fatalf("%s is in service.MethodRoles but not in rpcCalls: add it to this test", m)
		}
		md := sd.Methods().ByName(protoreflectName(m))
		if md == nil {
			t.Fatalf("%s is not a method of %s", m, sd.FullName())
		}
		rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
		var verb, tmpl string
		switch p := rule.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			verb, tmpl = "GET", p.Get
		case *annotations.HttpRule_Post:
			verb, tmpl = "POST", p.Post
		case *annotations.HttpRule_Put:
			verb, tmpl = "PUT", p.Put
		case *annotations.HttpRule_Delete:
			verb, tmpl = "DELETE", p.Delete
		case *annotations.HttpRule_Patch:
			verb, tmpl = "PATCH", p.Patch
		}
		path, _, _ := strings.Cut(c.path, "?")
		if verb != c.rest || tmpl != path {
			t.Fatalf("%s is bound to %s %s, the test calls %s %s", m, verb, tmpl, c.rest, path)
		}
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

func protoreflectName(fullMethod string) protoreflect.Name {
	return protoreflect.Name(fullMethod[strings.LastIndex(fullMethod, "/")+1:])
}

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

// tamper changes the subject in a token's payload, keeping its signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	c := tokenPayload(t, tok)
	c["sub"] = "mallory"
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + b64url(p) + "." + parts[2]
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
// Issuer, audience and roles claim configuration

func TestAuthIssuerAudience(t *testing.T) {
	t.Parallel()
	const iss, aud = "https://idp.example.test/", "usersd-e2e"
	s := start(t, "", "--jwt-issuer", iss, "--jwt-audience", aud)
	c := usersv1.NewUserServiceClient(bareConn(t, s))

	good := []struct {
		name string
		tok  string
	}{
		{"iss and aud", tokenFor(t, auth.TokenSpec{Subject: "x", Roles: []string{auth.RoleAdmin}, Issuer: iss, Audience: aud})},
		{"aud in a list", hs256(t, map[string]any{"iss": iss, "aud": []string{"other", aud}})},
	}
	for _, tc := range good {
		if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tc.tok); r.Status != http.StatusOK {
			t.Errorf("%s: REST %d %s", tc.name, r.Status, r.Body)
		}
		if _, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tc.tok), &usersv1.ListUsersRequest{}); err != nil {
			t.Errorf("%s: gRPC %v", tc.name, err)
		}
	}

	bad := []struct {
		name string
		tok  string
	}{
		{"wrong issuer", hs256(t, map[string]any{"iss": "https://evil.example.test/", "aud": aud})},
		{"issuer differs by a slash", hs256(t, map[string]any{"iss": strings.TrimSuffix(iss, "/"), "aud": aud})},
		{"wrong audience", hs256(t, map[string]any{"iss": iss, "aud": "someone-else"})},
		{"no issuer", hs256(t, map[string]any{"aud": aud})},
		{"no audience", hs256(t, map[string]any{"iss": iss})},
		{"neither", adminToken},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			wantUnauthorized(t, authREST(t, s, "GET", "/v1/users", "", "Bearer "+tc.tok), presented)
			_, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tc.tok), &usersv1.ListUsersRequest{})
			wantStatusReason(t, err, codes.Unauthenticated, rpcerr.ReasonInvalidToken)
		})
	}
}

func TestAuthRolesClaim(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--roles-claim", "perms")
	c := usersv1.NewUserServiceClient(bareConn(t, s))
	cases := []struct {
		name string
		tok  string
		ok   bool
	}{
		{"admin in perms", tokenFor(t, auth.TokenSpec{Subject: "perms-client", Roles: []string{auth.RoleAdmin}, RolesClaim: "perms"}), true},
		{"issuer in perms", hs256(t, map[string]any{"roles": nil, "perms": []string{auth.RoleIssuer}}), true},
		{"auditor in perms", hs256(t, map[string]any{"roles": nil, "perms": []string{auth.RoleAuditor}}), false},
		{"admin in roles only", adminToken, false},
		{"perms as a string", hs256(t, map[string]any{"perms": auth.RoleAdmin}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tc.tok)
			_, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tc.tok), &usersv1.ListUsersRequest{})
			if tc.ok {
				if r.Status != http.StatusOK || err != nil {
					t.Fatalf("REST %d %s; gRPC %v", r.Status, r.Body, err)
				}
				return
			}
			wantError(t, r, http.StatusForbidden, "Forbidden")
			wantStatusReason(t, err, codes.PermissionDenied, rpcerr.ReasonRoleRequired)
		})
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

// metricSum adds up the samples of the metric whose labels contain every
// filter (all label sets when none).
func metricSum(t *testing.T, text, name string, labelFilters ...string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if !containsAll(line, labelFilters) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

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
// JWKS

func TestAuthJWKS(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	js := authtest.NewJWKSServer(t,
		authtest.RSAJWK("rsa-1", "RS256", &rsaKey.PublicKey),
		authtest.ECJWK(t, "ec-1", "", &ecKey.PublicKey),
		authtest.EdJWK("ed-1", "", edPub),
	)

	dir := t.TempDir()
	s := startEnv(t, dir, nil, "--jwks-url", js.URL)
	c := usersv1.NewUserServiceClient(bareConn(t, s))
	fetchesAtStart := js.Hits()
	if fetchesAtStart == 0 {
		t.Fatal("the server did not fetch the JWKS at startup")
	}

	rs := func(kid string, over map[string]any) string {
		return authtest.Sign(t, jwt.SigningMethodRS256, rsaKey, kid, jwtClaims(over))
	}
	es := func(kid string, over map[string]any) string {
		return authtest.Sign(t, jwt.SigningMethodES256, ecKey, kid, jwtClaims(over))
	}
	ed := func(kid string, over map[string]any) string {
		return authtest.Sign(t, jwt.SigningMethodEdDSA, edKey, kid, jwtClaims(over))
	}
	wantOK := func(t *testing.T, name, tok string) {
		t.Helper()
		if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tok); r.Status != http.StatusOK {
			t.Errorf("%s: REST %d %s", name, r.Status, r.Body)
		}
		if _, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tok), &usersv1.ListUsersRequest{}); err != nil {
			t.Errorf("%s: gRPC %v", name, err)
		}
	}
	wantRefused := func(t *testing.T, name, tok string) {
		t.Helper()
		r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tok)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: REST %d %s, want 401", name, r.Status, r.Body)
		} else {
			wantUnauthorized(t, r, presented)
		}
		_, err := c.ListUsers(withAuthz(t.Context(), "Bearer "+tok), &usersv1.ListUsersRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: gRPC %v, want UNAUTHENTICATED", name, err)
		}
	}
	freshValid := func() map[string]string {
		return map[string]string{"RS256": rs("rsa-1", nil), "ES256": es("ec-1", nil), "EdDSA": ed("ed-1", nil)}
	}

	for name, tok := range freshValid() {
		wantOK(t, name, tok)
	}
	// Roles still apply.
	wantOK(t, "ES256 issuer", es("ec-1", map[string]any{"roles": []string{auth.RoleIssuer}}))
	auditor := ed("ed-1", map[string]any{"roles": []string{auth.RoleAuditor}})
	wantError(t, authREST(t, s, "GET", "/v1/users", "", "Bearer "+auditor), http.StatusForbidden, "Forbidden")

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	for name, tok := range map[string]string{
		"HS256 with the test secret":     hs256(t, nil),
		"HS256 with the test secret+kid": authtest.Sign(t, jwt.SigningMethodHS256, testSecret, "rsa-1", jwtClaims(nil)),
		"HS256 with the RSA public PEM":  authtest.Sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", jwtClaims(nil)),
		"HS256 with the RSA public DER":  authtest.Sign(t, jwt.SigningMethodHS256, pubDER, "rsa-1", jwtClaims(nil)),
		"alg none naming a key":          authtest.Unsigned(t, "none", "rsa-1", jwtClaims(nil)),
		"RS256 naming the EC key":        rs("ec-1", nil),
		"ES256 naming the Ed25519 key":   es("ed-1", nil),
		"RS256 expired":                  rs("rsa-1", map[string]any{"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}),
		"EdDSA signed by another key":    authtest.Sign(t, jwt.SigningMethodEdDSA, ed25519.NewKeyFromSeed(make([]byte, 32)), "ed-1", jwtClaims(nil)),
	} {
		wantRefused(t, name, tok)
	}
	if n := js.Hits(); n != fetchesAtStart {
		t.Errorf("tokens naming known kids caused %d JWKS fetches", n-fetchesAtStart)
	}

	// Key rotation: a kid added after start is fetched on first use.
	js.Add(authtest.ECJWK(t, "ec-2", "", &ecKey.PublicKey))
	wantOK(t, "ES256 new kid", es("ec-2", nil))
	if n := js.Hits(); n != fetchesAtStart+1 {
		t.Errorf("%d JWKS fetches for the new kid, want 1", n-fetchesAtStart)
	}

	// The endpoint goes down: known kids keep working (fresh tokens, so
	// the keys are what is cached, not the verdicts), unknown ones do not.
	js.Fail()
	for name, tok := range freshValid() {
		wantOK(t, name+" after the JWKS went down", tok)
	}
	wantOK(t, "ES256 rotated kid after the JWKS went down", es("ec-2", nil))
	wantRefused(t, "unknown kid after the JWKS went down", rs("rsa-unknown", nil))

	// A JWKS-configured server has no generated secret and no banner.
	if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("jwt-secret in the data directory of a JWKS server: %v", err)
	}
	if out := s.stdout.String(); strings.Contains(out, "Admin token") {
		t.Errorf("a JWKS server printed a banner:\n%s", out)
	}
}

// ---------------------------------------------------------------------
// No open mode: the generated secret and the banner

// waitForOutput waits until the process's stdout contains want: the
// banner is written after the "listening" log line start() waits for.
func waitForOutput(t *testing.T, s *server, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		out := s.stdout.String()
		if strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdout lacks %q after 30s:\n%s\nlogs:\n%s", want, out, s.logs)
		}
		select {
		case <-tick.C:
		case <-s.exited:
			t.Fatalf("usersd exited: %v\n%s", s.exitErr, s.logs)
		}
	}
}

var bannerCurl = regexp.MustCompile(`curl -H "Authorization: Bearer ([A-Za-z0-9_.-]+)" (\S+)`)

// bannerToken extracts the admin token from the banner, checking that the
// token line and the curl and grpcurl lines agree and name the server.
func bannerToken(t *testing.T, s *server, out string) string {
	t.Helper()
	var afterHeading string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Admin token") {
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); line != "" {
					afterHeading = line
					break
				}
			}
			break
		}
	}
	m := bannerCurl.FindStringSubmatch(out)
	if m == nil || afterHeading == "" {
		t.Fatalf("no admin token in the banner:\n%s", out)
	}
	if m[1] != afterHeading {
		t.Fatalf("the curl line's token differs from the one printed:\n%s", out)
	}
	if m[2] != "http://"+s.HTTPAddr+"/v1/users" {
		t.Errorf("curl URL %s, server at %s", m[2], s.HTTPAddr)
	}
	grpcurl := regexp.MustCompile(`grpcurl -plaintext -H "authorization: Bearer ` + regexp.QuoteMeta(m[1]) + `" .*` + regexp.QuoteMeta(s.GRPCAddr) + ` users\.v1\.UserService/ListUsers`)
	if !grpcurl.MatchString(out) {
		t.Errorf("no grpcurl line with the token and %s:\n%s", s.GRPCAddr, out)
	}
	return m[1]
}

func TestAuthOpenModeRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "jwt-secret")
	s := startEnv(t, dir, nil)
	out := waitForOutput(t, s, "grpcurl")
	tok := bannerToken(t, s, out)

	fi, err := os.Stat(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("jwt-secret mode %v, want 0600", fi.Mode().Perm())
	}
	secret, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSuffix(string(secret), "\n")
	if len(key) < 32 {
		t.Fatalf("generated secret has %d bytes", len(key))
	}
	if strings.Contains(s.logs.String(), key) || strings.Contains(out, key) {
		t.Error("the generated secret appears in the logs or on stdout")
	}
	if strings.Contains(s.logs.String(), tok) {
		t.Error("the admin token appears in the logs")
	}
	// The banner's token: admin, verified with the generated secret, and
	// usable on both transports.
	v, err := auth.NewHMAC([]byte(key), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(tok); err != nil || !slices.Equal(p.Roles, []string{auth.RoleAdmin}) {
		t.Fatalf("banner token: %+v %v", p, err)
	}
	useToken := func(t *testing.T, s *server, tok string) {
		t.Helper()
		if r := authREST(t, s, "POST", "/v1/users", `{}`, "Bearer "+tok); r.Status != http.StatusCreated {
			t.Fatalf("REST with the token: %d %s", r.Status, r.Body)
		}
		if _, err := usersv1.NewUserServiceClient(bareConn(t, s)).ListUsers(withAuthz(t.Context(), "Bearer "+tok), &usersv1.ListUsersRequest{}); err != nil {
			t.Fatalf("gRPC with the token: %v", err)
		}
	}
	useToken(t, s, tok)
	// Not open: no token, or a token signed with another secret, fails.
	wantUnauthorized(t, authREST(t, s, "GET", "/v1/users", ""), notPresented)
	wantUnauthorized(t, authREST(t, s, "GET", "/v1/users", "", "Bearer "+adminToken), presented)

	// Restart on the same directory: the same secret, the first token
	// still works.
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.logs)
	}
	s2 := startEnv(t, dir, nil)
	again, err := os.ReadFile(secretPath)
	if err != nil || string(again) != string(secret) {
		t.Fatalf("the secret changed across a restart (%v)", err)
	}
	useToken(t, s2, tok)

	// usersd token signs with the same secret.
	cmd := exec.Command(binary, "token", "--role", "admin", "--role", "auditor", "--ttl", "1h", "--db", filepath.Join(dir, "users.db"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	printed, err := cmd.Output()
	if err != nil {
		t.Fatalf("usersd token: %v\n%s", err, stderr.String())
	}
	cliTok := strings.TrimSpace(string(printed))
	if strings.Count(string(printed), "\n") != 1 || strings.ContainsAny(cliTok, " \t\n") {
		t.Fatalf("usersd token printed %q, want one token line", printed)
	}
	claims := tokenPayload(t, cliTok)
	roles, _ := claims["roles"].([]any)
	if !slices.Equal(roles, []any{"admin", "auditor"}) {
		t.Errorf("roles %v", claims["roles"])
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 3600 {
		t.Errorf("exp-iat = %v, want 3600", exp-iat)
	}
	useToken(t, s2, cliTok)
	if fi, err := os.Stat(secretPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("jwt-secret after usersd token: %v %v", fi, err)
	}

	// The banner's token is printed only when the secret is created: a
	// restart prints none (stdout is complete once the process exited).
	if err := s2.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s2.logs)
	}
	if out := s2.stdout.String(); strings.Contains(out, "Admin token") || bannerCurl.MatchString(out) {
		t.Errorf("a restart on an existing secret printed a token:\n%s", out)
	}
	if !strings.Contains(s2.logs.String(), "usersd token --role admin") {
		t.Errorf("a restart on the generated secret does not say how to get a token:\n%s", s2.logs)
	}
}

func TestAuthTokenCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(env []string, args ...string) (string, string, error) {
		cmd := exec.Command(binary, append([]string{"token"}, args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	// Without --role: refused, non-zero, saying why, printing no token.
	out, errOut, err := run(nil, "--db", filepath.Join(dir, "users.db"))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("usersd token without --role: %v, want a non-zero exit", err)
	}
	if strings.TrimSpace(out) != "" || !strings.Contains(errOut, "role") {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}

	// Signed with the configured secret (USERS_JWT_SECRET): a server with
	// that secret accepts it, with the roles given.
	out, errOut, err = run([]string{"USERS_JWT_SECRET=" + string(testSecret)}, "--role", "issuer", "--ttl", "10m", "--db", filepath.Join(dir, "users.db"))
	if err != nil {
		t.Fatalf("usersd token: %v %s", err, errOut)
	}
	tok := strings.TrimSpace(out)
	v, err := auth.NewHMAC(testSecret, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(tok); err != nil || !slices.Equal(p.Roles, []string{auth.RoleIssuer}) {
		t.Fatalf("token from USERS_JWT_SECRET: %+v %v", p, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("usersd token with a configured secret created jwt-secret: %v", err)
	}
	s := start(t, "")
	if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+tok); r.Status != http.StatusOK {
		t.Fatalf("REST: %d %s", r.Status, r.Body)
	}

	// A secret file works the same way, and a short one is refused.
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, append(append([]byte(nil), testSecret...), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = run(nil, "--role", "admin", "--jwt-secret-file", file)
	if err != nil {
		t.Fatalf("usersd token --jwt-secret-file: %v %s", err, errOut)
	}
	if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+strings.TrimSpace(out)); r.Status != http.StatusOK {
		t.Fatalf("REST with the file's token: %d %s", r.Status, r.Body)
	}
	if _, _, err := run([]string{"USERS_JWT_SECRET=short"}, "--role", "admin"); err == nil {
		t.Fatal("usersd token signed with a 5-byte secret")
	}
	if _, _, err := run(nil, "--role", "admin", "--ttl", "-1h", "--db", filepath.Join(dir, "users.db")); err == nil {
		t.Fatal("usersd token accepted a negative ttl")
	}
	if _, errOut, err := run([]string{"USERS_JWT_SECRET=" + string(testSecret)}, "--role", "root"); err == nil || !strings.Contains(errOut, "admin, issuer, auditor") {
		t.Fatalf("an unknown role: %v %q, want a refusal naming the known roles", err, errOut)
	}

	// Run where no server ever ran, with no key configured: refused, naming
	// where it looked and how to fix it; nothing is created.
	elsewhere := t.TempDir()
	cmd := exec.Command(binary, "token", "--role", "admin")
	cmd.Dir = elsewhere
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || stdout.Len() != 0 {
		t.Fatalf("usersd token without a secret: %v, stdout %q", err, stdout.String())
	}
	looked := filepath.Join(elsewhere, "data", "jwt-secret")
	if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, looked) ||
		!strings.Contains(msg, "usersd serve") || !strings.Contains(msg, "--db") {
		t.Fatalf("usersd token without a secret said %q, want one line naming %s and the fix", msg, looked)
	}
	if entries, err := os.ReadDir(elsewhere); err != nil || len(entries) != 0 {
		t.Fatalf("usersd token without a secret created %v (%v)", entries, err)
	}
}

// ---------------------------------------------------------------------
// Short secrets are refused at startup

// serveMustFail runs `usersd serve` and expects it to exit non-zero by
// itself, saying why; it returns the output.
func serveMustFail(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	argv := append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--db", filepath.Join(dir, "users.db")}, args...)
	cmd := exec.CommandContext(ctx, binary, argv...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	output := &watchBuffer{want: `"msg":"listening"`, seen: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-output.seen:
		cancel()
		<-exited
		t.Fatalf("usersd serve %q with %q started listening:\n%s", args, env, output)
	case <-ctx.Done():
		<-exited
		t.Fatalf("usersd serve %q with %q did not exit by itself:\n%s", args, env, output)
	}
	out := output.String()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("usersd serve %q with %q: %v, want a non-zero exit\n%s", args, env, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "jwt-secret")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused configuration left a generated jwt-secret: %v", err)
	}
	return string(out)
}

// watchBuffer collects output and closes seen once it contains want.
type watchBuffer struct {
	lockedBuffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	n, err := w.lockedBuffer.Write(p)
	if strings.Contains(w.lockedBuffer.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func TestAuthShortSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short10 := write("short10", []byte("0123456789"))
	short31nl := write("short31nl", []byte(strings.Repeat("x", 31)+"\n")) // 32 bytes, 31 after the newline
	exact32 := []byte("abcdefghijklmnopqrstuvwxyz012345")
	exact32nl := write("exact32nl", append(append([]byte(nil), exact32...), '\n'))

	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"USERS_JWT_SECRET", []string{"USERS_JWT_SECRET=short"}, nil},
		{"USERS_JWT_SECRET of 31 bytes", []string{"USERS_JWT_SECRET=" + strings.Repeat("y", 31)}, nil},
		{"--jwt-secret-file of 10 bytes", nil, []string{"--jwt-secret-file", short10}},
		{"USERS_JWT_SECRET_FILE of 10 bytes", []string{"USERS_JWT_SECRET_FILE=" + short10}, nil},
		{"31 bytes and a newline", nil, []string{"--jwt-secret-file", short31nl}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := serveMustFail(t, tc.env, tc.args...)
			if !strings.Contains(out, "32") || !strings.Contains(strings.ToLower(out), "secret") {
				t.Fatalf("the refusal does not mention the 32-byte minimum:\n%s", out)
			}
		})
	}

	t.Run("missing secret file", func(t *testing.T) {
		serveMustFail(t, nil, "--jwt-secret-file", filepath.Join(dir, "no-such-file"))
	})

	// Exactly 32 bytes plus a trailing newline: accepted, the newline is
	// not part of the key.
	for _, how := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--jwt-secret-file", exact32nl}},
		{"env", []string{"USERS_JWT_SECRET_FILE=" + exact32nl}, nil},
	} {
		t.Run("32 bytes and a newline/"+how.name, func(t *testing.T) {
			s := startEnv(t, "", how.env, how.args...)
			good, err := auth.IssueHS256(exact32, auth.TokenSpec{Subject: "e2e-admin", Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			withNewline, err := auth.IssueHS256(append(append([]byte(nil), exact32...), '\n'), auth.TokenSpec{Subject: "e2e-admin", Roles: []string{auth.RoleAdmin}, TTL: time.Hour}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if r := authREST(t, s, "GET", "/v1/users", "", "Bearer "+good); r.Status != http.StatusOK {
				t.Fatalf("token signed with the 32 bytes: %d %s", r.Status, r.Body)
			}
			wantUnauthorized(t, authREST(t, s, "GET", "/v1/users", "", "Bearer "+withNewline), presented)
			if strings.Contains(s.stdout.String(), "Admin token") {
				t.Errorf("banner printed with a configured secret")
			}
		})
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
