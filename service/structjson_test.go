package service

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// structDocs are inputs for decodeStruct: what the store holds, and what
// only protojson takes (or refuses).
var structDocs = []string{
	`{}`,
	`{"email":"user1@example.com","name":"Benchmark User","tier":3}`,
	`{"a":1.5,"b":"<&>","c":[true,null,false],"d":{"e":[],"f":{}},"g":-0,"h":1e-7,"i":1.2345e+21}`,
	`{"":"empty key","ü":"ünïcödé 😀","big":12345678901234567890,"neg":-0.5E-3}`,
	`{"userId":"0190a9a6-1c3e-7b4e-8e2a-3c1d2b4a5f6e","limit":100}`,
	// Only protojson: whitespace, escapes, duplicate keys.
	` {"a":1}`, `{"a" : 1}`, `{"a":1} `, `{"a":"x\"y"}`, `{"a":"\u00e9\ud83d\ude00"}`, `{"a":1,"a":2}`,
	// Refused by both.
	``, `[]`, `"x"`, `null`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":[1,]}`, `{a:1}`, `{"a":1}x`, `{"a":01}`,
	`{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":1e400}`, `{"a":NaN}`, `{"a":tru}`,
	`{"a":truex}`, "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}", "{\"\xc3\":1}", `{"a":"unterminated}`,
	strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100),
	strings.Repeat(`{"a":[`, 40) + `1` + strings.Repeat(`]}`, 40),
	// Strings of more than 8 bytes, read a word at a time until something
	// in them is not plain ASCII: quotes, escapes, control characters,
	// UTF-8, valid and not.
	`{"givenName":"Patrick John","email":"user-1234@example.com","externalUserId":"ext-1234"}`,
	`{"abcdefghijklmno":"abcdefghijklmnop","abcdefg":"abcdefgh"}`,
	`{"abcdefghijk\"lmnop":1}`, `{"abcdefghijklmno\u00e9":1}`, "{\"abcdefghij\x01klmnop\":1}",
	`{"abcdefghijklmnop":"abcdefghijklmnüp"}`, "{\"abcdefghijklmnop\":\"abcdefghijklm\xffop\"}",
	`{"abcdefghijklmnop":"abcdefghijklmnop`,
}

// decodeStruct decodes exactly as protojson does: the same Struct, to the
// bit, or the same error.
func TestDecodeStructIsProtojson(t *testing.T) {
	for _, doc := range structDocs {
		checkDecodeStruct(t, []byte(doc))
	}
}

func FuzzDecodeStruct(f *testing.F) {
	for _, doc := range structDocs {
		f.Add([]byte(doc))
	}
	f.Fuzz(checkDecodeStruct)
}

func checkDecodeStruct(t *testing.T, doc []byte) {
	t.Helper()
	got, err := decodeStruct(string(doc))
	want := &structpb.Struct{}
	wantErr := protojson.Unmarshal(doc, want)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("%q: error %v, protojson's %v", doc, err, wantErr)
	case err != nil:
		if err.Error() != wantErr.Error() {
			t.Fatalf("%q: error %q, protojson's %q", doc, err, wantErr)
		}
		return
	}
	deterministic := proto.MarshalOptions{Deterministic: true}
	gotWire, err := deterministic.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	wantWire, err := deterministic.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(gotWire) != string(wantWire) {
		t.Fatalf("%q: decoded %v, protojson %v", doc, got, want)
	}
}

// Stored claims take the fast path: the Struct, its map (two), and one
// allocation per value; keys and strings are slices of the document
// (protojson made 31 for these).
func TestDecodeStructTakesStoredClaimsFast(t *testing.T) {
	doc := `{"email":"user1@example.com","name":"Benchmark User","tier":3}`
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeStruct(doc); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 6 {
		t.Errorf("%v allocations, want at most 6", allocs)
	}
}

// encodingJSON is how encodeClaims wrote claims before appendStruct: the
// reference it must match byte for byte.
func encodingJSON(t *testing.T, s *structpb.Struct) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s.AsMap()); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestAppendStructIsEncodingJSON(t *testing.T) {
	odd := &structpb.Struct{Fields: map[string]*structpb.Value{
		"nan": structpb.NewNumberValue(math.NaN()), "inf": structpb.NewNumberValue(math.Inf(1)),
		"-inf": structpb.NewNumberValue(math.Inf(-1)), "nil": nil, "nokind": {},
		"nilnum": {Kind: (*structpb.Value_NumberValue)(nil)}, "nilstr": {Kind: (*structpb.Value_StringValue)(nil)},
		"nilbool": {Kind: (*structpb.Value_BoolValue)(nil)}, "nilstruct": {Kind: (*structpb.Value_StructValue)(nil)},
		"nillist": {Kind: (*structpb.Value_ListValue)(nil)}, "emptystruct": structpb.NewStructValue(nil),
		"emptylist": structpb.NewListValue(nil), "null": structpb.NewNullValue(),
		"floats": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{
			structpb.NewNumberValue(0), structpb.NewNumberValue(math.Copysign(0, -1)), structpb.NewNumberValue(1e-7),
			structpb.NewNumberValue(1e-6), structpb.NewNumberValue(1e20), structpb.NewNumberValue(1e21),
			structpb.NewNumberValue(123456789.125), structpb.NewNumberValue(-5e-324), structpb.NewNumberValue(math.MaxFloat64),
		}}),
		"strings \x00\"\\/<>&": structpb.NewStringValue("\b\f\n\r\t\x01\x1f\x7f \u2028\u2029 é😀 \xff\xc3 <&> \"\\"),
	}}
	got := string(appendStruct(nil, odd))
	if want := encodingJSON(t, odd); got != want {
		t.Errorf("appendStruct:\n got %s\nwant %s", got, want)
	}
	for _, doc := range structDocs {
		checkAppendStruct(t, []byte(doc))
	}
}

func FuzzAppendStruct(f *testing.F) {
	for _, doc := range structDocs {
		f.Add([]byte(doc))
	}
	f.Fuzz(checkAppendStruct)
}

// checkAppendStruct compares appendStruct with encoding/json on the
// Struct protojson decodes from doc (when it does).
func checkAppendStruct(t *testing.T, doc []byte) {
	s := &structpb.Struct{}
	if protojson.Unmarshal(doc, s) != nil {
		return
	}
	if got, want := string(appendStruct(nil, s)), encodingJSON(t, s); got != want {
		t.Fatalf("%q: appendStruct %s, encoding/json %s", doc, got, want)
	}
}
