package accesslog

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
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

// A native call is logged once; a call over the gateway's channel is not:
// it runs in its REST request's context, whose line (written by the HTTP
// middleware) takes the caller the call verified. Both are counted, each
// under its transport.
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
	_, err := dial(t, native).GetUser(ctx, &usersv1.GetUserRequest{Id: "x"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("native call: %v", err)
	}
	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d lines after a native call: %v", len(lines), lines)
	}
	wantFields(t, lines[0], map[string]any{
		"transport": "grpc", "rpc": "users.v1.UserService/GetUser", "code": "NotFound", "error": "User not found",
		"request_id": "rid-native", "subject": "alice", "client": "bufconn", "peer": "bufconn",
	})

	rest := rc.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := usersv1.NewUserServiceClient(gw).GetUser(r.Context(), &usersv1.GetUserRequest{Id: "x"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("gateway call: %v", err)
		}
		NoteCall(r.Context(), usersv1.UserService_GetUser_FullMethodName, err)
		w.WriteHeader(http.StatusNotFound)
	}))
	serve(rest, httptest.NewRequest("GET", "/v1/users/x", nil))
	lines = logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("%d lines after a native and a gateway call, want 2 (one each): %v", len(lines), lines)
	}
	if lines[1]["transport"] != "rest" || lines[1]["subject"] != "alice" || lines[1]["code"] != "NotFound" {
		t.Fatalf("the gateway call's line %v, want the REST line with subject alice and code NotFound", lines[1])
	}
	if g, r := handledTotal(t, reg, GRPC), handledTotal(t, reg, REST); g != 1 || r != 1 {
		t.Fatalf("grpc_server_handled_total: grpc %v, rest %v; want 1 each", g, r)
	}
}
