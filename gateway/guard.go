package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/usersd/usersd/gateway/jsonbody"
	"github.com/usersd/usersd/internal/accesslog"
	"github.com/usersd/usersd/internal/rpcerr"
)

// guard checks HTTP syntax before the generated handler sees a request:
// UTF-8 of path and query parameters, query parameter types, body media
// type, encoding, size and strict JSON against the bound message, which it
// decodes in the same pass for the handler to take. Business rules are the
// service's; this is transport.
// It runs after routing, so unknown paths and methods are 404/405 first.
//
// The mux wraps each handler it registers in a guard of its own
// (runtime.WithMiddlewares), so a guard serves one route: it looks that
// route up from the pattern the mux matched (runtime.HTTPPattern) on its
// first request and keeps it, rather than routing again.
//
// A refused request is not answered here: it goes on to the gRPC server
// with an empty body and the rejected-metadata mark, so it is
// authenticated (401 first), recorded in analytic events and authorized
// like any other call; the error handler then renders the refusal.
func (g *Gateway) guard(next runtime.HandlerFunc) runtime.HandlerFunc {
	var served atomic.Pointer[route]
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		rt := served.Load()
		if rt == nil {
			pattern, _ := runtime.HTTPPattern(r.Context())
			if rt = g.routes.matched(r.Method, pattern); rt == nil {
				// Every handler comes from the same HTTP rules as the routes.
				logError(g.log, r, "no route for a registered handler", errors.New(r.Method+" "+pattern.String()))
				writeError(w, http.StatusInternalServerError, genericMessages[http.StatusInternalServerError], nil)
				return
			}
			served.Store(rt)
		}
		if len(rt.shadowed) > 0 && slices.Contains(rt.shadowed, r.URL.Path) {
			g.writeRoutingError(w, r, http.StatusMethodNotAllowed)
			return
		}
		accesslog.NoteRoute(r.Context(), rt.template)
		query, body, decoded, rej := g.check(w, r, rt, pathParams)
		switch {
		case rej == nil:
		case rej.unreadable:
			// The client stalled or vanished mid-body: nobody to
			// authenticate, just end it.
			writeError(w, http.StatusBadRequest, rej.message, nil)
			return
		default:
			next(w, markRejected(r, rej), encodable(pathParams))
			return
		}
		if rt.updateMask != nil {
			query.Set(string(rt.updateMask.Name()), rt.maskPaths(decoded.named))
		}
		setForm(r, query)
		if rt.bodyType != nil {
			r.Body = newCheckedBody(body, decoded.msg)
			r.ContentLength = int64(len(body))
		}
		if rt.buffers != nil {
			var slot *renderSlot
			r, slot = rt.buffers.lend(r)
			defer slot.release()
		}
		next(w, withIfNoneMatch(r), pathParams)
	}
}

// setForm hands the gateway's query parser exactly what was checked: it
// reads r.Form once ParseForm has filled it, and ParseForm leaves a filled
// one alone, so the query is neither encoded nor parsed again. Unchecked
// input would fail on bad escapes or give meaning to keys we ignore
// ("limit[x]", "cursor.x", a field named twice by its two names). A JSON
// request has no form body: PostForm is empty.
func setForm(r *http.Request, query url.Values) {
	r.Form, r.PostForm = query, url.Values{}
}

// checkedBody is a body the guard read, checked and decoded: the gateway
// takes its message, and the error handler quotes the values it refers to
// from its text.
type checkedBody struct {
	bytes.Reader
	raw []byte
	msg proto.Message // raw decoded into the route's body message
}

func newCheckedBody(raw []byte, msg proto.Message) *checkedBody {
	b := &checkedBody{raw: raw, msg: msg}
	b.Reset(raw)
	return b
}

func (*checkedBody) Close() error { return nil }

// checkedBodyOf is the body the guard checked for r, or nil.
func checkedBodyOf(r *http.Request) []byte {
	if b, ok := r.Body.(*checkedBody); ok {
		return b.raw
	}
	return nil
}

// rejection is a refusal the guard decided, for one of the rpcerr reasons
// of the gateway's refusals; the error handler renders it once the gRPC
// call has failed for that reason.
type rejection struct {
	reason     string
	message    string
	details    []detail
	unreadable bool // the body could not be read at all
}

type rejectionKey struct{}

func rejectionFrom(ctx context.Context) *rejection {
	rej, _ := ctx.Value(rejectionKey{}).(*rejection)
	return rej
}

// decodedBody is a checked body's message and the fields its keys named.
type decodedBody struct {
	msg   proto.Message
	named jsonbody.Result
}

// check returns the checked query parameters, and the body read and
// decoded in the same pass that checked it, or why the request is refused.
func (g *Gateway) check(w http.ResponseWriter, r *http.Request, rt *route, pathParams map[string]string) (url.Values, []byte, decodedBody, *rejection) {
	query, details := checkQuery(rt, r.URL.RawQuery)
	details = append(checkPath(rt, pathParams), details...)
	if len(details) > 0 {
		return nil, nil, decodedBody{}, &rejection{reason: rpcerr.ReasonInvalidParameters, message: "Invalid parameters", details: details}
	}
	if rt.bodyType == nil {
		return query, nil, decodedBody{}, nil
	}
	body, rej := g.readBody(w, r)
	if rej != nil {
		return nil, nil, decodedBody{}, rej
	}
	msg := rt.bodyType.New()
	res := jsonbody.Decode(body, msg, jsonbody.Limits{MaxDepth: g.maxJSONDepth, MaxViolations: rpcerr.MaxViolations})
	if vs := res.Violations; len(vs) > 0 {
		return nil, nil, decodedBody{}, bodyRejection(vs)
	}
	return query, body, decodedBody{msg: msg.Interface(), named: res}, nil
}

// markRejected strips what the gateway could not decode (body, query) and
// keeps the refusal in the request's context, where the gRPC client
// connection finds it to mark the call (see markRejections).
func markRejected(r *http.Request, rej *rejection) *http.Request {
	r.Header.Set("Content-Type", "application/json")
	r.Header.Del("Content-Encoding")
	r.Body = io.NopCloser(strings.NewReader("{}"))
	r.ContentLength = 2
	setForm(r, url.Values{})
	return r.WithContext(context.WithValue(r.Context(), rejectionKey{}, rej))
}

// encodable replaces path values that are not valid UTF-8 by "", so the
// gRPC request of a refused call can be marshalled (protobuf strings must
// be UTF-8); the refusal, not the value, is what the call carries.
func encodable(pathParams map[string]string) map[string]string {
	out := make(map[string]string, len(pathParams))
	for k, v := range pathParams {
		if !utf8.ValidString(v) {
			v = ""
		}
		out[k] = v
	}
	return out
}

// readBody reads the bounded body, or says why the request is refused.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *rejection) {
	unsupported := func(msg string) *rejection {
		return &rejection{reason: rpcerr.ReasonUnsupportedMediaType, message: msg}
	}
	tooLarge := func() *rejection {
		return &rejection{reason: rpcerr.ReasonPayloadTooLarge,
			message: "The request body must be at most " + strconv.FormatInt(g.maxBodyBytes, 10) + " bytes"}
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, unsupported("Content-Encoding must be identity")
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" && !isJSON(ct) {
		return nil, unsupported("Content-Type must be application/json")
	}
	if r.ContentLength > g.maxBodyBytes {
		return nil, tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(connWriter(w), r.Body, g.maxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, tooLarge()
	case err != nil:
		return nil, &rejection{reason: rpcerr.ReasonMalformedBody, message: "The request body could not be read", unreadable: true}
	case ct == "" && len(body) > 0:
		return nil, unsupported("Content-Type must be application/json")
	}
	return body, nil
}

// connWriter is net/http's own writer under the middleware's wrappers.
// MaxBytesReader tells only that one, past the limit, to close the
// connection after the response; otherwise net/http would first read on
// through the rest of the body (up to 256 KiB), holding the 413 back for
// as long as the client stalls.
func connWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

// isJSON accepts application/json with any parameters (charset=utf-8).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// bodyRejection refuses a body with violations: as malformed when one is
// about the body as a whole (it is not a JSON object), else as invalid.
func bodyRejection(vs []jsonbody.Violation) *rejection {
	rej := &rejection{reason: rpcerr.ReasonInvalidBody, message: "Validation failed", details: make([]detail, len(vs))}
	for i, v := range vs {
		if v.Param == "" {
			rej.reason, rej.message = rpcerr.ReasonMalformedBody, "Malformed JSON body"
		}
		rej.details[i] = detail{Value: v.Value, Msg: v.Msg, Param: v.Param, Location: locBody}
	}
	return rej
}

// checkPath checks that the path variables are UTF-8 (the service judges
// the rest, such as the UUID form of an id).
func checkPath(rt *route, pathParams map[string]string) []detail {
	var out []detail
	for _, name := range rt.vars {
		if v := pathParams[name]; !utf8.ValidString(v) {
			param := strings.Join(jsonPath(rt.rpc.Input(), strings.Split(name, ".")), ".")
			out = append(out, detail{Value: url.PathEscape(v), Msg: "must be valid UTF-8", Param: param, Location: locParams})
		}
	}
	return out
}

// checkQuery type-checks the query parameters that name request fields (by
// JSON or proto name) and returns them under their JSON names. Unknown
// parameters are ignored, as the original API does, whatever they hold;
// fields bound to the path or body, and the update mask the guard derives,
// cannot be set from the query.
//
// It splits the raw query itself: url.ParseQuery cannot say which pair was
// malformed, and refuses ';' (here it is data, as in the WHATWG URL
// standard's form parser).
func checkQuery(rt *route, rawQuery string) (url.Values, []detail) {
	query := url.Values{}
	var params []string // in order of appearance, for stable details
	var out []detail
	for pair := range strings.SplitSeq(rawQuery, "&") {
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			continue // cannot name a field
		}
		fd := queryField(rt, key)
		if fd == nil {
			continue
		}
		param := fd.JSONName()
		v, err := url.QueryUnescape(rawValue)
		if err != nil || !utf8.ValidString(v) {
			out = append(out, detail{Value: rawValue, Msg: "must be percent-encoded UTF-8", Param: param, Location: locQuery})
			continue
		}
		if query[param] == nil {
			params = append(params, param)
		}
		query[param] = append(query[param], v)
	}
	for _, param := range params {
		values := query[param]
		fd := rt.rpc.Input().Fields().ByJSONName(param)
		if len(values) > 1 && !fd.IsList() {
			out = append(out, detail{Value: values[0], Msg: "must be given once", Param: param, Location: locQuery})
			continue
		}
		for _, v := range values {
			if msg := scalarProblem(fd, v); msg != "" {
				out = append(out, detail{Value: v, Msg: msg, Param: param, Location: locQuery})
			}
		}
	}
	return query, out
}

// queryField is the request field a query key sets, or nil.
func queryField(rt *route, key string) protoreflect.FieldDescriptor {
	fd := jsonbody.FieldByKey(rt.rpc.Input(), key)
	if fd == nil || rt.pathVar(string(fd.Name())) || rt.body == "*" || rt.body == string(fd.Name()) || fd == rt.updateMask {
		return nil
	}
	return fd
}

// scalarProblem says what is wrong with a query value for a field, or "".
func scalarProblem(fd protoreflect.FieldDescriptor, v string) string {
	var err error
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		_, err = strconv.ParseInt(v, 10, 32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		_, err = strconv.ParseInt(v, 10, 64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		_, err = strconv.ParseUint(v, 10, 32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		_, err = strconv.ParseUint(v, 10, 64)
	case protoreflect.BoolKind:
		_, err = strconv.ParseBool(v)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		_, err = strconv.ParseFloat(v, 64)
	}
	if err != nil {
		if fd.Kind() == protoreflect.BoolKind {
			return "must be true or false"
		}
		return "must be a number in range"
	}
	return ""
}
