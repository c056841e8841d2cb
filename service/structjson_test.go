package service

import (
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
	got, err := decodeStruct(doc)
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

// Stored claims take the fast path: one string, the Struct, its map, and
// one allocation per value (protojson made 31 for these).
func TestDecodeStructTakesStoredClaimsFast(t *testing.T) {
	doc := []byte(`{"email":"user1@example.com","name":"Benchmark User","tier":3}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeStruct(doc); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 7 {
		t.Errorf("%v allocations, want at most 7", allocs)
	}
}
