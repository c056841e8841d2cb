// Package gatewayconn marks the connections of the in-memory listener that
// only the REST gateway can reach. The mark is the connection's type,
// which no network client can have, so it is the one answer to "did this
// come from our own gateway?": for logging a REST request once, for
// honouring the gateway's refusal mark, and for serving that hop without
// TLS.
package gatewayconn

import (
	"context"
	"net"

	"google.golang.org/grpc/peer"
)

// Listener marks every connection lis accepts as the gateway's.
func Listener(lis net.Listener) net.Listener { return listener{lis} }

type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return conn{c}, nil
}

type conn struct{ net.Conn }

func (conn) RemoteAddr() net.Addr { return addr{} }

type addr struct{}

func (addr) Network() string { return "gateway" }
func (addr) String() string  { return "gateway" }

// Is reports whether c was accepted by a Listener.
func Is(c net.Conn) bool {
	_, ok := c.(conn)
	return ok
}

// FromContext reports whether the gRPC call in ctx came over a connection
// a Listener accepted.
func FromContext(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	_, gw := p.Addr.(addr)
	return gw
}
