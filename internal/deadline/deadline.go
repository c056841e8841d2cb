// Package deadline gives every gRPC call a deadline, so that every wait
// inside the server (for room in the event buffer, for the database) is
// bounded even when the client set none.
package deadline

import (
	"context"
	"time"

	"google.golang.org/grpc"
)

// UnaryServerInterceptor bounds each call to d from its start. It only
// shortens: a client deadline that comes sooner stays as it is, a later
// one or none becomes d. It belongs outermost in the chain, so the bound
// covers every interceptor after it.
func UnaryServerInterceptor(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		// A client deadline within the bound is kept as it is: no timer
		// and no context to make (six allocations) for clients that set
		// one, as most do.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
			return handler(ctx, req)
		}
		// A derived context keeps the sooner of its parent's deadline and
		// its own.
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return handler(ctx, req)
	}
}
