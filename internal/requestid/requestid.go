// Package requestid gives every request an id that follows it through logs,
// events and the response: the caller's X-Request-Id when it is well formed,
// otherwise a generated one.
package requestid

import (
	"context"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/usersd/usersd/internal/ids"
)

// Header is the HTTP header; MetadataKey is its gRPC metadata form.
const (
	Header      = "X-Request-Id"
	MetadataKey = "x-request-id"
	maxLen      = 128
)

type ctxKey struct{}

// Valid reports whether id may be used as given: 1..128 characters of
// [A-Za-z0-9._-], so it is safe in logs and headers.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > maxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// New returns a fresh id (a UUIDv7: unique and time-ordered).
func New() string {
	return ids.NewV7()
}

// pick returns the first candidate if it is valid, else a new id.
func pick(candidates []string) string {
	if len(candidates) > 0 && Valid(candidates[0]) {
		return candidates[0]
	}
	return New()
}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the request id in ctx, or "".
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// fromIncoming picks the id for a gRPC call and announces it in the
// response header metadata, so errors carry it too. A call made in
// process for an HTTP request (the REST gateway's) runs in that request's
// context, which has the id Middleware chose and forwarded already: it
// keeps it.
func fromIncoming(ctx context.Context) context.Context {
	id := FromContext(ctx)
	if id == "" {
		// Only this key: FromIncomingContext would copy all the metadata.
		id = pick(metadata.ValueFromIncomingContext(ctx, MetadataKey))
		ctx = NewContext(ctx, id)
	}
	// SetHeader fails only when headers were already sent, which cannot
	// have happened before the handler ran.
	_ = grpc.SetHeader(ctx, metadata.MD{MetadataKey: {id}})
	return ctx
}

// UnaryServerInterceptor assigns the request id of unary calls.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(fromIncoming(ctx), req)
	}
}

// StreamServerInterceptor assigns the request id of streaming calls.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &stream{ServerStream: ss, ctx: fromIncoming(ss.Context())})
	}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

// Middleware assigns the request id of an HTTP request before anything else
// can answer it: the id is echoed on every response, and the request header
// is normalised so the gateway forwards exactly this id to the gRPC server.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := pick(r.Header.Values(Header))
		r.Header.Set(Header, id)
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
	})
}
