package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
)

// Each stage's decision is one debug line naming the stage, the call and
// what was decided; nothing at info level.
func TestDecisionsAtDebugLevel(t *testing.T) {
	var buf bytes.Buffer
	d := newDecisions(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	info := &grpc.UnaryServerInfo{FullMethod: usersv1.UserService_GetUser_FullMethodName}
	ctx := requestid.NewContext(context.Background(), "rid-1")
	handler := func(context.Context, any) (any, error) { return "ok", nil }
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		return next(ctx, req)
	}
	authenticate := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		return next(auth.NewContext(ctx, auth.Principal{Subject: "alice", Roles: []string{auth.RoleAdmin}}), req)
	}
	refuse := func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
		return nil, rpcerr.New(codes.ResourceExhausted, "Too many requests", "RATE_LIMITED")
	}
	for _, tc := range []struct {
		stage string
		i     grpc.UnaryServerInterceptor
		want  map[string]string // "" when no line is expected
	}{
		{stageInFlight, pass, map[string]string{"decision": "admitted"}},
		{stageAuthentication, authenticate, map[string]string{"decision": "authenticated", "subject": "alice"}},
		{stageRateLimit, refuse, map[string]string{"decision": "refused", "code": "ResourceExhausted", "reason": "RATE_LIMITED", "error": "Too many requests"}},
		{stageEvents, pass, map[string]string{"decision": "recorded", "event": "USER_RETRIEVE_START"}},
		{stageAuthorization, pass, map[string]string{"decision": "allowed", "roles": "admin,issuer"}},
		{stageRejections, pass, nil},
		{stageRejections, func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			return nil, rpcerr.Rejected(rpcerr.ReasonUnsupportedMediaType)
		}, map[string]string{"decision": "refused", "code": "InvalidArgument", "reason": rpcerr.ReasonUnsupportedMediaType}},
	} {
		buf.Reset()
		_, _ = d.stage(tc.stage, tc.i)(ctx, nil, info, handler)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if tc.want == nil {
			if buf.Len() != 0 {
				t.Errorf("%s: logged %s, want nothing", tc.stage, buf.String())
			}
			continue
		}
		if len(lines) != 1 {
			t.Fatalf("%s: %d lines: %s", tc.stage, len(lines), buf.String())
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"level": "DEBUG", "msg": "decision", "stage": tc.stage,
			"rpc": "users.v1.UserService/GetUser", "request_id": "rid-1"}
		for k, v := range tc.want {
			want[k] = v
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %q (line %s)", tc.stage, k, got[k], v, lines[0])
			}
		}
	}
}

func TestDecisionsOffAboveDebug(t *testing.T) {
	var buf bytes.Buffer
	d := newDecisions(slog.New(slog.NewJSONHandler(&buf, nil)))
	if d.stage(stageInFlight, nil) != nil {
		t.Fatal("a stage that is off was turned on")
	}
	called := false
	i := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		called = true
		return next(ctx, req)
	}
	_, _ = d.stage(stageInFlight, i)(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"},
		func(context.Context, any) (any, error) { return nil, nil })
	if !called || buf.Len() != 0 {
		t.Fatalf("stage called %v, logged %q", called, buf.String())
	}
}
