package gatewayconn

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc/peer"
)

// Only connections the Listener accepted carry the mark, and only calls
// over them are the gateway's.
func TestMark(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	marked := Listener(tcp)
	go func() {
		if c, err := net.Dial("tcp", tcp.Addr().String()); err == nil {
			defer c.Close()
		}
	}()
	c, err := marked.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !Is(c) {
		t.Fatal("a connection the Listener accepted is not marked")
	}
	if raw, ok := c.(conn); !ok || Is(raw.Conn) {
		t.Fatal("the connection under the mark is marked too")
	}
	viaGateway := peer.NewContext(context.Background(), &peer.Peer{Addr: c.RemoteAddr()})
	viaTCP := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
	if !FromContext(viaGateway) || FromContext(viaTCP) || FromContext(context.Background()) {
		t.Fatal("FromContext does not tell the gateway's calls from others")
	}
}
