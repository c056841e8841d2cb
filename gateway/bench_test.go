package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

// echoUsers answers GetUser and UpdateUser at once, so that a benchmark
// through the gateway measures the REST front and its gRPC hop alone.
type echoUsers struct {
	usersv1.UnimplementedUserServiceServer
	claims *structpb.Struct
}

func (u echoUsers) GetUser(_ context.Context, req *usersv1.GetUserRequest) (*usersv1.GetUserResponse, error) {
	return &usersv1.GetUserResponse{User: &usersv1.User{Id: req.GetId(), Claims: u.claims}}, nil
}

func (u echoUsers) UpdateUser(_ context.Context, req *usersv1.UpdateUserRequest) (*usersv1.UpdateUserResponse, error) {
	return &usersv1.UpdateUserResponse{User: &usersv1.User{Id: req.GetId(), Claims: req.GetUser().GetClaims()}}, nil
}

// The REST front's cost per request: routing, checks, decoding, the
// in-process call and rendering, without auth, events or a store. Run:
//
//	go test ./gateway -run '^$' -bench . -benchmem
func BenchmarkGateway(b *testing.B) {
	claims, _ := structpb.NewStruct(map[string]any{"email": "u@example.com", "name": "Benchmark User", "tier": 3})
	h, err := New(b.Context(), inProcessConn(echoUsers{claims: claims}), Options{
		Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 64 << 10, MaxJSONDepth: 13,
	})
	if err != nil {
		b.Fatal(err)
	}
	const path = "/v1/users/0190a7c2-7e3b-7c41-9f3e-2b1c4d5e6f70"
	for _, bc := range []struct {
		name, method, body string
	}{
		{"GetUser", "GET", ""},
		{"UpdateUser", "PUT", `{"claims":{"email":"u@example.com","n":12345}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(bc.method, path, strings.NewReader(bc.body))
				if bc.body != "" {
					r.Header.Set("Content-Type", "application/json")
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
