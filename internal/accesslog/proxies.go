package accesslog

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// TrustedProxies are the networks of the proxies whose X-Forwarded-For
// (gRPC: x-forwarded-for metadata) is believed. As a flag.Value it takes
// comma-separated CIDRs or single addresses.
type TrustedProxies []netip.Prefix

func (t *TrustedProxies) String() string {
	s := make([]string, len(*t))
	for i, p := range *t {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (t *TrustedProxies) Set(v string) error {
	var out TrustedProxies
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return fmt.Errorf("%q is not a CIDR (10.0.0.0/8) or an IP address", item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	*t = out
	return nil
}

func (t TrustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// client is the address of the client behind peer (host:port of the TCP
// connection): peer's host, unless peer is a trusted proxy; then the
// nearest address in X-Forwarded-For (read right to left, the order
// proxies append in) that is not a trusted proxy, or the farthest one when
// all are. A hop that is not an address ends the walk: whatever is left of
// it was written by the client and proves nothing.
func (t TrustedProxies) client(peer string, forwarded []string) string {
	host := peer
	if h, _, err := net.SplitHostPort(peer); err == nil {
		host = h
	}
	if len(t) == 0 || len(forwarded) == 0 {
		return host
	}
	if a, err := netip.ParseAddr(host); err != nil || !t.trusts(a) {
		return host
	}
	client := host
	for i := len(forwarded) - 1; i >= 0; i-- {
		rest := forwarded[i]
		for rest != "" {
			hop := rest
			rest = ""
			if j := strings.LastIndexByte(hop, ','); j >= 0 {
				hop, rest = hop[j+1:], hop[:j]
			}
			a, ok := parseHop(strings.TrimSpace(hop))
			if !ok {
				return client
			}
			client = a.String()
			if !t.trusts(a) {
				return client
			}
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For entry: an address, or an address with
// a port as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// addresses are the TCP peer of a request and its client.
func (rc *Recorder) addresses(ctx context.Context, e *entry) (peerAddr, client string) {
	if e.transport == GRPC {
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			e.peer = p.Addr.String()
		}
		if len(rc.proxies) > 0 {
			e.forwarded = metadata.ValueFromIncomingContext(ctx, "x-forwarded-for")
		}
	}
	return e.peer, rc.proxies.client(e.peer, e.forwarded)
}
