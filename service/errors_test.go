package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/internal/store"
)

func TestErrorStatus(t *testing.T) {
	passthrough := status.Error(codes.PermissionDenied, "no")
	for _, tc := range []struct {
		name   string
		err    error
		code   codes.Code
		reason string
	}{
		{"case=validation", &ValidationError{Violations: []FieldViolation{{"id", "must be a UUID"}, {"limit", "bad"}}}, codes.InvalidArgument, ReasonInvalidArgument},
		{"case=not found (wrapped)", fmt.Errorf("get user: %w", store.ErrNotFound), codes.NotFound, ReasonUserNotFound},
		{"case=conflict", fmt.Errorf("create: %w", store.ErrProviderLinkConflict), codes.AlreadyExists, ReasonProviderLinkConflict},
		{"case=version mismatch", fmt.Errorf("update: %w", store.ErrVersionMismatch), codes.FailedPrecondition, ReasonETagMismatch},
		{"case=unavailable", fmt.Errorf("create user: sqlite: create user: %w: database or disk is full (13)", store.ErrUnavailable), codes.Unavailable, rpcerr.ReasonUnavailable},
		{"case=canceled", fmt.Errorf("x: %w", context.Canceled), codes.Canceled, ""},
		{"case=deadline", context.DeadlineExceeded, codes.DeadlineExceeded, ""},
		{"case=status passes through", passthrough, codes.PermissionDenied, ""},
		{"case=unknown is internal", errors.New("sqlite: SELECT * FROM users: disk I/O error at /var/db"), codes.Internal, ReasonInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			st := status.Convert(errorStatus(context.Background(), log, "/m", tc.err))
			if st.Code() != tc.code {
				t.Fatalf("code %v, want %v", st.Code(), tc.code)
			}
			var reason string
			var fv int
			var retry time.Duration
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.RetryInfo:
					retry = d.GetRetryDelay().AsDuration()
				case *errdetails.ErrorInfo:
					reason = d.GetReason()
					if d.GetDomain() != rpcerr.Domain {
						t.Fatalf("domain %q", d.GetDomain())
					}
				case *errdetails.BadRequest:
					fv = len(d.GetFieldViolations())
				}
			}
			if reason != tc.reason {
				t.Fatalf("reason %q, want %q", reason, tc.reason)
			}
			if tc.code == codes.InvalidArgument && fv != 2 {
				t.Fatalf("%d field violations, want 2", fv)
			}
			if tc.code == codes.Unavailable {
				if retry != rpcerr.RetryAfter {
					t.Fatalf("RetryInfo delay %v, want %v", retry, rpcerr.RetryAfter)
				}
				if strings.Contains(st.Message(), "disk") || !strings.Contains(logs.String(), "disk is full") {
					t.Fatalf("message %q leaks the cause, or the log lacks it:\n%s", st.Message(), logs.String())
				}
			}
			if tc.code == codes.Internal {
				if strings.Contains(st.Message(), "sqlite") || strings.Contains(st.Message(), "/var/db") {
					t.Fatalf("internal message leaks: %q", st.Message())
				}
				if !strings.Contains(logs.String(), "disk I/O error") {
					t.Fatal("internal error was not logged")
				}
			}
		})
	}
}
