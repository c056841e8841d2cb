package accesslog

import (
	"context"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/gatewayconn"
	"github.com/usersd/usersd/internal/requestid"
)

type missingUsers struct {
	usersv1.UnimplementedUserServiceServer
}

func (missingUsers) GetUser(context.Context, *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	return nil, status.Error(codes.NotFound, "User not found")
}

func dial(t *testing.T, lis *bufconn.Listener) usersv1.UserServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///test",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return usersv1.NewUserServiceClient(conn)
}

// handledTotal sums grpc_server_handled_total for a transport.
func handledTotal(t *testing.T, reg *prometheus.Registry, transport string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "grpc_server_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "transport" && l.GetValue() == transport {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// A native call is logged once; a call over the gateway's channel is not
// (its REST line is written by the HTTP middleware) but sends the caller
// back in a trailer. Both are counted, each under its transport.
func TestInterceptorTellsGatewayCallsApart(t *testing.T) {
	rc, logs, reg := newTestRecorder(t, "")
	chain := []grpc.UnaryServerInterceptor{
		requestid.UnaryServerInterceptor(),
		rc.UnaryMetrics(),
		rc.UnaryServerInterceptor(),
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			SetSubject(ctx, "alice") // as authentication does
			return handler(ctx, req)
		},
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(chain...))
	usersv1.RegisterUserServiceServer(srv, missingUsers{})
	native := bufconn.Listen(1 << 16)
	go srv.Serve(native)
	t.Cleanup(srv.Stop)
	gw := gatewayconn.NewChannel(chain...)
	usersv1.RegisterUserServiceServer(gw, missingUsers{})

	ctx := metadata.AppendToOutgoingContext(t.Context(), requestid.MetadataKey, "rid-native")
	var trailer metadata.MD
	_, err := dial(t, native).GetUser(ctx, &usersv1.GetUserRequest{Id: "x"}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("native call: %v", err)
	}
	if trailer.Get(subjectTrailer) != nil {
		t.Fatal("a native call got the subject trailer")
	}
	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines after a native call: %v", len(lines), lines)
	}
	wantFields(t, lines[0], map[string]any{
		"transport": "grpc", "rpc": "users.v1.UserService/GetUser", "code": "NotFound", "error": "User not found",
		"request_id": "rid-native", "subject": "alice", "client": "bufconn", "peer": "bufconn",
	})

	_, err = usersv1.NewUserServiceClient(gw).GetUser(t.Context(), &usersv1.GetUserRequest{Id: "x"}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("gateway call: %v", err)
	}
	if got := trailer.Get(subjectTrailer); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("subject trailer %v", got)
	}
	if n := len(logs.lines(t)); n != 1 {
		t.Fatalf("%d lines after a gateway call, want still 1", n)
	}
	if g, r := handledTotal(t, reg, GRPC), handledTotal(t, reg, REST); g != 1 || r != 1 {
		t.Fatalf("grpc_server_handled_total: grpc %v, rest %v; want 1 each", g, r)
	}
}
