package accesslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/gatewayconn"
)

// outcomes ends each RPC differently: success, a status, a bare context
// error, another error, a code gRPC does not define; DeleteUser is left
// unimplemented.
type outcomes struct {
	usersv1.UnimplementedUserServiceServer
}

func (outcomes) CreateUser(context.Context, *usersv1.CreateUserRequest) (*usersv1.CreateUserResponse, error) {
	return &usersv1.CreateUserResponse{}, nil
}

func (outcomes) GetUser(context.Context, *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	return nil, status.Error(codes.NotFound, "User not found")
}

func (outcomes) UpdateUser(context.Context, *usersv1.UpdateUserRequest) (*usersv1.UpdateUserResponse, error) {
	return nil, context.Canceled
}

func (outcomes) ListUsers(context.Context, *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	return nil, errors.New("broken")
}

func (outcomes) ListEvents(context.Context, *usersv1.ListEventsRequest) (*usersv1.ListEventsResponse, error) {
	return nil, status.Error(codes.Code(42), "odd")
}

// metricsAfterCalls serves every RPC once or twice on a native listener
// and once over a gateway channel, and a health Watch, with the given metrics
// interceptors, and lists every series the registry then holds with its
// help, type, labels and count (counters; histograms: observations and
// bucket bounds, not the times themselves).
func metricsAfterCalls(t *testing.T, reg *prometheus.Registry, unary grpc.UnaryServerInterceptor, stream grpc.StreamServerInterceptor) []string {
	t.Helper()
	srv := grpc.NewServer(grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream), grpc.WaitForHandlers(true))
	usersv1.RegisterUserServiceServer(srv, outcomes{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	native := bufconn.Listen(1 << 16)
	go srv.Serve(native)
	gw := gatewayconn.NewChannel(unary)
	usersv1.RegisterUserServiceServer(gw, outcomes{})
	ctx := t.Context()
	for _, c := range []usersv1.UserServiceClient{dial(t, native), usersv1.NewUserServiceClient(gw), dial(t, native)} {
		_, _ = c.CreateUser(ctx, &usersv1.CreateUserRequest{})
		_, _ = c.GetUser(ctx, &usersv1.GetUserRequest{})
		_, _ = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{})
		_, _ = c.DeleteUser(ctx, &usersv1.DeleteUserRequest{})
		_, _ = c.ListUsers(ctx, &usersv1.ListUsersRequest{})
		_, _ = c.ListEvents(ctx, &usersv1.ListEventsRequest{})
	}
	conn, err := grpc.NewClient("passthrough:///test", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return native.DialContext(ctx) }), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, cancel := context.WithCancel(ctx)
	watch, err := healthpb.NewHealthClient(conn).Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	conn.Close()
	srv.Stop() // waits for the Watch handler to end
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			value := fmt.Sprint(m.GetCounter().GetValue())
			if h := m.GetHistogram(); h != nil {
				var bounds []float64
				for _, b := range h.GetBucket() {
					bounds = append(bounds, b.GetUpperBound())
				}
				value = fmt.Sprint(h.GetSampleCount(), bounds)
			}
			out = append(out, fmt.Sprintf("%s{%s} %s %s (%s)", mf.GetName(), strings.Join(labels, ","), value, mf.GetType(), mf.GetHelp()))
		}
	}
	slices.Sort(out)
	return out
}

// grpc_server_* read exactly as go-grpc-middleware's provider wrote them,
// configured as usersd had it.
func TestRPCMetricsAreTheProviders(t *testing.T) {
	ref := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(), grpcprom.WithContextLabels(transportLabel))
	refReg := prometheus.NewRegistry()
	refReg.MustRegister(ref)
	labels := grpcprom.WithLabelsFromContext(func(ctx context.Context) prometheus.Labels {
		return prometheus.Labels{transportLabel: transport(ctx)}
	})
	want := metricsAfterCalls(t, refReg, ref.UnaryServerInterceptor(labels), ref.StreamServerInterceptor(labels))

	m := newRPCMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.collectors()...)
	got := metricsAfterCalls(t, reg, m.unaryInterceptor(), m.streamInterceptor())

	if len(want) < 20 {
		t.Fatalf("the reference recorded only %d series: %q", len(want), want)
	}
	if !slices.Equal(got, want) {
		t.Errorf("series differ:\n got %q\nwant %q", got, want)
	}
}

// Counting a call allocates nothing once its series exist.
func TestRPCMetricsCountWithoutAllocating(t *testing.T) {
	m := newRPCMetrics()
	icpt := m.unaryInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: usersv1.UserService_GetUser_FullMethodName}
	ok := func(context.Context, any) (any, error) { return "ok", nil }
	if n := testing.AllocsPerRun(100, func() { _, _ = icpt(context.Background(), nil, info, ok) }); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}
