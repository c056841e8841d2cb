package jsonbody

import (
	"strconv"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// building reports whether the values read now go into the message: only
// while nothing is wrong with the body.
func (c *checker) building() bool {
	return len(c.out) == 0
}

// attach gives the container just opened, the top of the stack, what it
// decodes into, and links that into its parent as the current member.
func (c *checker) attach(sh shape, array bool) {
	n := len(c.stack)
	f := &c.stack[n-1]
	if n == 1 {
		f.msg = c.root
		return
	}
	parent := &c.stack[n-2]
	if sh.kind == shapeMessage {
		f.msg = parent.msg.Mutable(parent.fd).Message()
		return
	}
	// Free-form JSON: a Struct or a ListValue, held by its field as it is,
	// or wrapped in a Value anywhere else.
	if array {
		f.list = &structpb.ListValue{}
	} else {
		f.obj = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	switch {
	case sh.kind == shapeStruct:
		parent.msg.Set(parent.fd, protoreflect.ValueOfMessage(f.obj.ProtoReflect()))
	case sh.kind == shapeListValue:
		parent.msg.Set(parent.fd, protoreflect.ValueOfMessage(f.list.ProtoReflect()))
	case array:
		place(parent, structpb.NewListValue(f.list))
	default:
		place(parent, structpb.NewStructValue(f.obj))
	}
}

// setScalar stores the scalar tok, checked against sh, as the current
// member of the innermost container. A null leaves a field unset, as
// protojson does, except in a google.protobuf.Value, where it is a value.
func (c *checker) setScalar(tok token, sh shape) {
	f := c.top()
	if f.msg == nil || sh.kind == shapeFree {
		place(f, c.freeScalar(tok))
		return
	}
	if tok.kind == tokNull {
		return
	}
	var v protoreflect.Value
	switch sh.kind {
	case shapeString:
		v = protoreflect.ValueOfString(c.lx.text(tok))
	case shapeInt32:
		// int32Problem accepted it: an integral number in range.
		digits, _ := integerDigits(c.lx.text(tok))
		n, _ := strconv.ParseInt(digits, 10, 32)
		v = protoreflect.ValueOfInt32(int32(n))
	case shapeFieldMask:
		// scalarProblem had protojson read it: protojson decides its paths.
		mask := &fieldmaskpb.FieldMask{}
		_ = protojson.Unmarshal(c.lx.buf[tok.start:tok.end], mask)
		v = protoreflect.ValueOfMessage(mask.ProtoReflect())
	default:
		return // no other shape takes a scalar without a violation
	}
	f.msg.Set(f.fd, v)
}

// freeScalar is the google.protobuf.Value of a scalar token. A number is
// parsed as protojson parses it; numberProblem has refused the ones a
// float64 does not hold.
func (c *checker) freeScalar(tok token) *structpb.Value {
	switch tok.kind {
	case tokTrue:
		return structpb.NewBoolValue(true)
	case tokFalse:
		return structpb.NewBoolValue(false)
	case tokNumber:
		f, _ := strconv.ParseFloat(c.lx.text(tok), 64)
		return structpb.NewNumberValue(f)
	case tokString:
		return structpb.NewStringValue(c.lx.text(tok))
	}
	return structpb.NewNullValue()
}

// place stores v as the current member of free-form container f, or, in a
// message, as the value of the google.protobuf.Value field being read.
func place(f *frame, v *structpb.Value) {
	switch {
	case f.obj != nil:
		f.obj.Fields[f.key] = v
	case f.list != nil:
		f.list.Values = append(f.list.Values, v)
	default:
		f.msg.Set(f.fd, protoreflect.ValueOfMessage(v.ProtoReflect()))
	}
}
