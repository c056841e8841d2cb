package unarychain

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// echoUsers answers GetUser with the id it was asked for.
type echoUsers struct {
	usersv1.UnimplementedUserServiceServer
}

func (echoUsers) GetUser(_ context.Context, req *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	return &usersv1.GetUserResponse{User: &usersv1.User{Id: req.GetId()}}, nil
}

// recorder returns stages that note their names, in the order they run,
// and the method each was told it intercepts.
func recorder(names ...string) (stages []grpc.UnaryServerInterceptor, ran *[]string) {
	ran = new([]string)
	for _, name := range names {
		stages = append(stages, func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			*ran = append(*ran, name+" "+info.FullMethod)
			return h(ctx, req)
		})
	}
	return stages, ran
}

func getUser(t *testing.T, call grpc.UnaryHandler, id string) {
	t.Helper()
	resp, err := call(t.Context(), &usersv1.GetUserRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.(*usersv1.GetUserResponse).GetUser().GetId(); got != id {
		t.Fatalf("the service answered for %q, want %q", got, id)
	}
}

// A registered method's chain runs every stage in order, first outermost,
// with the method's info, and then the service with the call's request.
func TestMethodRunsItsStagesThenTheService(t *testing.T) {
	stages, ran := recorder("a", "b", "c")
	c := New(stages...)
	usersv1.RegisterUserServiceServer(c, echoUsers{})
	m, ok := c.Method(usersv1.UserService_GetUser_FullMethodName)
	if !ok {
		t.Fatal("GetUser is not registered")
	}
	if _, ok := m.Request.(*usersv1.GetUserRequest); !ok {
		t.Errorf("the method's request is a %T", m.Request)
	}
	for _, id := range []string{"first", "second"} {
		*ran = nil
		getUser(t, m.Call, id)
		g := usersv1.UserService_GetUser_FullMethodName
		if want := []string{"a " + g, "b " + g, "c " + g}; !slices.Equal(*ran, want) {
			t.Errorf("call %q ran %q, want %q", id, *ran, want)
		}
	}
	if _, ok := c.Method("/users.v1.UserService/NoSuchMethod"); ok {
		t.Error("an unregistered method was found")
	}
}

// As a server's interceptor, a registered method runs its built chain;
// any other method passes every stage all the same, around the handler
// the server gives: no method skips a stage (authentication is one).
func TestUnaryServerInterceptor(t *testing.T) {
	stages, ran := recorder("a", "b")
	c := New(stages...)
	usersv1.RegisterUserServiceServer(c, echoUsers{})
	intercept := c.UnaryServerInterceptor()

	getUserInfo := &grpc.UnaryServerInfo{FullMethod: usersv1.UserService_GetUser_FullMethodName}
	resp, err := intercept(t.Context(), &usersv1.GetUserRequest{Id: "u"}, getUserInfo, func(context.Context, any) (any, error) {
		// A server's handler of a registered method calls the same
		// service method as the built chain; this one answers apart, so
		// that the answer tells which ran.
		return &usersv1.GetUserResponse{User: &usersv1.User{Id: "the server's handler"}}, nil
	})
	if err != nil || resp.(*usersv1.GetUserResponse).GetUser().GetId() != "u" {
		t.Fatalf("GetUser: %v, %v", resp, err)
	}
	g := getUserInfo.FullMethod
	if want := []string{"a " + g, "b " + g}; !slices.Equal(*ran, want) {
		t.Errorf("GetUser ran %q, want %q", *ran, want)
	}

	*ran = nil
	other := &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"}
	served := false
	if _, err := intercept(t.Context(), "req", other, func(_ context.Context, req any) (any, error) {
		served = req == "req"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a " + other.FullMethod, "b " + other.FullMethod}; !served || !slices.Equal(*ran, want) {
		t.Errorf("an unregistered method ran %q (served: %v), want %q and its handler", *ran, served, want)
	}
}

// A built chain allocates nothing per stage: ten more stages cost a call
// no allocation (grpc-go's chaining makes a closure per stage per call).
func TestStagesAllocateNothing(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters change allocations")
	}
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	allocs := func(stages ...grpc.UnaryServerInterceptor) float64 {
		c := New(stages...)
		usersv1.RegisterUserServiceServer(c, echoUsers{})
		m, _ := c.Method(usersv1.UserService_GetUser_FullMethodName)
		req := &usersv1.GetUserRequest{Id: "u"}
		return testing.AllocsPerRun(100, func() {
			if _, err := m.Call(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		})
	}
	one, eleven := allocs(pass), allocs(slices.Repeat([]grpc.UnaryServerInterceptor{pass}, 11)...)
	if eleven != one {
		t.Errorf("a call through 11 stages allocates %.0f times, through 1 %.0f: stages allocate per call", eleven, one)
	}
}

// A method handler that does not hand its interceptor what bind takes
// (not one protoc-gen-go-grpc generated) is refused at registration,
// not found out on the first call.
func TestRefusesOtherHandlers(t *testing.T) {
	desc := &grpc.ServiceDesc{ServiceName: "s", Methods: []grpc.MethodDesc{{
		MethodName: "m",
		Handler: func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
			return nil, nil
		},
	}}}
	defer func() {
		if recover() == nil {
			t.Error("registered a handler that never calls its interceptor")
		}
	}()
	New().RegisterService(desc, nil)
}
