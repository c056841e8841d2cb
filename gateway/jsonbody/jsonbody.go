// Package jsonbody checks a REST request body strictly against the protobuf
// message it is decoded into, and decodes it in the same pass, in place of
// grpc-gateway's protojson decoding.
//
// protojson stops at the first problem, lets some inputs through (integers
// that a float64 cannot hold exactly, very deep nesting) and words its errors
// for Go programmers. Decode instead reports every offending input, each with
// the JSON path of the input and a message that is safe to show a client; the
// caller renders them as the details of a 400 response.
//
// Decode is deliberately at least as strict as protojson: a body it accepts
// is one protojson.Unmarshal accepts too, and decodes to the same message.
// It knows the JSON forms of the field kinds the API's bodies use
// (strings, int32s, FieldMasks, Struct/Value/ListValue and messages of
// those) and refuses fields of any other kind; Unhandled lists them, so a
// test can keep them out of bodies.
//
// The walk also records which fields the top-level object names, so the
// caller never parses the body again to learn its keys.
package jsonbody

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// Violation is one offending input of a body.
type Violation struct {
	// Param is the JSON path of the input using the keys as they appear in
	// the body: "authenticationProvider.url", "claims.tags[2]"; "" for the
	// body as a whole.
	Param string
	// Value is the offending input as sent: the unquoted text of a string,
	// the raw text of any other value including objects and arrays, or the
	// offending characters of malformed JSON.
	Value string
	// Msg says what is wrong, in short English safe to show a client.
	Msg string
}

// Limits bound the work Decode does on one body. A zero field takes its
// default.
type Limits struct {
	// MaxDepth is the maximum nesting depth of the body, the body object
	// being depth 1. A deeper body yields a single violation. At most
	// MaxDepthCap.
	MaxDepth int
	// MaxViolations is the number of violations after which Decode stops.
	MaxViolations int
}

const (
	// DefaultMaxDepth is the MaxDepth of a zero Limits.
	DefaultMaxDepth = 64
	// DefaultMaxViolations is the MaxViolations of a zero Limits.
	DefaultMaxViolations = 50
	// MaxDepthCap bounds MaxDepth so that every body Decode accepts stays
	// within protojson's recursion limit of 10000 nested messages (an Any
	// can cost two of them per JSON level).
	MaxDepthCap = 5000
	// MaxTextLen bounds the bytes of a Param or Value; longer ones are cut at
	// a character boundary. Callers truncate further for display; the bound
	// keeps a body with many violations about one large sub-document or key
	// from making Decode copy it many times over.
	MaxTextLen = 1024
)

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	l.MaxDepth = min(l.MaxDepth, MaxDepthCap)
	if l.MaxViolations <= 0 {
		l.MaxViolations = DefaultMaxViolations
	}
	return l
}

// Result is what Decode found in a body.
type Result struct {
	// Violations are the offending inputs in body order; nil if none.
	Violations []Violation
	// named has bit i set when the top-level object has a key naming
	// field i of the message (a null value included).
	named uint64
}

// Names reports whether the body's top-level object has a key naming fd, a
// field of the message Decode was given, whatever its value (null too).
func (r Result) Names(fd protoreflect.FieldDescriptor) bool {
	return fd.Index() < 64 && r.named&(1<<fd.Index()) != 0
}

// Decode validates body as the JSON of message msg as protojson reads it
// and, when nothing is wrong with it, leaves in msg what protojson.Unmarshal
// would have: one parse of the body serves both. msg must be empty and
// mutable; after a violation its content is unspecified (building stops at
// the first one). An empty or all-whitespace body is valid: the gateway
// reads it as {}.
//
// Malformed JSON, a top-level value that is not an object and nesting
// beyond lim.MaxDepth each yield exactly one violation, since nothing after
// them can be read reliably. Everything else (unknown fields, wrong types,
// duplicate keys, numbers no float64 holds exactly) is collected up to
// lim.MaxViolations.
func Decode(body []byte, msg protoreflect.Message, lim Limits) Result {
	c := checker{lx: lexer{buf: body}, lim: lim.withDefaults(), root: msg}
	c.run(msg.Descriptor())
	return Result{Violations: c.out, named: c.named}
}

// checker walks the body with an explicit stack of open objects and arrays
// instead of recursion, so that no input can exhaust the goroutine stack.
type checker struct {
	lx    lexer
	lim   Limits
	stack []frame
	out   []Violation
	done  bool                 // MaxViolations reached, or a violation that ends the check
	named uint64               // the fields the top-level object named, once it closed
	root  protoreflect.Message // what the body decodes into
}

// frame is an object or array being read.
type frame struct {
	sh    shape
	array bool
	start int    // offset of the opening bracket
	n     int    // members or elements begun so far; the current one is n-1
	key   string // key of the current member of an object
	// out[reportFrom:reportTo] are about the container as a whole; their
	// Value is its text, known once it closes.
	reportFrom, reportTo int

	// Keys seen: in a Struct all of them, in a message the unknown ones.
	// A message's fields are marked by index instead, in byJSON or byProto
	// after the name that named them, to tell a repeated key from the
	// field's other name.
	keys            map[string]struct{}
	byJSON, byProto uint64

	// What the container decodes into (see build.go):
	// a message, with fd the field of its current member, or free-form
	// JSON's members or elements.
	msg  protoreflect.Message
	fd   protoreflect.FieldDescriptor
	obj  *structpb.Struct
	list *structpb.ListValue
}

var byteOrderMark = []byte("\xef\xbb\xbf")

func (c *checker) run(md protoreflect.MessageDescriptor) {
	if bytes.HasPrefix(c.lx.buf, byteOrderMark) {
		c.fail(false, "invalid JSON: a byte-order mark is not allowed", "")
		return
	}
	tok, ok := c.read(false)
	if !ok || tok.kind == tokEOF {
		return
	}
	if tok.kind != tokObjectOpen {
		c.fail(false, "the body must be a JSON object", c.lx.text(tok))
		return
	}
	c.open(tok, shape{kind: shapeMessage, md: md}, "")
	for !c.done && len(c.stack) > 0 {
		if c.top().array {
			c.stepArray()
		} else {
			c.stepObject()
		}
	}
	if c.done {
		// Stopped at MaxViolations: the open containers end here.
		for i := range c.stack {
			c.fillValues(&c.stack[i], c.lx.pos)
		}
		return
	}
	if tok, ok = c.read(false); ok && tok.kind != tokEOF {
		c.fail(false, "invalid JSON: unexpected data after the top-level object", c.lx.text(tok))
	}
}

func (c *checker) top() *frame { return &c.stack[len(c.stack)-1] }

// stepObject reads one member of the innermost object, or its end.
func (c *checker) stepObject() {
	f := c.top()
	tok, ok := c.read(false)
	if !ok {
		return
	}
	if f.n > 0 {
		switch tok.kind {
		case tokObjectClose:
			c.close(tok)
			return
		case tokComma:
		default:
			c.unexpected(false, tok, "',' or '}'")
			return
		}
		if tok, ok = c.read(false); !ok {
			return
		}
		if tok.kind == tokObjectClose {
			c.fail(false, "invalid JSON: trailing comma", "")
			return
		}
	} else if tok.kind == tokObjectClose {
		c.close(tok)
		return
	}
	if tok.kind != tokString {
		c.unexpected(false, tok, "a key in double quotes")
		return
	}
	f.n++
	f.key = c.lx.text(tok)
	if tok, ok = c.read(true); !ok {
		return
	}
	if tok.kind != tokColon {
		c.unexpected(true, tok, "':'")
		return
	}
	if tok, ok = c.read(true); !ok {
		return
	}
	sh, keyMsg := f.member()
	c.value(tok, sh, keyMsg)
}

// stepArray reads one element of the innermost array, or its end.
func (c *checker) stepArray() {
	f := c.top()
	if f.n > 0 {
		tok, ok := c.read(false)
		if !ok {
			return
		}
		switch tok.kind {
		case tokArrayClose:
			c.close(tok)
			return
		case tokComma:
		default:
			c.unexpected(false, tok, "',' or ']'")
			return
		}
	}
	f.n++
	tok, ok := c.read(true)
	if !ok {
		return
	}
	if tok.kind == tokArrayClose {
		if f.n > 1 {
			c.fail(false, "invalid JSON: trailing comma", "")
			return
		}
		c.close(tok)
		return
	}
	c.value(tok, freeShape, "") // only ListValue arrays are read
}

// value checks the value starting with tok against sh. keyMsg, if not
// empty, is a finding about the member's key, reported with the value.
func (c *checker) value(tok token, sh shape, keyMsg string) {
	switch tok.kind {
	case tokObjectOpen, tokArrayOpen:
		c.open(tok, sh, keyMsg)
		return
	case tokString, tokNumber, tokTrue, tokFalse, tokNull:
	default:
		c.unexpected(true, tok, "a value")
		return
	}
	msg := ""
	if tok.kind == tokNumber {
		msg = numberProblem(c.lx.buf[tok.start:tok.end])
	}
	if msg == "" {
		msg = sh.scalarProblem(tok, &c.lx)
	}
	if keyMsg == "" && msg == "" {
		if c.building() {
			c.setScalar(tok, sh)
		}
		return
	}
	text := c.lx.text(tok)
	if keyMsg != "" {
		c.report(text, keyMsg)
	}
	if msg != "" {
		c.report(text, msg)
	}
}

// open starts reading an object or array expected to be sh.
func (c *checker) open(tok token, sh shape, keyMsg string) {
	if len(c.stack) == c.lim.MaxDepth {
		c.fail(true, fmt.Sprintf("nesting exceeds the maximum depth of %d", c.lim.MaxDepth), "")
		return
	}
	array := tok.kind == tokArrayOpen
	problem := sh.containerProblem(array)
	if problem != "" {
		// Read the contents for syntax only: the schema does not apply.
		sh = freeShape
	}
	from := len(c.out)
	if keyMsg != "" {
		c.report("", keyMsg)
	}
	if problem != "" {
		c.report("", problem)
	}
	c.stack = append(c.stack, frame{sh: sh, array: array, start: tok.start, reportFrom: from, reportTo: len(c.out)})
	if c.building() {
		c.attach(sh, array)
	}
}

// close ends the innermost object or array at tok.
func (c *checker) close(tok token) {
	f := c.top()
	if len(c.stack) == 1 {
		c.named = f.byJSON | f.byProto
	}
	c.fillValues(f, tok.end)
	c.stack = c.stack[:len(c.stack)-1]
}

// fillValues sets the Value of the violations about container f, whose text
// ends at offset end.
func (c *checker) fillValues(f *frame, end int) {
	if f.reportFrom == f.reportTo {
		return
	}
	text := clip(c.lx.buf[f.start:end])
	for i := f.reportFrom; i < f.reportTo; i++ {
		c.out[i].Value = text
	}
}

// member resolves the key just read in object f to the shape of its value
// and a finding about the key.
func (f *frame) member() (shape, string) {
	if f.sh.kind == shapeMessage {
		return f.field()
	}
	if f.seen(f.key) {
		return freeShape, "duplicate key"
	}
	return freeShape, ""
}

// FieldByKey is the field of md that a JSON key names, as protojson reads
// it: by JSON name or by proto name; nil when there is none.
func FieldByKey(md protoreflect.MessageDescriptor, key string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByJSONName(key); fd != nil {
		return fd
	}
	return md.Fields().ByTextName(key)
}

// field matches a key to a message field as protojson does: by JSON name or
// proto name, each field at most once.
func (f *frame) field() (shape, string) {
	md := f.sh.md
	fd := md.Fields().ByJSONName(f.key)
	asJSON := fd != nil
	if !asJSON {
		fd = md.Fields().ByTextName(f.key)
	}
	if fd == nil {
		if f.seen(f.key) {
			return freeShape, "duplicate key"
		}
		return freeShape, "unknown field"
	}
	f.fd = fd
	sh := fieldShape(fd)
	if sh.kind == shapeUnhandled {
		return sh, "" // refused for its kind; its index may be past the masks
	}
	bit := uint64(1) << fd.Index()
	same, other, otherKey := &f.byJSON, f.byProto, fd.TextName()
	if !asJSON {
		same, other, otherKey = &f.byProto, f.byJSON, fd.JSONName()
	}
	switch {
	case *same&bit != 0:
		return sh, "duplicate key"
	case other&bit != 0:
		return sh, fmt.Sprintf("duplicate key: %q names the same field", otherKey)
	}
	*same |= bit
	return sh, ""
}

// seen records key k in f and reports whether it was there already.
func (f *frame) seen(k string) bool {
	if _, ok := f.keys[k]; ok {
		return true
	}
	if f.keys == nil {
		f.keys = make(map[string]struct{})
	}
	f.keys[k] = struct{}{}
	return false
}

// read returns the next token. On malformed input it records the fatal
// violation at the value being read if inValue, else at the innermost
// container.
func (c *checker) read(inValue bool) (token, bool) {
	tok, err := c.lx.next()
	if err != nil {
		c.fail(inValue, err.msg, err.value)
		return token{}, false
	}
	return tok, true
}

// unexpected fails on a well-formed token in a place where want belongs.
func (c *checker) unexpected(inValue bool, tok token, want string) {
	found := "end of input"
	switch tok.kind {
	case tokEOF:
	case tokString:
		found = "a string"
	case tokNumber:
		found = "a number"
	default:
		found = string(c.lx.buf[tok.start:tok.end])
		if tok.end-tok.start == 1 {
			found = "'" + found + "'"
		}
	}
	c.fail(inValue, fmt.Sprintf("invalid JSON: expected %s, found %s", want, found), c.lx.text(tok))
}

// fail replaces all findings by the single one that ends the check.
func (c *checker) fail(inValue bool, msg, value string) {
	n := len(c.stack)
	if !inValue && n > 0 {
		n--
	}
	c.out = []Violation{{Param: c.pathAt(n), Value: clip(value), Msg: msg}}
	c.stack = nil
	c.done = true
}

// report records a finding about the value being read.
func (c *checker) report(value, msg string) {
	if c.done {
		return
	}
	c.out = append(c.out, Violation{Param: c.pathAt(len(c.stack)), Value: clip(value), Msg: msg})
	c.done = len(c.out) >= c.lim.MaxViolations
}

// pathAt is the path of the current member of stack[n-1], built only when a
// violation needs it: eager paths would cost time quadratic in the depth.
func (c *checker) pathAt(n int) string {
	var b strings.Builder
	for i := 0; i < n && b.Len() < MaxTextLen; i++ {
		f := &c.stack[i]
		switch {
		case f.array:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.n - 1))
			b.WriteByte(']')
		case i > 0:
			b.WriteByte('.')
			fallthrough
		default:
			b.WriteString(clip(f.key))
		}
	}
	return clip(b.String())
}

// clip cuts s to at most MaxTextLen bytes at a character boundary.
func clip[T string | []byte](s T) string {
	if len(s) <= MaxTextLen {
		return string(s)
	}
	n := MaxTextLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return string(s[:n])
}
