package e2e

import (
	"context"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// lowerUUIDv7 is the id form the server assigns.
var lowerUUIDv7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// validRequestID is the contract's form of a request id.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// wantViolations asserts an INVALID_ARGUMENT status whose BadRequest
// details name exactly the given fields (in any order).
func wantViolations(t *testing.T, err error, fields ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
	var got []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetDescription() == "" {
					t.Fatalf("violation of %s without description", v.GetField())
				}
				got = append(got, v.GetField())
			}
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(fields))
	if !slices.Equal(got, want) {
		t.Fatalf("field violations %v, want %v (%v)", got, want, err)
	}
}

// wantCode asserts a status code.
func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("got %v, want %v", err, code)
	}
}

// mustStruct builds claims from a Go map.
func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mask(paths ...string) *fieldmaskpb.FieldMask {
	return &fieldmaskpb.FieldMask{Paths: paths}
}

func TestGRPCUserLifecycle(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	c := s.grpc()
	ctx := t.Context()

	prov := &usersv1.AuthenticationProvider{ProviderId: providerA, Url: "https://example-university.au.auth0.com", SubjectId: "grpc-sub-1"}
	prov2 := &usersv1.AuthenticationProvider{ProviderId: missingID, Url: "http://idp.example/x", SubjectId: "grpc-sub-2"}
	claims := mustStruct(t, map[string]any{
		"externalUserId": "e-1", "n": 1.5, "ok": true, "none": nil,
		"nested": map[string]any{"list": []any{"a", 2.0, map[string]any{"deep": "x"}}},
	})

	var hdr metadata.MD
	created, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claims, AuthenticationProvider: prov}}, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	user := created.GetUser()
	id := user.GetId()
	if !lowerUUIDv7.MatchString(id) {
		t.Fatalf("id %q is not a lower-case UUIDv7", id)
	}
	if !proto.Equal(user.GetClaims(), claims) || !proto.Equal(user.GetAuthenticationProvider(), prov) {
		t.Fatalf("create echoed %v", user)
	}
	if ids := hdr.Get("x-request-id"); len(ids) != 1 || !validRequestID.MatchString(ids[0]) {
		t.Fatalf("x-request-id on create: %v", ids)
	}

	// get checks that the stored user is want.
	get := func(t *testing.T, want *usersv1.User) {
		t.Helper()
		resp, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: want.GetId()})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if !proto.Equal(resp.GetUser(), want) {
			t.Fatalf("stored %v, want %v", resp.GetUser(), want)
		}
	}
	// update sends req and wants the result to be want, also when read back.
	update := func(t *testing.T, req *usersv1.UpdateUserRequest, want *usersv1.User) {
		t.Helper()
		req.Id = id
		resp, err := c.UpdateUser(ctx, req)
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		if !proto.Equal(resp.GetUser(), want) {
			t.Fatalf("update returned %v, want %v", resp.GetUser(), want)
		}
		get(t, want)
	}
	userWith := func(claims *structpb.Struct, p *usersv1.AuthenticationProvider) *usersv1.User {
		if claims == nil {
			claims = &structpb.Struct{}
		}
		return &usersv1.User{Id: id, Claims: claims, AuthenticationProvider: p}
	}
	a1 := mustStruct(t, map[string]any{"a": 1.0})
	b2 := mustStruct(t, map[string]any{"b": 2.0})
	z := mustStruct(t, map[string]any{"z": "zz"})

	t.Run("case=get with upper-case id", func(t *testing.T) {
		resp, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: strings.ToUpper(id)})
		if err != nil || !proto.Equal(resp.GetUser(), user) {
			t.Fatalf("got %v %v, want %v", resp.GetUser(), err, user)
		}
	})
	t.Run("case=mask claims replaces only claims", func(t *testing.T) {
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{Claims: a1, AuthenticationProvider: prov2}, UpdateMask: mask("claims")},
			userWith(a1, prov))
	})
	t.Run("case=mask authentication_provider with no provider unlinks", func(t *testing.T) {
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{Claims: b2}, UpdateMask: mask("authentication_provider")},
			userWith(a1, nil))
	})
	t.Run("case=no mask updates the populated fields", func(t *testing.T) {
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{Claims: b2}}, userWith(b2, nil))
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{AuthenticationProvider: prov2}}, userWith(b2, prov2))
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{}}, userWith(b2, prov2))
		update(t, &usersv1.UpdateUserRequest{}, userWith(b2, prov2))
	})
	t.Run("case=mask below claims means the claims", func(t *testing.T) {
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{Claims: z, AuthenticationProvider: prov}, UpdateMask: mask("claims.a.b")},
			userWith(z, prov2))
	})
	t.Run("case=body id equal to the request id in upper case is tolerated", func(t *testing.T) {
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: strings.ToUpper(id), Claims: a1}}, userWith(a1, prov2))
	})
	t.Run("case=both paths with an empty user clears claims and unlinks", func(t *testing.T) {
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{}, UpdateMask: mask("claims", "authentication_provider")},
			userWith(nil, nil))
		update(t, &usersv1.UpdateUserRequest{User: &usersv1.User{Claims: a1, AuthenticationProvider: prov}}, userWith(a1, prov))
	})
	t.Run("case=unknown mask path is refused and changes nothing", func(t *testing.T) {
		_, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: b2}, UpdateMask: mask("claims", "nickname")})
		wantViolations(t, err, "update_mask")
		get(t, userWith(a1, prov))
	})
	t.Run("case=another id in the body is refused", func(t *testing.T) {
		_, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Id: missingID, Claims: b2}})
		wantViolations(t, err, "user.id")
		_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Id: "not-a-uuid", Claims: b2}})
		wantViolations(t, err, "user.id")
		get(t, userWith(a1, prov))
	})
	t.Run("case=id on create is refused", func(t *testing.T) {
		_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Id: missingID}})
		wantViolations(t, err, "user.id")
	})
	t.Run("case=invalid ids", func(t *testing.T) {
		for _, bad := range []string{"", "not-a-uuid", "{" + id + "}", "urn:uuid:" + id, strings.ReplaceAll(id, "-", ""), " " + id, id + "\x00", id + "0"} {
			_, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: bad})
			wantViolations(t, err, "id")
			_, err = c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: bad})
			wantViolations(t, err, "id")
			_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: bad, User: &usersv1.User{Claims: b2}})
			wantViolations(t, err, "id")
		}
		get(t, userWith(a1, prov))
	})
	t.Run("case=invalid provider names every offending field", func(t *testing.T) {
		all := []string{"user.authentication_provider.provider_id", "user.authentication_provider.url", "user.authentication_provider.subject_id"}
		for _, p := range []*usersv1.AuthenticationProvider{
			{},
			{ProviderId: "x", Url: "nope", SubjectId: ""},
			{ProviderId: providerA + "0", Url: "ftp://idp.example", SubjectId: "a\u0085b"},
			{ProviderId: "{" + providerA + "}", Url: "https://" + strings.Repeat("h", 2048), SubjectId: strings.Repeat("s", 257)},
		} {
			_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{AuthenticationProvider: p}})
			wantViolations(t, err, all...)
			_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{AuthenticationProvider: p}})
			wantViolations(t, err, all...)
		}
		_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{
			Claims:                 mustStruct(t, map[string]any{"": 1.0}),
			AuthenticationProvider: &usersv1.AuthenticationProvider{ProviderId: providerA, Url: "mailto:x@example.com", SubjectId: "s"},
		}})
		wantViolations(t, err, "user.claims", "user.authentication_provider.url")
		get(t, userWith(a1, prov))
	})
	t.Run("case=provider link conflict", func(t *testing.T) {
		_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{AuthenticationProvider: prov}})
		wantCode(t, err, codes.AlreadyExists)
	})
	t.Run("case=x-request-id", func(t *testing.T) {
		call := func(t *testing.T, sent string, getID string) (string, error) {
			t.Helper()
			cctx := ctx
			if sent != "" {
				cctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", sent)
			}
			var md metadata.MD
			_, err := c.GetUser(cctx, &usersv1.GetUserRequest{Id: getID}, grpc.Header(&md))
			got := md.Get("x-request-id")
			if len(got) != 1 || !validRequestID.MatchString(got[0]) {
				t.Fatalf("x-request-id %v (error %v)", got, err)
			}
			return got[0], err
		}
		for _, target := range []string{id, missingID, "bad"} {
			generated, err := call(t, "", target)
			if (target == id) != (err == nil) {
				t.Fatalf("get %s: %v", target, err)
			}
			if again, _ := call(t, "", target); again == generated {
				t.Fatalf("two calls got the same generated request id %s", again)
			}
			if got, _ := call(t, "trace-abc.1_X", target); got != "trace-abc.1_X" {
				t.Fatalf("caller's request id replaced by %q", got)
			}
			for _, invalid := range []string{"bad id", strings.Repeat("r", 129), "a/b", "id;x"} {
				if got, _ := call(t, invalid, target); got == invalid {
					t.Fatalf("invalid request id %q echoed", invalid)
				}
			}
		}
	})
	t.Run("case=delete, then not found", func(t *testing.T) {
		if _, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: strings.ToUpper(id)}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		_, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: id})
		wantCode(t, err, codes.NotFound)
		_, err = c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: id})
		wantCode(t, err, codes.NotFound)
		_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: a1}})
		wantCode(t, err, codes.NotFound)
		// The link is free again.
		if _, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{AuthenticationProvider: prov}}); err != nil {
			t.Fatalf("relink after delete: %v", err)
		}
	})
	t.Run("case=list with limit and cursor", func(t *testing.T) {
		// Everything on this server, in creation order.
		var all []string
		l := int32(1000)
		resp, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{Limit: &l})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range resp.GetData() {
			all = append(all, u.GetId())
		}
		all = append(all, createGRPC(t, c, 5)...)
		if len(all) != 6 {
			t.Fatalf("%d users, want 6", len(all))
		}
		for _, limit := range []int32{1, 2, 4, 5, 6, 7} {
			var got []string
			var sizes []int
			cursor := ""
			for range 20 {
				resp, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{Limit: &limit, Cursor: cursor})
				if err != nil {
					t.Fatalf("limit %d: %v", limit, err)
				}
				for _, u := range resp.GetData() {
					if u.GetClaims() == nil {
						t.Fatalf("listed user %s without claims", u.GetId())
					}
					got = append(got, u.GetId())
				}
				sizes = append(sizes, len(resp.GetData()))
				if cursor = resp.GetNextCursor(); cursor == "" {
					break
				}
				if len(resp.GetData()) != int(limit) {
					t.Fatalf("limit %d: a page of %d with a next cursor", limit, len(resp.GetData()))
				}
			}
			if !slices.Equal(got, all) {
				t.Fatalf("limit %d: listed %v, want %v", limit, got, all)
			}
			if want := (len(all) + int(limit) - 1) / int(limit); len(sizes) != want {
				t.Fatalf("limit %d: %d pages %v, want %d (no trailing empty page)", limit, len(sizes), sizes, want)
			}
		}
		zero, big := int32(0), int32(1001)
		_, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{Limit: &zero})
		wantViolations(t, err, "limit")
		_, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{Limit: &big})
		wantViolations(t, err, "limit")
		_, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{Cursor: "bm90LWEtY3Vyc29y"})
		wantViolations(t, err, "cursor")
		_, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{Limit: &zero, Cursor: "x"})
		wantViolations(t, err, "limit", "cursor")
	})
}

func TestGRPCLimits(t *testing.T) {
	t.Parallel()
	s := start(t, "", "--grpc-max-recv-bytes", "65536")
	c := s.grpc()
	ctx := t.Context()

	t.Run("case=request over the receive limit", func(t *testing.T) {
		big := mustStruct(t, map[string]any{"k": strings.Repeat("x", 100<<10)})
		_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Claims: big}})
		wantCode(t, err, codes.ResourceExhausted)
		// Under the receive limit but over the claims limit: a validation error.
		large := mustStruct(t, map[string]any{"k": strings.Repeat("x", 20<<10)})
		_, err = c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Claims: large}})
		wantViolations(t, err, "user.claims")
		// The server still serves.
		if _, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claimsV(1)}}); err != nil {
			t.Fatalf("create after the refusals: %v", err)
		}
	})

	num := structpb.NewNumberValue
	claimsOf := func(fields map[string]*structpb.Value) *structpb.Struct {
		return &structpb.Struct{Fields: fields}
	}
	nested := func(k string, v *structpb.Value) *structpb.Value {
		return structpb.NewStructValue(claimsOf(map[string]*structpb.Value{k: v}))
	}
	for _, tc := range []struct {
		name   string
		claims *structpb.Struct
		fields []string
	}{
		{"case=NaN", claimsOf(map[string]*structpb.Value{"x": num(math.NaN())}), []string{"user.claims.x"}},
		{"case=+Inf", claimsOf(map[string]*structpb.Value{"x": num(math.Inf(1))}), []string{"user.claims.x"}},
		{"case=-Inf", claimsOf(map[string]*structpb.Value{"x": num(math.Inf(-1))}), []string{"user.claims.x"}},
		{"case=2^60", claimsOf(map[string]*structpb.Value{"x": num(1 << 60)}), []string{"user.claims.x"}},
		{"case=-2^60", claimsOf(map[string]*structpb.Value{"x": num(-(1 << 60))}), []string{"user.claims.x"}},
		{"case=nested NaN", claimsOf(map[string]*structpb.Value{"a": nested("b", num(math.NaN())), "ok": num(1)}), []string{"user.claims.a.b"}},
		{"case=all of them at once", claimsOf(map[string]*structpb.Value{
			"n": num(math.NaN()), "i": num(math.Inf(1)), "big": num(1 << 60), "fine": num(3),
		}), []string{"user.claims.n", "user.claims.i", "user.claims.big"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Claims: tc.claims}})
			wantViolations(t, err, tc.fields...)
			created, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Claims: claimsV(7)}})
			if err != nil {
				t.Fatal(err)
			}
			id := created.GetUser().GetId()
			_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{Id: id, User: &usersv1.User{Claims: tc.claims}})
			wantViolations(t, err, tc.fields...)
			got, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: id})
			if err != nil || !proto.Equal(got.GetUser().GetClaims(), claimsV(7)) {
				t.Fatalf("claims after a refused update: %v %v", got.GetUser().GetClaims(), err)
			}
		})
	}
}

func TestGRPCHealthAndReflection(t *testing.T) {
	t.Parallel()
	s := start(t, "")
	s.grpc() // dials s.conn
	ctx := t.Context()

	health := healthpb.NewHealthClient(s.conn)
	for _, svc := range []string{"", "users.v1.UserService"} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health of %q: %v %v", svc, resp.GetStatus(), err)
		}
	}
	_, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	wantCode(t, err, codes.NotFound)

	refl := reflectionpb.NewServerReflectionClient(s.conn)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := refl.ServerReflectionInfo(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		services = append(services, svc.GetName())
	}
	for _, want := range []string{"users.v1.UserService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %v, missing %s", services, want)
		}
	}
	// The service's descriptor can be fetched, as grpcurl does.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "users.v1.UserService"},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if fds := resp.GetFileDescriptorResponse().GetFileDescriptorProto(); len(fds) == 0 {
		t.Fatalf("no file descriptor for users.v1.UserService: %v", resp)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}
