package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/gatewayconn"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
)

// failingUsers fails GetUser with an INTERNAL status that carries no
// ErrorInfo, as a panic or a transport fault on the server would.
type failingUsers struct {
	usersv1.UnimplementedUserServiceServer
}

func (failingUsers) GetUser(context.Context, *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	return nil, status.Error(codes.Internal, "boom")
}

// inProcessConn serves users as usersd does, on the gateway's in-process
// channel, behind the request id interceptor as the real server is (then
// stages, if any).
func inProcessConn(users usersv1.UserServiceServer, stages ...grpc.UnaryServerInterceptor) grpc.ClientConnInterface {
	ch := gatewayconn.NewChannel(append([]grpc.UnaryServerInterceptor{requestid.UnaryServerInterceptor()}, stages...)...)
	usersv1.RegisterUserServiceServer(ch, users)
	return ch
}

// callContext is the context in which the generated handler calls the
// error handler for a request: it names the RPC.
func callContext(t *testing.T, r *http.Request, fullMethod string) context.Context {
	t.Helper()
	ctx, err := runtime.AnnotateContext(r.Context(), runtime.NewServeMux(), r, fullMethod)
	if err != nil {
		t.Fatal(err)
	}
	return ctx
}

// An INTERNAL status is a 500 when the call reached the server, and a 400
// when grpc-go could not even marshal the request, which only a network
// connection does (the gateway may be given one, as the loopback
// benchmark does): the errors here are the real ones grpc-go returns.
func TestErrorHandlerInternalThatNeverReachedTheServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(requestid.UnaryServerInterceptor()))
	usersv1.RegisterUserServiceServer(srv, failingUsers{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
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

// The error handler renders a refusal the guard decided when the call
// failed for it (its reason), so a refused request without a token is
// still a 401; the status of a refusal comes from its reason; our
// service's statuses keep their messages, others get generic ones; a 401
// challenges for a token, naming an invalid one.
func TestErrorHandlerRendering(t *testing.T) {
	g := &Gateway{log: slog.New(slog.DiscardHandler), routes: testRoutes, byRPC: testRoutes.byRPC()}
	plain := func() *http.Request { return httptest.NewRequest("PUT", "/v1/users/x", nil) }
	tooLarge := func() *http.Request {
		return markRejected(plain(), &rejection{reason: rpcerr.ReasonPayloadTooLarge, message: "The request body must be at most 10 bytes"})
	}
	unknownKey := func() *http.Request {
		return markRejected(plain(), &rejection{reason: rpcerr.ReasonInvalidBody, message: "Validation failed",
			details: []detail{{Value: "1", Msg: "unknown field", Param: "nope", Location: locBody}}})
	}
	bodyKept := func() *http.Request {
		r := plain()
		r.Body = newCheckedBody([]byte(`{"claims":{"a":"bad value"}}`), nil) // only its text is quoted
		return r
	}
	const (
		challenge        = `Bearer realm="usersd"`
		invalidChallenge = `Bearer realm="usersd", error="invalid_token", error_description="Token 'x' has expired"`
	)
	for _, tc := range []struct {
		name      string
		req       func() *http.Request
		err       error
		status    int
		word      string
		message   string
		details   []string // param@location=value: msg
		challenge string   // WWW-Authenticate
	}{
		{"case=refusal rendered", tooLarge, rpcerr.Rejected(rpcerr.ReasonPayloadTooLarge), 413, "PayloadTooLarge", "The request body must be at most 10 bytes", nil, ""},
		{"case=refusal details rendered", unknownKey, rpcerr.Rejected(rpcerr.ReasonInvalidBody), 400, "BadRequest", "Validation failed", []string{"nope@body=1: unknown field"}, ""},
		{"case=a refusal's status comes from its reason", plain, rpcerr.Rejected(rpcerr.ReasonUnsupportedMediaType), 415, "UnsupportedMediaType", "Request rejected", nil, ""},
		{"case=refused request failing authentication first is a 401", tooLarge,
			rpcerr.New(codes.Unauthenticated, "Missing bearer token", rpcerr.ReasonMissingToken), 401, "Unauthorized", "Missing bearer token", nil, challenge},
		{"case=refused request failing authorization first is a 403", tooLarge,
			rpcerr.New(codes.PermissionDenied, "Role required", rpcerr.ReasonRoleRequired), 403, "Forbidden", "Role required", nil, ""},
		{"case=invalid token", plain,
			rpcerr.New(codes.Unauthenticated, `Token "x" has expired`, rpcerr.ReasonInvalidToken), 401, "Unauthorized", `Token "x" has expired`, nil, invalidChallenge},
		{"case=401 from elsewhere", plain, status.Error(codes.Unauthenticated, "transport: secrets"), 401, "Unauthorized", "Unauthorized", nil, challenge},
		{"case=service status keeps its message", plain,
			rpcerr.New(codes.NotFound, "User not found", "USER_NOT_FOUND"), 404, "NotFound", "User not found", nil, ""},
		{"case=status from elsewhere gets a generic message", plain, status.Error(codes.NotFound, "grpc: internals"), 404, "NotFound", "Not found", nil, ""},
		{"case=service violations become details with the value sent", bodyKept,
			rpcerr.New(codes.InvalidArgument, "Validation failed", "INVALID_ARGUMENT", &errdetails.BadRequest{
				FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "user.claims.a", Description: "must be short"}},
			}), 400, "BadRequest", "Validation failed", []string{"claims.a@body=bad value: must be short"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r := tc.req()
			g.errorHandler(callContext(t, r, usersv1.UserService_UpdateUser_FullMethodName), nil, nil, rec, r, tc.err)
			var body errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			var details []string
			for _, d := range body.Details {
				details = append(details, d.Param+"@"+d.Location+"="+d.Value+": "+d.Msg)
			}
			if rec.Code != tc.status || body.Code != tc.word || body.Message != tc.message || !slices.Equal(details, tc.details) {
				t.Fatalf("got %d %s %q %q\nwant %d %s %q %q", rec.Code, body.Code, body.Message, details, tc.status, tc.word, tc.message, tc.details)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
		})
	}
}
