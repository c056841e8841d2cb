package jsonbody

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/usersd/usersd/internal/rules"
)

// shapeKind says which JSON a position in the body must hold.
type shapeKind uint8

const (
	// shapeFree is any JSON: a google.protobuf.Value, or content whose
	// schema is unknown because its key or container was already reported.
	shapeFree      shapeKind = iota
	shapeMessage             // object whose keys are the fields of md
	shapeStruct              // object with free-form members (google.protobuf.Struct)
	shapeAny                 // object checked by protojson once read (google.protobuf.Any)
	shapeMap                 // object keyed by fd.MapKey(), values per fd.MapValue()
	shapeList                // array of the elements of repeated field fd
	shapeListValue           // array of free-form elements (google.protobuf.ListValue)
	shapeScalar              // scalar or enum of kind fd.Kind()
	shapeFormatted           // string whose format protojson checks (Timestamp, ...)
)

// shape is the expectation for one JSON value.
type shape struct {
	kind   shapeKind
	md     protoreflect.MessageDescriptor // shapeMessage, shapeAny, shapeFormatted
	fd     protoreflect.FieldDescriptor   // shapeMap, shapeList, shapeScalar
	nullOK bool                           // null means "unset" here
}

var freeShape = shape{kind: shapeFree}

// FreeForm reports whether md holds free-form JSON (Struct, Value,
// ListValue): below it, keys are data, not field names.
func FreeForm(md protoreflect.MessageDescriptor) bool {
	kind, known := wellKnown[md.FullName()]
	return known && (kind == shapeFree || kind == shapeStruct || kind == shapeListValue)
}

// wellKnown maps the well-known types that protojson reads from something
// other than a plain object of fields.
var wellKnown = map[protoreflect.FullName]shapeKind{
	"google.protobuf.Value":       shapeFree,
	"google.protobuf.Struct":      shapeStruct,
	"google.protobuf.ListValue":   shapeListValue,
	"google.protobuf.Any":         shapeAny,
	"google.protobuf.Timestamp":   shapeFormatted,
	"google.protobuf.Duration":    shapeFormatted,
	"google.protobuf.FieldMask":   shapeFormatted,
	"google.protobuf.BoolValue":   shapeScalar,
	"google.protobuf.Int32Value":  shapeScalar,
	"google.protobuf.Int64Value":  shapeScalar,
	"google.protobuf.UInt32Value": shapeScalar,
	"google.protobuf.UInt64Value": shapeScalar,
	"google.protobuf.FloatValue":  shapeScalar,
	"google.protobuf.DoubleValue": shapeScalar,
	"google.protobuf.StringValue": shapeScalar,
	"google.protobuf.BytesValue":  shapeScalar,
}

func messageShape(md protoreflect.MessageDescriptor, nullOK bool) shape {
	kind, ok := wellKnown[md.FullName()]
	if !ok {
		return shape{kind: shapeMessage, md: md, nullOK: nullOK}
	}
	sh := shape{kind: kind, md: md, nullOK: nullOK}
	if kind == shapeScalar {
		// A wrapper is written as its "value" field.
		sh.fd = md.Fields().ByName("value")
	}
	return sh
}

// fieldShape is the expectation for a message field, where null means unset
// unless null is a value of the field's type: protojson then reads it as
// that value, which for a repeated field is an error.
func fieldShape(fd protoreflect.FieldDescriptor) shape {
	switch {
	case fd.IsList():
		return shape{kind: shapeList, fd: fd, nullOK: !isValueMessage(fd) && !isNullValueEnum(fd)}
	case fd.IsMap():
		return shape{kind: shapeMap, fd: fd, nullOK: true}
	}
	return singularShape(fd, true)
}

// elementShape is the expectation for a list element or map value, where
// protojson refuses null unless the type gives null a meaning.
func elementShape(fd protoreflect.FieldDescriptor) shape {
	return singularShape(fd, false)
}

func singularShape(fd protoreflect.FieldDescriptor, nullOK bool) shape {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return messageShape(fd.Message(), nullOK)
	}
	return shape{kind: shapeScalar, fd: fd, nullOK: nullOK}
}

// elements is the expectation for the elements of an array of shape sh.
func (sh shape) elements() shape {
	if sh.kind == shapeList {
		return elementShape(sh.fd)
	}
	return freeShape
}

func isNullValueEnum(fd protoreflect.FieldDescriptor) bool {
	return fd.Enum() != nil && fd.Enum().FullName() == "google.protobuf.NullValue"
}

func isValueMessage(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Value"
}

// acceptsNull reports whether null is a valid value for sh.
func (sh shape) acceptsNull() bool {
	return sh.nullOK || sh.kind == shapeFree || sh.kind == shapeScalar && isNullValueEnum(sh.fd)
}

// containerProblem says what is wrong with an object (array false) or an
// array (array true) where sh is expected, or "" if nothing is.
func (sh shape) containerProblem(array bool) string {
	switch sh.kind {
	case shapeFree:
		return ""
	case shapeMessage, shapeStruct, shapeAny, shapeMap:
		if array {
			return "must be an object"
		}
		return ""
	case shapeList, shapeListValue:
		if !array {
			return "must be an array"
		}
		return ""
	case shapeFormatted:
		return formatMsg(sh.md)
	}
	return scalarMsg(sh.fd)
}

// scalarProblem says what is wrong with the non-container token tok where sh
// is expected, or "" if nothing is.
func (sh shape) scalarProblem(tok token, lx *lexer) string {
	if tok.kind == tokNull {
		if sh.acceptsNull() {
			return ""
		}
		return "must not be null"
	}
	switch sh.kind {
	case shapeFree:
		return ""
	case shapeMessage, shapeStruct, shapeAny, shapeMap:
		return "must be an object"
	case shapeList, shapeListValue:
		return "must be an array"
	case shapeFormatted:
		return formattedProblem(sh.md, tok, lx.buf[tok.start:tok.end])
	}
	if sh.fd.Kind() == protoreflect.StringKind || sh.fd.Kind() == protoreflect.BoolKind {
		// The text does not matter: skip decoding it.
		return scalarProblem(sh.fd, tok, "")
	}
	return scalarProblem(sh.fd, tok, lx.text(tok))
}

// formattedProblem checks a Timestamp, Duration or FieldMask string by
// letting protojson read it alone, so the accepted formats are exactly
// protojson's.
func formattedProblem(md protoreflect.MessageDescriptor, tok token, raw []byte) string {
	if tok.kind == tokString && protojson.Unmarshal(raw, dynamicpb.NewMessage(md)) == nil {
		return ""
	}
	return formatMsg(md)
}

func formatMsg(md protoreflect.MessageDescriptor) string {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return `must be an RFC 3339 timestamp string such as "2024-01-31T09:30:00Z"`
	case "google.protobuf.Duration":
		return `must be a duration string in seconds such as "1.5s"`
	}
	return `must be a string of comma-separated lowerCamelCase field paths such as "claims,authenticationProvider"`
}

// scalarProblem checks a non-container token with value text against a
// scalar or enum field, accepting the input forms protojson accepts.
func scalarProblem(fd protoreflect.FieldDescriptor, tok token, text string) string {
	ok := false
	switch fd.Kind() {
	case protoreflect.BoolKind:
		ok = tok.kind == tokTrue || tok.kind == tokFalse
	case protoreflect.StringKind:
		ok = tok.kind == tokString
	case protoreflect.BytesKind:
		ok = tok.kind == tokString && isBase64(text)
	case protoreflect.EnumKind:
		ok = tok.kind == tokString && fd.Enum().Values().ByName(protoreflect.Name(text)) != nil ||
			tok.kind == tokNumber && intProblem(protoreflect.Int32Kind, text) == ""
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return floatProblem(fd.Kind(), tok, text)
	default:
		return intFieldProblem(fd.Kind(), tok, text)
	}
	if ok {
		return ""
	}
	return scalarMsg(fd)
}

// scalarMsg states the expectation for a scalar or enum field.
func scalarMsg(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "must be true or false"
	case protoreflect.StringKind:
		return "must be a string"
	case protoreflect.BytesKind:
		return "must be a base64-encoded string"
	case protoreflect.EnumKind:
		return enumMsg(fd.Enum())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "must be a number"
	}
	return "must be an integer"
}

func enumMsg(ed protoreflect.EnumDescriptor) string {
	names := make([]string, ed.Values().Len())
	for i := range names {
		names[i] = strconv.Quote(string(ed.Values().Get(i).Name()))
	}
	return "must be one of " + strings.Join(names, ", ")
}

// isBase64 mirrors protojson: standard or URL alphabet, padding optional.
func isBase64(s string) bool {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	_, err := enc.DecodeString(s)
	return err == nil
}

// intFieldProblem checks an integer field: protojson takes a JSON number or
// a string holding exactly one JSON number, integral and in range.
func intFieldProblem(kind protoreflect.Kind, tok token, text string) string {
	if tok.kind != tokNumber && (tok.kind != tokString || !isNumber(text)) {
		return "must be an integer"
	}
	return intProblem(kind, text)
}

// intProblem checks the JSON number num against an integer kind.
func intProblem(kind protoreflect.Kind, num string) string {
	digits, st := integerDigits(num)
	if st == notIntegral {
		return "must be an integer"
	}
	var err error
	if st == integral {
		switch kind {
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			_, err = strconv.ParseInt(digits, 10, 32)
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			_, err = strconv.ParseInt(digits, 10, 64)
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			_, err = strconv.ParseUint(digits, 10, 32)
		default: // Uint64Kind, Fixed64Kind
			_, err = strconv.ParseUint(digits, 10, 64)
		}
		if err == nil {
			return ""
		}
	}
	lo, hi := intRange(kind)
	return fmt.Sprintf("must be an integer from %s to %s", lo, hi)
}

func intRange(kind protoreflect.Kind) (lo, hi string) {
	switch kind {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.Itoa(math.MinInt32), strconv.Itoa(math.MaxInt32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.Itoa(math.MinInt64), strconv.Itoa(math.MaxInt64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "0", strconv.FormatUint(math.MaxUint32, 10)
	}
	return "0", strconv.FormatUint(math.MaxUint64, 10)
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

// floatProblem checks a float or double field: a JSON number, or a string
// holding exactly one JSON number or "NaN", "Infinity", "-Infinity".
func floatProblem(kind protoreflect.Kind, tok token, text string) string {
	switch {
	case tok.kind == tokString && (text == "NaN" || text == "Infinity" || text == "-Infinity"):
		return ""
	case tok.kind != tokNumber && (tok.kind != tokString || !isNumber(text)):
		return "must be a number"
	}
	bits := 64
	if kind == protoreflect.FloatKind {
		bits = 32
	}
	if _, err := strconv.ParseFloat(text, bits); err != nil {
		if bits == 32 {
			return fmt.Sprintf("must be a number from %g to %g", -math.MaxFloat32, math.MaxFloat32)
		}
		return "number out of range"
	}
	return ""
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
