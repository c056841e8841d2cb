package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/usersd/usersd/gateway/jsonbody"
)

// describe turns the service's field violations (proto paths) into the
// contract's details: JSON names, where the input was, and its value as
// the client sent it, read back from the path (matched against the route's
// own template), the checked query or the checked body. The body is
// decoded once for all its details, on this error path only: the success
// path parses it once, in the guard's check that also decodes it.
func describe(rt *route, r *http.Request, violations []*errdetails.BadRequest_FieldViolation) []detail {
	if len(violations) == 0 {
		return nil
	}
	var (
		vars    map[string]string
		body    any
		decoded bool
	)
	out := make([]detail, 0, len(violations))
	for _, v := range violations {
		if rt == nil {
			out = append(out, detail{Param: v.GetField(), Msg: v.GetDescription(), Location: locBody})
			continue
		}
		d := rt.locate(v.GetField(), v.GetDescription())
		switch d.Location {
		case locParams:
			if vars == nil {
				vars, _ = rt.match(r.URL.Path)
			}
			d.Value = vars[d.Param]
		case locQuery:
			d.Value = r.Form.Get(d.Param) // see setForm
		case locHeaders:
			d.Value = strings.Join(r.Header.Values(d.Param), ", ")
		default:
			if !decoded {
				body, decoded = decodeJSON(checkedBodyOf(r)), true
			}
			d.Value = lookupJSON(body, d.Param)
		}
		out = append(out, d)
	}
	return out
}

// locate maps a proto field path of the route's request message onto the
// REST request: path variable, body (with the bound field's name dropped,
// since the body is that field) or query parameter; or a metadata key the
// gateway forwards from a header onto that header.
func (rt *route) locate(field, msg string) detail {
	if header, ok := headerOf(field); ok {
		return detail{Msg: msg, Param: header, Location: locHeaders}
	}
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

// decodeJSON decodes a JSON document for lookupJSON, numbers kept as sent;
// nil if there is none.
func decodeJSON(doc []byte) any {
	var v any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if len(doc) == 0 || dec.Decode(&v) != nil {
		return nil
	}
	return v
}

// lookupJSON returns the value at a param path ("a.b", "tags[2]") of a
// decoded JSON document: strings unquoted, anything else as compact JSON;
// "" if absent.
func lookupJSON(doc any, param string) string {
	cur := doc
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
