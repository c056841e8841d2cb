// Package unarychain runs the unary methods of gRPC services through a
// chain of interceptors built once per method. grpc-go chains a server's
// interceptors anew on every call, a closure per stage (11 of a gRPC
// GetUser's 249 allocations with usersd's chain); the stages, the method's
// UnaryServerInfo and the handler that calls the service are the same on
// every call of a method, so its chain can be built when the service is
// registered.
//
// Both transports use it: the gRPC server as its one interceptor, and the
// REST gateway's in-process channel (internal/gatewayconn) to call a
// method without a server.
package unarychain

import (
	"context"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Chain holds the stages and the methods registered on it, each with its
// chain built. Register every service before the first call.
type Chain struct {
	stages  []grpc.UnaryServerInterceptor
	methods map[string]Method // by full method name, "/service/method"
}

// Method is a registered method: Call runs every stage, then the service.
type Method struct {
	Request proto.Message // a request of the method, for making new ones
	Call    grpc.UnaryHandler
}

var _ grpc.ServiceRegistrar = (*Chain)(nil)

// New returns a chain whose calls pass stages in order, the first
// outermost, as grpc.ChainUnaryInterceptor orders them.
func New(stages ...grpc.UnaryServerInterceptor) *Chain {
	return &Chain{stages: slices.Clone(stages), methods: map[string]Method{}}
}

// RegisterService builds the chains of desc's unary methods, calling
// impl; streaming methods are left out. It panics when a method handler
// is not one protoc-gen-go-grpc generates (see bind), as a server
// registering a wrong implementation does.
func (c *Chain) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		name := "/" + desc.ServiceName + "/" + m.MethodName
		c.methods[name] = bind(name, m, impl, c.stages)
	}
}

// Method returns the registered method of that full name.
func (c *Chain) Method(fullMethod string) (Method, bool) {
	m, ok := c.methods[fullMethod]
	return m, ok
}

// UnaryServerInterceptor is the chain as a gRPC server's one interceptor
// (grpc.UnaryInterceptor). A registered method runs its built chain, which
// ends in the handler taken at registration: the one grpc-go passes along
// calls the same service method. Any other unary method registered on the
// server passes the same stages, chained for the call.
func (c *Chain) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if m, ok := c.methods[info.FullMethod]; ok {
			return m.Call(ctx, req)
		}
		return chain(c.stages, info, handler)(ctx, req)
	}
}

// chain wraps handler in stages, the first outermost.
func chain(stages []grpc.UnaryServerInterceptor, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) grpc.UnaryHandler {
	for i := len(stages) - 1; i >= 0; i-- {
		stage, next := stages[i], handler
		handler = func(ctx context.Context, req any) (any, error) {
			return stage(ctx, req, info, next)
		}
	}
	return handler
}

// bind builds a method's chain. Given an interceptor, a generated method
// handler decodes the request and passes the interceptor the method's
// UnaryServerInfo and a handler that calls impl. Neither depends on the
// call, so one call that decodes nothing takes them, and a request to
// make new ones from, without running the service.
func bind(name string, m grpc.MethodDesc, impl any, stages []grpc.UnaryServerInterceptor) Method {
	var (
		b       Method
		info    *grpc.UnaryServerInfo
		handler grpc.UnaryHandler
	)
	keep := func(in any) error {
		b.Request, _ = in.(proto.Message)
		return nil
	}
	take := func(_ context.Context, _ any, i *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		info, handler = i, h
		return nil, nil
	}
	_, _ = m.Handler(impl, context.Background(), keep, take)
	if b.Request == nil || handler == nil || info == nil {
		panic("unarychain: " + name + " is not a generated unary method handler")
	}
	b.Call = chain(stages, info, handler)
	return b
}
