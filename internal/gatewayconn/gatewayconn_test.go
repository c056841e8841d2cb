package gatewayconn

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// recordingUsers answers GetUser with whether the call came over a
// channel, and the incoming metadata's "k".
type recordingUsers struct {
	usersv1.UnimplementedUserServiceServer
}

func (recordingUsers) GetUser(ctx context.Context, _ *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	id := "network"
	if FromContext(ctx) {
		id = "channel"
	}
	if k := metadata.ValueFromIncomingContext(ctx, "k"); len(k) == 1 {
		id += "," + k[0]
	}
	return &usersv1.GetUserResponse{User: &usersv1.User{Id: id}}, nil
}

// Calls over a channel pass its stages in order, the first outermost,
// with the caller's metadata and the mark, which nothing else carries.
func TestChannel(t *testing.T) {
	var order []string
	stage := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			order = append(order, name+" in")
			defer func() { order = append(order, name+" out") }()
			return handler(ctx, req)
		}
	}
	ch := NewChannel(stage("a"), stage("b"), stage("c"))
	usersv1.RegisterUserServiceServer(ch, recordingUsers{})
	ctx := metadata.AppendToOutgoingContext(t.Context(), "k", "v")
	resp, err := usersv1.NewUserServiceClient(ch).GetUser(ctx, &usersv1.GetUserRequest{})
	if err != nil || resp.GetUser().GetId() != "channel,v" {
		t.Fatalf("over the channel: %v, %v; want the mark and the metadata", resp, err)
	}
	if want := []string{"a in", "b in", "c in", "c out", "b out", "a out"}; !slices.Equal(order, want) {
		t.Fatalf("stages ran %v, want %v", order, want)
	}

	bare := NewChannel()
	usersv1.RegisterUserServiceServer(bare, recordingUsers{})
	if resp, err := usersv1.NewUserServiceClient(bare).GetUser(t.Context(), &usersv1.GetUserRequest{}); err != nil || resp.GetUser().GetId() != "channel" {
		t.Fatalf("over a channel without stages: %v, %v", resp, err)
	}

	if FromContext(context.Background()) {
		t.Fatal("a bare context is marked")
	}
}

// echoUsers answers SearchUsers with the request's claims as its one
// user's claims, and the request's cursor as the next one.
type echoUsers struct {
	usersv1.UnimplementedUserServiceServer
}

func (echoUsers) SearchUsers(_ context.Context, req *usersv1.SearchUsersRequest) (*usersv1.SearchUsersResponse, error) {
	cursor := req.GetCursor()
	return &usersv1.SearchUsersResponse{
		Data:       []*usersv1.User{{Id: "u1", Claims: req.GetClaims()}, {Id: "u2"}},
		NextCursor: &cursor,
	}, nil
}

// Messages cross the channel whole, nested messages, lists and presence
// included, whatever the reply message held before.
func TestChannelCarriesMessagesWhole(t *testing.T) {
	ch := NewChannel()
	usersv1.RegisterUserServiceServer(ch, echoUsers{})
	claims, err := structpb.NewStruct(map[string]any{"a": []any{1.0, "x", map[string]any{"b": nil}}, "c": true})
	if err != nil {
		t.Fatal(err)
	}
	limit := int32(7)
	req := &usersv1.SearchUsersRequest{Claims: claims, Limit: &limit, Cursor: "next"}
	reply := &usersv1.SearchUsersResponse{Data: []*usersv1.User{{Id: "stale"}}}
	if err := ch.Invoke(t.Context(), usersv1.UserService_SearchUsers_FullMethodName, req, reply); err != nil {
		t.Fatal(err)
	}
	cursor := "next"
	want := &usersv1.SearchUsersResponse{Data: []*usersv1.User{{Id: "u1", Claims: claims}, {Id: "u2"}}, NextCursor: &cursor}
	if !proto.Equal(reply, want) {
		t.Fatalf("reply %v, want %v", reply, want)
	}

	if err := share(&usersv1.User{}, &usersv1.GetUserRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("sharing between message types: %v, want INTERNAL", err)
	}
	if err := ch.Invoke(t.Context(), "/users.v1.UserService/Nope", req, reply); status.Code(err) != codes.Unimplemented {
		t.Fatalf("an unknown method: %v, want UNIMPLEMENTED", err)
	}
	if _, err := ch.NewStream(t.Context(), &grpc.StreamDesc{}, "/users.v1.UserService/SearchUsers"); status.Code(err) != codes.Unimplemented {
		t.Fatalf("a stream: %v, want UNIMPLEMENTED", err)
	}
}

// seeingUsers reports in GetUser's answer what its context holds, and
// sets a header and a trailer.
type seeingUsers struct {
	usersv1.UnimplementedUserServiceServer
}

func (seeingUsers) GetUser(ctx context.Context, _ *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	_, deadline := ctx.Deadline()
	if err := grpc.SetHeader(ctx, metadata.Pairs("h", "1")); err != nil {
		return nil, err
	}
	if err := grpc.SendHeader(ctx, metadata.Pairs("h", "2")); err != nil {
		return nil, err
	}
	if grpc.SetHeader(ctx, metadata.Pairs("h", "late")) == nil {
		return nil, status.Error(codes.Internal, "a header was set after it was sent")
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs("t", "x")); err != nil {
		return nil, err
	}
	return &usersv1.GetUserResponse{User: &usersv1.User{Id: fmt.Sprintf("deadline=%v", deadline)}}, nil
}

// The handler gets the caller's deadline; what it sets as header and
// trailer reaches the caller's options.
func TestChannelContextHeaderAndTrailer(t *testing.T) {
	ch := NewChannel()
	usersv1.RegisterUserServiceServer(ch, seeingUsers{})
	client := usersv1.NewUserServiceClient(ch)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var header, trailer metadata.MD
	resp, err := client.GetUser(ctx, &usersv1.GetUserRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetUser().GetId(); got != "deadline=true" {
		t.Errorf("the handler saw %s, want the deadline", got)
	}
	if !slices.Equal(header.Get("h"), []string{"1", "2"}) || !slices.Equal(trailer.Get("t"), []string{"x"}) {
		t.Errorf("header %v, trailer %v", header, trailer)
	}
}

// getUserFunc serves GetUser with its function.
type getUserFunc struct {
	usersv1.UnimplementedUserServiceServer
	get func(context.Context) (*usersv1.GetUserResponse, error)
}

func (g getUserFunc) GetUser(ctx context.Context, _ *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	return g.get(ctx)
}

func channelWith(get func(context.Context) (*usersv1.GetUserResponse, error)) *Channel {
	ch := NewChannel()
	usersv1.RegisterUserServiceServer(ch, getUserFunc{get: get})
	return ch
}

// A failing handler's header and trailer still reach the caller, with its
// error; once the call has returned, the handler's stream takes no more
// metadata.
func TestChannelMetadataOfAFailedCall(t *testing.T) {
	var stream grpc.ServerTransportStream
	ch := channelWith(func(ctx context.Context) (*usersv1.GetUserResponse, error) {
		stream = grpc.ServerTransportStreamFromContext(ctx)
		grpc.SetHeader(ctx, metadata.Pairs("h", "1"))
		grpc.SetTrailer(ctx, metadata.Pairs("t", "1"))
		return nil, status.Error(codes.NotFound, "no such user")
	})
	var header, trailer metadata.MD
	_, err := usersv1.NewUserServiceClient(ch).GetUser(t.Context(), &usersv1.GetUserRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
	if status.Code(err) != codes.NotFound || !slices.Equal(header.Get("h"), []string{"1"}) || !slices.Equal(trailer.Get("t"), []string{"1"}) {
		t.Fatalf("err %v, header %v, trailer %v; want NOT_FOUND with both", err, header, trailer)
	}
	for name, set := range map[string]func(metadata.MD) error{"SetHeader": stream.SetHeader, "SendHeader": stream.SendHeader, "SetTrailer": stream.SetTrailer} {
		if err := set(metadata.Pairs("late", "1")); err == nil {
			t.Errorf("%s after the call: no error", name)
		}
	}
	if header.Get("late") != nil || trailer.Get("late") != nil {
		t.Errorf("metadata set after the call reached the caller: %v %v", header, trailer)
	}
}

// The caller's cancellation reaches the handler, and a context the chain
// derives from the handler's hears of it without a goroutine of its own.
func TestChannelCancellation(t *testing.T) {
	ch := channelWith(func(ctx context.Context) (*usersv1.GetUserResponse, error) {
		before := runtime.NumGoroutine()
		derived, cancel := context.WithCancel(ctx)
		defer cancel()
		if started := runtime.NumGoroutine() - before; started != 0 {
			return nil, status.Errorf(codes.Internal, "deriving a context started %d goroutines", started)
		}
		if ctx.Err() == nil {
			return &usersv1.GetUserResponse{}, nil
		}
		<-derived.Done() // at once: the caller was cancelled
		return nil, status.FromContextError(derived.Err()).Err()
	})
	client := usersv1.NewUserServiceClient(ch)
	if _, err := client.GetUser(t.Context(), &usersv1.GetUserRequest{}); err != nil {
		t.Fatalf("a live call: %v", err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := client.GetUser(cancelled, &usersv1.GetUserRequest{}); status.Code(err) != codes.Canceled {
		t.Fatalf("a cancelled call: %v, want CANCELED", err)
	}
}

// A request or a response of the wrong message type is INTERNAL, not a
// panic or a half-filled message.
func TestChannelWrongMessageTypes(t *testing.T) {
	ch := channelWith(func(context.Context) (*usersv1.GetUserResponse, error) {
		return &usersv1.GetUserResponse{User: &usersv1.User{Id: "u"}}, nil
	})
	method := usersv1.UserService_GetUser_FullMethodName
	if err := ch.Invoke(t.Context(), method, &usersv1.GetUserRequest{}, &usersv1.User{}); status.Code(err) != codes.Internal {
		t.Errorf("a reply of another type: %v, want INTERNAL", err)
	}
	if err := ch.Invoke(t.Context(), method, &usersv1.User{}, &usersv1.GetUserResponse{}); status.Code(err) != codes.Internal {
		t.Errorf("a request of another type: %v, want INTERNAL", err)
	}
}
