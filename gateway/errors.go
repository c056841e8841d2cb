package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/accesslog"
	"github.com/usersd/usersd/internal/requestid"
	"github.com/usersd/usersd/internal/rpcerr"
)

// Detail locations, as the contract names them.
const (
	locParams  = "params"
	locQuery   = "query"
	locBody    = "body"
	locHeaders = "headers"
)

const maxDetailValueBytes = 256

// errorBody is the contract's JSON error body.
type errorBody struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []detail `json:"details,omitempty"`
}

type detail struct {
	Value    string `json:"value"`
	Msg      string `json:"msg"`
	Param    string `json:"param"`
	Location string `json:"location"`
}

// genericMessages stand in for status messages we did not write ourselves
// (gateway decoding, transport): those can carry Go or network internals.
var genericMessages = map[int]string{
	http.StatusBadRequest:          "Invalid request",
	http.StatusNotFound:            "Not found",
	http.StatusInternalServerError: "Internal error",
	http.StatusServiceUnavailable:  "Service unavailable, retry later",
	http.StatusTooManyRequests:     "Too many requests, retry later",
}

// writeError renders the contract's error body. It is the only writer of
// error responses, for the gateway, the router and the body checks alike.
func writeError(w http.ResponseWriter, status int, message string, details []detail) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	switch status {
	case http.StatusUnauthorized:
		if h.Get("WWW-Authenticate") == "" {
			h.Set("WWW-Authenticate", `Bearer realm="usersd"`)
		}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", "1")
		}
	}
	if message == "" {
		message = http.StatusText(status)
	}
	for i := range details {
		details[i].Value = truncate(details[i].Value, maxDetailValueBytes)
	}
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(errorBody{Code: rpcerr.Word(status), Message: message, Details: details})
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// errorHandler renders errors of proxied calls (runtime.WithErrorHandler).
func (g *Gateway) errorHandler(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	var httpErr *runtime.HTTPStatusError
	if errors.As(err, &httpErr) {
		writeError(w, httpErr.HTTPStatus, genericMessages[httpErr.HTTPStatus], nil)
		return
	}
	rpc, _ := runtime.RPCMethod(ctx)
	reached := noteCall(ctx, rpc, err)
	st := status.Convert(err)
	info := rpcerr.Info(st)
	code := rpcerr.HTTPStatus(st.Code(), info)
	var violations []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			violations = append(violations, d.GetFieldViolations()...)
		case *errdetails.RetryInfo:
			w.Header().Set("Retry-After", retryAfter(d))
		}
	}
	message := st.Message()
	// A refused request may fail earlier in the chain (401, 403, 503):
	// the refusal is shown only when the call failed for it.
	if rej := rejectionFrom(ctx); rej != nil && info.GetReason() == rej.reason {
		writeError(w, code, rej.message, rej.details)
		return
	}
	if info == nil && st.Code() == codes.Internal && !reached {
		g.log.WarnContext(ctx, "request could not be encoded for gRPC", "request_id", requestid.FromContext(ctx), "rpc", rpc)
		code = http.StatusBadRequest
	}
	if info == nil {
		// Not written by our service: do not pass it on verbatim.
		if code == http.StatusInternalServerError {
			g.log.ErrorContext(ctx, "gateway error", "request_id", requestid.FromContext(ctx), "code", st.Code().String())
		}
		message = genericMessages[code]
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", bearerChallenge(info, message))
	}
	writeError(w, code, message, describe(g.byRPC[rpc], r, violations))
}

// retryAfter is a RetryInfo delay as Retry-After seconds, rounded up and at
// least one (a zero would invite an immediate retry that fails again).
func retryAfter(ri *errdetails.RetryInfo) string {
	secs := int64(math.Ceil(ri.GetRetryDelay().AsDuration().Seconds()))
	return strconv.FormatInt(max(secs, 1), 10)
}

// noteCall gives the access log the outcome of the gRPC call rpc made for
// a request, if it reached the server, and reports whether it did: the server's
// request id interceptor sets x-request-id header metadata on every call,
// errors included, and the gateway keeps what the server sent in ctx.
//
// An INTERNAL status from a call that never got there is grpc-go failing
// to marshal the request, and the only thing that fails to marshal is a
// string that is not UTF-8, i.e. client input the guard let through: a
// 400, not a 500. Telling it apart by this mark, rather than by grpc-go's
// message text ("grpc: error while marshaling: ..."), does not depend on
// wording that is not API. The cost is that a stream the transport resets
// with an HTTP/2 INTERNAL_ERROR before any header (grpc-go maps it to
// INTERNAL too) is shown as 400; usersd's gateway calls in process, with
// no transport to reset, and it is logged.
func noteCall(ctx context.Context, rpc string, err error) (reached bool) {
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok || len(md.HeaderMD.Get(requestid.MetadataKey)) == 0 {
		return false
	}
	accesslog.NoteCall(ctx, rpc, err)
	return true
}

// bearerChallenge is the RFC 6750 challenge of a 401: error="invalid_token"
// when a token was presented and refused.
func bearerChallenge(info *errdetails.ErrorInfo, message string) string {
	if info != nil && info.GetReason() == rpcerr.ReasonInvalidToken {
		return `Bearer realm="usersd", error="invalid_token", error_description="` + strings.ReplaceAll(message, `"`, "'") + `"`
	}
	return `Bearer realm="usersd"`
}

// routingErrorHandler renders 404 and 405 (with Allow) for unmatched
// requests; the gateway's default would answer 501 for a wrong method.
func (g *Gateway) routingErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, status int) {
	g.writeRoutingError(w, r, status)
}

func (g *Gateway) writeRoutingError(w http.ResponseWriter, r *http.Request, status int) {
	switch status {
	case http.StatusMethodNotAllowed:
		accesslog.NoteRoute(r.Context(), g.routes.template(r.URL.Path))
		w.Header().Set("Allow", strings.Join(g.routes.allowed(r.URL.Path), ", "))
		writeError(w, status, "Method "+r.Method+" is not allowed on this path", nil)
	case http.StatusNotFound:
		writeError(w, status, "No such endpoint", nil)
	default:
		writeError(w, status, genericMessages[status], nil)
	}
}

// logError is used where a response could not be written properly.
func logError(log *slog.Logger, r *http.Request, msg string, err error) {
	log.ErrorContext(r.Context(), msg, "request_id", requestid.FromContext(r.Context()), "error", err)
}
