package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/requestid"
)

// failingUsers fails GetUser with an INTERNAL status that carries no
// ErrorInfo, as a panic or a transport fault on the server would.
type failingUsers struct {
	usersv1.UnimplementedUserServiceServer
}

func (failingUsers) GetUser(context.Context, *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	return nil, status.Error(codes.Internal, "boom")
}

// An INTERNAL status is a 500 when the call reached the server, and a 400
// when grpc-go could not even marshal the request: the errors here are the
// real ones grpc-go returns.
func TestErrorHandlerInternalThatNeverReachedTheServer(t *testing.T) {
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer(grpc.UnaryInterceptor(requestid.UnaryServerInterceptor()))
	usersv1.RegisterUserServiceServer(srv, failingUsers{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///test",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := usersv1.NewUserServiceClient(conn)
	g := &Gateway{log: slog.New(slog.NewTextHandler(io.Discard, nil)), routes: testRoutes}

	for _, tc := range []struct {
		name    string
		id      string
		status  int
		code    string
		message string
	}{
		{"case=request not encodable (id not UTF-8)", "\xff", 400, "BadRequest", "Invalid request"},
		{"case=server failed", "0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70", 500, "InternalServerError", "Internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var header metadata.MD
			_, err := client.GetUser(t.Context(), &usersv1.GetUserRequest{Id: tc.id}, grpc.Header(&header))
			if status.Code(err) != codes.Internal {
				t.Fatalf("err %v, want INTERNAL", err)
			}
			// As the generated handler does before calling the error handler.
			ctx := runtime.NewServerMetadataContext(t.Context(), runtime.ServerMetadata{HeaderMD: header})
			rec := httptest.NewRecorder()
			g.errorHandler(ctx, nil, nil, rec, httptest.NewRequest("GET", "/v1/users/x", nil), err)
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tc.status || body.Code != tc.code || body.Message != tc.message {
				t.Fatalf("got %d %+v, want %d %s %q", rec.Code, body, tc.status, tc.code, tc.message)
			}
		})
	}
	t.Run("case=no server metadata at all", func(t *testing.T) {
		rec := httptest.NewRecorder()
		g.errorHandler(t.Context(), nil, nil, rec, httptest.NewRequest("GET", "/v1/users/x", nil), status.Error(codes.Internal, "x"))
		if rec.Code != 400 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}
