package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
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
	usersv1.UserService_SearchUsers_FullMethodName: {"POST", "/v1/users/search", `{"claims":{"k":"v"},"limit":1}`,
		func(ctx context.Context, c usersv1.UserServiceClient, _ string) error {
			limit := int32(1)
			_, err := c.SearchUsers(ctx, &usersv1.SearchUsersRequest{Limit: &limit})
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
// No open mode: the generated secret and the banner

// waitForOutput waits until the process's stdout contains want: the
// banner is written after the "listening" log line start() waits for.
func waitForOutput(t *testing.T, s *server, want string) string {
	t.Helper()
	limit := wait(30 * time.Second)
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		out := s.stdout.String()
		if strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdout lacks %q after %v:\n%s\nlogs:\n%s", want, limit, out, s.logs)
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
