package service

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
	"github.com/usersd/usersd/internal/store"
)

// ErrorInfo reasons: stable, machine-readable causes of an error.
const (
	ReasonInvalidArgument      = "INVALID_ARGUMENT"
	ReasonUserNotFound         = "USER_NOT_FOUND"
	ReasonProviderLinkConflict = "PROVIDER_LINK_CONFLICT"
	ReasonETagMismatch         = "ETAG_MISMATCH"
	ReasonInternal             = "INTERNAL"
)

// errorStatus maps an error from a handler to the status the client sees.
// Status errors pass through untouched; unknown errors become a bland
// INTERNAL and are logged with the request id, never sent.
func errorStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	var invalid *ValidationError
	switch {
	case errors.As(err, &invalid):
		br := &errdetails.BadRequest{}
		for _, v := range invalid.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: v.Field, Description: v.Description,
			})
		}
		return rpcerr.New(codes.InvalidArgument, "Validation failed", ReasonInvalidArgument, br)
	case errors.Is(err, store.ErrNotFound):
		return rpcerr.New(codes.NotFound, "User not found", ReasonUserNotFound)
	case errors.Is(err, store.ErrProviderLinkConflict):
		return rpcerr.New(codes.AlreadyExists,
			"This authentication provider account is already linked to another user", ReasonProviderLinkConflict)
	case errors.Is(err, store.ErrVersionMismatch):
		return rpcerr.New(codes.FailedPrecondition, "The user's version does not match If-Match", ReasonETagMismatch)
	case errors.Is(err, store.ErrUnavailable):
		// Not the client's fault, nor a bug: say what broke to the operator,
		// and to the client only that retrying later may work.
		log.WarnContext(ctx, "database unavailable", "method", method, "request_id", requestid.FromContext(ctx), "error", err)
		return rpcerr.Unavailable("Service unavailable, retry later")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	log.ErrorContext(ctx, "internal error", "method", method, "request_id", requestid.FromContext(ctx), "error", err)
	return rpcerr.New(codes.Internal, "Internal error", ReasonInternal)
}

// ErrorMapping is the innermost interceptor of the chain: everything
// outside it (logging, metrics, events) sees the final status code.
func ErrorMapping(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return nil, errorStatus(ctx, log, info.FullMethod, err)
		}
		return resp, nil
	}
}
