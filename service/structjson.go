package service

import (
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/usersd/usersd/internal/jsontext"
)

// decodeStruct is protojson.Unmarshal into a Struct, with a fast path for
// what the store holds: the compact JSON encodeClaims and the event
// recorder write. Every user read decodes claims, and protojson's
// reflection made that a third of GetUser's allocations. Anything the
// fast path does not take as it is (whitespace, escapes, duplicate keys,
// deep nesting, a number out of range, invalid UTF-8, an error) goes to
// protojson, so the result and every error are protojson's.
//
// It takes the document as a string: keys and string values are slices of
// it, not allocations of their own.
func decodeStruct(data string) (*structpb.Struct, error) {
	d := structDecoder{s: data}
	if s, ok := d.object(); ok && d.i == len(d.s) {
		return s, nil
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(data), s); err != nil {
		return nil, err
	}
	return s, nil
}

// maxFastDepth bounds the nesting the fast path recurses into; deeper
// documents go to protojson (stored claims are much shallower).
const maxFastDepth = 64

type structDecoder struct {
	s     string
	i     int
	depth int
}

// Value and its kind in one allocation.
type (
	stringValue struct {
		v structpb.Value
		k structpb.Value_StringValue
	}
	numberValue struct {
		v structpb.Value
		k structpb.Value_NumberValue
	}
	boolValue struct {
		v structpb.Value
		k structpb.Value_BoolValue
	}
	nullValue struct {
		v structpb.Value
		k structpb.Value_NullValue
	}
	structValue struct {
		v structpb.Value
		k structpb.Value_StructValue
	}
	listValue struct {
		v structpb.Value
		k structpb.Value_ListValue
	}
)

func (d *structDecoder) object() (*structpb.Struct, bool) {
	if !d.next('{') || d.depth == maxFastDepth {
		return nil, false
	}
	d.depth++
	defer func() { d.depth-- }()
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	if d.next('}') {
		return s, true
	}
	for {
		k, ok := d.string()
		if !ok || !d.next(':') {
			return nil, false
		}
		if _, dup := s.Fields[k]; dup {
			return nil, false
		}
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		s.Fields[k] = v
		if d.next('}') {
			return s, true
		}
		if !d.next(',') {
			return nil, false
		}
	}
}

func (d *structDecoder) list() (*structpb.ListValue, bool) {
	if !d.next('[') || d.depth == maxFastDepth {
		return nil, false
	}
	d.depth++
	defer func() { d.depth-- }()
	l := &structpb.ListValue{}
	if d.next(']') {
		return l, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		l.Values = append(l.Values, v)
		if d.next(']') {
			return l, true
		}
		if !d.next(',') {
			return nil, false
		}
	}
}

func (d *structDecoder) value() (*structpb.Value, bool) {
	if d.i == len(d.s) {
		return nil, false
	}
	switch c := d.s[d.i]; {
	case c == '"':
		s, ok := d.string()
		if !ok {
			return nil, false
		}
		v := &stringValue{k: structpb.Value_StringValue{StringValue: s}}
		v.v.Kind = &v.k
		return &v.v, true
	case c == '-' || c >= '0' && c <= '9':
		n, ok := d.number()
		if !ok {
			return nil, false
		}
		v := &numberValue{k: structpb.Value_NumberValue{NumberValue: n}}
		v.v.Kind = &v.k
		return &v.v, true
	case c == '{':
		s, ok := d.object()
		if !ok {
			return nil, false
		}
		v := &structValue{k: structpb.Value_StructValue{StructValue: s}}
		v.v.Kind = &v.k
		return &v.v, true
	case c == '[':
		l, ok := d.list()
		if !ok {
			return nil, false
		}
		v := &listValue{k: structpb.Value_ListValue{ListValue: l}}
		v.v.Kind = &v.k
		return &v.v, true
	case d.literal("true"), d.literal("false"):
		v := &boolValue{k: structpb.Value_BoolValue{BoolValue: c == 't'}}
		v.v.Kind = &v.k
		return &v.v, true
	case d.literal("null"):
		v := &nullValue{}
		v.v.Kind = &v.k
		return &v.v, true
	}
	return nil, false
}

// next consumes c if it comes next.
func (d *structDecoder) next(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// literal consumes lit if it comes next.
func (d *structDecoder) literal(lit string) bool {
	if len(d.s)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// string reads a string without escapes or control characters, in valid
// UTF-8.
func (d *structDecoder) string() (string, bool) {
	str, n, ok := jsontext.PlainString(d.s[d.i:])
	d.i += n
	return str, ok
}

// number reads a JSON number that is a finite float64.
func (d *structDecoder) number() (float64, bool) {
	f, n, ok := jsontext.Number(d.s[d.i:])
	d.i += n
	return f, ok
}

// appendStruct appends the JSON encoding/json gives s.AsMap() with HTML
// escaping off: keys sorted, floats as encoding/json formats them, and a
// number that is not finite as the string AsMap makes of it. encodeClaims
// stores that form; written directly, it no longer costs the map, the
// reflection and the sorting encoding/json needs (the claims of every
// create and update).
func appendStruct(b []byte, s *structpb.Struct) []byte {
	fields := s.GetFields()
	var buf [16]string
	keys := jsontext.SortedKeys(buf[:0], fields)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsontext.AppendString(b, k)
		b = append(b, ':')
		b = appendValue(b, fields[k])
	}
	return append(b, '}')
}

func appendValue(b []byte, v *structpb.Value) []byte {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		if k != nil {
			return appendNumber(b, k.NumberValue)
		}
	case *structpb.Value_StringValue:
		if k != nil {
			return jsontext.AppendString(b, k.StringValue)
		}
	case *structpb.Value_BoolValue:
		if k != nil {
			return strconv.AppendBool(b, k.BoolValue)
		}
	case *structpb.Value_StructValue:
		if k != nil {
			return appendStruct(b, k.StructValue)
		}
	case *structpb.Value_ListValue:
		if k != nil {
			b = append(b, '[')
			for i, e := range k.ListValue.GetValues() {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendValue(b, e)
			}
			return append(b, ']')
		}
	}
	return append(b, "null"...) // null, no kind, or a nil one
}

// appendNumber formats f as encoding/json does, and a number that is not
// finite as the string AsMap makes of it.
func appendNumber(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return jsontext.AppendString(b, "NaN")
	case math.IsInf(f, 1):
		return jsontext.AppendString(b, "Infinity")
	case math.IsInf(f, -1):
		return jsontext.AppendString(b, "-Infinity")
	}
	return jsontext.AppendNumber(b, f)
}
