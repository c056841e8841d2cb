package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/usersd/usersd/gateway/jsonbody"
)

// maxViolations bounds the details of one response.
const maxViolations = 50

// guard checks HTTP syntax before the gateway decodes a request: query
// parameter types, body media type, encoding, size and strict JSON against
// the bound message. Business rules are the service's; this is transport.
// It runs after routing, so unknown paths and methods are 404/405 first.
//
// A refused request is not answered here: it goes on to the gRPC server
// with an empty body and the rejected-metadata mark, so it is
// authenticated (401 first), recorded in analytic events and authorized
// like any other call; the error handler then renders the refusal.
func (g *Gateway) guard(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		r.Header.Del(rejectedHeader) // only the gateway sets it
		rt, _ := g.routes.find(r.Method, r.URL.Path)
		if rt == nil {
			next(w, r, pathParams)
			return
		}
		body, rej := g.check(w, r, rt)
		switch {
		case rej == nil:
		case rej.unreadable:
			// The client stalled or vanished mid-body: nobody to
			// authenticate, just end it.
			writeError(w, rej.status, rej.message, nil)
			return
		default:
			next(w, g.markRejected(r, rej), pathParams)
			return
		}
		if md := rt.bodyMessage(); md != nil {
			if mask := updateMaskField(rt); mask != nil {
				setUpdateMask(r, mask, body, md)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r = r.WithContext(withBody(r.Context(), body))
		}
		next(w, r, pathParams)
	}
}

// rejectedHeader carries rpcerr.RejectedMetadata from the guard to the
// gRPC call (see incomingHeader).
const rejectedHeader = "Usersd-Rejected"

// rejection is a refusal the guard decided; the error handler renders it
// once the gRPC call has failed with rpcerr.ReasonRejected.
type rejection struct {
	status     int
	message    string
	details    []detail
	unreadable bool // the body could not be read at all
}

type rejectionKey struct{}

// check returns the body to forward, or why the request is refused.
func (g *Gateway) check(w http.ResponseWriter, r *http.Request, rt *route) ([]byte, *rejection) {
	if details := checkQuery(rt, r.URL.Query()); len(details) > 0 {
		return nil, &rejection{status: http.StatusBadRequest, message: "Invalid query parameters", details: details}
	}
	md := rt.bodyMessage()
	if md == nil {
		return nil, nil
	}
	body, status, msg := g.readBody(w, r)
	if status != 0 {
		return nil, &rejection{status: status, message: msg, unreadable: status == http.StatusBadRequest}
	}
	if vs := jsonbody.Check(body, md, jsonbody.Limits{MaxDepth: g.maxJSONDepth, MaxViolations: maxViolations}); len(vs) > 0 {
		return nil, &rejection{status: http.StatusBadRequest, message: bodyMessage(vs), details: bodyDetails(vs)}
	}
	return body, nil
}

// markRejected strips what the gateway could not decode (body, query) and
// marks the request for the gRPC server.
func (g *Gateway) markRejected(r *http.Request, rej *rejection) *http.Request {
	r.Header.Set(rejectedHeader, strconv.Itoa(rej.status)+" "+g.rejectionKey)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Del("Content-Encoding")
	r.Body = io.NopCloser(strings.NewReader("{}"))
	r.ContentLength = 2
	r.URL.RawQuery = ""
	return r.WithContext(context.WithValue(r.Context(), rejectionKey{}, rej))
}

func rejectionFrom(r *http.Request) *rejection {
	rej, _ := r.Context().Value(rejectionKey{}).(*rejection)
	return rej
}

// readBody reads the bounded body; a non-zero status refuses the request.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, string) {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, http.StatusUnsupportedMediaType, "Content-Encoding must be identity"
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" && !isJSON(ct) {
		return nil, http.StatusUnsupportedMediaType, "Content-Type must be application/json"
	}
	if r.ContentLength > g.maxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, tooLarge(g.maxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, http.StatusRequestEntityTooLarge, tooLarge(g.maxBodyBytes)
	case err != nil:
		return nil, http.StatusBadRequest, "The request body could not be read"
	case ct == "" && len(body) > 0:
		return nil, http.StatusUnsupportedMediaType, "Content-Type must be application/json"
	}
	return body, 0, ""
}

func tooLarge(limit int64) string {
	return "The request body must be at most " + strconv.FormatInt(limit, 10) + " bytes"
}

// isJSON accepts application/json with any parameters (charset=utf-8).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

func bodyMessage(vs []jsonbody.Violation) string {
	for _, v := range vs {
		if v.Param == "" {
			return "Malformed JSON body"
		}
	}
	return "Validation failed"
}

func bodyDetails(vs []jsonbody.Violation) []detail {
	out := make([]detail, len(vs))
	for i, v := range vs {
		out[i] = detail{Value: v.Value, Msg: v.Msg, Param: v.Param, Location: locBody}
	}
	return out
}

// checkQuery type-checks the query parameters that name request fields
// (by JSON or proto name). Unknown parameters are ignored, as the original
// API does; fields bound to the path or body cannot be set from the query.
func checkQuery(rt *route, query url.Values) []detail {
	var out []detail
	for key, values := range query {
		fd := jsonbody.FieldByKey(rt.rpc.Input(), key)
		if fd == nil || rt.pathVar(string(fd.Name())) || rt.body == "*" || rt.body == string(fd.Name()) {
			continue
		}
		param := fd.JSONName()
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
	return out
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

// updateMaskField returns the FieldMask field of a route's request when the
// route binds a body to one field of it (PUT /v1/users/{id}), else nil.
func updateMaskField(rt *route) protoreflect.FieldDescriptor {
	if rt.body == "" || rt.body == "*" {
		return nil
	}
	fields := rt.rpc.Input().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if md := fd.Message(); md != nil && md.FullName() == "google.protobuf.FieldMask" {
			return fd
		}
	}
	return nil
}

// setUpdateMask makes the update mask exactly the top-level keys present in
// the body, so "claims": null clears and an absent key keeps; whatever mask
// the client put in the query is replaced.
func setUpdateMask(r *http.Request, mask protoreflect.FieldDescriptor, body []byte, md protoreflect.MessageDescriptor) {
	var top map[string]json.RawMessage
	_ = json.Unmarshal(body, &top) // already checked to be an object (or empty)
	var paths []string
	for key := range top {
		if fd := jsonbody.FieldByKey(md, key); fd != nil {
			paths = append(paths, string(fd.Name()))
		}
	}
	slices.Sort(paths)
	q := r.URL.Query()
	q.Del(mask.JSONName())
	q.Set(string(mask.Name()), strings.Join(paths, ","))
	r.URL.RawQuery = q.Encode()
}
