package gatewayconn

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
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
// with the caller's metadata; only they carry the mark, and a network
// call to the same service does not.
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

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	usersv1.RegisterUserServiceServer(srv, recordingUsers{})
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if resp, err := usersv1.NewUserServiceClient(conn).GetUser(ctx, &usersv1.GetUserRequest{}); err != nil || resp.GetUser().GetId() != "network,v" {
		t.Fatalf("over TCP: %v, %v; want no mark", resp, err)
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

type ctxKey struct{}

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
	return &usersv1.GetUserResponse{User: &usersv1.User{Id: fmt.Sprintf("deadline=%v value=%v", deadline, ctx.Value(ctxKey{}))}}, nil
}

// The handler gets the caller's deadline but none of its context values,
// as over a network; what it sets as header and trailer reaches the
// caller's options.
func TestChannelContextHeaderAndTrailer(t *testing.T) {
	ch := NewChannel()
	usersv1.RegisterUserServiceServer(ch, seeingUsers{})
	client := usersv1.NewUserServiceClient(ch)
	ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), ctxKey{}, "secret"), time.Minute)
	defer cancel()
	var header, trailer metadata.MD
	resp, err := client.GetUser(ctx, &usersv1.GetUserRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetUser().GetId(); got != "deadline=true value=<nil>" {
		t.Errorf("the handler saw %s, want the deadline and no value", got)
	}
	if !slices.Equal(header.Get("h"), []string{"1", "2"}) || !slices.Equal(trailer.Get("t"), []string{"x"}) {
		t.Errorf("header %v, trailer %v", header, trailer)
	}
}
