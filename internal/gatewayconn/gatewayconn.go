// Package gatewayconn is the REST gateway's connection to the users
// service: an in-process gRPC channel (grpchan's inprocgrpc) that runs the
// server's own interceptor chain and handlers, without HTTP/2 framing and
// without encoding the messages. Only calls over it carry inprocgrpc's
// client context, which no network client can forge, so that is the one
// answer to "did this come from our own gateway?": for logging a REST
// request once and for honouring the gateway's refusal mark.
package gatewayconn

import (
	"context"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc"
)

// NewChannel returns a channel whose calls pass stages in order, the first
// outermost, as grpc.ChainUnaryInterceptor orders them on a server.
// Register the services on it.
func NewChannel(stages ...grpc.UnaryServerInterceptor) *inprocgrpc.Channel {
	ch := &inprocgrpc.Channel{}
	if len(stages) > 0 {
		ch.WithServerUnaryInterceptor(chain(stages))
	}
	return ch
}

func chain(stages []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return stages[0](ctx, req, info, next(stages, 1, info, handler))
	}
}

func next(stages []grpc.UnaryServerInterceptor, i int, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) grpc.UnaryHandler {
	if i == len(stages) {
		return handler
	}
	return func(ctx context.Context, req any) (any, error) {
		return stages[i](ctx, req, info, next(stages, i+1, info, handler))
	}
}

// FromContext reports whether the gRPC call in ctx came over a channel
// of NewChannel.
func FromContext(ctx context.Context) bool {
	return inprocgrpc.ClientContext(ctx) != nil
}
