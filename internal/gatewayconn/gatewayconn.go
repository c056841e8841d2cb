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
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Channel is a grpc.ClientConnInterface that calls the unary methods
// registered on it in process, through its interceptor chain.
type Channel struct {
	stages  []grpc.UnaryServerInterceptor
	methods map[string]method // by full method name, "/service/method"
}

// method is a registered method with its chain built: call runs every
// stage and then the service.
type method struct {
	request proto.Message // a request message, for making new ones
	call    grpc.UnaryHandler
}

var (
	_ grpc.ClientConnInterface = (*Channel)(nil)
	_ grpc.ServiceRegistrar    = (*Channel)(nil)
)

// NewChannel returns a channel whose calls pass stages in order, the first
// outermost, as grpc.ChainUnaryInterceptor orders them on a server.
// Register the services on it before the first call.
func NewChannel(stages ...grpc.UnaryServerInterceptor) *Channel {
	return &Channel{stages: slices.Clone(stages), methods: map[string]method{}}
}

// RegisterService makes the unary methods of desc callable; streaming
// ones are not served.
func (c *Channel) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		name := "/" + desc.ServiceName + "/" + m.MethodName
		c.methods[name] = bind(name, m, impl, c.stages)
	}
}

// bind builds a method's chain once, where grpc-go builds it on every
// call (a closure per stage). Given an interceptor, a generated method
// handler decodes the request and passes the interceptor the method's
// UnaryServerInfo and a handler that calls impl. Neither depends on the
// call, so one call that decodes nothing takes them, and a request to
// make new ones from, without running the service.
func bind(name string, m grpc.MethodDesc, impl any, stages []grpc.UnaryServerInterceptor) method {
	var (
		b    method
		info *grpc.UnaryServerInfo
	)
	keep := func(in any) error {
		b.request, _ = in.(proto.Message)
		return nil
	}
	take := func(_ context.Context, _ any, i *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		info, b.call = i, h
		return nil, nil
	}
	_, _ = m.Handler(impl, context.Background(), keep, take)
	if b.request == nil || b.call == nil || info == nil {
		panic("gatewayconn: " + name + " is not a generated unary method handler")
	}
	for i := len(stages) - 1; i >= 0; i-- {
		stage, next := stages[i], b.call
		b.call = func(ctx context.Context, req any) (any, error) {
			return stage(ctx, req, info, next)
		}
	}
	return b
}

// Invoke runs the method on the calling goroutine, in the caller's
// context (one process: a context that hid the caller's values would also
// hide its cancellation from context.WithCancel, which would then watch
// it with a goroutine per derived context), with the caller's outgoing
// metadata as incoming, and this package's transport stream, which is
// its mark. The response is shared into reply, and the header and trailer
// the handler set reach grpc.Header and grpc.Trailer options.
func (c *Channel) Invoke(ctx context.Context, fullMethod string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.methods[fullMethod]
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s not implemented", fullMethod)
	}
	stream := &transportStream{method: fullMethod}
	sctx := ctx
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		sctx = metadata.NewIncomingContext(sctx, md)
	}
	sctx = grpc.NewContextWithServerTransportStream(sctx, stream)
	in := m.request.ProtoReflect().New().Interface()
	if err := share(in, args); err != nil {
		return err
	}
	resp, err := m.call(sctx, in)
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
