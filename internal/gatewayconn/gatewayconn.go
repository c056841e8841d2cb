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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// NewChannel returns a channel whose calls pass stages in order, the first
// outermost, as grpc.ChainUnaryInterceptor orders them on a server.
// Register the services on it.
func NewChannel(stages ...grpc.UnaryServerInterceptor) *inprocgrpc.Channel {
	ch := (&inprocgrpc.Channel{}).WithCloner(shareFields{})
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

// shareFields hands a message from one side of the channel to the other by
// reference to its fields, where inprocgrpc's default deep-copies it: a
// page of users was copied value by value, a fifth of a listing's CPU.
// Sharing is safe for the gateway's calls because each side lets go of
// what it shares: the gateway builds a request for one call and does not
// touch it after (a call it gives up on leaves the handler the only
// reader), and a handler's response is its own once returned.
type shareFields struct{}

func (shareFields) Copy(out, in any) error {
	dst, ok1 := out.(proto.Message)
	src, ok2 := in.(proto.Message)
	if !ok1 || !ok2 || dst.ProtoReflect().Descriptor() != src.ProtoReflect().Descriptor() {
		return status.Errorf(codes.Internal, "in-process channel: cannot copy %T into %T", in, out)
	}
	proto.Reset(dst)
	d, sm := dst.ProtoReflect(), src.ProtoReflect()
	sm.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		d.Set(fd, v)
		return true
	})
	if u := sm.GetUnknown(); len(u) > 0 {
		d.SetUnknown(u)
	}
	return nil
}

func (c shareFields) Clone(in any) (any, error) {
	m, ok := in.(proto.Message)
	if !ok {
		return nil, status.Errorf(codes.Internal, "in-process channel: cannot clone %T", in)
	}
	out := m.ProtoReflect().New().Interface()
	return out, c.Copy(out, in)
}
