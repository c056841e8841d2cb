package gatewayconn

import (
	"context"
	"net"
	"slices"
	"testing"

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

	var c shareFields
	if err := c.Copy(&usersv1.User{}, &usersv1.GetUserRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("copying between message types: %v, want INTERNAL", err)
	}
	clone, err := c.Clone(want)
	if err != nil || !proto.Equal(clone.(proto.Message), want) {
		t.Fatalf("clone %v (%v), want %v", clone, err, want)
	}
}
