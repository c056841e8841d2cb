package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/usersd/usersd/gateway/jsonbody"
)

type bodyKey struct{}

// withBody keeps the checked request body, so an error found later (by the
// service) can quote the offending value back.
func withBody(ctx context.Context, body []byte) context.Context {
	return context.WithValue(ctx, bodyKey{}, body)
}

func bodyFrom(ctx context.Context) []byte {
	b, _ := ctx.Value(bodyKey{}).([]byte)
	return b
}

// describe turns the service's field violations (proto paths) into the
// contract's details: JSON names, where the input was, and its value as
// the client sent it.
func describe(rt *route, r *http.Request, violations []*errdetails.BadRequest_FieldViolation) []detail {
	if len(violations) == 0 {
		return nil
	}
	var vars map[string]string
	if rt != nil {
		vars, _ = rt.match(r.URL.Path) // the route's own template: no routing
	}
	out := make([]detail, 0, len(violations))
	for _, v := range violations {
		d := detail{Param: v.GetField(), Msg: v.GetDescription(), Location: locBody}
		if rt != nil {
			d = rt.locate(v.GetField(), v.GetDescription())
			d.Value = valueOf(r, d, vars)
		}
		out = append(out, d)
	}
	return out
}

// locate maps a proto field path of the route's request message onto the
// REST request: path variable, body (with the bound field's name dropped,
// since the body is that field) or query parameter.
func (rt *route) locate(field, msg string) detail {
	segs := strings.Split(field, ".")
	md := rt.rpc.Input()
	d := detail{Msg: msg, Location: locQuery}
	switch {
	case rt.pathVar(segs[0]):
		d.Location = locParams
	case rt.body == "*":
		d.Location = locBody
	case rt.body == segs[0]:
		d.Location = locBody
		fd := md.Fields().ByName(protoreflect.Name(segs[0]))
		md, segs = fd.Message(), segs[1:]
	}
	d.Param = strings.Join(jsonPath(md, segs), ".")
	return d
}

// jsonPath renames proto field names to JSON names while the path walks
// through messages; below a free-form Struct, keys are kept as they are.
func jsonPath(md protoreflect.MessageDescriptor, segs []string) []string {
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		if md == nil || jsonbody.FreeForm(md) {
			return append(out, segs[i:]...)
		}
		fd := md.Fields().ByName(protoreflect.Name(s))
		if fd == nil {
			return append(out, segs[i:]...)
		}
		out = append(out, fd.JSONName())
		md = fd.Message()
	}
	return out
}

// valueOf reads the offending value back from the request.
func valueOf(r *http.Request, d detail, vars map[string]string) string {
	switch d.Location {
	case locParams:
		return vars[d.Param]
	case locQuery:
		return r.URL.Query().Get(d.Param)
	default:
		return lookupJSON(bodyFrom(r.Context()), d.Param)
	}
}

// lookupJSON returns the value at a param path ("a.b", "tags[2]") of a JSON
// document: strings unquoted, anything else as compact JSON; "" if absent.
func lookupJSON(doc []byte, param string) string {
	var cur any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber() // quote numbers exactly as sent
	if len(doc) == 0 || dec.Decode(&cur) != nil {
		return ""
	}
	for _, seg := range strings.Split(param, ".") {
		key, indexes := splitIndexes(seg)
		obj, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		if cur, ok = obj[key]; !ok {
			return ""
		}
		for _, i := range indexes {
			arr, ok := cur.([]any)
			if !ok || i >= len(arr) {
				return ""
			}
			cur = arr[i]
		}
	}
	if s, ok := cur.(string); ok {
		return s
	}
	b, _ := json.Marshal(cur)
	return string(b)
}

// splitIndexes splits "tags[2][0]" into "tags" and [2 0].
func splitIndexes(seg string) (string, []int) {
	open := strings.IndexByte(seg, '[')
	if open < 0 || !strings.HasSuffix(seg, "]") {
		return seg, nil
	}
	var indexes []int
	for _, part := range strings.Split(seg[open+1:len(seg)-1], "][") {
		i, err := strconv.Atoi(part)
		if err != nil || i < 0 {
			return seg, nil
		}
		indexes = append(indexes, i)
	}
	return seg[:open], indexes
}
