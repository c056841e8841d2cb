package jsonbody

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/usersd/usersd/internal/rules"
)

// shapeKind says which JSON a position in the body must hold. The kinds
// are those the API's bodies use; a field of any other kind is refused
// (see Unhandled).
type shapeKind uint8

const (
	// shapeFree is any JSON: a google.protobuf.Value, or content whose
	// schema is unknown because its key or container was already reported.
	shapeFree      shapeKind = iota
	shapeMessage             // object whose keys are the fields of md
	shapeStruct              // object with free-form members (google.protobuf.Struct)
	shapeListValue           // array of free-form elements (google.protobuf.ListValue)
	shapeString              // string field
	shapeInt32               // int32 field: a number, or a string holding one
	shapeFieldMask           // google.protobuf.FieldMask: a string of lowerCamelCase paths
	shapeUnhandled           // a field of a kind the checker does not handle
)

// shape is the expectation for one JSON value. Every one of them accepts
// null: a proto3 singular field reads it as unset, a Value as null, and
// below a Struct or ListValue anything goes.
type shape struct {
	kind shapeKind
	md   protoreflect.MessageDescriptor // shapeMessage
}

var freeShape = shape{kind: shapeFree}

// freeForm are the well-known types that hold free-form JSON: below them,
// keys are data, not field names.
var freeForm = map[protoreflect.FullName]shapeKind{
	"google.protobuf.Value":     shapeFree,
	"google.protobuf.Struct":    shapeStruct,
	"google.protobuf.ListValue": shapeListValue,
}

// FreeForm reports whether md holds free-form JSON (Struct, Value,
// ListValue): below it, keys are data, not field names.
func FreeForm(md protoreflect.MessageDescriptor) bool {
	_, ok := freeForm[md.FullName()]
	return ok
}

var fieldMaskName = (&fieldmaskpb.FieldMask{}).ProtoReflect().Descriptor().FullName()

// fieldShape is the expectation for the value of a field of a message:
// singular strings, int32s, FieldMasks, free-form JSON and messages made
// of those. Lists, maps, real oneofs, other scalars and other well-known
// types are refused; a test over the API's descriptors keeps them out of
// its bodies. Fields past the 64th are refused too: a message's keys are
// tracked in a 64-bit mask (see frame).
func fieldShape(fd protoreflect.FieldDescriptor) shape {
	if fd.Cardinality() == protoreflect.Repeated || fd.Index() >= 64 {
		return shape{kind: shapeUnhandled}
	}
	if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
		return shape{kind: shapeUnhandled}
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return shape{kind: shapeString}
	case protoreflect.Int32Kind:
		return shape{kind: shapeInt32}
	case protoreflect.MessageKind:
		md := fd.Message()
		if kind, ok := freeForm[md.FullName()]; ok {
			return shape{kind: kind}
		}
		if md.FullName() == fieldMaskName {
			return shape{kind: shapeFieldMask}
		}
		if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
			return shape{kind: shapeUnhandled} // read by protojson in a form of its own
		}
		return shape{kind: shapeMessage, md: md}
	}
	return shape{kind: shapeUnhandled}
}

// Unhandled lists the fields of md, and of the messages among them, that
// Decode refuses whatever their value because it does not know their JSON
// form. A message that may be a request body must have none.
func Unhandled(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	var out []protoreflect.FieldDescriptor
	seen := map[protoreflect.FullName]bool{}
	var walk func(protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			switch sh := fieldShape(fd); sh.kind {
			case shapeUnhandled:
				out = append(out, fd)
			case shapeMessage:
				walk(sh.md)
			}
		}
	}
	walk(md)
	return out
}

// containerProblem says what is wrong with an object (array false) or an
// array (array true) where sh is expected, or "" if nothing is.
func (sh shape) containerProblem(array bool) string {
	switch sh.kind {
	case shapeFree:
		return ""
	case shapeMessage, shapeStruct:
		if array {
			return "must be an object"
		}
		return ""
	case shapeListValue:
		if !array {
			return "must be an array"
		}
		return ""
	}
	return sh.valueMsg()
}

// scalarProblem says what is wrong with the non-container token tok where sh
// is expected, or "" if nothing is.
func (sh shape) scalarProblem(tok token, lx *lexer) string {
	if tok.kind == tokNull && sh.kind != shapeUnhandled {
		return ""
	}
	ok := false
	switch sh.kind {
	case shapeFree:
		ok = true
	case shapeString:
		ok = tok.kind == tokString
	case shapeInt32:
		return int32Problem(tok, lx.text(tok))
	case shapeFieldMask:
		// protojson alone decides which paths it can read.
		ok = tok.kind == tokString && protojson.Unmarshal(lx.buf[tok.start:tok.end], &fieldmaskpb.FieldMask{}) == nil
	}
	if ok {
		return ""
	}
	return sh.valueMsg()
}

// valueMsg states what a value of shape sh must be.
func (sh shape) valueMsg() string {
	switch sh.kind {
	case shapeMessage, shapeStruct:
		return "must be an object"
	case shapeListValue:
		return "must be an array"
	case shapeString:
		return "must be a string"
	case shapeInt32:
		return "must be an integer"
	case shapeFieldMask:
		return `must be a string of comma-separated lowerCamelCase field paths such as "claims,authenticationProvider"`
	}
	return "cannot be set in a JSON body"
}

// int32Problem checks an int32 field: protojson takes a JSON number or a
// string holding exactly one JSON number, integral and in range.
func int32Problem(tok token, text string) string {
	if tok.kind != tokNumber && (tok.kind != tokString || !isNumber(text)) {
		return "must be an integer"
	}
	digits, st := integerDigits(text)
	if st == notIntegral {
		return "must be an integer"
	}
	if st == integral {
		if _, err := strconv.ParseInt(digits, 10, 32); err == nil {
			return ""
		}
	}
	return fmt.Sprintf("must be an integer from %d to %d", math.MinInt32, math.MaxInt32)
}

// integerStatus classifies a JSON number for integer fields.
type integerStatus uint8

const (
	integral    integerStatus = iota
	notIntegral               // has a non-zero fractional part
	tooLong                   // more digits than any 64-bit integer
)

// integerDigits rewrites the JSON number num as plain decimal digits
// ("1.5e1" → "15", "-0" → "0") the way protojson does before parsing an
// integer field, including its refusals: an exponent beyond 32 bits, or more
// than 20 digits before parsing.
func integerDigits(num string) (string, integerStatus) {
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(num, "-")
	mant, exp, _ := strings.Cut(strings.ToLower(num), "e")
	intp, frac, _ := strings.Cut(mant, ".")
	intp = strings.TrimLeft(intp, "0") // only ever the single "0" of "0.x"
	frac = strings.TrimRight(frac, "0")
	if intp == "" && frac == "" {
		return "0", integral
	}
	e := 0
	if exp != "" {
		n, err := strconv.ParseInt(exp, 10, 32)
		if err != nil {
			// A non-zero value scaled by 10^±2^31 is either not an
			// integer or not in range; protojson refuses both.
			if strings.HasPrefix(exp, "-") {
				return "", notIntegral
			}
			return "", tooLong
		}
		e = int(n)
	}
	var digits string
	if e >= 0 {
		if len(frac) > e {
			return "", notIntegral
		}
		if len(intp)+e > 20 {
			return "", tooLong
		}
		digits = intp + frac + strings.Repeat("0", e-len(frac))
	} else {
		if frac != "" {
			return "", notIntegral
		}
		point := len(intp) + e
		if point <= 0 || strings.TrimRight(intp[point:], "0") != "" {
			return "", notIntegral
		}
		digits = intp[:point]
	}
	if neg {
		return "-" + digits, integral
	}
	return digits, integral
}

// numberProblem applies the ±2^53 rule to every JSON number in the body,
// whatever its field: beyond it a float64 (google.protobuf.Value,
// JavaScript) would silently round the value, and the service refuses
// decoded numbers by the same rule. It is decided on the literal text.
func numberProblem(num []byte) string {
	if rules.BeyondExactLiteral(num) {
		return rules.InexactNumber
	}
	return ""
}
