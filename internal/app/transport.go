package app

import (
	"net"
	"net/http"
	"runtime"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// The gRPC server's pool of handler goroutines (grpc.NumStreamWorkers):
// calls in flight mostly wait (for the database, for their commit), so
// the pool is sized by the calls served at once more than by the cores:
// at least minStreamWorkers, 16 per core above that. At 32 concurrent
// calls on one core, a pool of 16 left half the calls to fresh goroutines,
// whose stack growth was 3.9% of a GetUser's CPU; with 64, 1.8% (perf).
// An idle worker costs its stack, a few KiB once the collector shrinks it.
const (
	minStreamWorkers    = 64
	streamWorkersPerCPU = 16
)

// grpcTransport bounds every gRPC connection (contract §3): what one
// client can make the server hold (streams, and with them handler
// goroutines; metadata) and how long it can hold it (idle and age limits).
// grpc-go's defaults would allow 2^32-1 streams and 16 MiB of metadata.
//
// Streams without a token are not refused earlier, in a tap handle (before
// a stream gets a goroutine): a stream held open costs the same ~11 KiB
// whether it carries no token or a forged one (measured), so a tap would
// not bound the memory (MaxStreams and the connection limit do), and its
// refusal would skip the request id, metrics and logging that every
// response gets, 401s included.
func grpcTransport(b GRPCBounds) []grpc.ServerOption {
	return []grpc.ServerOption{
		// Calls run on long-lived workers, whose stacks have already grown
		// to what the handler and the SQLite driver need: on a fresh
		// goroutine per call, regrowing the stack (runtime.newstack) cost
		// 7% of the CPU of GetUser; with workers, under 2%. A call finding
		// them all busy gets its own goroutine, as without workers.
		grpc.NumStreamWorkers(uint32(max(minStreamWorkers, streamWorkersPerCPU*runtime.GOMAXPROCS(0)))),
		grpc.MaxConcurrentStreams(uint32(b.MaxStreams)),
		grpc.MaxHeaderListSize(uint32(b.MaxHeaderBytes)),
		// Pings without calls are allowed (at the same rate): idle
		// connections are closed by MaxIdle anyway, gracefully, where a
		// refused ping would end them with ENHANCE_YOUR_CALM.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: b.MinPingEvery, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     b.MaxIdle,
			MaxConnectionAge:      b.MaxAge,
			MaxConnectionAgeGrace: b.MaxAgeGrace,
		}),
	}
}

// limitConns bounds the concurrent gRPC connections (n = 0: no bound);
// further ones wait to be accepted. MaxStreams bounds one connection, this
// bounds them all: a stream held open without a request message costs
// ~11 KiB (its handler goroutine waits for the message before any
// interceptor runs), so with 100 streams a connection can hold ~1.1 MiB,
// and 300 connections took the server to 360 MiB (measured). The default,
// 128, also keeps /healthz within the contract's second under such a
// flood on a slow 2-core machine: 512 connections of 100 held streams
// each took it to 320-330 MiB and /healthz to 103 ms-1.03 s with 256
// accepted (six runs), to 172-178 MiB and 45-423 ms with 128 (fourteen).
func limitConns(lis net.Listener, n int) net.Listener {
	if n == 0 {
		return lis
	}
	return netutil.LimitListener(lis, n)
}

// grpcReservedHeaderBytes is room for what a gRPC call adds to the
// headers it carries (pseudo-headers, content type, user agent, timeout):
// counted for REST calls too, which now reach the service in process, so
// that REST and native calls meet the metadata bound at the same size.
const grpcReservedHeaderBytes = 1 << 10

// fitGRPCMetadata refuses, with 431 as net/http refuses an oversized header
// block itself, REST requests whose headers could exceed limit as gRPC
// metadata (--grpc-max-header-bytes): a REST request carries no more
// metadata into the service than a native call may.
// Headers count as HPACK does (name, value, 32 bytes per field), all of
// them though the gateway forwards few, so what passes always fits.
func fitGRPCMetadata(next http.Handler, limit int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size := grpcReservedHeaderBytes + len("x-forwarded-host") + len(r.Host) + 32
		for name, values := range r.Header {
			for _, v := range values {
				size += len(name) + len(v) + 32
			}
		}
		if size > limit {
			http.Error(w, http.StatusText(http.StatusRequestHeaderFieldsTooLarge), http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		next.ServeHTTP(w, r)
	})
}
