// Package gateway serves the REST/JSON API by calling the users service
// through a gRPC client connection (in usersd, an in-process channel that
// runs the gRPC server's own chain), so REST calls pass the very same gRPC
// interceptors as native ones. It renders the contract's error body, checks
// HTTP syntax (media type, size, strict JSON), and serves the operational
// endpoints: /healthz, /readyz, /openapi.json and /metrics.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/usersd/usersd/gen/openapi"
	usersv1 "github.com/usersd/usersd/gen/users/v1"
	"github.com/usersd/usersd/internal/accesslog"
	"github.com/usersd/usersd/internal/claimsjson"
	"github.com/usersd/usersd/internal/etag"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
)

// Options configure the gateway.
type Options struct {
	Logger       *slog.Logger
	MaxBodyBytes int64 // larger bodies get 413
	// MaxJSONDepth bounds body nesting before decoding (anti stack
	// exhaustion; rules.MaxBodyDepth of the claims limit); the service
	// enforces the exact claims depth.
	MaxJSONDepth int
	Ready        func(context.Context) error // readiness probe (database reachable)
	Metrics      http.Handler                // Prometheus exposition
}

// Gateway is the REST front of the users service.
type Gateway struct {
	log          *slog.Logger
	routes       routes
	byRPC        map[string]*route
	maxBodyBytes int64
	maxJSONDepth int
	ready        func(context.Context) error
	metrics      http.Handler
	api          *runtime.ServeMux
}

// New returns the HTTP handler of the REST API, proxying over conn. Serve
// it behind requestid.Middleware, which gives every request its id, and
// an accesslog.Middleware, to which it reports the route and the gRPC call.
func New(ctx context.Context, conn grpc.ClientConnInterface, opts Options) (http.Handler, error) {
	rs := routesOf(usersv1.File_users_v1_users_proto.Services().ByName("UserService"))
	g := &Gateway{
		log:          opts.Logger,
		routes:       rs,
		byRPC:        rs.byRPC(),
		maxBodyBytes: opts.MaxBodyBytes,
		maxJSONDepth: opts.MaxJSONDepth,
		ready:        opts.Ready,
		metrics:      opts.Metrics,
	}
	marshaler := newMarshaler()
	g.api = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithErrorHandler(g.errorHandler),
		runtime.WithRoutingErrorHandler(g.routingErrorHandler),
		runtime.WithForwardResponseOption(successStatus),
		runtime.WithForwardResponseRewriter(renderIntoBuffer),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(dropMetadata),
		runtime.WithOutgoingTrailerMatcher(dropMetadata),
		runtime.WithDisableHTTPMethodOverride(),
		// A form POST would otherwise be served by the GET route of its
		// path, past the guard, which checks the route of the method.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithMiddlewares(g.guard),
	)
	client := usersv1.NewUserServiceClient(markRejections{conn})
	if err := usersv1.RegisterUserServiceHandlerClient(ctx, g.api, client); err != nil {
		return nil, fmt.Errorf("register REST handlers: %w", err)
	}
	return http.HandlerFunc(g.serveHTTP), nil
}

// operational endpoints: no token, GET (and HEAD) only.
func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var h http.HandlerFunc
	switch r.URL.Path {
	case "/healthz":
		h = func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`)) }
		accesslog.NoteProbe(r.Context(), r.URL.Path)
	case "/readyz":
		h = g.serveReady
		accesslog.NoteProbe(r.Context(), r.URL.Path)
	case "/openapi.json":
		h = func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, openapi.Spec) }
		accesslog.NoteRoute(r.Context(), r.URL.Path)
	case "/metrics":
		h = g.metrics.ServeHTTP
		accesslog.NoteProbe(r.Context(), r.URL.Path)
	default:
		dropGatewayHeaders(r.Header)
		g.api.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "Method "+r.Method+" is not allowed on this path", nil)
		return
	}
	h(w, r)
}

func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := g.ready(ctx); err != nil {
		logError(g.log, r, "readiness check failed", err)
		writeError(w, http.StatusServiceUnavailable, "Not ready", nil)
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// successStatus tells the access log the call succeeded, sets the ETag of
// a response that carries a user (from the service's etag header
// metadata), and the contract's other success codes: 201 with Location on
// create, 204 with no body on delete, 304 with no body on a get whose
// If-None-Match matches.
func successStatus(ctx context.Context, w http.ResponseWriter, resp proto.Message) error {
	method, _ := runtime.RPCMethod(ctx)
	noteCall(ctx, method, nil)
	var tag string
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		if tags := md.HeaderMD.Get(etag.Metadata); len(tags) == 1 {
			tag = tags[0]
			w.Header().Set("ETag", tag)
		}
	}
	switch method {
	case usersv1.UserService_CreateUser_FullMethodName:
		if created, ok := resp.(interface{ GetUser() *usersv1.User }); ok {
			w.Header().Set("Location", "/v1/users/"+created.GetUser().GetId())
		}
		w.WriteHeader(http.StatusCreated)
	case usersv1.UserService_GetUser_FullMethodName:
		// The read happened (and was recorded); only its body is spared.
		if inm := ifNoneMatchOf(ctx); inm != nil && tag != "" && etag.NoneMatch(inm, tag) {
			w.Header().Del("Content-Type")
			w.WriteHeader(http.StatusNotModified)
		}
	case usersv1.UserService_DeleteUser_FullMethodName:
		w.Header().Del("Content-Type")
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

type ifNoneMatchKey struct{}

// withIfNoneMatch keeps a GET's If-None-Match in its context, where
// successStatus compares it with the response's entity tag; a request
// without one is left as it is.
func withIfNoneMatch(r *http.Request) *http.Request {
	inm := r.Header.Values("If-None-Match")
	if inm == nil || r.Method != http.MethodGet {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), ifNoneMatchKey{}, inm))
}

func ifNoneMatchOf(ctx context.Context) []string {
	inm, _ := ctx.Value(ifNoneMatchKey{}).([]string)
	return inm
}

// dropGatewayHeaders removes the headers grpc-gateway reads to steer its
// own gRPC call (runtime.AnnotateContext): Grpc-Timeout would set the
// call's deadline (so "1n" made any call 503), Grpc-Metadata-* would be
// offered to incomingHeader as metadata. Neither is part of the REST API.
func dropGatewayHeaders(h http.Header) {
	for key := range h {
		if strings.EqualFold(key, "Grpc-Timeout") ||
			len(key) >= len(runtime.MetadataHeaderPrefix) && strings.EqualFold(key[:len(runtime.MetadataHeaderPrefix)], runtime.MetadataHeaderPrefix) {
			delete(h, key)
		}
	}
}

// forwardedHeaders are the request headers the service reads, each with
// the metadata key the gateway forwards it as (the gateway always forwards
// Authorization itself). The service names a bad one by its key, which the
// error renderer shows as the header.
var forwardedHeaders = [...]struct{ header, key string }{
	{requestid.Header, requestid.MetadataKey},
	{"If-Match", etag.IfMatchMetadata},
}

// incomingHeader forwards only the forwardedHeaders.
func incomingHeader(key string) (string, bool) {
	for _, f := range forwardedHeaders {
		if strings.EqualFold(key, f.header) {
			return f.key, true
		}
	}
	return "", false
}

// headerOf is the header forwarded as the metadata key, if any.
func headerOf(key string) (string, bool) {
	for _, f := range forwardedHeaders {
		if key == f.key {
			return f.header, true
		}
	}
	return "", false
}

// markRejections is the gateway's client connection: a call made for a
// request the guard refused carries its reason under
// rpcerr.RejectedMetadata. The server honours that only on calls over the
// in-process channel, which only the gateway can reach (internal/gatewayconn).
type markRejections struct{ grpc.ClientConnInterface }

func (c markRejections) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if rej := rejectionFrom(ctx); rej != nil {
		ctx = metadata.AppendToOutgoingContext(ctx, rpcerr.RejectedMetadata, rej.reason)
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

// dropMetadata keeps gRPC response metadata off REST responses (no
// Grpc-Metadata-* headers): the request id is already set by the HTTP
// middleware, successStatus turns etag into ETag, and nothing else is
// meant for REST clients.
func dropMetadata(string) (string, bool) { return "", false }

// newMarshaler is the gateway's JSON: print empty lists (`"data": []`) but
// omit fields with presence that are unset (nextCursor on the last page,
// an unlinked provider); refuse unknown fields instead of dropping them.
func newMarshaler() compactJSON {
	return compactJSON{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitDefaultValues: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// compactJSON prints responses without the random spaces protojson adds
// (it does so on purpose, to keep callers from depending on its bytes),
// and hands the generated handlers the messages the guard decoded.
type compactJSON struct{ *runtime.JSONPb }

// NewDecoder gives a body the guard checked as the message it decoded in
// that same pass; the default decoder would parse the text twice more
// (encoding/json to find where the value ends, then protojson).
func (m compactJSON) NewDecoder(r io.Reader) runtime.Decoder {
	if b, ok := r.(*checkedBody); ok {
		return checkedDecoder{b}
	}
	return m.JSONPb.NewDecoder(r)
}

type checkedDecoder struct{ body *checkedBody }

// Decode fills v, the request message (body "*") or &req.Field (a body
// bound to one field), from the decoded body. The message is handed over,
// not copied: the guard built it for this one request. As with the default
// decoder, a bound field is set even for an empty body, which is io.EOF:
// the generated code takes that as "no body".
func (d checkedDecoder) Decode(v any) error {
	if dst, ok := v.(proto.Message); ok {
		to := dst.ProtoReflect()
		d.body.msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
			to.Set(fd, val)
			return true
		})
	} else {
		field := reflect.ValueOf(v).Elem()
		msg := reflect.ValueOf(d.body.msg)
		if msg.Type() != field.Type() {
			return fmt.Errorf("decode body: %s decoded, %s wanted", msg.Type(), field.Type())
		}
		field.Set(msg)
	}
	if len(bytes.Trim(d.body.raw, " \t\r\n")) == 0 {
		return io.EOF
	}
	return nil
}

func (m compactJSON) Marshal(v any) ([]byte, error) {
	var (
		dst    []byte
		claims *claimsjson.Texts
	)
	rb, lent := v.(*renderBuffer)
	if lent {
		v, dst, claims = rb.msg, rb.b, &rb.claims
	}
	out, ok := renderUsers(dst, v, claims)
	if !ok {
		// protojson writes the users' claims from their Claims.
		if err := claims.SetClaims(); err != nil {
			return nil, err
		}
		return m.marshalCompact(v)
	}
	if lent {
		rb.b = out // kept grown, up to its pool's maxKept
	}
	return out, nil
}

// marshalCompact is protojson's output without its spaces: what
// renderUsers must write, and everything else.
func (m compactJSON) marshalCompact(v any) ([]byte, error) {
	out, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(out))
	if err := json.Compact(&buf, out); err != nil {
		return nil, fmt.Errorf("compact response: %w", err)
	}
	return buf.Bytes(), nil
}
