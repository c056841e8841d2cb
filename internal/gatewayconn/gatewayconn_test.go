package gatewayconn

import (
	"context"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

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
