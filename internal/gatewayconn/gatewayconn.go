// Package gatewayconn is the REST gateway's connection to the users
// service: an in-process gRPC channel that runs the server's own
// interceptor chain and handlers, without HTTP/2 framing and without
// encoding the messages. Only calls over it carry its mark in their
// context, which no network client can forge, so that is the one answer
// to "did this come from our own gateway?": for logging a REST request
// once and for honouring the gateway's refusal mark.
//
// grpchan's inprocgrpc does the same on a new goroutine per call, so that
// a caller could give up while the handler runs on; the handler's deep
// stack (the store's SQLite calls) then grew anew on every call, 9% of a
// GetUser's CPU. Here a call runs on its caller's goroutine, net/http's
// connection goroutine, whose stack has grown already: the gRPC server
// runs its handlers on long-lived workers for the same reason. A caller
// cannot leave a handler behind, and needs not: every wait in the chain
// ends with the call's context.
package gatewayconn

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/usersd/usersd/internal/unarychain"
)

// Channel is a grpc.ClientConnInterface that calls the unary methods
// registered on it in process, through its interceptor chain.
type Channel struct {
	chain *unarychain.Chain
}

var (
	_ grpc.ClientConnInterface = (*Channel)(nil)
	_ grpc.ServiceRegistrar    = (*Channel)(nil)
)

// NewChannel returns a channel whose calls pass stages in order, the first
// outermost, as grpc.ChainUnaryInterceptor orders them on a server.
// Register the services on it before the first call.
func NewChannel(stages ...grpc.UnaryServerInterceptor) *Channel {
	return &Channel{chain: unarychain.New(stages...)}
}

// RegisterService makes the unary methods of desc callable, each with its
// chain built once (unarychain); streaming ones are not served.
func (c *Channel) RegisterService(desc *grpc.ServiceDesc, impl any) {
	c.chain.RegisterService(desc, impl)
}

// Invoke runs the method on the calling goroutine, in the caller's
// context (one process: a context that hid the caller's values would also
// hide its cancellation from context.WithCancel, which would then watch
// it with a goroutine per derived context), with the caller's outgoing
// metadata as incoming, and this package's transport stream, which is
// its mark. The response is shared into reply, and the header and trailer
// the handler set reach grpc.Header and grpc.Trailer options.
func (c *Channel) Invoke(ctx context.Context, fullMethod string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.chain.Method(fullMethod)
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s not implemented", fullMethod)
	}
	stream := &transportStream{method: fullMethod}
	sctx := ctx
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		sctx = metadata.NewIncomingContext(sctx, md)
	}
	sctx = grpc.NewContextWithServerTransportStream(sctx, stream)
	in := m.Request.ProtoReflect().New().Interface()
	if err := share(in, args); err != nil {
		return err
	}
	resp, err := m.Call(sctx, in)
	stream.finish(opts)
	if err != nil {
		return err
	}
	return share(reply, resp)
}

// NewStream refuses: the gateway makes unary calls only.
func (c *Channel) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streams are not served in process")
}

// FromContext reports whether the gRPC call in ctx came over a Channel:
// only Invoke gives a call this package's transport stream.
func FromContext(ctx context.Context) bool {
	_, ok := grpc.ServerTransportStreamFromContext(ctx).(*transportStream)
	return ok
}

// transportStream keeps what the handler sets with grpc.SetHeader,
// grpc.SendHeader and grpc.SetTrailer for the caller.
type transportStream struct {
	method string

	mu               sync.Mutex
	header, trailer  metadata.MD
	headerSent, done bool
}

func (s *transportStream) Method() string { return s.method }

func (s *transportStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setHeaderLocked(md)
}

func (s *transportStream) setHeaderLocked(md metadata.MD) error {
	if s.headerSent || s.done {
		return status.Error(codes.Internal, "header already sent")
	}
	s.header = appendMD(s.header, md)
	return nil
}

func (s *transportStream) SendHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.setHeaderLocked(md); err != nil {
		return err
	}
	s.headerSent = true
	return nil
}

func (s *transportStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return status.Error(codes.Internal, "trailer already sent")
	}
	s.trailer = appendMD(s.trailer, md)
	return nil
}

// appendMD adds md's values to to's, in place: metadata.Join would copy
// to's every time a handler sets one more.
func appendMD(to, md metadata.MD) metadata.MD {
	if to == nil {
		to = make(metadata.MD, len(md))
	}
	for k, v := range md {
		to[k] = append(to[k], v...)
	}
	return to
}

// finish ends the call and hands its header and trailer to the caller's
// options.
func (s *transportStream) finish(opts []grpc.CallOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = s.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = s.trailer
		}
	}
}

// share hands a message from one side of the channel to the other by
// reference to its fields, where a network call would copy it: each side
// lets go of what it shares (the gateway builds a request for one call and
// does not touch it after; a handler's response is its own once returned).
func share(out, in any) error {
	dst, ok1 := out.(proto.Message)
	src, ok2 := in.(proto.Message)
	if !ok1 || !ok2 || dst.ProtoReflect().Descriptor() != src.ProtoReflect().Descriptor() {
		return status.Errorf(codes.Internal, "in-process call: cannot pass %T as %T", in, out)
	}
	proto.Reset(dst)
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	s.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		d.Set(fd, v)
		return true
	})
	if u := s.GetUnknown(); len(u) > 0 {
		d.SetUnknown(u)
	}
	return nil
}
