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
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	// Register the well-known types the test schema imports.
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/emptypb"
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

// kitchenSchema has a field of every kind protojson reads differently; the
// users API itself only uses strings, Struct, FieldMask and an int32.
const kitchenSchema = `
name: "jsonbody_test.proto"
package: "jsonbody.test"
syntax: "proto3"
dependency: ["google/protobuf/any.proto", "google/protobuf/duration.proto",
  "google/protobuf/empty.proto", "google/protobuf/field_mask.proto",
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
  field { name: "i64" number: 2 label: LABEL_OPTIONAL type: TYPE_INT64 }
  field { name: "u32" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT32 }
  field { name: "u64" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT64 }
  field { name: "s32" number: 5 label: LABEL_OPTIONAL type: TYPE_SINT32 }
  field { name: "fx64" number: 6 label: LABEL_OPTIONAL type: TYPE_FIXED64 }
  field { name: "sfx32" number: 7 label: LABEL_OPTIONAL type: TYPE_SFIXED32 }
  field { name: "flt" number: 8 label: LABEL_OPTIONAL type: TYPE_FLOAT }
  field { name: "dbl" number: 9 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
  field { name: "flag" number: 10 label: LABEL_OPTIONAL type: TYPE_BOOL }
  field { name: "text" number: 11 label: LABEL_OPTIONAL type: TYPE_STRING }
  field { name: "blob" number: 12 label: LABEL_OPTIONAL type: TYPE_BYTES }
  field { name: "color" number: 13 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".jsonbody.test.Color" }
  field { name: "tags" number: 14 label: LABEL_REPEATED type: TYPE_STRING }
  field { name: "nums" number: 15 label: LABEL_REPEATED type: TYPE_INT32 }
  field { name: "counts" number: 16 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".jsonbody.test.Kitchen.CountsEntry" }
  field { name: "by_id" number: 17 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".jsonbody.test.Kitchen.ByIdEntry" }
  field { name: "by_flag" number: 18 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".jsonbody.test.Kitchen.ByFlagEntry" }
  field { name: "child" number: 19 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".jsonbody.test.Kitchen" }
  field { name: "children" number: 20 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".jsonbody.test.Kitchen" }
  field { name: "when" number: 21 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" }
  field { name: "ttl" number: 22 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Duration" }
  field { name: "mask" number: 23 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.FieldMask" }
  field { name: "extra" number: 24 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Struct" }
  field { name: "anything" number: 25 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Value" }
  field { name: "list" number: 26 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.ListValue" }
  field { name: "nothing" number: 27 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".google.protobuf.NullValue" }
  field { name: "opt_i32" number: 28 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Int32Value" }
  field { name: "opt_text" number: 29 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.StringValue" }
  field { name: "any" number: 30 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Any" }
  field { name: "empty" number: 31 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Empty" }
  field { name: "structs" number: 32 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".google.protobuf.Struct" }
  field { name: "values" number: 33 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".google.protobuf.Value" }
  field { name: "nulls" number: 34 label: LABEL_REPEATED type: TYPE_ENUM type_name: ".google.protobuf.NullValue" }
  field { name: "wrapped" number: 35 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".google.protobuf.Int32Value" }
  field { name: "by_name" number: 36 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 }
  field { name: "by_number" number: 37 label: LABEL_OPTIONAL type: TYPE_INT64 oneof_index: 0 }
  field { name: "renamed" number: 38 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "otherName" }
  oneof_decl { name: "choice" }
  nested_type {
    name: "CountsEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 }
    options { map_entry: true }
  }
  nested_type {
    name: "ByIdEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_STRING }
    options { map_entry: true }
  }
  nested_type {
    name: "ByFlagEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".jsonbody.test.Kitchen" }
    options { map_entry: true }
  }
}
`

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
			got := Check([]byte(tc.body), md, tc.lim)
			var params, values []string
			for _, v := range got {
				params = append(params, v.Param)
				values = append(values, v.Value)
				assertSafeMsg(t, v.Msg)
			}
			if strings.Join(params, "|") != strings.Join(tc.params, "|") || len(params) != len(tc.params) {
				t.Fatalf("Check(%q)\n got params %q\nwant params %q\nviolations: %+v", tc.body, params, tc.params, got)
			}
			if tc.values != nil && strings.Join(values, "|") != strings.Join(tc.values, "|") {
				t.Errorf("Check(%q)\n got values %q\nwant values %q", tc.body, values, tc.values)
			}
			// Every body accepted here is one protojson accepts.
			if len(got) == 0 && !isBlank([]byte(tc.body)) {
				if err := protojson.Unmarshal([]byte(tc.body), dynamicpb.NewMessage(md)); err != nil {
					t.Errorf("Check accepted %q but protojson refuses it: %v", tc.body, err)
				}
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
		{name: "empty exponent", md: kitchenMD, body: `{"i64":1e}`, params: []string{"i64"}},
		{name: "signed empty exponent", md: kitchenMD, body: `{"i64":1e+,"i32":2}`, params: []string{"i64"}},
	})
}

func TestSyntaxErrorIsTheOnlyViolation(t *testing.T) {
	got := Check([]byte(`{"nope":1,"id":2,"claims":{"a":NaN}}`), userMD, Limits{})
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
		{name: "map string key", md: kitchenMD, body: `{"counts":{"a":1,"a":2}}`, params: []string{"counts.a"}},
		{name: "map integer keys equal as numbers", md: kitchenMD, body: `{"byId":{"1":"a","01":"b","+1":"c"}}`,
			params: []string{"byId.01", "byId.+1"}},
		{name: "map distinct integer keys", md: kitchenMD, body: `{"byId":{"1":"a","-1":"b","10":"c"}}`},
		{name: "oneof once", md: kitchenMD, body: `{"byName":"a"}`},
		{name: "oneof twice", md: kitchenMD, body: `{"byName":"a","byNumber":"1"}`, params: []string{"byNumber"}},
		{name: "oneof with null member", md: kitchenMD, body: `{"byName":"a","byNumber":null}`},
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
		{name: "int64 field as number", md: kitchenMD, body: `{"i64":9007199254740993}`, params: []string{"i64"}},
		{name: "int64 field as string", md: kitchenMD, body: `{"i64":"9007199254740993"}`},
		{name: "double field", md: kitchenMD, body: `{"dbl":1e400}`, params: []string{"dbl"}},
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
	got := Check([]byte(body), userMD, Limits{MaxDepth: 1 << 30})
	want := ("claims" + strings.Repeat("[0]", MaxDepthCap-1))[:MaxTextLen]
	if len(got) != 1 || got[0].Param != want {
		t.Fatalf("got %d violations, first at %.40q", len(got), got[0].Param)
	}
}

func TestLongTextIsClipped(t *testing.T) {
	key := strings.Repeat("é", 2000)
	value := strings.Repeat("x", 5000)
	body := `{"claims":{"` + key + `":{"a":0,"a":0}},"` + value + `":"` + value + `"}`
	got := Check([]byte(body), userMD, Limits{})
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
	got := Check([]byte(body), userMD, Limits{MaxViolations: 50})
	runtime.ReadMemStats(&after)
	if len(got) != 50 {
		t.Fatalf("got %d violations, want 50", len(got))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("Check allocated %d MiB for a 1 MiB body", alloc>>20)
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
		got := Check([]byte(body), userMD, Limits{MaxDepth: 32})
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("Check took %v on %d levels", elapsed, levels)
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
		{name: "repeated messages", md: listRespMD, body: `{"data":[{"id":"a"},{"claims":{"x":[]}}],"nextCursor":"n"}`},
		{name: "repeated element wrong", md: listRespMD, body: `{"data":[{"id":"a"},{"id":1},"x"]}`,
			params: []string{"data[1].id", "data[2]"}},
		{name: "repeated null element", md: listRespMD, body: `{"data":[null]}`, params: []string{"data[0]"}},
		{name: "repeated as object", md: listRespMD, body: `{"data":{}}`, params: []string{"data"}},
		{name: "repeated field null", md: listRespMD, body: `{"data":null}`},
	})
}

func TestKinds(t *testing.T) {
	ok := func(body string) checkCase { return checkCase{name: body, md: kitchenMD, body: body} }
	bad := func(body string, params ...string) checkCase {
		return checkCase{name: body, md: kitchenMD, body: body, params: params}
	}
	runCases(t, []checkCase{
		ok(`{"i32":-2147483648,"u32":4294967295,"s32":"-5","sfx32":"7","i64":"-9223372036854775808","u64":"18446744073709551615","fx64":1}`),
		ok(`{"i32":1.0,"u32":1e2,"s32":150e-1,"i64":"1.5e1","u64":-0,"sfx32":"0.0"}`),
		bad(`{"i32":2147483648}`, "i32"),
		bad(`{"i32":1.5}`, "i32"),
		bad(`{"i32":"1.5"}`, "i32"),
		bad(`{"i32":" 1"}`, "i32"),
		bad(`{"i32":"0x1"}`, "i32"),
		bad(`{"i32":"+1"}`, "i32"),
		bad(`{"i32":true}`, "i32"),
		bad(`{"i32":[1]}`, "i32"),
		bad(`{"u32":-1}`, "u32"),
		bad(`{"u64":"18446744073709551616"}`, "u64"),
		bad(`{"i64":"9223372036854775808"}`, "i64"),
		bad(`{"fx64":"0.00000000000000000000001e22"}`, "fx64"),

		ok(`{"flt":1.5,"dbl":"2.5"}`),
		ok(`{"flt":"NaN","dbl":"-Infinity"}`),
		ok(`{"flt":"Infinity","dbl":"1e308"}`),
		ok(`{"flt":1e-50}`),
		bad(`{"flt":1e39}`, "flt"),
		bad(`{"flt":"1e39"}`, "flt"),
		bad(`{"dbl":"1e400"}`, "dbl"),
		bad(`{"dbl":"nan"}`, "dbl"),
		bad(`{"dbl":" 1"}`, "dbl"),
		bad(`{"dbl":true}`, "dbl"),

		ok(`{"flag":true,"text":"t"}`),
		bad(`{"flag":"true"}`, "flag"),
		bad(`{"flag":1}`, "flag"),
		bad(`{"text":1}`, "text"),

		ok(`{"blob":"aGVsbG8="}`),
		ok(`{"blob":"aGVsbG8"}`),
		ok(`{"blob":"-_-_"}`),
		bad(`{"blob":"aGVsbG8*"}`, "blob"),
		bad(`{"blob":"a"}`, "blob"),
		bad(`{"blob":[1]}`, "blob"),

		ok(`{"color":"RED"}`),
		ok(`{"color":1}`),
		ok(`{"color":99}`),
		bad(`{"color":"BLUE"}`, "color"),
		bad(`{"color":"1"}`, "color"),
		bad(`{"color":"red"}`, "color"),
		bad(`{"color":1.5}`, "color"),
		bad(`{"color":true}`, "color"),

		ok(`{"tags":["a","b"],"nums":[1,"2"]}`),
		ok(`{"tags":[]}`),
		bad(`{"tags":"a"}`, "tags"),
		bad(`{"tags":["a",2,"c",null]}`, "tags[1]", "tags[3]"),
		bad(`{"nums":[[1]]}`, "nums[0]"),

		ok(`{"counts":{"a":1,"b":"2"},"byId":{"-5":"x"},"byFlag":{"true":{},"false":{"text":"t"}}}`),
		bad(`{"counts":[]}`, "counts"),
		bad(`{"counts":{"a":"x","b":null}}`, "counts.a", "counts.b"),
		bad(`{"byId":{"x":"a","1.0":"b","2147483648":"c"}}`, "byId.x", "byId.1.0", "byId.2147483648"),
		bad(`{"byFlag":{"True":{},"1":{}}}`, "byFlag.True", "byFlag.1"),
		bad(`{"byFlag":{"true":{"flag":"x","nope":1}}}`, "byFlag.true.flag", "byFlag.true.nope"),

		ok(`{"child":{"child":{"text":"x"}},"children":[{},{"i32":1}]}`),
		bad(`{"child":{"child":{"text":1}}}`, "child.child.text"),
		bad(`{"children":[{},{"tags":[1]}]}`, "children[1].tags[0]"),
		bad(`{"children":[{}, null]}`, "children[1]"),

		ok(`{"when":"2024-01-31T09:30:00Z","ttl":"1.5s","mask":"a,b.c"}`),
		ok(`{"when":"2024-01-31T09:30:00.123+13:00","ttl":"-3s","mask":""}`),
		bad(`{"when":"yesterday"}`, "when"),
		bad(`{"when":1706693400}`, "when"),
		bad(`{"when":{"seconds":1}}`, "when"),
		bad(`{"ttl":"1.5"}`, "ttl"),
		bad(`{"ttl":1.5}`, "ttl"),
		bad(`{"mask":"a_b"}`, "mask"),

		ok(`{"extra":{"a":[1,{"b":null}]},"anything":[1,"x",{"y":false}],"list":[null,1,[]]}`),
		ok(`{"anything":null,"nothing":null,"values":[null,1],"nulls":[null,"NULL_VALUE",0]}`),
		ok(`{"anything":"x","extra":null,"list":null,"structs":[{}]}`),
		bad(`{"extra":"x"}`, "extra"),
		bad(`{"list":{}}`, "list"),
		bad(`{"structs":[null]}`, "structs[0]"),
		bad(`{"values":null}`, "values"),
		bad(`{"nulls":null}`, "nulls"),
		bad(`{"nothing":"NULL"}`, "nothing"),
		bad(`{"anything":{"a":1,"a":2}}`, "anything.a"),

		ok(`{"optI32":5,"optText":"t","wrapped":[1,"2"]}`),
		ok(`{"optI32":null,"opt_text":null}`),
		bad(`{"optI32":"x"}`, "optI32"),
		bad(`{"optI32":{"value":5}}`, "optI32"),
		bad(`{"optText":5}`, "optText"),
		bad(`{"wrapped":[1,null]}`, "wrapped[1]"),

		ok(`{"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s"}}`),
		ok(`{"any":{"value":{"a":1},"@type":"type.googleapis.com/google.protobuf.Struct"}}`),
		ok(`{"any":{}}`),
		bad(`{"any":{"@type":"type.googleapis.com/nope.Nope"}}`, "any"),
		bad(`{"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"x"}}`, "any"),
		bad(`{"any":{"a":1}}`, "any"),
		bad(`{"any":"x"}`, "any"),
		bad(`{"any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s","value":"2s"}}`, "any.value"),

		ok(`{"empty":{}}`),
		bad(`{"empty":{"a":1}}`, "empty.a"),
	})
}

func TestEnumMessage(t *testing.T) {
	got := Check([]byte(`{"color":"BLUE"}`), kitchenMD, Limits{})
	if want := `must be one of "COLOR_UNSPECIFIED", "RED"`; len(got) != 1 || got[0].Msg != want {
		t.Fatalf("got %+v, want Msg %q", got, want)
	}
}

// FuzzCheck asserts that Check never panics and that whatever it accepts,
// protojson accepts too.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `{"id":"a"}`, `{"claims":{"a":[1,2.5,"x",null,true,{"b":{}}]}}`,
		`{"authenticationProvider":{"providerId":"p","url":"u","subjectId":"s"}}`,
		`{"authentication_provider":{"subject_id":"s","subjectId":"t"}}`,
		`{"claims":{"n":9007199254740993,"m":1e400}}`, `{"id":"\ud83d\ude00\u0041"}`,
		`{"i32":"1e2","u64":"18446744073709551615","flt":"NaN","blob":"-_8=","color":"RED"}`,
		`{"byId":{"1":"a","+2":"b"},"byFlag":{"true":{"child":{}}},"counts":{"x":1}}`,
		`{"when":"2024-01-31T09:30:00Z","ttl":"1s","mask":"a.b","nothing":null,"nulls":[null]}`,
		`{"any":{"@type":"type.googleapis.com/google.protobuf.Int32Value","value":1}}`,
		`{"byName":"a","byNumber":null,"otherName":"x","wrapped":[1]}`,
		`{"extra":{"a":{"b":[[[]]]}},"anything":[{}],"list":[1],"structs":[{}],"values":[null]}`,
		"{\"id\":\"a\xff\"}", `{"id":"a",}`, `{} {}`, `[]`, `{"a":NaN}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, md := range testMessages {
			got := Check(body, md, Limits{MaxDepth: 16})
			for _, v := range got {
				if v.Msg == "" {
					t.Fatalf("empty Msg for %q: %+v", body, v)
				}
			}
			if len(got) > 0 || isBlank(body) {
				continue
			}
			if err := (protojson.UnmarshalOptions{}).Unmarshal(body, dynamicpb.NewMessage(md)); err != nil {
				t.Fatalf("Check accepted %q as %s but protojson refuses it: %v", body, md.FullName(), err)
			}
		}
	})
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

func BenchmarkCheckTypical(b *testing.B) {
	if vs := Check(typicalBody, userMD, Limits{}); len(vs) != 0 {
		b.Fatalf("typical body has violations: %+v", vs)
	}
	b.SetBytes(int64(len(typicalBody)))
	b.ReportAllocs()
	for b.Loop() {
		Check(typicalBody, userMD, Limits{})
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
