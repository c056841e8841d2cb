package jsonbody

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	// Register the well-known types the test schema imports.
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"

	usersv1 "github.com/usersd/usersd/gen/users/v1"
)

var (
	userMD       = (&usersv1.User{}).ProtoReflect().Descriptor()
	createMD     = (&usersv1.CreateUserRequest{}).ProtoReflect().Descriptor()
	updateMD     = (&usersv1.UpdateUserRequest{}).ProtoReflect().Descriptor()
	listReqMD    = (&usersv1.ListUsersRequest{}).ProtoReflect().Descriptor()
	listRespMD   = (&usersv1.ListUsersResponse{}).ProtoReflect().Descriptor()
	kitchenMD    = kitchenDescriptor()
	testMessages = []protoreflect.MessageDescriptor{userMD, createMD, updateMD, listReqMD, listRespMD, kitchenMD}
)

// kitchenSchema has a field of every kind Decode handles, and fields of
// kinds it refuses (Unhandled) because the API's bodies do not use them.
const kitchenSchema = `
name: "jsonbody_test.proto"
package: "jsonbody.test"
syntax: "proto3"
dependency: ["google/protobuf/any.proto", "google/protobuf/field_mask.proto",
  "google/protobuf/struct.proto", "google/protobuf/timestamp.proto",
  "google/protobuf/wrappers.proto"]
enum_type {
  name: "Color"
  value { name: "COLOR_UNSPECIFIED" number: 0 }
  value { name: "RED" number: 1 }
}
message_type {
  name: "Kitchen"
  field { name: "i32" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 }
  field { name: "text" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "child" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".jsonbody.test.Kitchen" }
  field { name: "mask" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.FieldMask" }
  field { name: "extra" number: 5 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Struct" }
  field { name: "anything" number: 6 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Value" }
  field { name: "list" number: 7 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.ListValue" }
  field { name: "opt_i32" number: 8 label: LABEL_OPTIONAL type: TYPE_INT32 oneof_index: 1 proto3_optional: true }
  field { name: "renamed" number: 9 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "otherName" }

  field { name: "i64" number: 20 label: LABEL_OPTIONAL type: TYPE_INT64 }
  field { name: "flag" number: 21 label: LABEL_OPTIONAL type: TYPE_BOOL }
  field { name: "blob" number: 22 label: LABEL_OPTIONAL type: TYPE_BYTES }
  field { name: "dbl" number: 23 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
  field { name: "color" number: 24 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".jsonbody.test.Color" }
  field { name: "tags" number: 25 label: LABEL_REPEATED type: TYPE_STRING }
  field { name: "counts" number: 26 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".jsonbody.test.Kitchen.CountsEntry" }
  field { name: "when" number: 27 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" }
  field { name: "opt_text" number: 28 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.StringValue" }
  field { name: "any" number: 29 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Any" }
  field { name: "by_name" number: 30 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
  oneof_decl { name: "choice" }
  oneof_decl { name: "_opt_i32" }
  nested_type {
    name: "CountsEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 }
    options { map_entry: true }
  }
}
`

// unhandledKitchen are the fields of Kitchen that Decode refuses.
var unhandledKitchen = []string{"i64", "flag", "blob", "dbl", "color", "tags", "counts", "when", "opt_text", "any", "by_name"}

func kitchenDescriptor() protoreflect.MessageDescriptor {
	var fdp descriptorpb.FileDescriptorProto
	if err := prototext.Unmarshal([]byte(kitchenSchema), &fdp); err != nil {
		panic(err)
	}
	fd, err := protodesc.NewFile(&fdp, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	return fd.Messages().ByName("Kitchen")
}

type checkCase struct {
	name   string
	md     protoreflect.MessageDescriptor // userMD if nil
	body   string
	lim    Limits
	params []string // expected Param of each violation, in order; none if valid
	values []string // if not nil, expected Value of each violation
}

func runCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			md := tc.md
			if md == nil {
				md = userMD
			}
			decoded := dynamicpb.NewMessage(md)
			got := Decode([]byte(tc.body), decoded, tc.lim).Violations
			var params, values []string
			for _, v := range got {
				params = append(params, v.Param)
				values = append(values, v.Value)
				assertSafeMsg(t, v.Msg)
			}
			if strings.Join(params, "|") != strings.Join(tc.params, "|") || len(params) != len(tc.params) {
				t.Fatalf("check(%q)\n got params %q\nwant params %q\nviolations: %+v", tc.body, params, tc.params, got)
			}
			if tc.values != nil && strings.Join(values, "|") != strings.Join(tc.values, "|") {
				t.Errorf("check(%q)\n got values %q\nwant values %q", tc.body, values, tc.values)
			}
			// Every body accepted here is one protojson accepts, and
			// decodes to what protojson makes of it.
			if len(got) == 0 && !isBlank([]byte(tc.body)) {
				assertDecodedAsProtojson(t, []byte(tc.body), decoded)
			}
		})
	}
}

// assertSafeMsg checks that a message exists and names nothing internal.
func assertSafeMsg(t *testing.T, msg string) {
	t.Helper()
	if msg == "" {
		t.Error("violation with an empty Msg")
	}
	for _, internal := range []string{"proto", "Go ", "reflect", "strconv", "jsonbody", "google.", "Kind", "%!"} {
		if strings.Contains(msg, internal) {
			t.Errorf("Msg %q leaks %q", msg, internal)
		}
	}
}

func isBlank(b []byte) bool { return len(bytes.Trim(b, " \t\r\n")) == 0 }

func TestSyntax(t *testing.T) {
	runCases(t, []checkCase{
		{name: "empty body", body: ""},
		{name: "whitespace body", body: " \t\r\n "},
		{name: "empty object", body: "{}"},
		{name: "object with whitespace", body: " {\n\t\"id\" : \"a\" , \"claims\" : { } }\r\n"},
		{name: "escapes", body: `{"claims":{"s":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\u0000"}}`},
		{name: "non-ASCII", body: `{"claims":{"名前":"José 😀"}}`},

		{name: "invalid UTF-8 in value", body: "{\"claims\":{\"name\":\"a\xffb\"}}", params: []string{"claims.name"}},
		{name: "invalid UTF-8 in key", body: "{\"claims\":{\"\xc3\":1}}", params: []string{"claims"}},
		{name: "invalid UTF-8 outside string", body: "{\"id\":\"a\"\xff}", params: []string{""}},
		{name: "overlong UTF-8", body: "{\"id\":\"\xc0\xaf\"}", params: []string{"id"}},
		{name: "UTF-16 surrogate as UTF-8", body: "{\"id\":\"\xed\xa0\x80\"}", params: []string{"id"}},
		{name: "byte-order mark", body: "\xef\xbb\xbf{}", params: []string{""}},
		{name: "block comment", body: `{"id":"a" /* c */}`, params: []string{""}},
		{name: "line comment", body: "{\"claims\":{\"a\":1 // c\n}}", params: []string{"claims"}},
		{name: "NaN", body: `{"claims":{"n":NaN}}`, params: []string{"claims.n"}, values: []string{"NaN"}},
		{name: "Infinity", body: `{"claims":{"n":Infinity}}`, params: []string{"claims.n"}},
		{name: "-Infinity", body: `{"claims":{"n":-Infinity}}`, params: []string{"claims.n"}},
		{name: "capitalised literal", body: `{"claims":{"b":True}}`, params: []string{"claims.b"}},
		{name: "undefined", body: `{"claims":{"b":undefined}}`, params: []string{"claims.b"}},
		{name: "literal run-on", body: `{"claims":{"b":truex}}`, params: []string{"claims.b"}},
		{name: "single-quoted key", body: `{'id':"a"}`, params: []string{""}},
		{name: "single-quoted value", body: `{"id":'a'}`, params: []string{"id"}},
		{name: "unquoted key", body: `{id:"a"}`, params: []string{""}},
		{name: "trailing comma in object", body: `{"id":"a",}`, params: []string{""}},
		{name: "trailing comma in nested object", body: `{"claims":{"a":1,}}`, params: []string{"claims"}},
		{name: "trailing comma in array", body: `{"claims":{"t":[1,2,]}}`, params: []string{"claims.t"}},
		{name: "leading comma in array", body: `{"claims":{"t":[,1]}}`, params: []string{"claims.t[0]"}},
		{name: "empty array element", body: `{"claims":{"t":[1,,2]}}`, params: []string{"claims.t[1]"}},
		{name: "trailing data", body: `{}x`, params: []string{""}},
		{name: "two top-level values", body: `{} {}`, params: []string{""}},
		{name: "top-level array", body: `[]`, params: []string{""}},
		{name: "top-level string", body: `"x"`, params: []string{""}, values: []string{"x"}},
		{name: "top-level number", body: `1`, params: []string{""}},
		{name: "top-level null", body: `null`, params: []string{""}},
		{name: "top-level true", body: `true`, params: []string{""}},
		{name: "unclosed object", body: `{"id":"a"`, params: []string{""}},
		{name: "unclosed nested", body: `{"claims":{"a":[1`, params: []string{"claims.a"}},
		{name: "missing colon", body: `{"id" "a"}`, params: []string{"id"}},
		{name: "missing value", body: `{"id":}`, params: []string{"id"}},
		{name: "missing comma", body: `{"id":"a" "claims":{}}`, params: []string{""}},
		{name: "key without value", body: `{"id"}`, params: []string{"id"}},
		{name: "mismatched brackets", body: `{"claims":{"a":[1}}`, params: []string{"claims.a"}},
		{name: "unterminated string", body: `{"id":"a}`, params: []string{"id"}},
		{name: "raw newline in string", body: "{\"id\":\"a\nb\"}", params: []string{"id"}},
		{name: "invalid escape", body: `{"id":"\x41"}`, params: []string{"id"}, values: []string{`\x`}},
		{name: "short unicode escape", body: `{"id":"\u12"}`, params: []string{"id"}},
		{name: "lone high surrogate", body: `{"id":"\ud800"}`, params: []string{"id"}},
		{name: "lone low surrogate", body: `{"id":"\udc00\udc00"}`, params: []string{"id"}},
		{name: "reversed surrogates", body: `{"id":"\ude00\ud83d"}`, params: []string{"id"}},
		{name: "leading zero", body: `{"claims":{"n":01}}`, params: []string{"claims.n"}},
		{name: "leading plus", body: `{"claims":{"n":+1}}`, params: []string{"claims.n"}},
		{name: "bare fraction", body: `{"claims":{"n":.5}}`, params: []string{"claims.n"}},
		{name: "dangling point", body: `{"claims":{"n":1.}}`, params: []string{"claims.n"}},
		{name: "dangling exponent", body: `{"claims":{"n":1e}}`, params: []string{"claims.n"}},
		{name: "hex number", body: `{"claims":{"n":0x10}}`, params: []string{"claims.n"}},
		{name: "lone minus", body: `{"claims":{"n":-}}`, params: []string{"claims.n"}},
		// protojson reads 1e as the integer 1, but it is not JSON.
		{name: "empty exponent", md: kitchenMD, body: `{"i32":1e}`, params: []string{"i32"}},
		{name: "signed empty exponent", md: kitchenMD, body: `{"i32":1e+,"text":"2"}`, params: []string{"i32"}},
	})
}

func TestSyntaxErrorIsTheOnlyViolation(t *testing.T) {
	got := check([]byte(`{"nope":1,"id":2,"claims":{"a":NaN}}`), userMD, Limits{}).Violations
	if len(got) != 1 || got[0].Param != "claims.a" || !strings.HasPrefix(got[0].Msg, "invalid JSON") {
		t.Fatalf("got %+v, want only the syntax error at claims.a", got)
	}
}

func TestDuplicateKeys(t *testing.T) {
	runCases(t, []checkCase{
		{name: "same key in different objects", body: `{"claims":{"a":{"a":1},"b":[{"a":1},{"a":2}]}}`},
		{name: "top level", body: `{"id":"a","id":"b"}`, params: []string{"id"}, values: []string{"b"}},
		{name: "escaped spelling", body: `{"id":"a","\u0069d":"b"}`, params: []string{"id"}},
		{name: "JSON name and proto name",
			body:   `{"authenticationProvider":{"subjectId":"a","subject_id":"b"}}`,
			params: []string{"authenticationProvider.subject_id"}},
		{name: "top-level JSON name and proto name",
			body:   `{"authenticationProvider":null,"authentication_provider":{}}`,
			params: []string{"authentication_provider"}, values: []string{"{}"}},
		{name: "unknown key twice", body: `{"x":1,"x":2}`, params: []string{"x", "x"}},
		{name: "in Struct", body: `{"claims":{"a":1,"a":1}}`, params: []string{"claims.a"}},
		{name: "deep in Struct", body: `{"claims":{"x":{"y":{"a":1,"b":2,"a":3}}}}`, params: []string{"claims.x.y.a"}},
		{name: "in Struct inside array", body: `{"claims":{"l":[1,{"a":1,"a":1}]}}`, params: []string{"claims.l[1].a"}},
		{name: "inside unknown field", body: `{"x":{"a":1,"a":2}}`, params: []string{"x", "x.a"}},
		{name: "inside mistyped field", body: `{"id":{"a":1,"a":2}}`, params: []string{"id", "id.a"}},
		{name: "proto3 optional by both names", md: kitchenMD, body: `{"optI32":1,"opt_i32":null}`, params: []string{"opt_i32"}},
		{name: "in Value", md: kitchenMD, body: `{"anything":{"a":1,"a":2}}`, params: []string{"anything.a"}},
		{name: "in nested message", md: kitchenMD, body: `{"child":{"text":"a","text":"b"},"text":"c"}`, params: []string{"child.text"}},
		{name: "custom JSON name and proto name", md: kitchenMD, body: `{"otherName":"a","renamed":"b"}`,
			params: []string{"renamed"}},
	})
}

func TestNumbers(t *testing.T) {
	runCases(t, []checkCase{
		{name: "2^53", body: `{"claims":{"n":9007199254740992}}`},
		{name: "-2^53", body: `{"claims":{"n":-9007199254740992}}`},
		{name: "-2^53 as float", body: `{"claims":{"n":-9007199254740992.0}}`},
		{name: "2^53 spelled otherwise", body: `{"claims":{"a":9.007199254740992e15,"b":90071992547409920e-1,"c":0.9007199254740992E+16}}`},
		{name: "fractions", body: `{"claims":{"a":0.1,"b":1.5e-7,"c":-2.5,"d":9007199254740991.5}}`},
		{name: "underflow to zero", body: `{"claims":{"n":1e-400}}`},
		{name: "zero forms", body: `{"claims":{"a":0,"b":-0,"c":0.0,"d":0e5,"e":0.000e999999999999}}`},
		{name: "2^53+1", body: `{"claims":{"n":9007199254740993}}`, params: []string{"claims.n"},
			values: []string{"9007199254740993"}},
		{name: "-2^53-1", body: `{"claims":{"n":-9007199254740993}}`, params: []string{"claims.n"}},
		{name: "2^53+1 in every spelling", body: `{"claims":{"a":9007199254740993.0,"b":9007199254740993e0,` +
			`"c":9.007199254740993e15,"d":-9007199254740993.0,"e":90071992547409930e-1,"f":0.9007199254740993e16}}`,
			params: []string{"claims.a", "claims.b", "claims.c", "claims.d", "claims.e", "claims.f"}},
		{name: "just above 2^53", body: `{"claims":{"n":9007199254740992.000001}}`, params: []string{"claims.n"}},
		{name: "2^53+8 (same length)", body: `{"claims":{"n":9007199254741000}}`, params: []string{"claims.n"}},
		{name: "large float", body: `{"claims":{"n":1.5e300,"m":-1e17}}`, params: []string{"claims.n", "claims.m"}},
		{name: "20 digits", body: `{"claims":{"n":12345678901234567890}}`, params: []string{"claims.n"}},
		{name: "in array", body: `{"claims":{"l":[1,99999999999999999]}}`, params: []string{"claims.l[1]"}},
		{name: "overflow", body: `{"claims":{"n":1e400}}`, params: []string{"claims.n"}},
		{name: "negative overflow", body: `{"claims":{"n":-1e400}}`, params: []string{"claims.n"}},
		{name: "huge exponent", body: `{"claims":{"n":1e99999999999999999999}}`, params: []string{"claims.n"}},
		{name: "overflowing integer literal", body: `{"claims":{"n":1` + strings.Repeat("0", 400) + `}}`,
			params: []string{"claims.n"}},
		{name: "in unknown field too", body: `{"x":1e400}`, params: []string{"x", "x"}},
		{name: "int32 field", md: kitchenMD, body: `{"i32":9007199254740993}`, params: []string{"i32"}},
		{name: "in ListValue", md: kitchenMD, body: `{"list":[1,1e400]}`, params: []string{"list[1]"}},
	})
}

func TestDepth(t *testing.T) {
	lim := Limits{MaxDepth: 3}
	runCases(t, []checkCase{
		{name: "at limit", lim: lim, body: `{"claims":{"a":{}}}`},
		{name: "array at limit", lim: lim, body: `{"claims":{"a":[1]}}`},
		{name: "object beyond", lim: lim, body: `{"claims":{"a":{"b":{}}}}`, params: []string{"claims.a.b"}},
		{name: "array beyond", lim: lim, body: `{"claims":{"a":[[1]]}}`, params: []string{"claims.a[0]"}},
		{name: "only violation", lim: lim, body: `{"x":1,"id":2,"claims":{"a":{"b":{}}}}`, params: []string{"claims.a.b"}},
		{name: "default limit", body: `{"claims":` + strings.Repeat(`{"a":`, 63) + `1` + strings.Repeat(`}`, 64)},
		{name: "beyond default limit", body: `{"claims":` + strings.Repeat(`[`, 64) + strings.Repeat(`]`, 64) + `}`,
			params: []string{"claims" + strings.Repeat("[0]", 63)}},
	})
}

func TestDepthCap(t *testing.T) {
	// protojson would refuse this nesting; a huge MaxDepth must not let it
	// through.
	body := `{"claims":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}`
	if protojson.Unmarshal([]byte(body), &usersv1.User{}) == nil {
		t.Fatal("protojson accepted 10001 levels: the test no longer shows anything")
	}
	got := check([]byte(body), userMD, Limits{MaxDepth: 1 << 30}).Violations
	want := ("claims" + strings.Repeat("[0]", MaxDepthCap-1))[:MaxTextLen]
	if len(got) != 1 || got[0].Param != want {
		t.Fatalf("got %d violations, first at %.40q", len(got), got[0].Param)
	}
}

func TestLongTextIsClipped(t *testing.T) {
	key := strings.Repeat("é", 2000)
	value := strings.Repeat("x", 5000)
	body := `{"claims":{"` + key + `":{"a":0,"a":0}},"` + value + `":"` + value + `"}`
	got := check([]byte(body), userMD, Limits{}).Violations
	if len(got) != 2 {
		t.Fatalf("got %d violations, want 2", len(got))
	}
	for i, wantParam := range []string{"claims." + key + ".a", value} {
		v := got[i]
		if len(v.Param) > MaxTextLen || !utf8.ValidString(v.Param) || !strings.HasPrefix(wantParam, v.Param) ||
			len(v.Param) < MaxTextLen-1 {
			t.Errorf("Param %.30q... (%d bytes) is not a clipped %.30q...", v.Param, len(v.Param), wantParam)
		}
	}
	if got[1].Value != value[:MaxTextLen] {
		t.Errorf("Value is %d bytes, want the first %d", len(got[1].Value), MaxTextLen)
	}
}

// TestManyViolationsAboutOneLargeInput checks that reporting 50 violations
// about a 1 MiB input does not copy it 50 times.
func TestManyViolationsAboutOneLargeInput(t *testing.T) {
	big := strings.Repeat("k", 1<<20)
	body := `{"claims":{"` + big + `":{` + strings.Repeat(`"a":0,`, 60) + `"a":0}}}`
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got := check([]byte(body), userMD, Limits{MaxViolations: 50}).Violations
	runtime.ReadMemStats(&after)
	if len(got) != 50 {
		t.Fatalf("got %d violations, want 50", len(got))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("Decode allocated %d MiB for a 1 MiB body", alloc>>20)
	}
}

func TestDeepNestingIsPrompt(t *testing.T) {
	const levels = 100_000
	for _, body := range []string{
		`{"claims":` + strings.Repeat(`[`, levels),
		`{"claims":` + strings.Repeat(`{"a":`, levels),
		`{"x":1,"id":2,"claims":` + strings.Repeat(`[{"a":`, levels/2) + `1` + strings.Repeat(`}]`, levels/2) + `}`,
		strings.Repeat(`[`, levels),
	} {
		start := time.Now()
		got := check([]byte(body), userMD, Limits{MaxDepth: 32}).Violations
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("Decode took %v on %d levels", elapsed, levels)
		}
		if len(got) != 1 {
			t.Errorf("got %d violations, want 1: %.200v", len(got), got)
		}
	}
}

func TestSchema(t *testing.T) {
	runCases(t, []checkCase{
		{name: "full user", body: `{"id":"0190a8b2-7c1e-7d3f-8a4b-5c6d7e8f9a0b","claims":{"name":"Ann","age":42,"tags":["a",null],"address":{"country":"NZ"}},` +
			`"authenticationProvider":{"providerId":"p","url":"https://idp.example","subjectId":"s"}}`},
		{name: "proto names", body: `{"authentication_provider":{"provider_id":"p","url":"u","subject_id":"s"}}`},
		{name: "null fields mean unset", body: `{"id":null,"claims":null,"authenticationProvider":null}`},
		{name: "null inside a provider", body: `{"authenticationProvider":{"url":null}}`},

		{name: "unknown field", body: `{"foo":"bar"}`, params: []string{"foo"}, values: []string{"bar"}},
		{name: "unknown nested field", body: `{"authenticationProvider":{"url":"u","uri":"u"}}`,
			params: []string{"authenticationProvider.uri"}},
		{name: "unknown field with object value", body: `{"foo":{"a":[1, 2]}}`, params: []string{"foo"},
			values: []string{`{"a":[1, 2]}`}},
		{name: "wrong case is unknown", body: `{"ID":"a","Claims":{}}`, params: []string{"ID", "Claims"}},

		{name: "string as number", body: `{"id":1}`, params: []string{"id"}, values: []string{"1"}},
		{name: "string as bool", body: `{"id":true}`, params: []string{"id"}},
		{name: "string as object", body: `{"id":{}}`, params: []string{"id"}, values: []string{"{}"}},
		{name: "Struct as string", body: `{"claims":"x"}`, params: []string{"claims"}, values: []string{"x"}},
		{name: "Struct as array", body: `{"claims":[1,{"a":2}]}`, params: []string{"claims"}, values: []string{`[1,{"a":2}]`}},
		{name: "message as string", body: `{"authenticationProvider":"x"}`, params: []string{"authenticationProvider"}},
		{name: "message as array", body: `{"authenticationProvider":[]}`, params: []string{"authenticationProvider"}},
		{name: "nested wrong type", body: `{"authenticationProvider":{"url":true,"subjectId":["s"]}}`,
			params: []string{"authenticationProvider.url", "authenticationProvider.subjectId"}},

		{name: "all violations", body: `{"foo":1,"id":2,"claims":{"a":1,"a":2},"authenticationProvider":{"url":3,"bar":4}}`,
			params: []string{"foo", "id", "claims.a", "authenticationProvider.url", "authenticationProvider.bar"}},
		{name: "MaxViolations", lim: Limits{MaxViolations: 2}, body: `{"a":1,"b":2,"c":3}`, params: []string{"a", "b"}},
		{name: "MaxViolations inside a container", lim: Limits{MaxViolations: 2}, body: `{"a":[1,{"x":1,"x":2,"x":3}]}`,
			params: []string{"a", "a[1].x"}, values: []string{`[1,{"x":1,"x":2`, "2"}},

		{name: "request wraps user", md: createMD, body: `{"user":{"claims":{}}}`},
		{name: "request user wrong type", md: createMD, body: `{"user":{"id":1},"users":[]}`, params: []string{"user.id", "users"}},
		{name: "field mask", md: updateMD, body: `{"id":"x","updateMask":"claims,authenticationProvider"}`},
		{name: "field mask as array", md: updateMD, body: `{"updateMask":["claims"]}`, params: []string{"updateMask"}},
		{name: "field mask snake case", md: updateMD, body: `{"updateMask":"authentication_provider"}`, params: []string{"updateMask"}},
		{name: "limit", md: listReqMD, body: `{"limit":10,"cursor":"c"}`},
		{name: "limit quoted", md: listReqMD, body: `{"limit":"10"}`},
		{name: "limit fractional", md: listReqMD, body: `{"limit":1.5}`, params: []string{"limit"}},
		{name: "limit out of range", md: listReqMD, body: `{"limit":3000000000}`, params: []string{"limit"}},
		{name: "limit not a number", md: listReqMD, body: `{"limit":"ten"}`, params: []string{"limit"}, values: []string{"ten"}},
		{name: "limit null", md: listReqMD, body: `{"limit":null}`},
		{name: "repeated field refused", md: listRespMD, body: `{"data":[{"id":"a"}],"nextCursor":"n"}`, params: []string{"data"}},
	})
}

func TestKinds(t *testing.T) {
	ok := func(body string) checkCase { return checkCase{name: body, md: kitchenMD, body: body} }
	bad := func(body string, params ...string) checkCase {
		return checkCase{name: body, md: kitchenMD, body: body, params: params}
	}
	cases := []checkCase{
		ok(`{"i32":-2147483648,"optI32":2147483647,"text":"t","otherName":"o"}`),
		ok(`{"i32":1.0,"optI32":"1e2"}`),
		ok(`{"i32":150e-1}`),
		ok(`{"i32":"-0","opt_i32":"0.0"}`),
		ok(`{"i32":null,"optI32":null,"text":null}`),
		bad(`{"i32":2147483648}`, "i32"),
		bad(`{"i32":1.5}`, "i32"),
		bad(`{"i32":"1.5"}`, "i32"),
		bad(`{"i32":" 1"}`, "i32"),
		bad(`{"i32":"0x1"}`, "i32"),
		bad(`{"i32":"+1"}`, "i32"),
		bad(`{"i32":true}`, "i32"),
		bad(`{"i32":[1]}`, "i32"),
		bad(`{"optI32":"ten"}`, "optI32"),
		bad(`{"i32":"0.00000000000000000000001e22"}`, "i32"),

		bad(`{"text":1}`, "text"),
		bad(`{"text":true}`, "text"),
		bad(`{"text":{}}`, "text"),
		bad(`{"renamed":[]}`, "renamed"),

		ok(`{"child":{"child":{"text":"x"}},"text":"y"}`),
		bad(`{"child":{"child":{"text":1}}}`, "child.child.text"),
		bad(`{"child":"x"}`, "child"),
		bad(`{"child":[]}`, "child"),

		ok(`{"mask":"a,b.c"}`),
		ok(`{"mask":""}`),
		bad(`{"mask":"a_b"}`, "mask"),
		bad(`{"mask":["a"]}`, "mask"),
		bad(`{"mask":1}`, "mask"),

		ok(`{"extra":{"a":[1,{"b":null}]},"anything":[1,"x",{"y":false}],"list":[null,1,[]]}`),
		ok(`{"anything":null,"extra":null,"list":null}`),
		ok(`{"anything":"x"}`),
		bad(`{"extra":"x"}`, "extra"),
		bad(`{"extra":[]}`, "extra"),
		bad(`{"list":{}}`, "list"),
		bad(`{"list":"x"}`, "list"),
	}
	// A field of a kind Decode does not handle is refused, whatever it holds.
	for _, name := range unhandledKitchen {
		key := kitchenMD.Fields().ByName(protoreflect.Name(name)).JSONName()
		for _, v := range []string{`null`, `"1"`, `1`, `true`, `[]`, `{}`} {
			cases = append(cases, bad(`{"`+key+`":`+v+`}`, key))
		}
	}
	runCases(t, cases)
}

// Unhandled names exactly the fields Decode refuses, through nested
// messages, and none of the users API's request bodies has any.
func TestUnhandled(t *testing.T) {
	var got []string
	for _, fd := range Unhandled(kitchenMD) {
		got = append(got, string(fd.Name()))
	}
	if strings.Join(got, ",") != strings.Join(unhandledKitchen, ",") {
		t.Fatalf("Unhandled = %q, want %q", got, unhandledKitchen)
	}
	if fds := Unhandled(listRespMD); len(fds) != 1 || fds[0].Name() != "data" {
		t.Fatalf("Unhandled(ListUsersResponse) = %v, want its repeated data", fds)
	}
	v := check([]byte(`{"flag":true}`), kitchenMD, Limits{}).Violations
	if len(v) != 1 || v[0].Msg != "cannot be set in a JSON body" {
		t.Fatalf("got %+v", v)
	}
}

// Names reports the top-level keys naming fields, by either name, null
// values included; keys of nested objects are not the body's.
func TestNames(t *testing.T) {
	field := func(name string) protoreflect.FieldDescriptor {
		return userMD.Fields().ByName(protoreflect.Name(name))
	}
	for _, tc := range []struct {
		body string
		want []string
	}{
		{``, nil},
		{`{}`, nil},
		{`{"claims":{"id":1}}`, []string{"claims"}},
		{`{"claims":null}`, []string{"claims"}},
		{`{"authentication_provider":{"providerId":"p"}}`, []string{"authentication_provider"}},
		{`{"authenticationProvider":null,"id":"x","claims":{}}`, []string{"id", "claims", "authentication_provider"}},
		{`{"x":1,"claims":{}}`, []string{"claims"}},
	} {
		res := check([]byte(tc.body), userMD, Limits{})
		var got []string
		for _, name := range []string{"id", "claims", "authentication_provider"} {
			if res.Names(field(name)) {
				got = append(got, name)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: names %q, want %q", tc.body, got, tc.want)
		}
	}
}

// FuzzDecode asserts that Decode never panics and that whatever it accepts,
// protojson accepts too, and decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"id":"a"}`, `{"claims":{"a":[1,2.5,"x",null,true,{"b":{}}]}}`,
		`{"authenticationProvider":{"providerId":"p","url":"u","subjectId":"s"}}`,
		`{"authentication_provider":{"subject_id":"s","subjectId":"t"}}`,
		`{"claims":{"n":9007199254740993,"m":1e400}}`, `{"id":"\ud83d\ude00\u0041"}`,
		`{"i32":"1e2","optI32":-1,"text":"t","mask":"a.b","child":{"i32":1.0}}`,
		`{"otherName":"x","renamed":"y","opt_i32":null,"flag":true,"tags":["a"],"counts":{"x":1}}`,
		`{"extra":{"a":{"b":[[[]]]}},"anything":[{}],"list":[1],"when":"2024-01-31T09:30:00Z"}`,
		"{\"id\":\"a\xff\"}", `{"id":"a",}`, `{} {}`, `[]`, `{"a":NaN}`,
		`{"claims":null,"authenticationProvider":null,"id":null}`, `{"claims":{},"authenticationProvider":{}}`,
		`{"anything":null,"extra":null,"list":null,"child":null,"mask":null,"optI32":null,"text":null}`,
		`{"anything":{"a":null},"list":[null,[],{}],"child":{"child":{"text":"\u00e9\n"}},"i32":"-7"}`,
		`{"claims":{"n":-0,"e":1.5E-3,"big":9007199254740992,"s":"\"q\"\/"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, md := range testMessages {
			decoded := dynamicpb.NewMessage(md)
			got := Decode(body, decoded, Limits{MaxDepth: 16}).Violations
			for _, v := range got {
				if v.Msg == "" {
					t.Fatalf("empty Msg for %q: %+v", body, v)
				}
			}
			if len(got) == 0 && !isBlank(body) {
				assertDecodedAsProtojson(t, body, decoded)
			}
		}
	})
}

// assertDecodedAsProtojson fails tb unless protojson accepts body, which
// Decode accepted, and reads it into a message equal to decoded.
func assertDecodedAsProtojson(tb testing.TB, body []byte, decoded protoreflect.Message) {
	tb.Helper()
	want := decoded.New()
	if err := protojson.Unmarshal(body, want.Interface()); err != nil {
		tb.Errorf("Decode accepted %q as %s but protojson refuses it: %v", body, decoded.Descriptor().FullName(), err)
	} else if !proto.Equal(decoded.Interface(), want.Interface()) {
		tb.Errorf("Decode(%q) as %s = %v, protojson has %v", body, decoded.Descriptor().FullName(), decoded.Interface(), want.Interface())
	}
}

// check is what Decode finds in body as a message of type md.
func check(body []byte, md protoreflect.MessageDescriptor, lim Limits) Result {
	return Decode(body, dynamicpb.NewMessage(md), lim)
}

// typicalBody is a 1 KiB create/update body.
var typicalBody = []byte(`{
  "claims": {
    "givenName": "Ada",
    "familyName": "Lovelace",
    "email": "ada.lovelace@example.com",
    "emailVerified": true,
    "phoneNumber": "+64 21 555 0199",
    "birthdate": "1815-12-10",
    "locale": "en-GB",
    "address": {
      "streetAddress": "12 St James's Square",
      "locality": "London",
      "postalCode": "SW1Y 4JH",
      "country": "GB"
    },
    "roles": ["admin", "analyst", "reviewer"],
    "loginCount": 1842,
    "score": 97.25,
    "preferences": {"theme": "dark", "notifications": {"email": true, "sms": false, "push": null}},
    "memberships": [
      {"org": "analytical-engine", "since": "1843-09-01", "level": 3},
      {"org": "royal-society", "since": "1840-01-01", "level": 1}
    ],
    "bio": "Mathematician and writer, chiefly known for her work on Charles Babbage's proposed mechanical general-purpose computer, the Analytical Engine."
  },
  "authenticationProvider": {
    "providerId": "6f1c2b7e-3a44-4d2c-9f51-1b8e2f0c9a77",
    "url": "https://login.example.com/realms/main",
    "subjectId": "auth0|5f7c8ec7c33c6c004bbafe82"
  }
}`)

// TestDecodeTypical decodes bodies of the API's own messages, generated
// types as the gateway uses them, exactly as protojson does.
func TestDecodeTypical(t *testing.T) {
	for _, tc := range []struct {
		body string
		msg  proto.Message
	}{
		{string(typicalBody), &usersv1.User{}},
		{`{"id":"x","claims":null}`, &usersv1.User{}},
		{`{"claims":{"address":{"country":"NZ"}},"authenticationProvider":{"subjectId":"s"},"limit":"25","cursor":"c"}`,
			&usersv1.SearchUsersRequest{}},
	} {
		decoded := tc.msg.ProtoReflect().New()
		if vs := Decode([]byte(tc.body), decoded, Limits{}).Violations; len(vs) > 0 {
			t.Fatalf("Decode(%s): %+v", tc.body, vs)
		}
		assertDecodedAsProtojson(t, []byte(tc.body), decoded)
	}
}

func BenchmarkDecodeTypical(b *testing.B) {
	b.SetBytes(int64(len(typicalBody)))
	b.ReportAllocs()
	for b.Loop() {
		if vs := Decode(typicalBody, (&usersv1.User{}).ProtoReflect(), Limits{}).Violations; len(vs) != 0 {
			b.Fatalf("typical body has violations: %+v", vs)
		}
	}
}

func BenchmarkProtojsonTypical(b *testing.B) {
	b.SetBytes(int64(len(typicalBody)))
	b.ReportAllocs()
	for b.Loop() {
		if err := protojson.Unmarshal(typicalBody, &usersv1.User{}); err != nil {
			b.Fatal(err)
		}
	}
}
